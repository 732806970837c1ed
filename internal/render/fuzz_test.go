package render

import (
	"bytes"
	"strings"
	"testing"
)

// Expansion never panics; with no names to replace, it changes nothing at
// all (GNU's SHELL-FORMAT mode keeps $$ too); every error names the file
// and a line.
func FuzzEnvsubst(f *testing.F) {
	for _, s := range []string{"$A ${B} ${C:-d} ${D:?m} $$ $", "${", "${A", "${A\n}", "$1 ${1} ${}", "a$$$b", "${A:-${B}}"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		env := map[string]string{"A": "alpha", "B": ""}
		lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
		var out bytes.Buffer
		if err := (&envsubst{lookup: lookup}).expand("in", []byte(s), &out); err != nil && !strings.HasPrefix(err.Error(), "in:") {
			t.Fatalf("%q: error without file:line: %v", s, err)
		}
		out.Reset()
		if err := (&envsubst{lookup: lookup, only: map[string]bool{}}).expand("in", []byte(s), &out); err != nil {
			t.Fatalf("%q: with no names to replace: %v", s, err)
		}
		if want := s; out.String() != want {
			t.Fatalf("%q: with no names to replace became %q, want %q", s, out.String(), want)
		}
	})
}
