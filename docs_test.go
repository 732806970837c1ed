package main

import (
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/initbox/initbox/internal/applets"
	"github.com/initbox/initbox/internal/testenv"
)

// README's applet table says what each applet's own help says: the rows
// are the applets of the binary, in its order, with its summaries.
func TestReadmeAppletTableIsTheSummaries(t *testing.T) {
	readme := testenv.ReadFile(t, filepath.Join(testenv.RepoRoot(), "README.md"))
	i := strings.Index(readme, "| applet | what it does |")
	if i < 0 {
		t.Fatal("README has no applet table")
	}
	row := regexp.MustCompile("^\\| `([a-z]+)` \\| (.*) \\|$")
	var got []string
	for _, l := range strings.Split(readme[i:], "\n")[2:] {
		m := row.FindStringSubmatch(l)
		if m == nil {
			break
		}
		got = append(got, m[1]+": "+m[2])
	}
	var want []string
	for _, a := range applets.All {
		want = append(want, a.Name+": "+a.Summary)
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("README's applet table:\n%s\nthe applets' summaries:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// The README states sizes rounded, or where a test regenerates them: an
// exact byte count there goes stale at the next change.
func TestReadmeCopiesNoByteCounts(t *testing.T) {
	readme := testenv.ReadFile(t, filepath.Join(testenv.RepoRoot(), "README.md"))
	exact := regexp.MustCompile(`\b\d{1,3}(,\d{3}){2,} bytes\b|\b\d{7,} bytes\b`)
	budgets := map[string]bool{"6,800,000 bytes": true, "17,500,000 bytes": true}
	for _, m := range exact.FindAllString(readme, -1) {
		if !budgets[m] {
			t.Errorf("README states an exact size %q: round it or point at BENCHMARKS.md", m)
		}
	}
}
