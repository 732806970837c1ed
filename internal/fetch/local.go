package fetch

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	getter "github.com/hashicorp/go-getter/v2"

	"github.com/initbox/initbox/internal/oserr"
	"github.com/initbox/initbox/internal/retry"
)

// localSource is a file or a directory on another volume (a ConfigMap's,
// a shared emptyDir): /path, rel/path, file:///path, file::/path.
type localSource struct {
	srcInfo
	path string
}

func (s *localSource) prepare(c *command) error {
	fi, err := os.Stat(s.path)
	if err != nil {
		return fmt.Errorf("source %s: %w", s.path, oserr.Reason(err))
	}
	if fi.IsDir() {
		if c.sum != nil || c.checksumURL != "" {
			return errors.New("a checksum applies to a file, and the source is a directory")
		}
		c.localDir = true
	}
	return c.prepareDownload()
}

func (s *localSource) run(ctx context.Context, c *command) (string, error) {
	return c.runDownload(ctx, s)
}

// failure: a local file that cannot be read will not heal by retrying.
func (s *localSource) failure(_ *command, err error) error { return retry.Permanent(err) }

// fileGetter is a go-getter Getter for local files: go-getter's
// FileGetter links or copies without a bound, and initbox streams the
// file through transfer as a download (counted, --max-size, hashed).
type fileGetter struct {
	fileOnly
	c *command
	t *transfer // the attempt's (getFile)
}

// Detect takes file:: and file:// sources, and — it is tried last — any
// source that is not a URL, made absolute as go-getter's file detector
// does.
func (g *fileGetter) Detect(req *getter.Request) (bool, error) {
	if req.Forced != "" {
		return req.Forced == "file", nil
	}
	if u, err := url.Parse(req.Src); err == nil && u.Scheme != "" {
		return u.Scheme == "file", nil
	}
	src, ok, err := new(getter.FileDetector).Detect(req.Src, req.Pwd)
	if ok && err == nil {
		req.Src = src
	}
	return ok, err
}

func (g *fileGetter) source(req *getter.Request, base srcInfo) (source, error) {
	s := &localSource{srcInfo: base}
	s.kind = "file"
	if strings.HasPrefix(req.Src, "file:") {
		u, err := url.Parse(req.Src)
		if err != nil {
			return nil, fmt.Errorf("invalid URL: %v", err.(*url.Error).Err)
		}
		if u.Host != "" && u.Host != "localhost" {
			return nil, fmt.Errorf("a file:// URL names a local path, not host %q", u.Host)
		}
		q := u.Query()
		s.checksum, s.archive = q.Get("checksum"), q.Get("archive")
		s.path = filepath.Clean(u.Path)
	} else {
		s.path = filepath.Clean(req.Src)
	}
	s.name = filepath.Base(s.path)
	s.getterSrc = "file::" + s.path
	return s, nil
}

func (g *fileGetter) GetFile(ctx context.Context, req *getter.Request) error {
	f, err := os.OpenFile(req.Dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	err = copyLocal(ctx, g.c.src.(*localSource).path, f, g.t)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

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
	local := c.src.(*localSource).path
	root, err := filepath.EvalSymlinks(local)
	if err != nil {
		return nil, fmt.Errorf("source %s: %w", local, oserr.Reason(err))
	}
	if c.info.subdir != "" {
		root = filepath.Join(root, c.info.subdir)
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
			return fmt.Errorf("more than --max-files %d entries in %s", t.c.maxFiles, t.c.src.(*localSource).path)
		}
		s, d := filepath.Join(src, e.Name()), filepath.Join(dst, e.Name())
		real, err := filepath.EvalSymlinks(s)
		if err != nil {
			return fmt.Errorf("%s: %w", s, oserr.Reason(err))
		}
		if rel, err := filepath.Rel(t.root, real); err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
			return fmt.Errorf("%s points outside %s", s, t.c.src.(*localSource).path)
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
		err = fmt.Errorf("more than --max-unpacked %d bytes in %s", t.c.maxUnpacked, t.c.src.(*localSource).path)
	}
	return err
}
