package archive

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

type entry struct {
	name, body, link string
	typ              byte
	mode             int64
	size             int64 // for zero-filled bodies
}

func makeTar(t *testing.T, es []entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range es {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: e.mode, Linkname: e.link, ModTime: time.Unix(1700000000, 0)}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if e.typ == tar.TypeReg {
			h.Size = int64(len(e.body)) + e.size
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if e.typ == tar.TypeReg {
			io.WriteString(tw, e.body)
			io.CopyN(tw, zeros{}, e.size)
		}
	}
	tw.Close()
	return buf.Bytes()
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

func compress(t *testing.T, f Format, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	switch f {
	case Tar:
		return data
	case TarGz, Gz:
		w := gzip.NewWriter(&buf)
		w.Write(data)
		w.Close()
	case TarXz, Xz:
		w, _ := xz.NewWriter(&buf)
		w.Write(data)
		w.Close()
	case TarZst, Zst:
		w, _ := zstd.NewWriter(&buf)
		w.Write(data)
		w.Close()
	default:
		t.Fatalf("no compressor for %s", f)
	}
	return buf.Bytes()
}

func writeTemp(t *testing.T, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "archive")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// tree lists dir: "path type [-> target] [content]".
func tree(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		switch {
		case fi.Mode()&os.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			out = append(out, rel+" l -> "+target)
		case fi.IsDir():
			out = append(out, rel+" d")
		default:
			b, _ := os.ReadFile(p)
			out = append(out, rel+" f "+fi.Mode().Perm().String()+" "+string(b))
		}
		return nil
	})
	sort.Strings(out)
	return out
}

func TestExtractTarFormats(t *testing.T) {
	es := []entry{
		{name: "site/", typ: tar.TypeDir, mode: 0o755},
		{name: "site/index.html", typ: tar.TypeReg, body: "<h1>hi</h1>", mode: 0o4755},
		{name: "site/current", typ: tar.TypeSymlink, link: "index.html"},
		{name: "site/same.html", typ: tar.TypeLink, link: "site/index.html"},
		{name: "./site/deep/er/file", typ: tar.TypeReg, body: "x"},
	}
	want := []string{"site d", "site/current l -> index.html", "site/deep d", "site/deep/er d", "site/deep/er/file f -rw-r--r-- x",
		"site/index.html f -rwxr-xr-x <h1>hi</h1>", "site/same.html f -rwxr-xr-x <h1>hi</h1>"}
	for _, f := range []Format{Tar, TarGz, TarXz, TarZst} {
		dir := t.TempDir()
		n, err := Extract(context.Background(), f, writeTemp(t, compress(t, f, makeTar(t, es))), dir, Limits{})
		if err != nil || n != len(es) {
			t.Fatalf("%s: %d entries, %v", f, n, err)
		}
		if got := tree(t, dir); strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Fatalf("%s:\n%s", f, strings.Join(got, "\n"))
		}
		fi, _ := os.Stat(filepath.Join(dir, "site/index.html"))
		if fi.Mode()&os.ModeSetuid != 0 || !fi.ModTime().Equal(time.Unix(1700000000, 0)) {
			t.Fatalf("%s: mode %v mtime %v (setuid must go, mtime stay)", f, fi.Mode(), fi.ModTime())
		}
	}
}

// Hostile archives: each refused with an error naming the entry, and
// nothing written outside the destination.
func TestHostileTars(t *testing.T) {
	for _, tc := range []struct {
		name string
		es   []entry
		want string
	}{
		{"zip-slip", []entry{{name: "../evil", typ: tar.TypeReg, body: "x"}}, `"../evil": a path with .. lands outside`},
		{"nested slip", []entry{{name: "a/../../evil", typ: tar.TypeReg, body: "x"}}, `"a/../../evil": a path with .. lands outside`},
		{"absolute", []entry{{name: "/etc/evil", typ: tar.TypeReg, body: "x"}}, `"/etc/evil": an absolute path lands outside`},
		{"symlink absolute", []entry{{name: "etc", typ: tar.TypeSymlink, link: "/etc"}}, `"etc": a symlink to "/etc" points outside`},
		{"symlink up", []entry{{name: "a/up", typ: tar.TypeSymlink, link: "../../x"}}, `"a/up": a symlink to "../../x" points outside`},
		{"write through symlink", []entry{
			{name: "d", typ: tar.TypeSymlink, link: "sub/.."},
			{name: "sub/", typ: tar.TypeDir},
			{name: "d/../../escape", typ: tar.TypeReg, body: "x"},
		}, `"d/../../escape": a path with .. lands outside`},
		{"hard link out", []entry{{name: "pw", typ: tar.TypeLink, link: "../../etc/passwd"}}, `"pw": a hard link to "../../etc/passwd" points outside`},
		{"hard link absolute", []entry{{name: "pw", typ: tar.TypeLink, link: "/etc/passwd"}}, `"pw": a hard link to "/etc/passwd" points outside`},
		{"hard link to nothing", []entry{{name: "pw", typ: tar.TypeLink, link: "missing"}}, `"pw": a hard link to "missing", which is not a file`},
		{"device", []entry{{name: "dev", typ: tar.TypeChar}}, `"dev": entries of type`},
		// Chains of links, each "inside" as text, that the real tree
		// resolves outside.
		{"write under a link to the root", []entry{
			{name: "x", typ: tar.TypeSymlink, link: "."},
			{name: "x/y", typ: tar.TypeSymlink, link: ".."},
		}, `"x/y": its parent "x" is a symlink`},
		{"file under a link", []entry{
			{name: "sub/", typ: tar.TypeDir},
			{name: "etc", typ: tar.TypeSymlink, link: "sub"},
			{name: "etc/passwd", typ: tar.TypeReg, body: "x"},
		}, `"etc/passwd": its parent "etc" is a symlink`},
		{"dir over a link", []entry{
			{name: "sub/", typ: tar.TypeDir},
			{name: "l", typ: tar.TypeSymlink, link: "sub"},
			{name: "l/", typ: tar.TypeDir, mode: 0o777},
		}, `"l/": a directory where the archive already put a file or a link`},
		{"target through a link", []entry{
			{name: "d/", typ: tar.TypeDir},
			{name: "d/l", typ: tar.TypeSymlink, link: ".."},
			{name: "d/l2", typ: tar.TypeSymlink, link: "l/.."},
		}, `"d/l2": a symlink to "l/.." resolves outside the destination: it leads above`},
		{"a later link changes an earlier target", []entry{
			{name: "d/", typ: tar.TypeDir},
			{name: "d/p", typ: tar.TypeSymlink, link: "q/../.."},
			{name: "d/q", typ: tar.TypeSymlink, link: "."},
		}, `"d/p": a symlink that resolves outside the destination: it leads above`},
		{"link loop", []entry{
			{name: "a", typ: tar.TypeSymlink, link: "b"},
			{name: "b", typ: tar.TypeSymlink, link: "a"},
		}, `a loop of links`},
		{"empty", nil, "the archive is empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			parent := t.TempDir()
			dir := filepath.Join(parent, "a", "dest")
			os.MkdirAll(dir, 0o755)
			_, err := Extract(context.Background(), Tar, writeTemp(t, makeTar(t, tc.es)), dir, Limits{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
			if _, err := os.Lstat(filepath.Join(parent, "evil")); err == nil {
				t.Fatal("wrote outside the destination")
			}
			if _, err := os.Lstat(filepath.Join(parent, "a", "escape")); err == nil {
				t.Fatal("wrote outside the destination")
			}
		})
	}
}

// os.Root refuses to write through a symlink that leads out, even one the
// name checks would pass (a symlink inside that points to a symlink out is
// itself refused first; this covers a symlink planted before unpacking).
func TestPlantedSymlinkIsNotFollowed(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "dest")
	os.Mkdir(dir, 0o755)
	os.Symlink(parent, filepath.Join(dir, "out"))
	_, err := Extract(context.Background(), Tar, writeTemp(t, makeTar(t, []entry{{name: "out/evil", typ: tar.TypeReg, body: "x"}})), dir, Limits{})
	if err == nil {
		t.Fatal("wrote through a planted symlink")
	}
	if _, err := os.Stat(filepath.Join(parent, "evil")); err == nil {
		t.Fatal("wrote outside the destination")
	}
}

func TestLimits(t *testing.T) {
	// A gzip bomb: 64 MiB of zeros in a few tens of KiB, against 1 MiB.
	bomb := compress(t, TarGz, makeTar(t, []entry{{name: "zeros", typ: tar.TypeReg, size: 64 << 20}}))
	if len(bomb) > 1<<20 {
		t.Fatalf("the bomb is %d bytes", len(bomb))
	}
	_, err := Extract(context.Background(), TarGz, writeTemp(t, bomb), t.TempDir(), Limits{Bytes: 1 << 20})
	if !errors.Is(err, ErrLimit) || !strings.Contains(err.Error(), "more than 1048576 bytes") {
		t.Fatalf("bomb: %v", err)
	}
	var many []entry
	for i := 0; i < 20; i++ {
		many = append(many, entry{name: "f" + string(rune('a'+i)), typ: tar.TypeReg, body: "x"})
	}
	_, err = Extract(context.Background(), Tar, writeTemp(t, makeTar(t, many)), t.TempDir(), Limits{Files: 10})
	if !errors.Is(err, ErrLimit) || !strings.Contains(err.Error(), "more than 10 entries") {
		t.Fatalf("many: %v", err)
	}
	// Exactly at the limits is fine.
	if _, err := Extract(context.Background(), Tar, writeTemp(t, makeTar(t, many)), t.TempDir(), Limits{Files: 20, Bytes: 20}); err != nil {
		t.Fatal(err)
	}
	// A single compressed file: the same bound on what it unpacks to.
	var out bytes.Buffer
	_, err = DecompressFile(context.Background(), Gz, bytes.NewReader(compress(t, Gz, make([]byte, 2<<20))), &out, Limits{Bytes: 1 << 20})
	if !errors.Is(err, ErrLimit) {
		t.Fatalf("gz: %v", err)
	}
}

func TestZip(t *testing.T) {
	build := func(files map[string]string, link map[string]string) string {
		var buf bytes.Buffer
		zw := zip.NewWriter(&buf)
		var names []string
		for n := range files {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			w, _ := zw.Create(n)
			io.WriteString(w, files[n])
		}
		for n, target := range link {
			h := &zip.FileHeader{Name: n}
			h.SetMode(os.ModeSymlink | 0o777)
			w, _ := zw.CreateHeader(h)
			io.WriteString(w, target)
		}
		zw.Close()
		return writeTemp(t, buf.Bytes())
	}
	dir := t.TempDir()
	if _, err := Extract(context.Background(), Zip, build(map[string]string{"a/b.txt": "b", "c.txt": "c"}, map[string]string{"a/link": "b.txt"}), dir, Limits{}); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(tree(t, dir), "|"); got != "a d|a/b.txt f -rw-r--r-- b|a/link l -> b.txt|c.txt f -rw-r--r-- c" {
		t.Fatal(got)
	}
	for name, z := range map[string]string{
		"slip":    build(map[string]string{"../../evil": "x"}, nil),
		"symlink": build(nil, map[string]string{"l": "/etc/passwd"}),
	} {
		if _, err := Extract(context.Background(), Zip, z, t.TempDir(), Limits{}); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestFormats(t *testing.T) {
	for name, want := range map[string]Format{"site.tar.gz": TarGz, "x.TGZ": TarGz, "a.zip": Zip, "b.tar.zst": TarZst, "c.gz": Gz, "d.json": None, "e": None} {
		if got := FromName(name); got != want {
			t.Errorf("FromName(%s) = %s", name, got)
		}
	}
	if _, err := ParseFormat("rar"); err == nil {
		t.Error("rar accepted")
	}
}
