package cert

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/initbox/initbox/internal/atomicfile"
	"github.com/initbox/initbox/internal/cli"
	"github.com/initbox/initbox/internal/oserr"
)

// The files of a pair, as a kubernetes.io/tls Secret names them.
var pairFiles = []string{"tls.key", "tls.crt", "ca.crt"}

const dataLink = "..data"

// runPair keeps the pair in c.out when it is still the one asked for, and
// otherwise issues a new one and swaps it in.
func (c *command) runPair(ctx context.Context, env *cli.Env) (*pair, string, error) {
	if err := os.MkdirAll(c.out, 0o755); err != nil {
		return nil, "", fmt.Errorf("creating %s: %w", c.out, oserr.Reason(err))
	}
	root, err := os.OpenRoot(c.out)
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", c.out, oserr.Reason(err))
	}
	defer root.Close()
	// One run at a time per directory: two swapping ..data at once left it
	// dangling. The second waits, then finds the pair the first wrote.
	unlock, err := lockDir(ctx, root, c.out)
	if err != nil {
		return nil, "", err
	}
	defer unlock()
	now := time.Now()
	if len(c.caCerts) > 0 {
		if err := validNow(c.caCerts[0], now); err != nil {
			return nil, "", err
		}
	}
	why := "there is none"
	if old, err := readPair(root); err == nil {
		if why = stale(old, &c.req, c.caCerts, c.validity, c.renew, now); why == "" && c.ownedRight(root) {
			env.Log.Info("unchanged", "dir", c.out, "names", c.names(), "expires", old.leaf.NotAfter.UTC().Format(time.RFC3339))
			return old, fmt.Sprintf("unchanged: %s (%s, expires %s)", c.out, c.names(), old.leaf.NotAfter.UTC().Format(time.RFC3339)), nil
		} else if why == "" {
			why = "the files' owner or mode differ"
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		why = err.Error()
	}
	p, err := issue(&c.req, c.caCerts, c.caKey, c.validity, now)
	if err != nil {
		return nil, "", err
	}
	if err := c.publish(ctx, root, p); err != nil {
		return nil, "", err
	}
	issuer := "self-signed"
	if len(c.caCerts) > 0 {
		issuer = "signed by " + c.caCerts[0].Subject.String()
	}
	exp := p.leaf.NotAfter.UTC().Format(time.RFC3339)
	env.Log.Info("issued", "dir", c.out, "names", c.names(), "key", c.req.keyType.name, "issuer", issuer, "expires", exp, "because", why)
	return p, fmt.Sprintf("issued %s (%s, %s, %s, expires %s)", c.out, c.names(), c.req.keyType.name, issuer, exp), nil
}

func (c *command) names() string {
	var n []string
	n = append(n, c.req.dns...)
	for _, ip := range c.req.ips {
		n = append(n, ip.String())
	}
	return strings.Join(n, ",")
}

// readPair reads the three files through root (links inside DIR only, as
// ..data's are); fs.ErrNotExist when there is no pair at all.
func readPair(root *os.Root) (*pair, error) {
	var b [3][]byte
	for i, name := range pairFiles {
		f, err := root.Open(name)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && i == 0 {
				return nil, fs.ErrNotExist
			}
			return nil, fmt.Errorf("the old %s: %v", name, oserr.Reason(err))
		}
		b[i], err = io.ReadAll(io.LimitReader(f, 1<<20))
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("the old %s: %v", name, err)
		}
	}
	return parsePair(b[0], b[1], b[2])
}

// ownedRight: the key is 0600, and owned as --uid/--gid ask.
func (c *command) ownedRight(root *os.Root) bool {
	fi, err := root.Stat("tls.key")
	if err != nil || fi.Mode().Perm() != 0o600 {
		return false
	}
	uid, gid := owner(fi)
	return (c.uid < 0 || c.uid == uid) && (c.gid < 0 || c.gid == gid)
}

// publish writes the pair into a new timestamped directory of DIR and
// points DIR/..data at it with one rename: the three files change together
// for whoever reads them through ..data. DIR/tls.key, tls.crt and ca.crt
// are links to ..data/NAME (made once). The old directory is removed last;
// a failure or a signal before the rename leaves the old pair as it was.
func (c *command) publish(ctx context.Context, root *os.Root, p *pair) (err error) {
	old, err := root.Readlink(dataLink)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		if fi, serr := root.Lstat(dataLink); serr == nil && fi.Mode()&fs.ModeSymlink == 0 {
			return fmt.Errorf("%s/%s is not a link: the directory is not one cert (or a Secret volume) laid out", c.out, dataLink)
		}
		return fmt.Errorf("%s/%s: %w", c.out, dataLink, oserr.Reason(err))
	}
	var rnd [4]byte
	rand.Read(rnd[:])
	ts := time.Now().UTC().Format("..2006_01_02_15_04_05.") + hex.EncodeToString(rnd[:])
	if err := root.Mkdir(ts, 0o755); err != nil {
		return fmt.Errorf("creating %s/%s: %w", c.out, ts, oserr.Reason(err))
	}
	published := false
	defer func() {
		if err != nil && !published {
			root.RemoveAll(ts)
			root.Remove(dataLink + "_tmp")
		}
	}()
	for i, body := range [][]byte{p.keyPEM, p.certPEM, p.caPEM} {
		mode := os.FileMode(0o644)
		if i == 0 {
			mode = 0o600
		}
		if err := c.writeIn(root, ts+"/"+pairFiles[i], body, mode); err != nil {
			return err
		}
	}
	if err := c.chown(root, ts, false); err != nil {
		return err
	}
	if err := syncDir(root, ts); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	// The one step that changes what readers see.
	root.Remove(dataLink + "_tmp")
	if err := root.Symlink(ts, dataLink+"_tmp"); err != nil {
		return fmt.Errorf("linking %s: %w", ts, oserr.Reason(err))
	}
	if err := c.chown(root, dataLink+"_tmp", true); err != nil {
		return err
	}
	if err := root.Rename(dataLink+"_tmp", dataLink); err != nil {
		return fmt.Errorf("swapping %s/%s: %w", c.out, dataLink, oserr.Reason(err))
	}
	published = true
	// From here on the new pair is published: failures below are reported
	// but leave it in place.
	var errs []error
	for _, name := range pairFiles {
		want := dataLink + "/" + name
		if t, err := root.Readlink(name); err == nil && t == want {
			c.chown(root, name, true) // owned as the rest, when asked
			continue
		}
		tmp := ".." + name + "_tmp"
		root.Remove(tmp)
		if err := root.Symlink(want, tmp); err != nil {
			errs = append(errs, err)
			continue
		}
		c.chown(root, tmp, true)
		if err := root.Rename(tmp, name); err != nil {
			root.Remove(tmp)
			errs = append(errs, fmt.Errorf("%s/%s: %w", c.out, name, oserr.Reason(err)))
		}
	}
	syncDir(root, ".")
	// The old directory, and any a killed run left.
	if ents, rerr := fs.ReadDir(root.FS(), "."); rerr == nil {
		for _, e := range ents {
			if n := e.Name(); e.IsDir() && n != ts && strings.HasPrefix(n, "..") && (n == old || isTimestamped(n)) {
				root.RemoveAll(n)
			}
		}
	}
	if len(errs) > 0 {
		err = errors.Join(errs...)
		return fmt.Errorf("the new pair is in %s/%s, but linking its files failed: %w", c.out, dataLink, err)
	}
	return nil
}

// isTimestamped: a directory name of publish's form, ..YYYY_MM_DD_….
func isTimestamped(n string) bool {
	return len(n) > 22 && n[:2] == ".." && n[6] == '_' && n[9] == '_' && n[12] == '_'
}

// writeIn writes a new file through root, synced, owned as asked.
func (c *command) writeIn(root *os.Root, name string, body []byte, mode os.FileMode) error {
	f, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return fmt.Errorf("creating %s/%s: %w", c.out, name, oserr.Reason(err))
	}
	if _, err = f.Write(body); err != nil {
		f.Close()
	} else {
		err = atomicfile.Finish(f, mode, c.uid, c.gid)
	}
	if err != nil {
		return fmt.Errorf("writing %s/%s: %w", c.out, name, err)
	}
	return nil
}

func (c *command) chown(root *os.Root, name string, link bool) error {
	if c.uid < 0 && c.gid < 0 {
		return nil
	}
	var err error
	if link {
		err = root.Lchown(name, c.uid, c.gid)
	} else {
		err = root.Chown(name, c.uid, c.gid)
	}
	if err != nil {
		return fmt.Errorf("setting the owner of %s/%s to %d:%d: %w", c.out, name, c.uid, c.gid, oserr.Reason(err))
	}
	return nil
}

func syncDir(root *os.Root, name string) error {
	d, err := root.Open(name)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// lockDir takes an exclusive flock on the directory root is open on,
// waiting (as long as ctx allows) while another run holds it. The kernel
// drops the lock when its holder dies.
func lockDir(ctx context.Context, root *os.Root, name string) (func(), error) {
	f, err := root.Open(".")
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, oserr.Reason(err))
	}
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("locking %s: %w", name, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("waiting for another run writing %s: %w", name, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}
