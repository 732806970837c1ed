package atomicfile

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/initbox/initbox/internal/oserr"
)

// Place is where output is staged before it is published at dest: on
// dest's own filesystem, so that publishing is a rename.
type Place struct {
	dest    string
	staging string // directory holding temporary files and trees
	// inside: dest is a mount point (an emptyDir's root), so staging is
	// inside it and a tree is published by moving its entries in.
	inside bool
	// held are the locks on what this Place staged (see stage), kept
	// reachable: a collected *os.File closes its descriptor, and its lock.
	held []*os.File
}

// Plan decides where to stage for dest. dir says dest will be a directory
// (an unpacked archive, a copied or rendered tree).
func Plan(dest string, dir bool) (*Place, error) {
	dest = filepath.Clean(dest)
	parent := filepath.Dir(dest)
	p := &Place{dest: dest, staging: parent}
	fi, err := os.Lstat(dest)
	switch {
	case errors.Is(err, os.ErrNotExist):
		// The parent is created when missing, as curl --create-dirs; a
		// file in its way is bad usage.
		for d := parent; ; d = filepath.Dir(d) {
			pfi, perr := os.Stat(d)
			if perr == nil {
				if !pfi.IsDir() {
					return nil, fmt.Errorf("%s is not a directory", d)
				}
				break
			}
			if !errors.Is(perr, os.ErrNotExist) || d == filepath.Dir(d) {
				return nil, fmt.Errorf("the directory of %s: %w", dest, oserr.Reason(perr))
			}
		}
	case errors.Is(err, syscall.ENOTDIR):
		for d := parent; d != filepath.Dir(d); d = filepath.Dir(d) {
			if pfi, perr := os.Stat(d); perr == nil && !pfi.IsDir() {
				return nil, fmt.Errorf("%s is not a directory", d)
			}
		}
		return nil, fmt.Errorf("a parent of %s is not a directory", dest)
	case err != nil:
		return nil, fmt.Errorf("%s: %w", dest, oserr.Reason(err))
	case dir && !fi.IsDir():
		return nil, fmt.Errorf("%s exists and is not a directory", dest)
	case !dir && fi.IsDir():
		return nil, fmt.Errorf("%s is a directory: give the path of the file to write", dest)
	case dir && isMountPoint(dest, fi):
		p.inside, p.staging = true, dest
	}
	return p, nil
}

// isMountPoint: dest lives on another device than its parent.
func isMountPoint(dest string, fi os.FileInfo) bool {
	pfi, err := os.Stat(filepath.Dir(dest))
	if err != nil {
		return false
	}
	a, ok1 := fi.Sys().(*syscall.Stat_t)
	b, ok2 := pfi.Sys().(*syscall.Stat_t)
	return ok1 && ok2 && a.Dev != b.Dev
}

// Ensure creates dest's parent directories when they are missing, and
// removes what an earlier run for the same dest staged and left behind
// when it was killed (SIGKILL after the grace period leaves its deferred
// clean-up unrun).
func (p *Place) Ensure() error {
	if err := os.MkdirAll(p.staging, 0o755); err != nil {
		return fmt.Errorf("creating the directory of %s: %w", p.dest, oserr.Reason(err))
	}
	p.sweep()
	return nil
}

// Everything a Place stages is locked (flock) for as long as the process
// lives: a staged entry nobody holds a lock on belongs
// to a run that is gone, since the kernel drops a lock with its process.
// Two copies of initbox writing next to each other therefore never remove
// each other's work.
func (p *Place) prefix() string { return TempPrefix + filepath.Base(p.dest) + "-" }

// stage locks the entry just created at path.
func (p *Place) stage(path string) error {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		return err
	}
	p.held = append(p.held, f)
	return nil
}

// sweep removes staged entries for dest that no live run holds.
func (p *Place) sweep() {
	ents, err := os.ReadDir(p.staging)
	if err != nil {
		return
	}
	pre := p.prefix()
	for _, e := range ents {
		if len(e.Name()) <= len(pre) || e.Name()[:len(pre)] != pre {
			continue
		}
		full := filepath.Join(p.staging, e.Name())
		f, err := os.OpenFile(full, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_CLOEXEC|syscall.O_NONBLOCK, 0)
		if err != nil {
			continue
		}
		if unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) == nil {
			os.RemoveAll(full)
		}
		f.Close()
	}
}

// TempFile creates an empty temporary file in the staging directory.
func (p *Place) TempFile() (*os.File, error) {
	f, err := os.CreateTemp(p.staging, p.prefix()+"*")
	if err == nil {
		if err = p.stage(f.Name()); err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}
	if err != nil {
		return nil, fmt.Errorf("creating a temporary file next to %s: %w", p.dest, oserr.Reason(err))
	}
	return f, nil
}

// TempDir creates an empty temporary directory in the staging directory.
func (p *Place) TempDir() (string, error) {
	d, err := os.MkdirTemp(p.staging, p.prefix()+"*")
	if err == nil {
		if err = p.stage(d); err != nil {
			os.Remove(d)
		}
	}
	if err != nil {
		return "", fmt.Errorf("creating a temporary directory next to %s: %w", p.dest, oserr.Reason(err))
	}
	return d, nil
}

// PublishFile renames the finished temporary file onto dest.
func (p *Place) PublishFile(tmp string) error {
	if err := os.Rename(tmp, p.dest); err != nil {
		return fmt.Errorf("moving into place %s: %w", p.dest, err)
	}
	syncDir(filepath.Dir(p.dest))
	return nil
}

// PublishDir makes the finished tree the content of dest in one step: a
// rename when dest is new, an atomic exchange (renameat2 RENAME_EXCHANGE)
// when it exists. A dest that is a mount point cannot be renamed; its old
// entries are removed and the new ones moved in only now that the whole
// tree is verified.
func (p *Place) PublishDir(tree string) error {
	if p.inside {
		return p.publishInside(tree)
	}
	_, err := os.Lstat(p.dest)
	if errors.Is(err, os.ErrNotExist) {
		if err := os.Rename(tree, p.dest); err != nil {
			return fmt.Errorf("moving into place %s: %w", p.dest, err)
		}
		syncDir(filepath.Dir(p.dest))
		return nil
	}
	err = unix.Renameat2(unix.AT_FDCWD, tree, unix.AT_FDCWD, p.dest, unix.RENAME_EXCHANGE)
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) {
		// No exchange on this filesystem: swap by two renames, leaving
		// dest absent for an instant, never half-written.
		old := tree + ".old"
		if err := os.Rename(p.dest, old); err != nil {
			return fmt.Errorf("moving the old %s aside: %w", p.dest, err)
		}
		if err := os.Rename(tree, p.dest); err != nil {
			_ = os.Rename(old, p.dest)
			return fmt.Errorf("moving into place %s: %w", p.dest, err)
		}
		syncDir(filepath.Dir(p.dest))
		return os.RemoveAll(old)
	}
	if err != nil {
		return fmt.Errorf("swapping %s into place: %w", p.dest, err)
	}
	syncDir(filepath.Dir(p.dest))
	// tree now holds the old content.
	return os.RemoveAll(tree)
}

func (p *Place) publishInside(tree string) error {
	old, err := os.ReadDir(p.dest)
	if err != nil {
		return err
	}
	for _, e := range old {
		full := filepath.Join(p.dest, e.Name())
		if full == tree || isTemp(e.Name()) {
			continue
		}
		if err := os.RemoveAll(full); err != nil {
			return fmt.Errorf("removing the old %s: %w", full, err)
		}
	}
	ents, err := os.ReadDir(tree)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if err := os.Rename(filepath.Join(tree, e.Name()), filepath.Join(p.dest, e.Name())); err != nil {
			return fmt.Errorf("moving %s into place: %w", e.Name(), err)
		}
	}
	syncDir(p.dest)
	return os.Remove(tree)
}

func isTemp(name string) bool {
	return len(name) > len(TempPrefix) && name[:len(TempPrefix)] == TempPrefix
}

// Dest is the path output is published at.
func (p *Place) Dest() string { return p.dest }
