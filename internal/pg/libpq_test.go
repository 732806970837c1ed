package pg

import (
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/initbox/initbox/internal/testenv"
)

// The installed libpq's own list of connection keywords (PQconndefaults,
// read by a small C program built here) is covered whole: each is handled
// by pgconn, sent as a run-time parameter, or handled by initbox. A libpq
// with a keyword initbox does not know fails this test, so the list is
// never quietly out of date.
func TestKeywordsAgainstLibpq(t *testing.T) {
	cc, err := exec.LookPath("cc")
	if err != nil {
		testenv.Skip(t, "a C compiler (Debian's gcc) is needed to ask libpq for its keywords")
	}
	libs, _ := filepath.Glob("/usr/lib/*/libpq.so.5")
	if len(libs) == 0 {
		testenv.Skip(t, "libpq.so.5 (Debian's libpq5) is not installed")
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "kw.c")
	// The struct as libpq-fe.h declares it; no headers needed.
	os.WriteFile(src, []byte(`#include <stdio.h>
typedef struct { char *keyword, *envvar, *compiled, *val, *label, *dispchar; int dispsize; } PQconninfoOption;
extern PQconninfoOption *PQconndefaults(void);
int main(void) { for (PQconninfoOption *o = PQconndefaults(); o && o->keyword; o++) printf("%s\n", o->keyword); return 0; }
`), 0o644)
	bin := filepath.Join(dir, "kw")
	if out, err := exec.Command(cc, "-o", bin, src, libs[0]).CombinedOutput(); err != nil {
		t.Fatalf("cc: %v\n%s", err, out)
	}
	out, err := exec.Command(bin).Output()
	if err != nil {
		t.Fatal(err)
	}
	known := map[string]bool{}
	for _, k := range pgconnKeywords {
		known[k] = true
	}
	for k := range runtimeKeywords {
		known[k] = true
	}
	for k := range handledKeywords {
		known[k] = true
	}
	kws := strings.Fields(string(out))
	if len(kws) < 30 {
		t.Fatalf("libpq lists only %d keywords: %q", len(kws), kws)
	}
	var missing []string
	for _, k := range kws {
		if !known[k] {
			missing = append(missing, k)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Fatalf("libpq keywords initbox does not handle: %v", missing)
	}
	t.Logf("%d libpq keywords, all handled", len(kws))
}
