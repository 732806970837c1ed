package atomicfile

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// WriteData lays a directory out as the kubelet lays out a Secret volume,
// and a second payload replaces the first whole: a name it no longer has
// is gone, the old timestamped directory too.
func TestWriteDataAsTheKubelet(t *testing.T) {
	dir := t.TempDir()
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	ctx := context.Background()
	own := Owner{UID: -1, GID: -1}
	if err := WriteData(ctx, root, dir, []DataFile{{"a", []byte("1"), 0o644}, {"b", []byte("2"), 0o600}}, own); err != nil {
		t.Fatal(err)
	}
	first, _ := os.Readlink(filepath.Join(dir, DataLink))
	for name, want := range map[string]string{"a": "1", "b": "2"} {
		if b, err := os.ReadFile(filepath.Join(dir, name)); err != nil || string(b) != want {
			t.Fatalf("%s: %q %v", name, b, err)
		}
		if l, _ := os.Readlink(filepath.Join(dir, name)); l != DataLink+"/"+name {
			t.Fatalf("%s links to %q", name, l)
		}
	}
	if fi, _ := os.Stat(filepath.Join(dir, "b")); fi.Mode().Perm() != 0o600 {
		t.Fatalf("b is %v", fi.Mode())
	}
	if err := WriteData(ctx, root, dir, []DataFile{{"a", []byte("3"), 0o644}}, own); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "a")); string(b) != "3" {
		t.Fatalf("a is %q after the second payload", b)
	}
	if _, err := os.Lstat(filepath.Join(dir, "b")); !os.IsNotExist(err) {
		t.Fatalf("b outlived the payload that dropped it: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, first)); !os.IsNotExist(err) {
		t.Fatalf("the first payload's directory %s is still there", first)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 3 { // ..data, its directory, a
		t.Fatalf("%d entries left: %v", len(ents), ents)
	}
	for _, bad := range []string{"x/y", "..data", "..x", "", "."} {
		if err := WriteData(ctx, root, dir, []DataFile{{bad, nil, 0o644}}, own); err == nil || !strings.Contains(err.Error(), "not a file name") {
			t.Errorf("name %q: %v", bad, err)
		}
	}
	// A ..data that is not a link is not a data directory: refused, left.
	other := t.TempDir()
	os.Mkdir(filepath.Join(other, DataLink), 0o755)
	r2, _ := os.OpenRoot(other)
	defer r2.Close()
	if err := WriteData(ctx, r2, other, []DataFile{{"a", nil, 0o644}}, own); err == nil || !strings.Contains(err.Error(), "is not a link") {
		t.Fatalf("a plain ..data directory: %v", err)
	}
}
