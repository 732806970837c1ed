// Package archive unpacks tar (plain, gzip, xz, bzip2, zstd) and zip
// archives, and single compressed files, safely: every write goes through
// an os.Root, so nothing can land outside the destination; entries that try
// (../, absolute paths, symlinks or hard links pointing out) are refused with
// an error naming the entry; file count and unpacked bytes are bounded while
// unpacking, whatever the headers claim. The caller unpacks into a staging
// directory and publishes it only on success.
//
// Links are judged by what they resolve to in the real staged tree, never by
// their text alone: no entry is written through a link (an archive's own
// `etc -> .` followed by `etc/x` is refused), and every symlink's target is
// resolved component by component through the links already unpacked, both
// when it is made and once the whole archive is in, since a later entry can
// change what an earlier target means.
package archive

import (
	"archive/tar"
	"archive/zip"
	"bufio"
	"compress/bzip2"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// Format is an archive or compression format.
type Format string

// The formats initbox unpacks. A "single" format (gz, xz, bz2, zst) is one
// compressed file, unpacked to a file; the others to a directory.
const (
	None   Format = "none"
	Tar    Format = "tar"
	TarGz  Format = "tar.gz"
	TarXz  Format = "tar.xz"
	TarBz2 Format = "tar.bz2"
	TarZst Format = "tar.zst"
	Zip    Format = "zip"
	Gz     Format = "gz"
	Xz     Format = "xz"
	Bz2    Format = "bz2"
	Zst    Format = "zst"
)

var aliases = map[string]Format{
	"none": None, "tar": Tar, "tar.gz": TarGz, "tgz": TarGz, "tar.xz": TarXz, "txz": TarXz,
	"tar.bz2": TarBz2, "tbz2": TarBz2, "tbz": TarBz2, "tar.zst": TarZst, "tzst": TarZst,
	"zip": Zip, "gz": Gz, "gzip": Gz, "xz": Xz, "bz2": Bz2, "zst": Zst, "zstd": Zst,
}

// ParseFormat reads a format name as --archive takes it.
func ParseFormat(s string) (Format, error) {
	if f, ok := aliases[strings.ToLower(s)]; ok {
		return f, nil
	}
	return "", fmt.Errorf("unknown archive format %q: want tar.gz, tgz, tar.xz, tar.bz2, tar.zst, tar, zip, gz, xz, bz2, zst or none", s)
}

// FromName guesses the format from a file name's extension; None when it
// has no archive extension.
func FromName(name string) Format {
	n := strings.ToLower(name)
	for _, ext := range []string{"tar.gz", "tar.xz", "tar.bz2", "tar.zst", "tgz", "txz", "tbz2", "tbz", "tzst", "tar", "zip", "gz", "xz", "bz2", "zst"} {
		if strings.HasSuffix(n, "."+ext) {
			return aliases[ext]
		}
	}
	return None
}

// Single reports whether f unpacks to one file rather than a tree.
func (f Format) Single() bool { return f == Gz || f == Xz || f == Bz2 || f == Zst }

// Limits bound what unpacking may produce: an archive's entries or a git
// checkout's (gitsrc), the one type for both.
type Limits struct {
	Files int   // entries of any kind; 0: no limit
	Bytes int64 // bytes of file content written; 0: no limit
	// What other unpacking under the same limits (a superproject's
	// checkout, the submodules before this one) has written already.
	SpentFiles int
	SpentBytes int64
}

// Error is a refused archive entry.
type Error struct {
	Entry  string
	Reason string
}

func (e *Error) Error() string { return fmt.Sprintf("archive entry %q: %s", e.Entry, e.Reason) }

// ErrLimit is wrapped by errors for exceeded limits, an archive's or a
// checkout's.
var ErrLimit = errors.New("unpacking limit exceeded")

// decompress wraps r for the compression of f.
func decompress(f Format, r io.Reader) (io.ReadCloser, error) {
	switch f {
	case Tar, None:
		return io.NopCloser(r), nil
	case TarGz, Gz:
		return gzip.NewReader(r)
	case TarXz, Xz:
		x, err := xz.NewReader(bufio.NewReader(r))
		if err != nil {
			return nil, err
		}
		return io.NopCloser(x), nil
	case TarBz2, Bz2:
		return io.NopCloser(bzip2.NewReader(r)), nil
	case TarZst, Zst:
		z, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(256<<20))
		if err != nil {
			return nil, err
		}
		return z.IOReadCloser(), nil
	}
	return nil, fmt.Errorf("%s is not a compression format", f)
}

// DecompressFile writes the single compressed file src into dst (a new
// file, through w) with at most limits.Bytes bytes.
func DecompressFile(ctx context.Context, f Format, src io.Reader, w io.Writer, limits Limits) (int64, error) {
	r, err := decompress(f, src)
	if err != nil {
		return 0, fmt.Errorf("reading the %s stream: %w", f, err)
	}
	defer r.Close()
	lw := &limitWriter{w: w, max: limits.Bytes - limits.SpentBytes, ctx: ctx, unlimited: limits.Bytes == 0}
	n, err := io.Copy(lw, r)
	if err != nil {
		return n, fmt.Errorf("unpacking the %s stream: %w", f, err)
	}
	return n, nil
}

// Extract unpacks the archive file at src (format f) into dir, which must
// exist. It returns the number of entries unpacked.
func Extract(ctx context.Context, f Format, src string, dir string, limits Limits) (int, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return 0, err
	}
	defer root.Close()
	x := &extractor{ctx: ctx, root: root, limits: limits, dirTimes: map[string]time.Time{}, realDirs: map[string]bool{}}
	x.files, x.bytes = limits.SpentFiles, limits.SpentBytes
	switch f {
	case Zip:
		err = x.zip(src)
	case Tar, TarGz, TarXz, TarBz2, TarZst:
		var file *os.File
		if file, err = os.Open(src); err != nil {
			return 0, err
		}
		defer file.Close()
		var r io.ReadCloser
		if r, err = decompress(f, bufio.NewReaderSize(file, 1<<16)); err != nil {
			return 0, fmt.Errorf("reading the %s archive: %w", f, err)
		}
		defer r.Close()
		err = x.tar(r)
	default:
		return 0, fmt.Errorf("%s is not an archive format", f)
	}
	if err == nil {
		err = x.checkLinks()
	}
	if err != nil {
		return x.files, err
	}
	// Directory times last: creating entries inside changed them.
	for p, t := range x.dirTimes {
		_ = root.Chtimes(p, t, t)
	}
	return x.files, nil
}

type extractor struct {
	ctx      context.Context
	root     *os.Root
	limits   Limits
	files    int
	bytes    int64
	dirTimes map[string]time.Time
	realDirs map[string]bool // directories seen to be directories, not links
	links    []link          // every symlink made, for the final check
}

type link struct{ entry, path string }

// maxHops bounds link resolution, as the kernel's ELOOP does (40).
const maxHops = 40

// noLinkParents refuses an entry whose parent directories include a
// symlink: the kernel would follow it, and what it points to is the
// archive's choice. Directories created here are remembered as real ones.
func (x *extractor) noLinkParents(name, p string) error {
	dir := path.Dir(p)
	if dir == "." || x.realDirs[dir] {
		return nil
	}
	parts := strings.Split(dir, "/")
	for i := range parts {
		sub := strings.Join(parts[:i+1], "/")
		if x.realDirs[sub] {
			continue
		}
		fi, err := x.root.Lstat(sub)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return nil // created by mkdirs below, as a real directory
		case err != nil:
			return &Error{name, err.Error()}
		case fi.Mode()&fs.ModeSymlink != 0:
			return &Error{name, fmt.Sprintf("its parent %q is a symlink, and nothing is written through a link", sub)}
		case !fi.IsDir():
			return &Error{name, fmt.Sprintf("its parent %q is not a directory", sub)}
		}
		x.realDirs[sub] = true
	}
	return nil
}

// escapes resolves the symlink at p (relative to the root) through the
// tree as it is now, as the kernel would, and reports why it would leave the
// root; "" when it stays inside. A component that does not exist yet is
// taken as written: it cannot lead anywhere until it exists, and the final
// check sees the tree complete.
func (x *extractor) escapes(p string) string {
	cur := strings.Split(path.Dir(p), "/")
	if cur[0] == "." {
		cur = nil
	}
	target, err := x.root.Readlink(p)
	if err != nil {
		return err.Error()
	}
	todo := []string{target}
	hops := 0
	for len(todo) > 0 {
		t := todo[0]
		todo = todo[1:]
		if path.IsAbs(t) {
			return fmt.Sprintf("it leads to the absolute path %q", t)
		}
		comps := strings.Split(t, "/")
		for i, c := range comps {
			switch c {
			case "", ".":
				continue
			case "..":
				if len(cur) == 0 {
					return "it leads above the destination"
				}
				cur = cur[:len(cur)-1]
				continue
			}
			next := strings.Join(append(cur[:len(cur):len(cur)], c), "/")
			fi, err := x.root.Lstat(next)
			if err != nil || fi.Mode()&fs.ModeSymlink == 0 {
				cur = append(cur, c)
				continue
			}
			if hops++; hops > maxHops {
				return "a loop of links"
			}
			t2, err := x.root.Readlink(next)
			if err != nil {
				return err.Error()
			}
			// The link's own target, then what was left of this one.
			rest := strings.Join(comps[i+1:], "/")
			todo = append([]string{t2, rest}, todo...)
			break
		}
	}
	return ""
}

// checkLinks resolves every symlink again once the archive is complete.
func (x *extractor) checkLinks() error {
	for _, l := range x.links {
		if why := x.escapes(l.path); why != "" {
			return &Error{l.entry, "a symlink that resolves outside the destination: " + why}
		}
	}
	return nil
}

// clean checks an entry's name and returns it relative to the root.
func clean(name string) (string, error) {
	if strings.HasPrefix(name, "/") || strings.HasPrefix(name, `\`) || (len(name) > 1 && name[1] == ':') {
		return "", &Error{name, "an absolute path lands outside the destination"}
	}
	p := path.Clean(strings.ReplaceAll(name, `\`, "/"))
	if p == ".." || strings.HasPrefix(p, "../") {
		return "", &Error{name, "a path with .. lands outside the destination"}
	}
	if p == "." {
		return "", nil
	}
	return p, nil
}

// inside reports whether target, seen from the directory of entry, stays
// inside the root.
func inside(entry, target string) bool {
	if path.IsAbs(target) {
		return false
	}
	p := path.Clean(path.Join(path.Dir(entry), target))
	return p != ".." && !strings.HasPrefix(p, "../")
}

func (x *extractor) count(name string) error {
	x.files++
	if x.limits.Files > 0 && x.files > x.limits.Files {
		return fmt.Errorf("%w: more than %d entries (at %q)", ErrLimit, x.limits.Files, name)
	}
	return x.ctx.Err()
}

func (x *extractor) mkdirs(p string) error {
	if d := path.Dir(p); d != "." {
		return x.root.MkdirAll(d, 0o755)
	}
	return nil
}

func (x *extractor) writeFile(name, p string, r io.Reader, mode fs.FileMode, mtime time.Time) error {
	if err := x.noLinkParents(name, p); err != nil {
		return err
	}
	if err := x.mkdirs(p); err != nil {
		return &Error{name, err.Error()}
	}
	f, err := x.root.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode.Perm()&0o777)
	if err != nil {
		return &Error{name, err.Error()}
	}
	lw := &limitWriter{w: f, max: x.limits.Bytes - x.bytes, ctx: x.ctx, unlimited: x.limits.Bytes == 0}
	n, err := io.Copy(lw, r)
	x.bytes += n
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		if errors.Is(err, ErrLimit) {
			return fmt.Errorf("%w: more than %d bytes unpacked (at %q)", ErrLimit, x.limits.Bytes, name)
		}
		return &Error{name, err.Error()}
	}
	if !mtime.IsZero() {
		_ = x.root.Chtimes(p, mtime, mtime)
	}
	return nil
}

func (x *extractor) symlink(name, p, target string) error {
	if !inside(p, target) {
		return &Error{name, fmt.Sprintf("a symlink to %q points outside the destination", target)}
	}
	if err := x.noLinkParents(name, p); err != nil {
		return err
	}
	if err := x.mkdirs(p); err != nil {
		return &Error{name, err.Error()}
	}
	if err := x.root.Symlink(target, p); err != nil {
		return &Error{name, err.Error()}
	}
	if why := x.escapes(p); why != "" {
		return &Error{name, fmt.Sprintf("a symlink to %q resolves outside the destination: %s", target, why)}
	}
	x.links = append(x.links, link{name, p})
	return nil
}

func (x *extractor) dir(name, p string, mode fs.FileMode, mtime time.Time) error {
	if p == "" {
		return nil
	}
	if err := x.noLinkParents(name, p); err != nil {
		return err
	}
	if fi, err := x.root.Lstat(p); err == nil && !fi.IsDir() {
		return &Error{name, "a directory where the archive already put a file or a link"}
	}
	// Owner rwx always, so the tree can be filled and later removed.
	if err := x.root.MkdirAll(p, (mode.Perm()&0o777)|0o700); err != nil {
		return &Error{name, err.Error()}
	}
	_ = x.root.Chmod(p, (mode.Perm()&0o777)|0o700)
	if !mtime.IsZero() {
		x.dirTimes[p] = mtime
	}
	return nil
}

func (x *extractor) tar(r io.Reader) error {
	tr := tar.NewReader(r)
	empty := true
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("reading the tar stream: %w", err)
		}
		switch h.Typeflag {
		case tar.TypeXGlobalHeader, tar.TypeXHeader:
			continue
		}
		empty = false
		if err := x.count(h.Name); err != nil {
			return err
		}
		p, err := clean(h.Name)
		if err != nil {
			return err
		}
		switch h.Typeflag {
		case tar.TypeDir:
			err = x.dir(h.Name, p, h.FileInfo().Mode(), h.ModTime)
		case tar.TypeReg, '\x00': // '\x00': old tars' regular files
			if p == "" {
				return &Error{h.Name, "a file with no name"}
			}
			err = x.writeFile(h.Name, p, tr, h.FileInfo().Mode(), h.ModTime)
		case tar.TypeSymlink:
			err = x.symlink(h.Name, p, h.Linkname)
		case tar.TypeLink:
			target, cerr := clean(h.Linkname)
			if cerr != nil || target == "" {
				return &Error{h.Name, fmt.Sprintf("a hard link to %q points outside the destination", h.Linkname)}
			}
			fi, lerr := x.root.Lstat(target)
			if lerr != nil || !fi.Mode().IsRegular() {
				return &Error{h.Name, fmt.Sprintf("a hard link to %q, which is not a file unpacked before it", h.Linkname)}
			}
			if err = x.noLinkParents(h.Name, p); err != nil {
				return err
			}
			if err = x.mkdirs(p); err == nil {
				err = x.root.Link(target, p)
			}
			if err != nil {
				err = &Error{h.Name, err.Error()}
			}
		default:
			return &Error{h.Name, fmt.Sprintf("entries of type %q (devices, FIFOs) are not unpacked", string(h.Typeflag))}
		}
		if err != nil {
			return err
		}
	}
	if empty {
		return errors.New("the archive is empty")
	}
	return nil
}

func (x *extractor) zip(src string) error {
	zr, err := zip.OpenReader(src)
	if err != nil {
		return fmt.Errorf("reading the zip archive: %w", err)
	}
	defer zr.Close()
	if len(zr.File) == 0 {
		return errors.New("the archive is empty")
	}
	for _, zf := range zr.File {
		if err := x.count(zf.Name); err != nil {
			return err
		}
		p, err := clean(zf.Name)
		if err != nil {
			return err
		}
		mode := zf.Mode()
		switch {
		case mode.IsDir():
			err = x.dir(zf.Name, p, mode, zf.Modified)
		case mode&fs.ModeSymlink != 0:
			var target []byte
			rc, oerr := zf.Open()
			if oerr != nil {
				return &Error{zf.Name, oerr.Error()}
			}
			target, err = io.ReadAll(io.LimitReader(rc, 4096))
			rc.Close()
			if err == nil {
				err = x.symlink(zf.Name, p, string(target))
			}
		case mode.IsRegular():
			rc, oerr := zf.Open()
			if oerr != nil {
				return &Error{zf.Name, oerr.Error()}
			}
			if mode.Perm() == 0 {
				mode |= 0o644 // zips made on Windows carry no Unix mode
			}
			err = x.writeFile(zf.Name, p, rc, mode, zf.Modified)
			rc.Close()
		default:
			err = &Error{zf.Name, "entries other than files, directories and symlinks are not unpacked"}
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// limitWriter fails once more than max bytes were written, and when ctx ends.
type limitWriter struct {
	w         io.Writer
	max       int64
	n         int64
	ctx       context.Context
	unlimited bool
}

func (l *limitWriter) Write(p []byte) (int, error) {
	if err := l.ctx.Err(); err != nil {
		return 0, err
	}
	if !l.unlimited && l.n+int64(len(p)) > l.max {
		return 0, ErrLimit
	}
	n, err := l.w.Write(p)
	l.n += int64(n)
	return n, err
}
