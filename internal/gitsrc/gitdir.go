package gitsrc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/go-git/go-billy/v5/osfs"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/format/index"
	"github.com/go-git/go-git/v5/plumbing/format/packfile"
	"github.com/go-git/go-git/v5/storage/filesystem"

	"github.com/initbox/initbox/internal/atomicfile"
)

// IndexEntry is a file, symlink or gitlink a checkout wrote, for the
// index, with its stat data as read through the descriptor that wrote it.
type IndexEntry struct {
	Path string
	Mode filemode.FileMode
	Hash plumbing.Hash
	Stat *syscall.Stat_t
}

// MakeGitDir turns the checkout in dir into a repository that git accepts
// as clean: the fetched object store (objects, shallow) moved from
// storeDir to dir/.git, HEAD, the ref fetched, a config naming the remote,
// and an index describing every file as it was written (stat data
// included, so git status need not read them again). The ref's name came
// from the remote: it is checked as git checks one, and every file goes
// through an os.Root on .git, so no name can lead outside it.
func MakeGitDir(dir, storeDir string, res *Resolved, commit plumbing.Hash, remoteURL string, entries []IndexEntry) error {
	gitDir := filepath.Join(dir, ".git")
	if err := os.Rename(storeDir, gitDir); err != nil {
		return fmt.Errorf("moving the object store into .git: %w", err)
	}
	root, err := os.OpenRoot(gitDir)
	if err != nil {
		return err
	}
	defer root.Close()
	head := commit.String() + "\n" // a tag or a SHA: detached, as git clone does
	var refs [][2]string
	if res.Ref != "" {
		if err := CheckRefName(string(res.Ref)); err != nil {
			return &RefNameError{err}
		}
	}
	switch {
	case res.Ref.IsBranch():
		head = "ref: " + string(res.Ref) + "\n"
		refs = append(refs, [2]string{string(res.Ref), commit.String()})
	case res.Ref.IsTag():
		target := commit
		if !res.Tag.IsZero() {
			target = res.Tag
		}
		refs = append(refs, [2]string{string(res.Ref), target.String()})
	}
	files := map[string]string{
		"HEAD": head,
		"config": "[core]\n\trepositoryformatversion = 0\n\tfilemode = true\n\tbare = false\n\tlogallrefupdates = true\n" +
			"[remote \"origin\"]\n\turl = " + remoteURL + "\n\tfetch = +refs/heads/*:refs/remotes/origin/*\n",
	}
	for _, r := range refs {
		files[r[0]] = r[1] + "\n"
	}
	for _, d := range []string{"refs/heads", "refs/tags", "objects/info"} {
		if err := root.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	for name, body := range files {
		if err := root.MkdirAll(path.Dir(name), 0o755); err != nil {
			return err
		}
		f, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err != nil {
			return err
		}
		_, err = f.WriteString(body)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	}
	idx := &index.Index{Version: 2}
	for _, e := range entries {
		ie := &index.Entry{Hash: e.Hash, Name: e.Path, Mode: e.Mode}
		if st := e.Stat; st != nil {
			ie.CreatedAt = time.Unix(st.Ctim.Sec, st.Ctim.Nsec)
			ie.ModifiedAt = time.Unix(st.Mtim.Sec, st.Mtim.Nsec)
			ie.Dev, ie.Inode, ie.UID, ie.GID, ie.Size = uint32(st.Dev), uint32(st.Ino), st.Uid, st.Gid, uint32(st.Size)
		}
		if e.Mode == filemode.Submodule {
			ie.Size = 0 // a gitlink's size is none, as git records it
		}
		idx.Entries = append(idx.Entries, ie)
	}
	// Sorted as git sorts its index: by path, bytewise.
	sort.Slice(idx.Entries, func(i, j int) bool { return strings.Compare(idx.Entries[i].Name, idx.Entries[j].Name) < 0 })
	f, err := root.OpenFile("index", os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if err := index.NewEncoder(f).Encode(idx); err != nil {
		f.Close()
		return fmt.Errorf("writing the index: %w", err)
	}
	return f.Close()
}

// CopyTo writes into a new object store at dir what a repository of its
// own needs to hold commit: depth commits of its history (0: all), their
// trees and blobs, and the annotated tag res names, if any. It is how
// --git-dir gets a store for a file:// source, whose own store is read in
// place and is not the checkout's to move. The objects go through go-git's
// pack encoder and parser, as a fetch's would, undeltified (a local copy
// is not worth the delta search's time).
func (s *Store) CopyTo(ctx context.Context, dir string, res *Resolved, commit plumbing.Hash, depth int) (*Store, error) {
	seen := map[plumbing.Hash]bool{}
	var order []plumbing.Hash
	add := func(h plumbing.Hash) bool {
		if seen[h] {
			return false
		}
		seen[h] = true
		order = append(order, h)
		return true
	}
	var walkTree func(h plumbing.Hash) error
	walkTree = func(h plumbing.Hash) error {
		if !add(h) {
			return nil
		}
		es, err := readTree(s.st, h)
		if err != nil {
			return err
		}
		for _, e := range es {
			switch e.Mode {
			case filemode.Dir:
				if err := walkTree(e.Hash); err != nil {
					return err
				}
			case filemode.Submodule: // another repository's commit
			default:
				add(e.Hash)
			}
		}
		return ctx.Err()
	}
	if !res.Tag.IsZero() {
		add(res.Tag)
	}
	var shallow []plumbing.Hash
	level := []plumbing.Hash{commit}
	for n := 1; len(level) > 0; n++ {
		var next []plumbing.Hash
		for _, c := range level {
			if !add(c) {
				continue
			}
			tree, parents, err := commitLinks(s.st, c)
			if err != nil {
				return nil, err
			}
			if err := walkTree(tree); err != nil {
				return nil, err
			}
			if depth > 0 && n == depth && len(parents) > 0 {
				shallow = append(shallow, c)
				continue
			}
			next = append(next, parents...)
		}
		level = next
	}
	st := filesystem.NewStorageWithOptions(osfs.New(dir), objectCache(), storeOptions())
	pr, pw := io.Pipe()
	go func() {
		_, err := packfile.NewEncoder(pw, s.st, false).Encode(order, 0)
		pw.CloseWithError(err)
	}()
	err := packfile.UpdateObjectStorage(st, atomicfile.ContextReader(ctx, pr))
	pr.CloseWithError(errors.New("copy ended")) // the encoder stops too
	if err != nil {
		return nil, fmt.Errorf("copying the objects: %w", err)
	}
	if len(shallow) > 0 {
		if err := st.SetShallow(shallow); err != nil {
			return nil, err
		}
	}
	return &Store{st: st}, nil
}
