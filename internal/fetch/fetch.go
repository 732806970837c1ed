// Package fetch is the fetch applet: it puts a file, an unpacked archive or
// a git checkout into a volume the app container will read — verified,
// atomic, idempotent.
//
// What go-getter (v2) does here: it reads SRC. Its SourceDirSubdir splits
// off the //subdir, its Detect applies the forced-getter syntax (git::,
// http::, file::) and runs the getters' detection, with its own detectors
// (github.com/ORG/REPO, gitlab.com/ORG/REPO, git@host:path, relative
// paths); the first of initbox's getters that accepts SRC builds the
// source (source.go). Its Client then drives each attempt: the query's
// parameters, the file or directory mode, and the call to the getter.
//
// What initbox's getters do, each in its source kind's file: httpGetter
// (http.go) streams a URL's file through one pump that counts, bounds
// (--max-size) and hashes as it goes — go-getter's HttpGetter copies in
// 32 KiB steps, cannot hash while streaming and truncates silently at its
// MaxBytes; gitGetter (git.go) fetches one commit with go-git's transports
// and writes its tree through os.Root — go-getter's GitGetter execs the git
// binary, which a scratch image does not have, into a worktree initbox
// does not trust; fileGetter (local.go) streams a local file the same way
// as a download. go-getter's decompressors are not used: archives are
// unpacked by internal/archive, through os.Root, with limits. Around all of
// them this package owns the staging on DEST's filesystem, checksums,
// idempotence and publishing in one rename.
//
// A new kind of source (an OCI artifact, S3) is one file: a type that is
// a source (info, prepare, run — a download's run is runDownload), and a
// sourceGetter added to newClient's list.
package fetch

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/cenkalti/backoff/v4"
	getter "github.com/hashicorp/go-getter/v2"

	"github.com/initbox/initbox/internal/archive"
	"github.com/initbox/initbox/internal/atomicfile"
	"github.com/initbox/initbox/internal/cli"
	"github.com/initbox/initbox/internal/header"
	"github.com/initbox/initbox/internal/keep"
	"github.com/initbox/initbox/internal/retry"
	"github.com/initbox/initbox/internal/tlsconfig"
)

// Applet is fetch's entry in the applet table.
var Applet = cli.Applet{
	Name:     "fetch",
	Summary:  "download a file or an archive into a volume: verified, atomic, idempotent",
	Synopsis: "[flags] SRC DEST",
	Help: `Downloads SRC (http, https, or a local file or directory on another volume)
to DEST. An archive (by --archive or by its extension) is unpacked into the
directory DEST; anything else is written to the file DEST.

Nothing at DEST changes until the download is complete and verified: it is
staged next to DEST, on the same filesystem, and moved into place in one
rename (a directory is swapped whole). On any failure, or SIGTERM, DEST is
untouched and no temporary file is left. With a checksum, a DEST that already
matches is not downloaded again ("up to date"); without one, --if-missing
skips an existing DEST, else DEST is replaced whole.

SRC forms (go-getter's, as Terraform, Nomad and Packer read them):
https://host/a.tar.gz?checksum=sha256:HEX&archive=tgz, https://host/a.tar.gz//subdir
(unpack only that directory of the archive), /path/on/a/volume, file:///path,
file::PATH, and for git (see GIT) git::URL, github.com/ORG/REPO,
gitlab.com/ORG/REPO, git@host:ORG/REPO.git. Flags of one kind of source given
for another are bad usage ("--ssh-key-file applies to git sources"). An unpacked directory gets a .initbox-fetch
file recording what it holds, for the next run's up-to-date check.

Network errors, 5xx, 408 and 429 (Retry-After honoured) are retried until
--timeout; other 4xx fail at once; a checksum mismatch is retried once.
Archive entries that would land outside DEST, or links pointing outside it,
are refused.

EVERY
--every DURATION keeps an http(s) source's DEST true for the pod's life (a
native sidecar): after the first fetch, one every DURATION, conditional
(If-None-Match / If-Modified-Since from the last response published; with
--checksum-url, the sums file read again). DEST is replaced only when the
content changed — a 304, or a body byte for byte what DEST holds, changes
nothing and notifies no one — with every promise of a one-shot fetch. Then
each --on-change runs (signal:HUP:NAME, signal:HUP:@PIDFILE, or a URL), as
for render --watch; --ready-file, --listen and SIGTERM as there.

GIT
git::https://host/org/repo.git//subdir?ref=v1.2 checks a commit out into the
directory DEST (also github.com/ORG/REPO//subdir?ref=v1, git::ssh://…,
git@host:org/repo.git, git::file:///path, git::git://…): ?ref= a branch, tag or full commit SHA (default: the remote's
HEAD), ?depth= (default 1; 0 for the whole history), ?submodules=1 (check
submodules out too, recursively; refused without it). DEST gets the commit's
tree — contents, executable bits, symlinks as Git stores them — and no .git
(--git-dir keeps one: a repository git status finds clean).
It is written by initbox, never by a git worktree: entries named .., /, or
.git in any case are refused. A re-run asks the remote once (ls-remote) and
does nothing when the commit is the same; a full SHA already there needs no
network. --expect-commit SHA fails (exit 1) when the ref resolves elsewhere.
Credentials: --git-token-file (https), --ssh-key-file with --known-hosts-file
(ssh). A refused login or a missing ref fails at once; network errors and 5xx
are retried until --timeout.

EXAMPLES
  fetch https://example.com/site.tar.gz /usr/share/nginx/html --checksum sha256:9f86d0…
  fetch https://example.com/app.jar /deps/app.jar --checksum-url https://example.com/SHA256SUMS
  fetch 'https://releases.example.com/tool.zip//bin' /opt/tool --max-size 100MiB
  fetch https://api.internal/model.bin /models/model.bin --header 'Authorization: @/var/run/secrets/token'
  fetch /config-src/settings.json /config/settings.json --mode 0640
  fetch https://rules.internal/alerts.yaml /etc/prometheus/alerts.yaml --every 1m --on-change http://localhost:9090/-/reload`,
	New: func() cli.Command { return &command{} },
}

type command struct {
	checksumFlag string
	checksumURL  string
	archiveFlag  string
	modeFlag     string
	headerFlags  []string
	maxSize      int64
	maxFiles     int
	maxUnpacked  int64
	ifMissing    bool
	tls          tlsconfig.Options
	git          gitOptions
	every        time.Duration
	keep         keep.Options

	env        *cli.Env
	client     *getter.Client // initbox's getters: newClient
	getters    getters
	src        source
	info       *srcInfo // src.info()
	dest       string
	sum        *checksum
	format     archive.Format
	mode       os.FileMode
	headers    []header.Header
	place      *atomicfile.Place
	localDir   bool
	retryAfter time.Duration
	engine     *keep.Engine
	// validators of what DEST holds, from the last response published
	// (--every's conditional GET).
	validators struct{ etag, lastModified string }
}

func (c *command) Flags(fs *cli.FlagSet) {
	fs.String(&c.checksumFlag, "checksum", "", "expected `TYPE:HEX` digest (sha256, sha512, sha1, md5)")
	fs.String(&c.checksumURL, "checksum-url", "", "a SHA256SUMS-style file at `URL`; the entry for SRC's file name is used")
	fs.String(&c.archiveFlag, "archive", "", "`FORMAT`: tar.gz|tgz|tar.xz|tar.bz2|tar.zst|tar|zip|gz|xz|bz2|zst|none (default: by extension)")
	fs.String(&c.modeFlag, "mode", "0644", "file `MODE` of a downloaded file (octal)")
	fs.Strings(&c.headerFlags, "header", "request header `'K: V'`; V as @PATH reads a file (never logged) (repeatable)")
	fs.Bytes(&c.maxSize, "max-size", 1<<30, "refuse downloads larger than `SIZE` (512MiB, 1GiB, 100KB, bytes)")
	fs.Int(&c.maxFiles, "max-files", 100_000, "refuse archives of more than `N` entries")
	fs.Bytes(&c.maxUnpacked, "max-unpacked", 10<<30, "refuse archives that unpack to more than `SIZE`")
	fs.Bool(&c.ifMissing, "if-missing", "without a checksum: skip when DEST exists")
	c.tls.Flags(fs, "", false)
	c.git.flags(fs)
	fs.Group("http")
	fs.Duration(&c.every, "every", 0, "keep DEST true (a native sidecar): fetch again every `DURATION` with a conditional GET, replacing DEST only when the content changed")
	fs.Group()
	c.keep.Flags(fs)
}

func (c *command) Prepare(env *cli.Env, args []string) ([]string, error) {
	c.env = env
	if len(args) != 2 {
		return nil, errors.New("want two arguments: SRC DEST")
	}
	c.client = c.newClient()
	src, err := c.resolveSource(args[0])
	if err != nil {
		return nil, fmt.Errorf("source %s: %w", env.Secrets.String(args[0]), err)
	}
	c.src, c.info, c.dest = src, src.info(), args[1]
	if c.headers, err = header.ParseAll(c.headerFlags, env.Secrets); err != nil {
		return nil, err
	}
	if err := c.prepareChecksum(); err != nil {
		return nil, err
	}
	if err := src.prepare(c); err != nil {
		return nil, err
	}
	if err := c.applies(env.Flags); err != nil {
		return nil, err
	}
	switch {
	case c.every > 0 && c.every < time.Second:
		return nil, fmt.Errorf("--every %s: at least 1s between fetches", c.every)
	case c.every > 0:
		c.engine = &keep.Engine{Log: env.Log, Secrets: env.Secrets, Opts: &c.keep, Pass: c.pass}
		if err := c.engine.Check(); err != nil {
			return nil, err
		}
	case c.keep.Used():
		return nil, errors.New("--on-change, --ready-file and --listen go with --every")
	}
	return nil, nil
}

// pass is --every's: a fetch as without it, which is "up to date" when the
// server says 304, the checksum file names what DEST holds, or the body is
// byte for byte what DEST holds; then the next one after --every.
func (c *command) pass(ctx context.Context) (keep.Result, error) {
	summary, err := c.src.run(ctx, c)
	return keep.Result{Summary: summary, Changed: strings.HasPrefix(summary, "fetched"), Next: c.every}, err
}

// applies refuses a flag of one kind of source (git's) given for another:
// it would be ignored.
func (c *command) applies(fs *cli.FlagSet) error {
	if fs == nil {
		return nil
	}
	if g, owners, ok := fs.Misplaced(c.info.kind); ok {
		return fmt.Errorf("%s applies to %s sources", g, strings.Join(owners, ", "))
	}
	return nil
}

// prepareDownload checks what a download (a URL's file, a local file or
// directory) takes: format, mode, limits, TLS; tree says whether DEST
// becomes a directory.
func (c *command) prepareDownload() error {
	if err := c.prepareFormat(); err != nil {
		return err
	}
	if c.localDir && c.format != archive.None {
		return errors.New("the source is a directory, not an archive: drop --archive")
	}
	m, err := strconv.ParseUint(c.modeFlag, 8, 32)
	if err != nil || m > 0o777 {
		return fmt.Errorf("invalid value %q for --mode: want an octal mode such as 0644", c.modeFlag)
	}
	c.mode = os.FileMode(m)
	if c.maxSize <= 0 || c.maxFiles <= 0 || c.maxUnpacked <= 0 {
		return errors.New("--max-size, --max-files and --max-unpacked must be positive")
	}
	if _, err := c.tls.Config(""); err != nil {
		return err
	}
	tree := c.localDir || (c.format != archive.None && !c.format.Single())
	if c.info.subdir != "" && !tree {
		return fmt.Errorf("//%s selects a directory inside an archive, and %s is not one", c.info.subdir, c.info.display)
	}
	c.place, err = atomicfile.Plan(c.dest, tree)
	return err
}

func (c *command) prepareChecksum() error {
	var fromURL *checksum
	if v := c.info.checksum; v != "" {
		if f, ok := strings.CutPrefix(v, "file:"); ok {
			if c.checksumURL != "" {
				return errors.New("two checksum files: ?checksum=file:… and --checksum-url")
			}
			c.checksumURL = f
		} else {
			var err error
			if fromURL, err = parseChecksum(v); err != nil {
				return fmt.Errorf("?checksum= in the source: %w", err)
			}
		}
	}
	if c.checksumFlag != "" {
		sum, err := parseChecksum(c.checksumFlag)
		if err != nil {
			return fmt.Errorf("--checksum: %w", err)
		}
		if fromURL != nil && fromURL.String() != sum.String() {
			return fmt.Errorf("--checksum %s and the source's ?checksum=%s differ", sum, fromURL)
		}
		fromURL = sum
	}
	c.sum = fromURL
	if c.sum != nil && c.checksumURL != "" {
		return errors.New("give a checksum or a checksum file, not both")
	}
	if c.checksumURL != "" {
		if u, err := url.Parse(c.checksumURL); err == nil {
			c.env.Secrets.AddUserinfo(u.User)
		}
		if c.info.name == "" {
			return errors.New("--checksum-url needs a source URL that ends in a file name")
		}
	}
	if c.ifMissing && (c.sum != nil || c.checksumURL != "") {
		return errors.New("--if-missing is for downloads without a checksum; with one, a matching DEST is already kept")
	}
	return nil
}

func (c *command) prepareFormat() error {
	name := c.archiveFlag
	if name == "" {
		name = c.info.archive
	}
	switch {
	case name == "false":
		c.format = archive.None
	case name != "":
		f, err := archive.ParseFormat(name)
		if err != nil {
			return err
		}
		c.format = f
	default:
		c.format = archive.FromName(c.info.name)
	}
	return nil
}

func (c *command) limits() archive.Limits {
	return archive.Limits{Files: c.maxFiles, Bytes: c.maxUnpacked}
}

func (c *command) Run(ctx context.Context, env *cli.Env) (string, error) {
	if c.engine != nil {
		return c.engine.Run(ctx)
	}
	return c.src.run(ctx, c)
}

// download is a source of one file's bytes (http, a local file) or a local
// directory: runDownload fetches it through go-getter's Client, and its
// failure says which errors another attempt cannot fix.
type download interface {
	source
	failure(c *command, err error) error
}

// runDownload is a download's run: up to date, or fetched with retries.
func (c *command) runDownload(ctx context.Context, d download) (string, error) {
	env := c.env
	start := time.Now()
	sum := c.sum
	if sum != nil || c.checksumURL == "" {
		if done, why := c.upToDate(sum); done {
			env.Log.Info("up to date", "dest", c.dest, "why", why)
			return "up to date: " + c.dest + " (" + why + ")", nil
		}
	}
	if err := c.place.Ensure(); err != nil {
		return "", err
	}
	var res *result
	mismatches := 0
	_, err := retry.Until(ctx, retry.Transfer.BackOff(backoff.SystemClock), func(ctx context.Context, attempt int) error {
		c.retryAfter = 0
		if sum == nil && c.checksumURL != "" {
			s, err := c.getSums(ctx, c.checksumURL)
			if err != nil {
				return c.classify(err)
			}
			sum = s
			if done, _ := c.upToDate(sum); done {
				res = &result{upToDate: true}
				return nil
			}
		}
		r, err := c.attempt(ctx, sum, d)
		if err == nil {
			res = r
			return nil
		}
		var me *mismatchError
		if errors.As(err, &me) {
			if mismatches++; mismatches >= 2 {
				return retry.Permanent(err)
			}
			return err
		}
		return err
	}, func(attempt int, err error, next time.Duration) time.Duration {
		if c.retryAfter > next {
			next = c.retryAfter
		}
		env.Log.Warn("attempt failed", "source", c.info.display, "attempt", attempt, "reason", err.Error(), "retry_in", cli.Round(next))
		return next
	})
	if err != nil {
		return "", c.failed(err)
	}
	if res.upToDate {
		why := res.why
		if sum != nil {
			why = "matches " + sum.String()
		}
		env.Log.Info("up to date", "dest", c.dest, "why", why)
		return "up to date: " + c.dest + " (" + why + ")", nil
	}
	elapsed := time.Since(start)
	attrs := []any{"dest", c.dest, "size", res.size, "sha256", strings.TrimPrefix(res.sha256, "sha256:"), "elapsed", cli.Round(elapsed)}
	if res.entries > 0 {
		attrs = append(attrs, "entries", res.entries)
	}
	env.Log.Info("fetched", attrs...)
	return fmt.Sprintf("fetched %s to %s (%s, %s, %s)", c.info.display, c.dest, cli.HumanBytes(res.size), res.sha256, cli.Round(elapsed)), nil
}

// failed words the end of a fetch that did not succeed, verdict first: why
// it stopped, then what was being done, then the last real reason.
func (c *command) failed(err error) error {
	var se *retry.StoppedError
	if errors.As(err, &se) {
		if se.Last == nil || errors.Is(se.Last, context.Canceled) || errors.Is(se.Last, context.DeadlineExceeded) {
			return fmt.Errorf("%w while fetching %s", se.Cause, c.info.display)
		}
		return fmt.Errorf("%w: fetching %s: %v", se.Cause, c.info.display, se.Last)
	}
	return fmt.Errorf("fetching %s: %w", c.info.display, err)
}

// result describes a finished fetch.
type result struct {
	size     int64
	sha256   string
	entries  int
	upToDate bool
	why      string // why it was up to date without a checksum
}

// classify marks the errors that another attempt cannot fix as permanent,
// and remembers a server's Retry-After for the next wait.
func (c *command) classify(err error) error {
	var (
		tl *tooLargeError
		rd *tlsconfig.DowngradeError
		st *statusError
		ae *archive.Error
	)
	switch {
	case errors.As(err, &tl), errors.As(err, &rd), errors.As(err, &ae), errors.Is(err, archive.ErrLimit):
		return retry.Permanent(err)
	case errors.As(err, &st):
		c.retryAfter = st.retryAfter
		if !retryable(st.code) {
			return retry.Permanent(err)
		}
	}
	return err
}

// attempt downloads once into staging, verifies, and publishes.
func (c *command) attempt(ctx context.Context, sum *checksum, d download) (*result, error) {
	if c.localDir {
		r, err := c.copyTree(ctx)
		if err != nil && ctx.Err() == nil {
			// A local tree that cannot be copied will not heal by retrying.
			return nil, retry.Permanent(err)
		}
		return r, err
	}
	f, err := c.place.TempFile()
	if err != nil {
		return nil, retry.Permanent(err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // gone already once published
	t := &transfer{max: c.maxSize, hash: newHashers(sum), length: -1}
	stop := progress(ctx, c.env, c.info.display, t)
	f.Close()
	err = c.getFile(ctx, tmp, t)
	stop()
	if errors.Is(err, errNotModified) {
		return &result{upToDate: true, why: "not modified (304)"}, nil
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, d.failure(c, err)
	}
	if err := t.hash.verify(); err != nil {
		return nil, err
	}
	res := &result{size: t.got.Load(), sha256: t.hash.sum()}
	if c.every > 0 && c.holds(res.sha256) {
		c.validators.etag, c.validators.lastModified = t.etag, t.lastModified
		return &result{upToDate: true, why: "the same content"}, nil
	}
	switch {
	case c.format == archive.None:
		err = c.publishFile(tmp)
	case c.format.Single():
		err = c.publishDecompressed(ctx, tmp)
	default:
		res.entries, err = c.publishArchive(ctx, tmp, res, sum)
	}
	if err != nil {
		return nil, c.classify(err)
	}
	c.validators.etag, c.validators.lastModified = t.etag, t.lastModified
	return res, nil
}

// holds reports whether DEST already holds what was just downloaded, by
// its sha256: the file's own, or the digest an unpacked tree's marker
// records. Never through a link.
func (c *command) holds(digest string) bool {
	fi, err := os.Lstat(c.dest)
	if err != nil || fi.Mode()&os.ModeSymlink != 0 {
		return false
	}
	if fi.IsDir() {
		b, err := readNoFollow(filepath.Join(c.dest, markerName), 4096)
		return err == nil && string(b) == c.marker(digest)
	}
	if c.format != archive.None || !fi.Mode().IsRegular() || fi.Mode().Perm() != c.mode {
		return false
	}
	f, err := os.OpenFile(c.dest, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return false
	}
	defer f.Close()
	h := newHashers(nil)
	if _, err := io.Copy(h, f); err != nil {
		return false
	}
	return h.sum() == digest
}

func (c *command) publishFile(tmp string) error {
	if err := syncFile(tmp, c.mode); err != nil {
		return err
	}
	return c.place.PublishFile(tmp)
}

func syncFile(p string, mode os.FileMode) error {
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Chmod(mode); err != nil {
		return err
	}
	return f.Sync()
}

func (c *command) publishDecompressed(ctx context.Context, tmp string) error {
	in, err := os.Open(tmp)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := c.place.TempFile()
	if err != nil {
		return err
	}
	defer os.Remove(out.Name())
	_, err = archive.DecompressFile(ctx, c.format, in, out, c.limits())
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return retry.Permanent(err)
	}
	return c.publishFile(out.Name())
}

// markerName is the file an unpacked tree carries to say what it holds.
const markerName = ".initbox-fetch"

// marker says what an unpacked tree holds: its source and the archive's
// digest — the expected checksum when there is one (any algorithm), else
// the sha256 computed while downloading.
func (c *command) marker(digest string) string {
	return fmt.Sprintf("source: %s\nsubdir: %s\narchive: %s\ndigest: %s\n", c.info.display, c.info.subdir, c.format, digest)
}

func (c *command) publishArchive(ctx context.Context, tmp string, res *result, sum *checksum) (int, error) {
	tree, err := c.place.TempDir()
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(tree)
	n, err := archive.Extract(ctx, c.format, tmp, tree, c.limits())
	if err != nil {
		// A hostile or broken archive is the same on every try.
		return n, retry.Permanent(fmt.Errorf("unpacking: %w", err))
	}
	os.Remove(tmp) // the archive is not needed any more: free its space
	digest := res.sha256
	if sum != nil {
		digest = sum.String()
	}
	dir, err := c.finishTree(tree, digest)
	if err != nil {
		return n, retry.Permanent(err)
	}
	if err := c.place.PublishDir(dir); err != nil {
		if errors.Is(err, syscall.EXDEV) {
			return n, retry.Permanent(err)
		}
		return n, err
	}
	return n, nil
}

// finishTree selects //subdir of the unpacked tree and writes the marker
// into it, all through an os.Root on the tree: the tree is the archive's
// work, so no path in it is trusted. //subdir must name real directories
// (a symlink there is refused, whatever it points to), and the marker
// replaces whatever entry of that name the archive brought, never writing
// through it. It returns the directory to publish.
func (c *command) finishTree(tree, digest string) (string, error) {
	root, err := os.OpenRoot(tree)
	if err != nil {
		return "", err
	}
	defer root.Close()
	sub := "."
	if c.info.subdir != "" {
		sub = ""
		for _, part := range strings.Split(c.info.subdir, "/") {
			if part == "" || part == "." {
				continue
			}
			if sub == "" {
				sub = part
			} else {
				sub += "/" + part
			}
			fi, err := root.Lstat(sub)
			switch {
			case err != nil:
				return "", fmt.Errorf("the archive has no directory %s", c.info.subdir)
			case fi.Mode()&os.ModeSymlink != 0:
				return "", fmt.Errorf("//%s: %s in the archive is a symlink, not a directory", c.info.subdir, sub)
			case !fi.IsDir():
				return "", fmt.Errorf("the archive has no directory %s", c.info.subdir)
			}
		}
		if sub == "" {
			sub = "."
		}
	}
	if err := writeMarkerIn(root, sub, c.marker(digest)); err != nil {
		return "", err
	}
	if err := root.Chmod(sub, 0o755); err != nil {
		return "", err
	}
	return filepath.Join(tree, filepath.FromSlash(sub)), nil
}

// upToDate reports whether DEST already holds what this fetch would put
// there: a file with the expected digest, or a tree unpacked from an
// archive with that digest. Without a checksum, only --if-missing skips.
//
// DEST is judged as what it is, never through a link: a symlink at DEST is
// neither the file nor the tree, and is replaced.
func (c *command) upToDate(sum *checksum) (bool, string) {
	fi, err := os.Lstat(c.dest)
	if err != nil || fi.Mode()&os.ModeSymlink != 0 {
		return false, ""
	}
	if sum == nil {
		if c.ifMissing {
			return true, "exists, --if-missing"
		}
		return false, ""
	}
	if fi.IsDir() {
		b, err := readNoFollow(filepath.Join(c.dest, markerName), 4096)
		if err != nil {
			return false, ""
		}
		want := c.marker(sum.String())
		return subtle.ConstantTimeCompare(b, []byte(want)) == 1, "matches " + sum.String()
	}
	if c.format != archive.None || !fi.Mode().IsRegular() {
		return false, ""
	}
	// O_NOFOLLOW: a link swapped in since the Lstat is not opened, and the
	// mode is set on the file that was hashed, through its descriptor.
	f, err := os.OpenFile(c.dest, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return false, ""
	}
	defer f.Close()
	if fi, err = f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return false, ""
	}
	h := newHashers(sum)
	if _, err := io.Copy(h, f); err != nil || h.verify() != nil {
		return false, ""
	}
	if fi.Mode().Perm() != c.mode {
		if err := f.Chmod(c.mode); err != nil {
			return false, ""
		}
	}
	return true, "matches " + sum.String()
}

// writeMarker writes the marker into the directory sub of tree, through
// an os.Root on tree.
func writeMarker(tree, sub, content string) error {
	root, err := os.OpenRoot(tree)
	if err != nil {
		return err
	}
	defer root.Close()
	return writeMarkerIn(root, sub, content)
}

// writeMarkerIn replaces whatever entry of the marker's name the tree
// brought (a file, a link) with the marker, never writing through it.
func writeMarkerIn(root *os.Root, sub, content string) error {
	marker := path.Join(sub, markerName)
	if err := root.Remove(marker); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("the tree's own %s: %w", marker, err)
	}
	// O_EXCL: never opens an existing entry, a link least of all.
	f, err := root.OpenFile(marker, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	_, err = io.WriteString(f, content)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// readNoFollow reads at most max bytes of the regular file p, refusing a
// symlink in p's last component.
func readNoFollow(p string, max int64) ([]byte, error) {
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return nil, errors.New("not a regular file")
	}
	return io.ReadAll(io.LimitReader(f, max))
}

// getFile has go-getter's Client get the file the source names into dst
// (a new file in staging), through the getter its detection chose, counted
// and hashed in t.
func (c *command) getFile(ctx context.Context, dst string, t *transfer) error {
	c.getters.http.t, c.getters.file.t = t, t
	_, err := c.client.Get(ctx, &getter.Request{Src: c.info.getterSrc, Dst: dst, GetMode: getter.ModeFile, Pwd: "/"})
	return err
}
