package cli

import (
	"strings"
	"testing"
)

// FuzzParse feeds the flag scanner command lines of the shapes people
// type: whatever the words, it neither panics nor loses one — the
// positional arguments are the words it did not take as flags or their
// values, in order — and an error is one line.
func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		"a --count 2 b", "-qv x", "-c2 x", "-qc=2 x", "--count", "-", "--", "a -- -q --count 1",
		"-5 -1s --delay -1s", "--name= --name=a=b", "-count 3 x", "-qx", "--quiet=maybe", "-h", "-=", "--=x", "-c",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, line string) {
		args := strings.Fields(line)
		if len(args) > 64 {
			return
		}
		inv := parseInvocation(&testApplets[0], args, func(string) (string, bool) { return "", false })
		if inv.err != nil {
			if strings.Contains(inv.err.Error(), "\n") {
				t.Fatalf("%q: error of more than one line: %q", args, inv.err)
			}
			return
		}
		// pos is a subsequence of args.
		j := 0
		for _, a := range args {
			if j < len(inv.pos) && inv.pos[j] == a {
				j++
			}
		}
		if j != len(inv.pos) {
			t.Fatalf("%q: positional %q are not the command line's words in order", args, inv.pos)
		}
		if d := inv.fs.dashdash; d > len(inv.pos) {
			t.Fatalf("%q: dashdash %d beyond %d arguments", args, d, len(inv.pos))
		}
	})
}
