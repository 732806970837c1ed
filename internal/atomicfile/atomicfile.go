// Package atomicfile makes files appear whole or not at all: content is
// written to a temporary file in the destination's own directory (never
// /tmp, which may not exist or may be another filesystem), synced, and
// renamed into place; symlinks are swapped the same way.
package atomicfile

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// TempPrefix starts the name of every temporary file this package creates,
// so a leftover (after SIGKILL) is recognisable.
const TempPrefix = ".initbox-tmp-"

// Write copies r into path atomically with the given mode. On any error,
// including ctx ending, path is untouched and no temporary file remains.
func Write(ctx context.Context, path string, r io.Reader, mode os.FileMode) error {
	return WriteOwned(ctx, path, r, mode, -1, -1)
}

// WriteOwned is Write that also sets the owner (-1: unchanged) before the
// file appears.
func WriteOwned(ctx context.Context, path string, r io.Reader, mode os.FileMode, uid, gid int) error {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, TempPrefix+base+"-*")
	if err != nil {
		return fmt.Errorf("creating a temporary file next to %s: %w", path, err)
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err := io.Copy(f, &ctxReader{ctx: ctx, r: r}); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := f.Chmod(mode); err != nil {
		return fmt.Errorf("setting the mode of %s: %w", path, err)
	}
	if uid >= 0 || gid >= 0 {
		if err := f.Chown(uid, gid); err != nil {
			return fmt.Errorf("setting the owner of %s to %d:%d: %w", path, uid, gid, err)
		}
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("moving into place %s: %w", path, err)
	}
	ok = true
	syncDir(dir)
	return nil
}

// Symlink makes link point to target, replacing whatever link was (but a
// directory) in one rename.
func Symlink(target, link string) error {
	if fi, err := os.Lstat(link); err == nil && fi.IsDir() {
		return fmt.Errorf("%s is a directory", link)
	}
	dir, base := filepath.Split(link)
	if dir == "" {
		dir = "."
	}
	for i := 0; ; i++ {
		tmp := filepath.Join(dir, fmt.Sprintf("%s%s-link%d", TempPrefix, base, i))
		err := os.Symlink(target, tmp)
		if errors.Is(err, os.ErrExist) && i < 100 {
			continue
		}
		if err != nil {
			return fmt.Errorf("creating link %s: %w", link, err)
		}
		if err := os.Rename(tmp, link); err != nil {
			os.Remove(tmp)
			return fmt.Errorf("creating link %s: %w", link, err)
		}
		syncDir(dir)
		return nil
	}
}

// syncDir is SyncDir for a path (best effort: the rename is done).
func syncDir(dir string) {
	if r, err := os.OpenRoot(dir); err == nil {
		_ = SyncDir(r, ".")
		r.Close()
	}
}

// ctxReader stops a copy when ctx ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
