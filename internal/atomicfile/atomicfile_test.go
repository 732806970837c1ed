package atomicfile

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func leftovers(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var tmp []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), TempPrefix) {
			tmp = append(tmp, e.Name())
		}
	}
	return tmp
}

func TestWriteReplacesWhole(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	os.WriteFile(p, []byte("a much longer old content that must not leave a tail"), 0o600)
	if err := Write(context.Background(), p, strings.NewReader("new"), 0o640); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(p)
	fi, _ := os.Stat(p)
	if string(b) != "new" || fi.Mode().Perm() != 0o640 {
		t.Fatalf("content %q mode %v", b, fi.Mode())
	}
	if l := leftovers(t, dir); l != nil {
		t.Fatalf("left %v", l)
	}
}

type failingReader struct{ n int }

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n > 3 {
		return 0, errors.New("connection reset")
	}
	f.n++
	return copy(p, "part"), nil
}

func TestFailureLeavesDestinationUntouched(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	os.WriteFile(p, []byte("old"), 0o644)
	err := Write(context.Background(), p, &failingReader{}, 0o644)
	if err == nil || !strings.Contains(err.Error(), "connection reset") {
		t.Fatalf("err %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Write(ctx, p, strings.NewReader("new"), 0o644); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: err %v", err)
	}
	if b, _ := os.ReadFile(p); string(b) != "old" {
		t.Fatalf("destination changed to %q", b)
	}
	if l := leftovers(t, dir); l != nil {
		t.Fatalf("left %v", l)
	}
	// A directory that cannot hold the temporary file is an error, not a
	// write somewhere else.
	if err := Write(context.Background(), filepath.Join(dir, "missing", "f"), io.LimitReader(strings.NewReader("x"), 1), 0o644); err == nil {
		t.Fatal("wrote into a missing directory")
	}
}

func TestSymlink(t *testing.T) {
	dir := t.TempDir()
	link := filepath.Join(dir, "l")
	os.WriteFile(link, []byte("a file in the way"), 0o644)
	if err := Symlink("target", link); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.Readlink(link); got != "target" {
		t.Fatalf("link to %q", got)
	}
	if err := Symlink("other", link); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.Readlink(link); got != "other" {
		t.Fatalf("link to %q", got)
	}
	os.Mkdir(filepath.Join(dir, "d"), 0o755)
	if err := Symlink("x", filepath.Join(dir, "d")); err == nil {
		t.Fatal("replaced a directory")
	}
	if l := leftovers(t, dir); l != nil {
		t.Fatalf("left %v", l)
	}
}
