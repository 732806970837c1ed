package tmpl

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/initbox/initbox/internal/testenv"
)

// Whatever the kubelet writes reads back exactly; anything else is an
// error or a map, never a panic.
func FuzzParseMap(f *testing.F) {
	f.Add("app", "web", "a=\"1\"\nb=\"x\\ny\"")
	f.Add("k", "\xff\xfe", "novalue")
	f.Add("example.com/k", "multi\nline \"q\" \\", `k="unterminated`)
	f.Fuzz(func(t *testing.T, key, value, raw string) {
		ParseMap(raw)
		if key == "" || strings.ContainsAny(key, "=\n") {
			return
		}
		m := map[string]string{key: value, "z-other": "v"}
		got, err := ParseMap(testenv.KubeletMap(m))
		if err != nil || !reflect.DeepEqual(got, m) {
			t.Fatalf("%q: got %q, %v", m, got, err)
		}
	})
}

// A values file is a map or a one-line error naming the file.
func FuzzLoadValues(f *testing.F) {
	for _, s := range []string{"a: 1\nb: [x, y]\n", `{"a": {"b": 2}}`, "- list", "a: [1, 2", "", "~", "a: &x 1\nb: *x\n", "!!binary aGk="} {
		f.Add(s, "a.b=c")
	}
	f.Fuzz(func(t *testing.T, content, set string) {
		p := filepath.Join(t.TempDir(), "values.yaml")
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		v, err := LoadValues([]string{p}, []string{set}, "set")
		if err != nil {
			if !strings.Contains(err.Error(), "values.yaml") && !strings.Contains(err.Error(), "--set") {
				t.Fatalf("error names neither the file nor the flag: %v", err)
			}
			return
		}
		if v == nil {
			t.Fatal("nil values without an error")
		}
	})
}
