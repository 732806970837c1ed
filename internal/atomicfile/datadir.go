package atomicfile

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/initbox/initbox/internal/oserr"
)

// DataLink is the link a data directory's readers go through, as in the
// kubelet's ConfigMap, Secret and projected volumes.
const DataLink = "..data"

// DataFile is one file of a data directory's payload.
type DataFile struct {
	Name string // a plain name: no "/", not starting with ".."
	Body []byte
	Mode os.FileMode
}

// Owner is who the files and links are made for; -1 keeps the writer's.
type Owner struct{ UID, GID int }

// WriteData publishes files into the directory root is open on (shown as
// display in messages) as the kubelet's AtomicWriter does: into a new
// timestamped directory, then DIR/..data swapped to it with one rename,
// so that every file changes together for whoever reads them through
// ..data. DIR/NAME is a link to ..data/NAME (made once); a link of that
// form whose name the payload no longer has is removed. The old directory
// is removed last. A failure or a signal before the rename leaves the old
// files as they were. Hold LockDir around it when two writers may run.
func WriteData(ctx context.Context, root *os.Root, display string, files []DataFile, own Owner) (err error) {
	for _, f := range files {
		if f.Name == "" || strings.Contains(f.Name, "/") || strings.HasPrefix(f.Name, "..") || f.Name == "." {
			return fmt.Errorf("%s: %q is not a file name of a data directory", display, f.Name)
		}
	}
	old, err := root.Readlink(DataLink)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		if fi, serr := root.Lstat(DataLink); serr == nil && fi.Mode()&fs.ModeSymlink == 0 {
			return fmt.Errorf("%s/%s is not a link: the directory is not a data directory (a Secret volume's, or one initbox wrote)", display, DataLink)
		}
		return fmt.Errorf("%s/%s: %w", display, DataLink, oserr.Reason(err))
	}
	var rnd [4]byte
	rand.Read(rnd[:])
	ts := time.Now().UTC().Format("..2006_01_02_15_04_05.") + hex.EncodeToString(rnd[:])
	if err := root.Mkdir(ts, 0o755); err != nil {
		return fmt.Errorf("creating %s/%s: %w", display, ts, oserr.Reason(err))
	}
	published := false
	defer func() {
		if err != nil && !published {
			root.RemoveAll(ts)
			root.Remove(DataLink + "_tmp")
		}
	}()
	for _, f := range files {
		if err := writeIn(root, display, ts+"/"+f.Name, f.Body, f.Mode, own); err != nil {
			return err
		}
	}
	if err := chownIn(root, display, ts, false, own); err != nil {
		return err
	}
	if err := SyncDir(root, ts); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	// The one step that changes what readers see.
	root.Remove(DataLink + "_tmp")
	if err := root.Symlink(ts, DataLink+"_tmp"); err != nil {
		return fmt.Errorf("linking %s: %w", ts, oserr.Reason(err))
	}
	if err := chownIn(root, display, DataLink+"_tmp", true, own); err != nil {
		return err
	}
	if err := root.Rename(DataLink+"_tmp", DataLink); err != nil {
		return fmt.Errorf("swapping %s/%s: %w", display, DataLink, oserr.Reason(err))
	}
	published = true
	// From here on the new files are published: failures below are
	// reported but leave them in place.
	var errs []error
	names := map[string]bool{}
	for _, f := range files {
		names[f.Name] = true
		want := DataLink + "/" + f.Name
		if t, err := root.Readlink(f.Name); err == nil && t == want {
			chownIn(root, display, f.Name, true, own) // owned as the rest, when asked
			continue
		}
		tmp := ".." + f.Name + "_tmp"
		root.Remove(tmp)
		if err := root.Symlink(want, tmp); err != nil {
			errs = append(errs, err)
			continue
		}
		chownIn(root, display, tmp, true, own)
		if err := root.Rename(tmp, f.Name); err != nil {
			root.Remove(tmp)
			errs = append(errs, fmt.Errorf("%s/%s: %w", display, f.Name, oserr.Reason(err)))
		}
	}
	ents, rerr := fs.ReadDir(root.FS(), ".")
	if rerr == nil {
		for _, e := range ents {
			n := e.Name()
			if t, err := root.Readlink(n); err == nil && !names[n] && t == DataLink+"/"+n {
				root.Remove(n) // a file the payload no longer has
			}
		}
	}
	SyncDir(root, ".")
	// The old directory, and any a killed run left.
	if rerr == nil {
		for _, e := range ents {
			if n := e.Name(); e.IsDir() && n != ts && strings.HasPrefix(n, "..") && (n == old || isTimestamped(n)) {
				root.RemoveAll(n)
			}
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("the new files are in %s/%s, but linking them failed: %w", display, DataLink, errors.Join(errs...))
	}
	return nil
}

// isTimestamped: a directory name of WriteData's form, ..YYYY_MM_DD_….
func isTimestamped(n string) bool {
	return len(n) > 22 && n[:2] == ".." && n[6] == '_' && n[9] == '_' && n[12] == '_'
}

// writeIn writes a new file through root, synced, owned as asked.
func writeIn(root *os.Root, display, name string, body []byte, mode os.FileMode, own Owner) error {
	f, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return fmt.Errorf("creating %s/%s: %w", display, name, oserr.Reason(err))
	}
	if _, err = f.Write(body); err != nil {
		f.Close()
	} else {
		err = Finish(f, mode, own.UID, own.GID)
	}
	if err != nil {
		return fmt.Errorf("writing %s/%s: %w", display, name, err)
	}
	return nil
}

func chownIn(root *os.Root, display, name string, link bool, own Owner) error {
	if own.UID < 0 && own.GID < 0 {
		return nil
	}
	var err error
	if link {
		err = root.Lchown(name, own.UID, own.GID)
	} else {
		err = root.Chown(name, own.UID, own.GID)
	}
	if err != nil {
		return fmt.Errorf("setting the owner of %s/%s to %d:%d: %w", display, name, own.UID, own.GID, oserr.Reason(err))
	}
	return nil
}

// SyncDir fsyncs the directory name of root, so that the entries made or
// renamed in it survive a crash.
func SyncDir(root *os.Root, name string) error {
	d, err := root.Open(name)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// LockDir takes an exclusive flock on the directory root is open on
// (display names it), waiting as long as ctx allows while another run
// holds it. The kernel drops the lock when its holder dies.
func LockDir(ctx context.Context, root *os.Root, display string) (func(), error) {
	f, err := root.Open(".")
	if err != nil {
		return nil, fmt.Errorf("%s: %w", display, oserr.Reason(err))
	}
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("locking %s: %w", display, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("waiting for another run writing %s: %w", display, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}
