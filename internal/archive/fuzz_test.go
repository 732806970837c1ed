package archive

import (
	"path"
	"strings"
	"testing"
)

// No entry name that clean accepts, and no link target that inside
// accepts, resolves outside the destination.
func FuzzEntryPaths(f *testing.F) {
	for _, s := range [][2]string{{"a/b", "../c"}, {"../x", "y"}, {"/etc/passwd", "/etc"}, {`..\..\x`, `..\y`}, {"a/./../../b", "a"}, {"C:x", "D:/y"}, {"a//b/", "../../.."}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, name, target string) {
		escapes := func(p string) bool {
			j := path.Join("/root", p)
			return j != "/root" && !strings.HasPrefix(j, "/root/")
		}
		p, err := clean(name)
		if err != nil {
			return
		}
		if escapes(p) || strings.HasPrefix(p, "/") {
			t.Fatalf("clean(%q) = %q, outside the root", name, p)
		}
		if inside(p, target) && escapes(path.Join(path.Dir(p), target)) {
			t.Fatalf("inside(%q, %q) holds, but the link resolves outside", p, target)
		}
	})
}
