package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"time"
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

// Random sequences of directories, files, symlinks and hard links, with
// names and targets made of "a", "b", ".", ".." and "/": whatever Extract
// says, nothing outside the destination is created or changed, and after
// a success no link in it leads out (resolved by the kernel's rules, through
// every other link).
func FuzzExtractLinks(f *testing.F) {
	for _, s := range []string{
		"lx>.\nla/b>..",            // x -> ., then x/y -> ..
		"dd\nld/p>q/../..\nld/q>.", // a later link changes an earlier target
		"ll>..\nfl/f",              // a file through a link out
		"da\nfa/f\nhb>a/f\nhc>b",   // hard links
		"l.initbox-fetch>../x",
		"dd\nld/l>..\nld/l2>l/..\nfd/l2/x", // a target through a link
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, script string) {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		// One entry a line: a type letter (d, f, l, h), the name, and
		// for links ">target".
		for i, line := range strings.Split(script, "\n") {
			if i >= 100 || len(line) < 2 || len(line) > 128 {
				continue
			}
			name, target, _ := strings.Cut(line[1:], ">")
			h := &tar.Header{Name: name, Mode: 0o755, ModTime: time.Unix(1, 0)}
			switch line[0] {
			case 'd':
				h.Typeflag = tar.TypeDir
			case 'f':
				h.Typeflag, h.Size = tar.TypeReg, 1
			case 'l':
				h.Typeflag, h.Linkname = tar.TypeSymlink, target
			case 'h':
				h.Typeflag, h.Linkname = tar.TypeLink, target
			default:
				continue
			}
			if tw.WriteHeader(h) != nil {
				return
			}
			if h.Typeflag == tar.TypeReg {
				tw.Write([]byte("x"))
			}
		}
		tw.Close()
		base := t.TempDir()
		dest := filepath.Join(base, "in", "dest")
		outside := filepath.Join(base, "outside")
		os.MkdirAll(dest, 0o755)
		os.MkdirAll(outside, 0o700)
		sentinel := filepath.Join(outside, "f")
		os.WriteFile(sentinel, []byte("keep"), 0o600)
		src := filepath.Join(t.TempDir(), "archive.tar")
		os.WriteFile(src, buf.Bytes(), 0o600)
		before := snapshot(t, base, dest)
		_, err := Extract(context.Background(), Tar, src, dest, Limits{Files: 200, Bytes: 1 << 20})
		if after := snapshot(t, base, dest); !equal(before, after) {
			t.Fatalf("outside the destination changed (err %v):\nbefore %v\nafter  %v", err, before, after)
		}
		if err != nil {
			return
		}
		filepath.Walk(dest, func(p string, fi fs.FileInfo, err error) error {
			if err != nil || fi.Mode()&fs.ModeSymlink == 0 {
				return nil
			}
			real, err := filepath.EvalSymlinks(p)
			if err != nil {
				return nil // dangling: leads nowhere
			}
			if real != dest && !strings.HasPrefix(real, dest+"/") {
				t.Fatalf("accepted a link %s that resolves to %s", p, real)
			}
			return nil
		})
	})
}

// snapshot lists everything under base but dest: path, mode, size, mtime
// and content of files.
func snapshot(t *testing.T, base, dest string) map[string]string {
	t.Helper()
	out := map[string]string{}
	filepath.Walk(base, func(p string, fi fs.FileInfo, err error) error {
		if err != nil {
			return nil
		}
		if p == dest {
			return filepath.SkipDir
		}
		rel, _ := filepath.Rel(base, p)
		v := fi.Mode().String() + " " + fi.ModTime().String()
		if fi.Mode().IsRegular() {
			b, _ := os.ReadFile(p)
			v += " " + string(b)
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			l, _ := os.Readlink(p)
			v += " -> " + l
		}
		out[rel] = v
		return nil
	})
	return out
}

func equal(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
