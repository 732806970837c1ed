package fetch

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/initbox/initbox/internal/oserr"
)

// copyLocal streams a local file into f through the same pump as a
// download: hashed, counted, bounded by --max-size.
func copyLocal(ctx context.Context, src string, f *os.File, t *transfer) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("reading %s: %w", src, oserr.Reason(err))
	}
	defer in.Close()
	if fi, err := in.Stat(); err == nil {
		t.length = fi.Size()
	}
	_, err = pump(ctx, f, in, t)
	return err
}

// copyTree copies a local directory (another mounted volume) into a
// staging tree and swaps it into place. A ConfigMap or Secret volume holds
// its keys as symlinks into a hidden ..data directory: names starting with
// ".." are the kubelet's and are skipped, and symlinks are copied as what
// they point to, which must be inside the source.
func (c *command) copyTree(ctx context.Context) (*result, error) {
	root, err := filepath.EvalSymlinks(c.src.local)
	if err != nil {
		return nil, fmt.Errorf("source %s: %w", c.src.local, oserr.Reason(err))
	}
	if c.src.subdir != "" {
		root = filepath.Join(root, c.src.subdir)
	}
	tree, err := c.place.TempDir()
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tree)
	cp := &treeCopier{ctx: ctx, root: root, c: c}
	if err := cp.dir(root, tree); err != nil {
		return nil, err
	}
	if err := os.Chmod(tree, 0o755); err != nil {
		return nil, err
	}
	if err := c.place.PublishDir(tree); err != nil {
		return nil, err
	}
	return &result{size: cp.bytes, entries: cp.files, sha256: "-"}, nil
}

type treeCopier struct {
	ctx   context.Context
	root  string
	c     *command
	files int
	bytes int64
}

func (t *treeCopier) dir(src, dst string) error {
	ents, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "..") {
			continue
		}
		if err := t.ctx.Err(); err != nil {
			return err
		}
		if t.files++; t.files > t.c.maxFiles {
			return fmt.Errorf("more than --max-files %d entries in %s", t.c.maxFiles, t.c.src.local)
		}
		s, d := filepath.Join(src, e.Name()), filepath.Join(dst, e.Name())
		real, err := filepath.EvalSymlinks(s)
		if err != nil {
			return fmt.Errorf("%s: %w", s, oserr.Reason(err))
		}
		if rel, err := filepath.Rel(t.root, real); err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
			return fmt.Errorf("%s points outside %s", s, t.c.src.local)
		}
		fi, err := os.Stat(real)
		if err != nil {
			return err
		}
		switch {
		case fi.IsDir():
			if err := os.Mkdir(d, 0o755); err != nil {
				return err
			}
			if err := t.dir(real, d); err != nil {
				return err
			}
		case fi.Mode().IsRegular():
			if err := t.file(real, d, fi); err != nil {
				return err
			}
		default:
			return fmt.Errorf("%s is neither a file nor a directory", s)
		}
	}
	return nil
}

// file copies src, which the walk has just stat'ed as fi, to the new file dst.
func (t *treeCopier) file(src, dst string, fi os.FileInfo) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, fi.Mode().Perm())
	if err != nil {
		return err
	}
	n, err := pump(t.ctx, out, in, &transfer{length: fi.Size()})
	t.bytes += n
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil && t.bytes > t.c.maxUnpacked {
		err = fmt.Errorf("more than --max-unpacked %d bytes in %s", t.c.maxUnpacked, t.c.src.local)
	}
	return err
}
