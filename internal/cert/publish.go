package cert

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/initbox/initbox/internal/atomicfile"
	"github.com/initbox/initbox/internal/cli"
	"github.com/initbox/initbox/internal/oserr"
)

// The files of a pair, as a kubernetes.io/tls Secret names them.
var pairFiles = []string{"tls.key", "tls.crt", "ca.crt"}

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
	unlock, err := atomicfile.LockDir(ctx, root, c.out)
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

// publish writes the pair as the kubelet writes a kubernetes.io/tls
// Secret's volume (atomicfile.WriteData): the three files change together
// for whoever reads them through ..data.
func (c *command) publish(ctx context.Context, root *os.Root, p *pair) error {
	files := make([]atomicfile.DataFile, len(pairFiles))
	for i, body := range [][]byte{p.keyPEM, p.certPEM, p.caPEM} {
		mode := os.FileMode(0o644)
		if i == 0 {
			mode = 0o600
		}
		files[i] = atomicfile.DataFile{Name: pairFiles[i], Body: body, Mode: mode}
	}
	return atomicfile.WriteData(ctx, root, c.out, files, atomicfile.Owner{UID: c.uid, GID: c.gid})
}
