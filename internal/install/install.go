// Package install is the install applet: it copies the running binary into
// a directory (a shared emptyDir) with a link per applet, so that the app
// container can run DIR/waitfor … or DIR/register --deregister … in a
// preStop hook without initbox in its own image.
package install

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/initbox/initbox/internal/atomicfile"
	"github.com/initbox/initbox/internal/cli"
)

// Applet is install's entry in the applet table.
var Applet = cli.Applet{
	Name:     "install",
	Summary:  "copy this binary and a link per applet into a directory (a shared volume)",
	Synopsis: "[flags] DIR",
	Help: `Copies the running initbox binary to DIR/initbox and makes DIR/APPLET a
relative symlink to it for every applet, so another container that mounts DIR
can run DIR/waitfor, DIR/register and the rest. DIR is created if missing.

The copy is atomic (a temporary file in DIR, then a rename) and idempotent: when
DIR/initbox already holds this very binary and the links are right, nothing
changes and it says so; a different binary is replaced.

EXAMPLES
  install /shared/bin
  # later, in the app container's preStop hook:
  /shared/bin/register http http://mgmt/register --deregister`,
	New: func() cli.Command { return &command{} },
}

type command struct {
	dir string
}

func (c *command) Flags(fs *cli.FlagSet) {}

func (c *command) Prepare(env *cli.Env, args []string) ([]string, error) {
	if len(args) != 1 {
		return nil, errors.New("want exactly one argument: the directory to install into")
	}
	c.dir = args[0]
	if fi, err := os.Stat(c.dir); err == nil && !fi.IsDir() {
		return nil, fmt.Errorf("%s exists and is not a directory", c.dir)
	}
	return nil, nil
}

// self opens the running binary. /proc/self/exe works even when the file
// was replaced or removed since the process started.
func self() (*os.File, error) {
	if f, err := os.Open("/proc/self/exe"); err == nil {
		return f, nil
	}
	p, err := os.Executable()
	if err != nil {
		return nil, err
	}
	return os.Open(p)
}

func (c *command) Run(ctx context.Context, env *cli.Env) (string, error) {
	src, err := self()
	if err != nil {
		return "", fmt.Errorf("opening the running binary: %w", err)
	}
	defer src.Close()
	if err := os.MkdirAll(c.dir, 0o755); err != nil {
		return "", fmt.Errorf("creating %s: %w", c.dir, err)
	}
	dest := filepath.Join(c.dir, "initbox")
	same, err := sameContent(src, dest)
	if err != nil {
		return "", err
	}
	if _, err := src.Seek(0, io.SeekStart); err != nil {
		return "", err
	}
	var changed []string
	if !same {
		if err := atomicfile.Write(ctx, dest, src, 0o755); err != nil {
			return "", err
		}
		changed = append(changed, "initbox")
	}
	for _, name := range env.Applets {
		link := filepath.Join(c.dir, name)
		if t, err := os.Readlink(link); err == nil && t == "initbox" {
			continue
		}
		if err := atomicfile.Symlink("initbox", link); err != nil {
			return "", err
		}
		changed = append(changed, name)
	}
	if len(changed) == 0 {
		env.Log.Info("up to date", "dir", c.dir)
		return "up to date: " + dest, nil
	}
	env.Log.Info("installed", "dir", c.dir, "changed", strings.Join(changed, ","))
	return fmt.Sprintf("installed %s with links %s", dest, strings.Join(env.Applets, ", ")), nil
}

// sameContent reports whether path holds exactly what src holds.
func sameContent(src *os.File, path string) (bool, error) {
	dst, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("reading the installed %s: %w", path, err)
	}
	defer dst.Close()
	si, err1 := src.Stat()
	di, err2 := dst.Stat()
	if err1 != nil || err2 != nil || si.Size() != di.Size() || !di.Mode().IsRegular() || di.Mode().Perm() != 0o755 {
		return false, nil
	}
	a, b := sha256.New(), sha256.New()
	if _, err := io.Copy(a, src); err != nil {
		return false, fmt.Errorf("reading the running binary: %w", err)
	}
	if _, err := io.Copy(b, dst); err != nil {
		return false, fmt.Errorf("reading the installed %s: %w", path, err)
	}
	return bytes.Equal(a.Sum(nil), b.Sum(nil)), nil
}
