// Package prepare is the prepare applet: it sets up a shared volume —
// directories, modes, owners, copied files, symlinks — idempotently, so no
// pod needs busybox for `mkdir -p`, `chown -R` or `cp`.
package prepare

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/initbox/initbox/internal/atomicfile"
	"github.com/initbox/initbox/internal/cli"
)

// Applet is prepare's entry in the applet table.
var Applet = cli.Applet{
	Name:     "prepare",
	Summary:  "set up a volume: directories, modes, owners, copies, symlinks — idempotently",
	Synopsis: "[flags]",
	Help: `Does, in this order: --dir, --copy, --symlink, --chown, --chmod (owners before
modes: changing an owner clears setuid and setgid). Each step looks first and
changes only what differs, so a second run with the same flags changes nothing
and says so. Modes are applied exactly, setuid (4000), setgid (2000) and
sticky (1000) included.

Nothing follows a symlink. Every path prepare creates or changes is walked one
component at a time: a symlink in it (data/logs/ where logs is a link) is
refused with its name, exit 1. -R walks a tree without leaving it, links in it
are skipped, and each entry is changed through the descriptor it was
inspected by, so a link swapped in meanwhile is never followed. Only --copy
SRC is read through links (ConfigMap keys are links into ..data).

  --dir PATH[:MODE[:UID:GID]]  make PATH and missing parents (0755); set MODE
                               (default 0755) and owner when given
  --copy SRC:DST               copy a file from another volume, atomically; its
                               mode, or --mode
  --symlink TARGET:LINK        make LINK point to TARGET (replacing a file or link)
  --chmod MODE:PATH            set PATH's mode; with -R, the whole tree's
  --chown UID:GID:PATH         set PATH's owner; with -R, the whole tree's
                               (also --chmod MODE PATH, --chown UID:GID PATH)

Changing owners needs root (runAsUser: 0 and, usually, the CHOWN capability);
for group ownership of a volume, the pod's fsGroup is often simpler. Without
the right, prepare says which path and what is needed, and exits 1.

EXAMPLES
  prepare --dir /data/es:0775:1000:1000 --dir /data/logs
  prepare --chown 1000:1000 /usr/share/elasticsearch/data -R
  prepare --copy /config-src/app.conf:/config/app.conf --mode 0640
  prepare --symlink /shared/bin/initbox:/shared/bin/healthcheck`,
	New: func() cli.Command { return &command{} },
}

type command struct {
	dirFlags, copyFlags, linkFlags []string
	pathSteps                      []step // --chmod and --chown, in command-line order
	recursive                      bool
	modeFlag                       string

	dirs   []dirStep
	copies [][2]string
	links  [][2]string
	chmods []modeStep
	chowns []ownerStep
	mode   *uint32
}

// step is one --chmod or --chown as given.
type step struct{ kind, value string }

// ordered collects --chmod and --chown values in the order given, so that
// "--chown 1000:1000 /data" can take its PATH from the next word.
type ordered struct {
	list *[]step
	kind string
}

func (o *ordered) Set(v string) error { *o.list = append(*o.list, step{o.kind, v}); return nil }
func (o *ordered) String() string     { return "" }

type owner struct{ uid, gid int }

type dirStep struct {
	path  string
	mode  uint32
	owner *owner
}

type modeStep struct {
	path string
	mode uint32
}

type ownerStep struct {
	path string
	o    owner
}

func (c *command) Flags(fs *cli.FlagSet) {
	fs.Strings(&c.dirFlags, "dir", "make a directory: `PATH[:MODE[:UID:GID]]` (repeatable)")
	fs.Strings(&c.copyFlags, "copy", "copy a file atomically: `SRC:DST` (repeatable)")
	fs.Strings(&c.linkFlags, "symlink", "make a symlink: `TARGET:LINK` (repeatable)")
	fs.Var(&ordered{list: &c.pathSteps, kind: "chmod"}, "chmod", "", "set a mode: `MODE:PATH` or MODE PATH (repeatable)")
	fs.Var(&ordered{list: &c.pathSteps, kind: "chown"}, "chown", "", "set an owner: `UID:GID:PATH` or UID:GID PATH (repeatable)")
	fs.Bool(&c.recursive, "recursive", "--chmod and --chown apply to whole trees, never following symlinks")
	fs.Alias("R", "recursive")
	fs.String(&c.modeFlag, "mode", "", "mode of --copy files (`MODE`, octal; default: the source's)")
}

// parseMode reads an octal mode, 0 to 7777: the bits chmod(2) takes.
func parseMode(s string) (uint32, error) {
	m, err := strconv.ParseUint(s, 8, 32)
	if err != nil || m > 0o7777 {
		return 0, fmt.Errorf("invalid mode %q: want octal such as 0755", s)
	}
	return uint32(m), nil
}

func parseOwner(uid, gid string) (owner, error) {
	u, err1 := strconv.Atoi(uid)
	g, err2 := strconv.Atoi(gid)
	if err1 != nil || err2 != nil || u < 0 || g < 0 {
		return owner{}, fmt.Errorf("invalid owner %q: want numeric UID:GID", uid+":"+gid)
	}
	return owner{u, g}, nil
}

func pair(flag, v string) ([2]string, error) {
	a, b, ok := strings.Cut(v, ":")
	if !ok || a == "" || b == "" {
		return [2]string{}, fmt.Errorf("invalid --%s %q: want two parts separated by ':'", flag, v)
	}
	return [2]string{a, b}, nil
}

func (c *command) Prepare(_ *cli.Env, args []string) ([]string, error) {
	for _, v := range c.dirFlags {
		parts := strings.SplitN(v, ":", 4)
		d := dirStep{path: parts[0], mode: 0o755}
		if d.path == "" || len(parts) == 3 {
			return nil, fmt.Errorf("invalid --dir %q: want PATH[:MODE[:UID:GID]]", v)
		}
		if len(parts) >= 2 {
			m, err := parseMode(parts[1])
			if err != nil {
				return nil, fmt.Errorf("--dir %s: %w", d.path, err)
			}
			d.mode = m
		}
		if len(parts) == 4 {
			o, err := parseOwner(parts[2], parts[3])
			if err != nil {
				return nil, fmt.Errorf("--dir %s: %w", d.path, err)
			}
			d.owner = &o
		}
		c.dirs = append(c.dirs, d)
	}
	for _, v := range c.copyFlags {
		p, err := pair("copy", v)
		if err != nil {
			return nil, err
		}
		c.copies = append(c.copies, p)
	}
	for _, v := range c.linkFlags {
		p, err := pair("symlink", v)
		if err != nil {
			return nil, err
		}
		c.links = append(c.links, p)
	}
	// A --chmod MODE or --chown UID:GID without a path takes the next
	// positional word, as in "--chown 1000:1000 /data".
	for _, st := range c.pathSteps {
		v := st.value
		if (st.kind == "chmod" && !strings.Contains(v, ":")) || (st.kind == "chown" && strings.Count(v, ":") == 1) {
			if _, err := parseMode(v); st.kind == "chmod" && err != nil {
				return nil, fmt.Errorf("--chmod %s: %w", v, err)
			}
			if len(args) == 0 {
				return nil, fmt.Errorf("--%s %s: which path?", st.kind, v)
			}
			v, args = v+":"+args[0], args[1:]
		}
		switch st.kind {
		case "chmod":
			p, err := pair("chmod", v)
			if err != nil {
				return nil, err
			}
			m, err := parseMode(p[0])
			if err != nil {
				return nil, fmt.Errorf("--chmod %s: %w", v, err)
			}
			c.chmods = append(c.chmods, modeStep{p[1], m})
		case "chown":
			parts := strings.SplitN(v, ":", 3)
			if len(parts) != 3 || parts[2] == "" {
				return nil, fmt.Errorf("invalid --chown %q: want UID:GID:PATH", v)
			}
			o, err := parseOwner(parts[0], parts[1])
			if err != nil {
				return nil, fmt.Errorf("--chown %s: %w", v, err)
			}
			c.chowns = append(c.chowns, ownerStep{parts[2], o})
		}
	}
	if len(args) > 0 {
		return nil, fmt.Errorf("unexpected argument %q: every step is a flag (see --help)", args[0])
	}
	if c.modeFlag != "" {
		m, err := parseMode(c.modeFlag)
		if err != nil {
			return nil, fmt.Errorf("--mode: %w", err)
		}
		c.mode = &m
	}
	if len(c.dirs)+len(c.copies)+len(c.links)+len(c.chmods)+len(c.chowns) == 0 {
		return nil, errors.New("nothing to do: give --dir, --copy, --symlink, --chmod or --chown")
	}
	return nil, nil
}

func (c *command) Run(ctx context.Context, env *cli.Env) (string, error) {
	var changes []string
	note := func(what string) {
		env.Log.Info("changed", "what", what)
		changes = append(changes, what)
	}
	for _, d := range c.dirs {
		if err := c.dir(d, note); err != nil {
			return "", err
		}
	}
	for _, cp := range c.copies {
		if err := c.copyFile(ctx, cp[0], cp[1], note); err != nil {
			return "", err
		}
	}
	for _, l := range c.links {
		pfd, _, err := parentOf(l[1], false)
		if err != nil {
			return "", fmt.Errorf("symlink %s: %w", l[1], err)
		}
		unix.Close(pfd)
		if got, err := os.Readlink(l[1]); err == nil && got == l[0] {
			continue
		}
		if err := atomicfile.Symlink(l[0], l[1]); err != nil {
			return "", err
		}
		note("symlink " + l[1] + " -> " + l[0])
	}
	for _, o := range c.chowns {
		if err := c.walk(o.path, func(e *entry) error {
			return chown(e, o.o, note)
		}); err != nil {
			return "", err
		}
	}
	for _, m := range c.chmods {
		if err := c.walk(m.path, func(e *entry) error {
			return chmod(e, m.mode, note)
		}); err != nil {
			return "", err
		}
	}
	if len(changes) == 0 {
		env.Log.Info("nothing to change")
		return "nothing to change", nil
	}
	return fmt.Sprintf("%d changes: %s", len(changes), strings.Join(changes, "; ")), nil
}

func unwrap(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

func (c *command) dir(d dirStep, note func(string)) error {
	pfd, name, err := parentOf(d.path, true)
	if err != nil {
		return fmt.Errorf("creating the parents of %s: %w", d.path, err)
	}
	defer unix.Close(pfd)
	e, err := openAt(pfd, name, d.path)
	if errors.Is(err, unix.ENOENT) {
		if err := unix.Mkdirat(pfd, name, 0o700); err != nil {
			return fmt.Errorf("creating %s: %w", d.path, err)
		}
		note("mkdir " + d.path)
		e, err = openAt(pfd, name, d.path)
	}
	switch {
	case err != nil:
		return fmt.Errorf("%s: %w", d.path, err)
	case e.isLink():
		e.close()
		return &linkError{d.path}
	case !e.isDir():
		e.close()
		return fmt.Errorf("%s exists and is not a directory", d.path)
	}
	defer e.close()
	// The mode before the owner: once the directory is another user's, a
	// chmod needs CAP_FOWNER, which a container given only CHOWN (the
	// elasticsearch example) lacks — a real kubelet run found "chmod:
	// operation not permitted". A chown may clear setuid and setgid, so a
	// mode with them is set once more after it.
	if err := chmod(e, d.mode, note); err != nil {
		return err
	}
	if d.owner == nil {
		return nil
	}
	if err := chown(e, *d.owner, note); err != nil {
		return err
	}
	return chmod(e, d.mode, note)
}

// walk visits path, and with -R its whole tree, never following symlinks:
// a link in path, or path itself being one, is an error; links inside a
// tree are skipped.
func (c *command) walk(path string, f func(*entry) error) error {
	pfd, name, err := parentOf(path, false)
	if err != nil {
		return err
	}
	defer unix.Close(pfd)
	top := true
	return visit(pfd, name, filepath.Clean(path), c.recursive, func(e *entry) error {
		if e.isLink() {
			if top {
				return &linkError{e.path}
			}
			return nil
		}
		top = false
		return f(e)
	})
}

func chmod(e *entry, mode uint32, note func(string)) error {
	if e.mode() == mode {
		return nil
	}
	if err := e.chmod(mode); err != nil {
		if errors.Is(err, os.ErrPermission) && int(e.st.Uid) != os.Geteuid() {
			return fmt.Errorf("chmod %s: %v: it is uid %d's, and changing another user's mode needs the FOWNER capability", e.path, err, e.st.Uid)
		}
		return fmt.Errorf("chmod %s: %w", e.path, err)
	}
	note(fmt.Sprintf("chmod %04o %s", mode, e.path))
	return nil
}

func chown(e *entry, o owner, note func(string)) error {
	if int(e.st.Uid) == o.uid && int(e.st.Gid) == o.gid {
		return nil
	}
	if err := e.chown(o.uid, o.gid); err != nil {
		if errors.Is(err, os.ErrPermission) {
			return fmt.Errorf("chown %s to %d:%d: %v: this needs runAsUser: 0 with the CHOWN capability, or the pod's fsGroup for group ownership", e.path, o.uid, o.gid, err)
		}
		return fmt.Errorf("chown %s: %w", e.path, err)
	}
	// The kernel clears setuid and setgid on a chown: what chmod sees next
	// must be the mode as it is now.
	if err := unix.Fstat(e.fd, &e.st); err != nil {
		return err
	}
	note(fmt.Sprintf("chown %d:%d %s", o.uid, o.gid, e.path))
	return nil
}

func (c *command) copyFile(ctx context.Context, src, dst string, note func(string)) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("copy: %s: %w", src, unwrap(err))
	}
	defer in.Close()
	sfi, err := in.Stat()
	if err != nil {
		return err
	}
	if !sfi.Mode().IsRegular() {
		return fmt.Errorf("copy: %s is not a file", src)
	}
	mode := sfi.Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)
	if c.mode != nil {
		mode = atomicfile.Mode(*c.mode)
	}
	// DST's directory is entered without following a link; DST itself, if
	// a link, is replaced by the rename, never written through.
	pfd, _, err := parentOf(dst, false)
	if err != nil {
		return fmt.Errorf("copy to %s: %w", dst, err)
	}
	unix.Close(pfd)
	if same(src, dst, sfi.Size(), mode) {
		return nil
	}
	if err := atomicfile.Write(ctx, dst, in, mode); err != nil {
		return fmt.Errorf("copy %s: %w", src, err)
	}
	note("copy " + src + " -> " + dst)
	return nil
}

// same reports whether dst already holds src's bytes with mode.
func same(src, dst string, size int64, mode os.FileMode) bool {
	fi, err := os.Lstat(dst)
	if err != nil || !fi.Mode().IsRegular() || fi.Size() != size || fi.Mode()&^fs.ModeType != mode {
		return false
	}
	a, err1 := os.Open(src)
	b, err2 := os.Open(dst)
	if err1 != nil || err2 != nil {
		return false
	}
	defer a.Close()
	defer b.Close()
	bufA, bufB := make([]byte, 64<<10), make([]byte, 64<<10)
	for {
		n, errA := io.ReadFull(a, bufA)
		m, _ := io.ReadFull(b, bufB)
		if n != m || string(bufA[:n]) != string(bufB[:m]) {
			return false
		}
		if errA != nil {
			return true
		}
	}
}
