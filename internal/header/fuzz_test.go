package header

import (
	"strings"
	"testing"

	"github.com/initbox/initbox/internal/redact"
)

// A header parses into a name and a value without line breaks, or an
// error; a credential header's value never survives printing.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"Authorization: Bearer abc123", "X-Token: s3cr3t", "Name: @/nonexistent", "bad", ": x", "A: b\r\nInjected: 1", "Cookie: a=b; c=d"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		set := &redact.Set{}
		h, err := Parse(s, set)
		if err != nil {
			return
		}
		if strings.ContainsAny(h.Name+h.Value, "\r\n") {
			t.Fatalf("%q: a line break survived: %+v", s, h)
		}
		if redact.IsSecretHeader(h.Name) && len(h.Value) >= redact.MinLen && strings.Contains(set.String("sent "+h.Name+": "+h.Value), h.Value) {
			t.Fatalf("%q: the value of %s is printed", s, h.Name)
		}
	})
}
