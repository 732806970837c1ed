package run

import (
	"reflect"
	"strings"
	"testing"
)

// Splitting never panics, and a step printed by the plan splits back into
// the same words.
func FuzzSplitWords(f *testing.F) {
	for _, s := range []string{"waitfor dns mydb --timeout 2m", `a 'b c' "d \"e\"" g\ h`, "a & b", "x '&' y", `"unterminated`, "a && b", "\\\n", "''", `"$HOME" '$(X)'`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		groups, err := splitWords(s)
		if err != nil {
			return
		}
		for _, words := range groups {
			if len(words) == 0 {
				t.Fatalf("%q: an empty step", s)
			}
			again, err := splitWords(quoteWords(words))
			if err != nil || len(again) != 1 || !reflect.DeepEqual(again[0], words) {
				if strings.ContainsAny(strings.Join(words, ""), "\x00") {
					return
				}
				t.Fatalf("%q: words %q printed as %q split back as %q, %v", s, words, quoteWords(words), again, err)
			}
		}
	})
}
