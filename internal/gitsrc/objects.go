package gitsrc

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/storer"
)

// The three object formats a checkout reads — a commit's tree, a tag's
// target, a tree's entries — decoded here rather than through go-git's
// plumbing/object, which links OpenPGP (ProtonMail/go-crypto,
// cloudflare/circl) for signatures and go-diff for patches: measured,
// plumbing/object with the in-process file server that needs it weighed
// 1.33 MB in the binary (15,282,338 → 13,955,234 bytes, BENCHMARKS.md),
// this file a few KB. The formats are git's own
// (Documentation/gitformat-*): headers up to a blank line for commits and
// tags, "MODE NAME\0" + 20 hash bytes per tree entry.

// maxHeader bounds a commit's or tag's headers: only those are read.
const maxHeader = 1 << 20

func object(st storer.EncodedObjectStorer, h plumbing.Hash) (plumbing.ObjectType, io.ReadCloser, int64, error) {
	o, err := st.EncodedObject(plumbing.AnyObject, h)
	if err != nil {
		return 0, nil, 0, fmt.Errorf("object %s: %w", h, err)
	}
	r, err := o.Reader()
	if err != nil {
		return 0, nil, 0, fmt.Errorf("object %s: %w", h, err)
	}
	return o.Type(), r, o.Size(), nil
}

// readBlob reads at most max bytes of the blob h.
func readBlob(st storer.EncodedObjectStorer, h plumbing.Hash, max int64) ([]byte, error) {
	typ, r, _, err := object(st, h)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	if typ != plumbing.BlobObject {
		return nil, fmt.Errorf("%s is a %s, not a blob", h, typ)
	}
	return io.ReadAll(io.LimitReader(r, max))
}

// header returns the value of the first header line key of a commit or tag.
func header(r io.Reader, key string) (string, error) {
	br := bufio.NewReader(io.LimitReader(r, maxHeader))
	for {
		line, err := br.ReadString('\n')
		if k, v, ok := bytesCut(line, ' '); ok && k == key {
			return v, nil
		}
		if line == "\n" || err != nil {
			return "", fmt.Errorf("no %q header", key)
		}
	}
}

func bytesCut(line string, sep byte) (string, string, bool) {
	i := bytes.IndexByte([]byte(line), sep)
	if i < 0 {
		return "", "", false
	}
	v := line[i+1:]
	if n := len(v); n > 0 && v[n-1] == '\n' {
		v = v[:n-1]
	}
	return line[:i], v, true
}

func parseHash(s string) (plumbing.Hash, error) {
	if !IsSHA(s) {
		return plumbing.ZeroHash, fmt.Errorf("%q is not an object name", s)
	}
	return plumbing.NewHash(s), nil
}

// commitTree peels h (tags, up to 10 deep) to a commit and returns the
// commit and its tree.
func commitTree(st storer.EncodedObjectStorer, h plumbing.Hash) (commit, tree plumbing.Hash, err error) {
	for i := 0; i < 10; i++ {
		typ, r, _, err := object(st, h)
		if err != nil {
			return h, plumbing.ZeroHash, err
		}
		switch typ {
		case plumbing.TagObject:
			v, err := header(r, "object")
			r.Close()
			if err != nil {
				return h, plumbing.ZeroHash, fmt.Errorf("tag %s: %w", h, err)
			}
			if h, err = parseHash(v); err != nil {
				return h, plumbing.ZeroHash, fmt.Errorf("tag %s: %w", h, err)
			}
		case plumbing.CommitObject:
			v, err := header(r, "tree")
			r.Close()
			if err != nil {
				return h, plumbing.ZeroHash, fmt.Errorf("commit %s: %w", h, err)
			}
			t, err := parseHash(v)
			return h, t, err
		default:
			r.Close()
			return h, plumbing.ZeroHash, fmt.Errorf("%s is a %s, not a commit", h, typ)
		}
	}
	return h, plumbing.ZeroHash, errors.New("tags nested more than 10 deep")
}

// entry is one tree entry.
type entry struct {
	Name string
	Mode filemode.FileMode
	Hash plumbing.Hash
}

// readTree decodes the tree h.
func readTree(st storer.EncodedObjectStorer, h plumbing.Hash) ([]entry, error) {
	typ, r, size, err := object(st, h)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	if typ != plumbing.TreeObject {
		return nil, fmt.Errorf("%s is a %s, not a tree", h, typ)
	}
	b, err := io.ReadAll(io.LimitReader(r, size))
	if err != nil {
		return nil, err
	}
	var out []entry
	for len(b) > 0 {
		sp := bytes.IndexByte(b, ' ')
		nul := bytes.IndexByte(b, 0)
		if sp <= 0 || nul < sp || len(b) < nul+1+20 {
			return nil, fmt.Errorf("tree %s is malformed", h)
		}
		mode, err := filemode.New(string(b[:sp]))
		if err != nil {
			return nil, fmt.Errorf("tree %s: %w", h, err)
		}
		var eh plumbing.Hash
		copy(eh[:], b[nul+1:nul+21])
		out = append(out, entry{Name: string(b[sp+1 : nul]), Mode: mode, Hash: eh})
		b = b[nul+21:]
	}
	return out, nil
}

// findDir walks the directory path p from tree; every component must be a
// directory (a symlink on the way is refused).
func findDir(st storer.EncodedObjectStorer, tree plumbing.Hash, p string) (plumbing.Hash, error) {
	for _, name := range splitPath(p) {
		es, err := readTree(st, tree)
		if err != nil {
			return tree, err
		}
		found := false
		for _, e := range es {
			if e.Name == name {
				if e.Mode != filemode.Dir {
					return tree, fmt.Errorf("//%s: %s is not a directory in the commit (mode %s)", p, name, e.Mode)
				}
				tree, found = e.Hash, true
				break
			}
		}
		if !found {
			return tree, fmt.Errorf("the commit has no directory %s", p)
		}
	}
	return tree, nil
}

func splitPath(p string) []string {
	var out []string
	for _, s := range bytes.Split([]byte(p), []byte("/")) {
		if len(s) > 0 && string(s) != "." {
			out = append(out, string(s))
		}
	}
	return out
}

// commitLinks is a commit's tree and parents.
func commitLinks(st storer.EncodedObjectStorer, h plumbing.Hash) (tree plumbing.Hash, parents []plumbing.Hash, err error) {
	typ, r, _, err := object(st, h)
	if err != nil {
		return tree, nil, err
	}
	defer r.Close()
	if typ != plumbing.CommitObject {
		return tree, nil, fmt.Errorf("%s is a %s, not a commit", h, typ)
	}
	br := bufio.NewReader(io.LimitReader(r, maxHeader))
	for {
		line, rerr := br.ReadString('\n')
		if line == "\n" || (rerr != nil && line == "") {
			break
		}
		k, v, ok := bytesCut(line, ' ')
		if !ok {
			continue
		}
		switch k {
		case "tree":
			if tree, err = parseHash(v); err != nil {
				return tree, nil, fmt.Errorf("commit %s: %w", h, err)
			}
		case "parent":
			p, err := parseHash(v)
			if err != nil {
				return tree, nil, fmt.Errorf("commit %s: %w", h, err)
			}
			parents = append(parents, p)
		}
		if rerr != nil {
			break
		}
	}
	if tree.IsZero() {
		return tree, nil, fmt.Errorf("commit %s has no tree", h)
	}
	return tree, parents, nil
}
