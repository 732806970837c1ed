// Package render is the render applet: configuration files from templates
// fed by the downward API, strict (a missing key stops the pod with its
// name, file and line) and atomic (files appear whole or not at all).
package render

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"text/template"

	"github.com/initbox/initbox/internal/atomicfile"
	"github.com/initbox/initbox/internal/cli"
	"github.com/initbox/initbox/internal/keep"
	"github.com/initbox/initbox/internal/oserr"
	"github.com/initbox/initbox/internal/tmpl"
)

// Applet is render's entry in the applet table.
var Applet = cli.Applet{
	Name:     "render",
	Summary:  "render config files from templates and the downward API: strict, atomic",
	Synopsis: "[flags] TEMPLATE... --out FILE|DIR|-",
	Help: `Renders Go text/template files with sprig's functions (the hermetic set Helm
users know) plus required, toYaml, fromYaml, toJson, fromJson and file (a
file's content, such as a mounted Secret's key). A template sees:

  .Env     the process environment
  .Pod     the downward API: .Pod.Name, .Namespace, .UID, .IP, .IPs (a list),
           .NodeName, .HostIP, .HostIPs, .ServiceAccount from POD_NAME,
           POD_NAMESPACE, POD_UID, POD_IP, POD_IPS, NODE_NAME, HOST_IP,
           HOST_IPS, POD_SERVICE_ACCOUNT (each after --pod-env-prefix); and
           from a downwardAPI volume (--podinfo DIR), which wins: the files
           name, namespace, uid, labels and annotations (.Pod.Labels and
           .Pod.Annotations, maps), every file also in .Pod.Files by path
  .Values  --values files merged in order, then --set
  .ConfigMaps.NAME.KEY, .Secrets.NAME.KEY
           --configmap NAME and --secret NAME read through the API with the
           pod's service account (a Role with get, list, watch on them; a
           403 names the rule), watched with --watch

Strict: a key missing from a map is an error naming the key, the template and
its line; write optional values as {{ dig "port" 8080 .Values }} or
{{ get .Env "LOG_LEVEL" | default "info" }}. Any error is exit 2 with nothing
written.

TEMPLATE is a file, rendered to the file --out (or into --out when it is a
directory), or a directory, whose tree renders into the directory --out with
the same relative paths, --suffix stripped from names. Several TEMPLATEs
render into one directory. A file is written to a temporary file next to it,
synced and renamed; a directory is swapped whole. Unchanged output is not
written at all ("unchanged", mtime kept). A file bind-mounted into the
container cannot be renamed over: --in-place writes it in place instead (not
atomic).

--envsubst replaces $VAR, ${VAR}, ${VAR:-default}, ${VAR:?message} and $$ (a
literal $) from the environment instead, like GNU envsubst; an unset variable
is an error unless --allow-unset; --envsubst-vars A,B replaces only those
names and leaves every other $ as written (nginx's $host).

WATCH
--watch keeps the output true for the pod's whole life (a native sidecar:
restartPolicy: Always in initContainers). After the first render it renders
again whenever a template, a --values file or a --podinfo file changes —
also a ConfigMap or Secret volume as the kubelet swaps its ..data link: the
directories are watched (inotify), nothing is polled — or a --configmap or
--secret changes through the API (watched with bookmarks: a change arrives
in milliseconds, not at the kubelet's next volume refresh; a watch silent
for --watch-silence is started again, and /healthz fails while one is down
longer). Output that is byte for
byte what is there is not written and notifies no one; changed output is
swapped in whole, then each --on-change runs, in order: signal:HUP:nginx (to
every process named nginx in the pod's PID namespace, with
shareProcessNamespace: true), signal:HUP:@/run/app.pid, or a URL requested
(POST, retried until a 2xx for 30 s): http://localhost:9090/-/reload. The first
render's error ends the run (exit 2, as without --watch); a later one is
logged, the last good output stays. --ready-file PATH is written after the
first render (a startupProbe that holds the app back until then); --listen
ADDR serves /healthz, /readyz and /metrics. SIGTERM ends it at once, exit 0.

EXAMPLES
  render /templates/app.conf.tmpl --out /config/app.conf --podinfo /etc/podinfo
  render /templates --out /config --values /values/prod.yaml --set replicas=3
  render --envsubst /templates/nginx.conf --envsubst-vars PORT,SERVER_NAME --out /etc/nginx/nginx.conf
  render --watch /templates/nginx.conf.tmpl --out /etc/nginx/nginx.conf --on-change signal:HUP:nginx --ready-file /run/rendered`,
	New: func() cli.Command { return &command{} },
}

type command struct {
	out          string
	suffix       string
	modeFlag     string
	uid, gid     int
	inPlace      bool
	envsubst     bool
	envsubstVars string
	allowUnset   bool
	opts         tmpl.Options
	watch        bool
	keep         keep.Options
	objs         objects

	args   []string
	engine *keep.Engine

	inputs []*input
	tree   bool   // the output is a directory tree swapped whole
	dest   string // the file, or the tree's directory
	mode   os.FileMode
	modeOK bool
	only   map[string]bool
}

// input is one template file and where it renders to.
type input struct {
	path string // as found, which errors name
	rel  string // its output path, relative to a tree's root
	src  []byte
	perm os.FileMode
	t    *template.Template
}

func (c *command) Flags(fs *cli.FlagSet) {
	fs.String(&c.out, "out", "", "write to `FILE`, into DIR, or to - (stdout)")
	fs.Alias("o", "out")
	fs.String(&c.suffix, "suffix", ".tmpl", "strip `SUFFIX` from template file names")
	fs.String(&c.modeFlag, "mode", "", "file `MODE` of the output (octal; default the template's)")
	fs.Int(&c.uid, "uid", -1, "owner `UID` of the output (needs CAP_CHOWN)")
	fs.Int(&c.gid, "gid", -1, "group `GID` of the output (needs CAP_CHOWN unless a group of the user)")
	fs.Bool(&c.inPlace, "in-place", "write a bind-mounted file in place, which cannot be renamed over")
	fs.Bool(&c.envsubst, "envsubst", "replace shell-style $VAR references instead of running text/template")
	fs.String(&c.envsubstVars, "envsubst-vars", "", "with --envsubst, replace only these `NAMES` (comma-separated)")
	fs.Bool(&c.allowUnset, "allow-unset", "with --envsubst, an unset variable is empty instead of an error")
	c.opts.Flags(fs, "set")
	c.objs.flags(fs)
	fs.Bool(&c.watch, "watch", "keep rendering: again whenever a template, --values or --podinfo file, --configmap or --secret changes (a native sidecar)")
	c.keep.Flags(fs)
}

func (c *command) Prepare(env *cli.Env, args []string) ([]string, error) {
	c.opts.Secrets = env.Secrets
	if len(args) == 0 {
		return nil, errors.New("want a TEMPLATE (a file or a directory)")
	}
	if c.out == "" {
		return nil, errors.New("--out is required: a FILE, a DIR, or - for stdout")
	}
	if err := c.opts.Check(); err != nil {
		return nil, err
	}
	if c.modeFlag != "" {
		m, err := strconv.ParseUint(c.modeFlag, 8, 32)
		if err != nil || m > 0o7777 {
			return nil, fmt.Errorf("invalid value %q for --mode: want an octal mode such as 0644", c.modeFlag)
		}
		c.mode, c.modeOK = atomicfile.Mode(uint32(m)), true
	}
	if c.uid < -1 || c.gid < -1 {
		return nil, errors.New("--uid and --gid must be numeric ids (0 and above)")
	}
	if c.envsubst {
		if len(c.opts.Values) > 0 || len(c.opts.Sets) > 0 || c.opts.Podinfo != "" {
			return nil, errors.New("--values, --set and --podinfo feed templates; --envsubst reads only the environment")
		}
		if c.envsubstVars != "" {
			c.only = map[string]bool{}
			for _, n := range strings.Split(c.envsubstVars, ",") {
				n = strings.TrimPrefix(strings.TrimSpace(n), "$")
				if n == "" || !validName(n) {
					return nil, fmt.Errorf("invalid name %q in --envsubst-vars", n)
				}
				c.only[n] = true
			}
		}
	} else if c.envsubstVars != "" || c.allowUnset {
		return nil, errors.New("--envsubst-vars and --allow-unset go with --envsubst")
	}
	if err := c.objs.prepare(env); err != nil {
		return nil, err
	}
	if c.objs.used() && c.envsubst {
		return nil, errors.New("--configmap and --secret feed templates; --envsubst reads only the environment")
	}
	if c.watch {
		if c.out == "-" {
			return nil, errors.New("--watch keeps files true: --out - (stdout) cannot be")
		}
		c.engine = &keep.Engine{Log: env.Log, Secrets: env.Secrets, Opts: &c.keep, Pass: c.pass(env), Sources: c.objs.sources()}
		if err := c.engine.Check(); err != nil {
			return nil, err
		}
	} else if c.keep.Used() {
		return nil, errors.New("--on-change, --ready-file and --listen go with --watch")
	}
	c.args = args
	return nil, c.load()
}

// load reads every template and where it renders to: once, or at every
// pass of --watch.
func (c *command) load() error {
	c.inputs, c.tree = nil, false
	for _, a := range c.args {
		if err := c.collect(a); err != nil {
			return err
		}
	}
	if c.out == "-" {
		if c.tree {
			return errors.New("--out - writes files to stdout: give template files, not directories")
		}
		return c.parse()
	}
	if c.tree || len(c.inputs) > 1 {
		c.tree, c.dest = true, filepath.Clean(c.out)
		seen := map[string]string{}
		for _, in := range c.inputs {
			if other, ok := seen[in.rel]; ok {
				return fmt.Errorf("%s and %s both render to %s", other, in.path, in.rel)
			}
			seen[in.rel] = in.path
		}
	} else if fi, err := os.Stat(c.out); strings.HasSuffix(c.out, "/") || err == nil && fi.IsDir() {
		c.dest = filepath.Join(c.out, c.inputs[0].rel)
	} else {
		c.dest = filepath.Clean(c.out)
	}
	return c.parse()
}

func validName(n string) bool {
	for i := 0; i < len(n); i++ {
		if !isName(n[i]) || i == 0 && !isNameStart(n[0]) {
			return false
		}
	}
	return true
}

// collect adds the template file at arg, or every file under the
// directory arg. A ConfigMap volume's files are symlinks into ..data: they
// are followed, and the ..-named entries skipped.
func (c *command) collect(arg string) error {
	fi, err := os.Stat(arg)
	if err != nil {
		return fmt.Errorf("template %s: %w", arg, oserr.Reason(err))
	}
	if !fi.IsDir() {
		return c.add(arg, arg, c.strip(filepath.Base(arg)), fi)
	}
	c.tree = true
	// A ConfigMap volume's entries are links through ..data, which the
	// kubelet swaps atomically: walking its target reads one snapshot,
	// nested paths included.
	root := arg
	if target, err := os.Readlink(filepath.Join(arg, "..data")); err == nil {
		if !filepath.IsAbs(target) {
			target = filepath.Join(arg, target)
		}
		root = target
	}
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("template %s: %w", p, oserr.Reason(err))
		}
		if p != root && (strings.HasPrefix(d.Name(), "..") || strings.HasPrefix(d.Name(), atomicfile.TempPrefix)) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			return nil
		}
		fi, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("template %s: %w", p, oserr.Reason(err))
		}
		if fi.IsDir() {
			return fmt.Errorf("template %s: a link to a directory, which is not followed", p)
		}
		rel, _ := filepath.Rel(root, p)
		return c.add(filepath.Join(arg, rel), p, filepath.Join(filepath.Dir(rel), c.strip(filepath.Base(rel))), fi)
	})
}

func (c *command) strip(name string) string {
	if c.suffix != "" && strings.HasSuffix(name, c.suffix) && len(name) > len(c.suffix) {
		return strings.TrimSuffix(name, c.suffix)
	}
	return name
}

// add reads the template file at read; path is how errors name it.
func (c *command) add(path, read, rel string, fi os.FileInfo) error {
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("template %s: not a regular file", path)
	}
	src, err := os.ReadFile(read)
	if err != nil {
		return fmt.Errorf("template %s: %w", path, oserr.Reason(err))
	}
	c.inputs = append(c.inputs, &input{path: path, rel: rel, src: src, perm: fi.Mode() & (fs.ModePerm | os.ModeSetuid | os.ModeSetgid | os.ModeSticky)})
	return nil
}

// parse checks every template's syntax before anything runs.
func (c *command) parse() error {
	if c.envsubst {
		return nil
	}
	for _, in := range c.inputs {
		t, err := c.opts.Parse(in.path, string(in.src))
		if err != nil {
			return err
		}
		in.t = t
	}
	return nil
}

func (c *command) Run(ctx context.Context, env *cli.Env) (string, error) {
	if c.engine != nil {
		return c.engine.Run(ctx)
	}
	return c.once(ctx, env)
}

// pass is --watch's: the templates read again (the first pass uses what
// Prepare read), rendered, written when they changed; the directories of
// every input watched.
func (c *command) pass(env *cli.Env) keep.Pass {
	first := true
	return func(ctx context.Context) (keep.Result, error) {
		res := keep.Result{Dirs: c.watched()}
		if !first {
			if err := c.load(); err != nil {
				return res, err
			}
		} else if err := c.objs.sync(ctx); err != nil {
			return res, err // the API's answer: not bad usage
		}
		first = false
		r, err := c.renderer(env)
		if err == nil && c.tree {
			res.Changed, err = c.writeTree(ctx, r)
		} else if err == nil {
			res.Changed, err = c.writeFile(ctx, env, r)
		}
		if err != nil {
			// As the one-shot's: bad input is exit 2 (the first pass's
			// error ends the run), a failed write is not.
			var we *writeError
			var ae *apiError
			if ctx.Err() == nil && !errors.As(err, &we) && !errors.As(err, &ae) {
				err = &cli.UsageError{Err: err}
			}
			return res, err
		}
		res.Summary = "rendered " + c.dest
		if res.Changed {
			env.Log.Info("rendered", "out", c.dest, "files", len(c.inputs))
		}
		return res, nil
	}
}

// watched are the directories whose changes start the next pass: each
// template directory (its tree), each template file's and --values file's
// directory, the --podinfo directory.
func (c *command) watched() []keep.Dir {
	var dirs []keep.Dir
	for _, a := range c.args {
		if fi, err := os.Stat(a); err == nil && fi.IsDir() {
			dirs = append(dirs, keep.Dir{Path: a, Tree: true})
		} else {
			dirs = append(dirs, keep.Dir{Path: filepath.Dir(a)})
		}
	}
	for _, v := range c.opts.Values {
		dirs = append(dirs, keep.Dir{Path: filepath.Dir(v)})
	}
	if c.opts.Podinfo != "" {
		dirs = append(dirs, keep.Dir{Path: c.opts.Podinfo})
	}
	return dirs
}

func (c *command) once(ctx context.Context, env *cli.Env) (string, error) {
	if err := c.objs.sync(ctx); err != nil {
		return "", err
	}
	r, err := c.renderer(env)
	if err == nil && c.out == "-" {
		err = c.toStdout(env, r)
	}
	var changed bool
	switch {
	case err != nil || c.out == "-":
	case c.tree:
		changed, err = c.writeTree(ctx, r)
	default:
		changed, err = c.writeFile(ctx, env, r)
	}
	if err != nil {
		if ctx.Err() != nil {
			return "", err
		}
		var we *writeError
		if errors.As(err, &we) {
			return "", we.err
		}
		var ae *apiError
		if errors.As(err, &ae) {
			return "", err
		}
		return "", &cli.UsageError{Err: err}
	}
	if c.out == "-" {
		return "rendered to stdout", nil
	}
	what := c.dest
	if c.tree {
		what = fmt.Sprintf("%s (%d files)", c.dest, len(c.inputs))
	}
	if !changed {
		env.Log.Info("unchanged", "out", c.dest)
		return what + " unchanged", nil
	}
	env.Log.Info("rendered", "out", c.dest, "files", len(c.inputs))
	return "rendered " + what, nil
}

// writeError is a failure to write to stdout: not bad input.
type writeError struct{ err error }

func (e *writeError) Error() string { return e.err.Error() }

// renderer returns what writes one input's output to w; its errors, and
// the data's, are bad input.
func (c *command) renderer(env *cli.Env) (func(in *input, w io.Writer) error, error) {
	if c.envsubst {
		e := &envsubst{lookup: env.LookupEnv, only: c.only, allowUnset: c.allowUnset}
		return func(in *input, w io.Writer) error { return e.expand(in.path, in.src, w) }, nil
	}
	data, err := c.opts.Load(env.LookupEnv)
	if err != nil {
		return nil, err
	}
	if c.objs.used() {
		if data["ConfigMaps"], data["Secrets"], err = c.objs.data(env); err != nil {
			return nil, err
		}
	}
	return func(in *input, w io.Writer) error { return c.opts.Execute(in.t, data, w) }, nil
}

// toStdout renders everything before writing anything, so a failure
// prints nothing.
func (c *command) toStdout(env *cli.Env, r func(*input, io.Writer) error) error {
	var buf bytes.Buffer
	for _, in := range c.inputs {
		if err := r(in, &buf); err != nil {
			return err
		}
	}
	if _, err := env.Stdout.Write(buf.Bytes()); err != nil {
		return &writeError{fmt.Errorf("writing to stdout: %w", err)}
	}
	return nil
}

func (c *command) perm(in *input) os.FileMode {
	if c.modeOK {
		return c.mode
	}
	return in.perm
}

// same reports whether the file at path is a regular file with perm (and
// the owner asked for) holding what the staged file at staged holds.
func (c *command) same(path, staged string, perm os.FileMode) bool {
	fi, err := os.Lstat(path)
	sfi, serr := os.Stat(staged)
	if err != nil || serr != nil || !fi.Mode().IsRegular() || fi.Size() != sfi.Size() || fi.Mode()&(fs.ModePerm|os.ModeSetuid|os.ModeSetgid|os.ModeSticky) != perm {
		return false
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		if c.uid >= 0 && int(st.Uid) != c.uid || c.gid >= 0 && int(st.Gid) != c.gid {
			return false
		}
	}
	return sameContent(path, staged)
}

func sameContent(a, b string) bool {
	fa, err := os.Open(a)
	if err != nil {
		return false
	}
	defer fa.Close()
	fb, err := os.Open(b)
	if err != nil {
		return false
	}
	defer fb.Close()
	ba, bb := make([]byte, 64<<10), make([]byte, 64<<10)
	for {
		na, ea := io.ReadFull(fa, ba)
		nb, eb := io.ReadFull(fb, bb)
		if na != nb || !bytes.Equal(ba[:na], bb[:nb]) {
			return false
		}
		if ea != nil || eb != nil {
			return (ea == io.EOF || ea == io.ErrUnexpectedEOF) && (eb == io.EOF || eb == io.ErrUnexpectedEOF)
		}
	}
}

// stage renders in into the new file f, closing it: buffered, then given
// its mode and owner and synced.
func (c *command) stage(f *os.File, in *input, r func(*input, io.Writer) error) error {
	w := bufio.NewWriterSize(f, 64<<10)
	err := r(in, w)
	if err != nil {
		f.Close()
		return err
	}
	if err = w.Flush(); err != nil {
		f.Close()
	} else {
		err = atomicfile.Finish(f, c.perm(in), c.uid, c.gid)
	}
	if err != nil {
		return fmt.Errorf("writing %s: %w", filepath.Join(c.dest, in.rel), oserr.Reason(err))
	}
	return nil
}

// writeFile renders into a file staged next to c.dest and publishes it,
// unless c.dest already holds the same.
func (c *command) writeFile(ctx context.Context, env *cli.Env, r func(*input, io.Writer) error) (bool, error) {
	place, err := atomicfile.Plan(c.dest, false)
	if err != nil {
		return false, err
	}
	if err := place.Ensure(); err != nil {
		return false, err
	}
	f, err := place.TempFile()
	if err != nil {
		return false, err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	in := c.inputs[0]
	if err := c.stage(f, in, r); err != nil {
		return false, err
	}
	if c.same(c.dest, tmp, c.perm(in)) {
		return false, nil
	}
	if err := ctx.Err(); err != nil {
		return false, context.Cause(ctx)
	}
	err = place.PublishFile(tmp)
	if errors.Is(err, syscall.EBUSY) {
		if !c.inPlace {
			return false, fmt.Errorf("%s is a mount point (a file bind-mounted into the container) and cannot be replaced by a rename: give --in-place to write it in place, not atomically", c.dest)
		}
		env.Log.Warn("writing in place: readers may see a partial file", "out", c.dest)
		return true, c.writeInPlace(tmp, c.perm(in))
	}
	return err == nil, err
}

// writeInPlace copies the staged file over c.dest's content.
func (c *command) writeInPlace(staged string, perm os.FileMode) error {
	src, err := os.Open(staged)
	if err != nil {
		return err
	}
	defer src.Close()
	f, err := os.OpenFile(c.dest, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return fmt.Errorf("writing %s in place: %w", c.dest, oserr.Reason(err))
	}
	_, err = io.Copy(f, src)
	if err == nil {
		err = f.Chmod(perm)
	}
	if err == nil && (c.uid >= 0 || c.gid >= 0) {
		err = f.Chown(c.uid, c.gid)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("writing %s in place: %w", c.dest, oserr.Reason(err))
	}
	return nil
}

// writeTree renders every input into a tree staged next to c.dest and
// swaps it in whole, unless c.dest already holds exactly the same.
func (c *command) writeTree(ctx context.Context, r func(*input, io.Writer) error) (bool, error) {
	place, err := atomicfile.Plan(c.dest, true)
	if err != nil {
		return false, err
	}
	if err := place.Ensure(); err != nil {
		return false, err
	}
	tree, err := place.TempDir()
	if err != nil {
		return false, err
	}
	published := false
	defer func() {
		if !published {
			os.RemoveAll(tree)
		}
	}()
	dirs := map[string]bool{}
	for _, in := range c.inputs {
		p := filepath.Join(tree, in.rel)
		if d := filepath.Dir(in.rel); d != "." && !dirs[d] {
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return false, fmt.Errorf("creating %s: %w", filepath.Join(c.dest, d), oserr.Reason(err))
			}
			dirs[d] = true
		}
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return false, fmt.Errorf("writing %s: %w", filepath.Join(c.dest, in.rel), oserr.Reason(err))
		}
		if err := c.stage(f, in, r); err != nil {
			return false, err
		}
	}
	if c.sameTree(tree) {
		return false, nil
	}
	// The staging directory's own 0700 would become c.dest's.
	if err := os.Chmod(tree, 0o755); err != nil {
		return false, err
	}
	if c.uid >= 0 || c.gid >= 0 {
		for d := range dirs {
			for ; d != "."; d = filepath.Dir(d) {
				if err := os.Chown(filepath.Join(tree, d), c.uid, c.gid); err != nil {
					return false, fmt.Errorf("setting the owner to %d:%d: %w", c.uid, c.gid, oserr.Reason(err))
				}
			}
		}
	}
	if err := ctx.Err(); err != nil {
		return false, context.Cause(ctx)
	}
	if err := place.PublishDir(tree); err != nil {
		return false, err
	}
	published = true
	return true, nil
}

// sameTree: c.dest holds exactly the files staged in tree, with their
// modes (the staging directory itself is skipped when c.dest is an
// emptyDir's mount point and holds it).
func (c *command) sameTree(tree string) bool {
	var have []string
	err := filepath.WalkDir(c.dest, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == tree {
			return filepath.SkipDir
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(c.dest, p)
			have = append(have, rel)
		}
		return nil
	})
	if err != nil || len(have) != len(c.inputs) {
		return false
	}
	want := make([]string, len(c.inputs))
	for i, in := range c.inputs {
		want[i] = in.rel
		if !c.same(filepath.Join(c.dest, in.rel), filepath.Join(tree, in.rel), c.perm(in)) {
			return false
		}
	}
	sort.Strings(want)
	sort.Strings(have)
	return strings.Join(want, "\x00") == strings.Join(have, "\x00")
}
