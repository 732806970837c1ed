package fetch

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/transport"
	gitproto "github.com/go-git/go-git/v5/plumbing/transport/git"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
	getter "github.com/hashicorp/go-getter/v2"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/initbox/initbox/internal/archive"
	"github.com/initbox/initbox/internal/atomicfile"
	"github.com/initbox/initbox/internal/cli"
	"github.com/initbox/initbox/internal/gitsrc"
	"github.com/initbox/initbox/internal/redact"
	"github.com/initbox/initbox/internal/retry"
	"github.com/initbox/initbox/internal/tlsconfig"
)

// gitOptions are fetch's flags for git:: sources.
type gitOptions struct {
	tokenFile    string
	sshKeyFile   string
	knownHosts   string
	insecureHost bool
	expect       string
	gitDir       bool
	auth         transport.AuthMethod
	remote       *gitsrc.Remote
	transports   map[string]transport.Transport
	basic        *githttp.BasicAuth // --git-token-file's, for the superproject's host only
}

// gitSource is a git checkout: git::https://host/org/repo.git//sub?ref=v1,
// git@host:org/repo.git, github.com/org/repo (go-getter's detectors).
type gitSource struct {
	srcInfo
	g *gitsrc.Source
}

func (s *gitSource) prepare(c *command) error {
	if err := c.prepareGit(c.env); err != nil {
		return err
	}
	var err error
	c.place, err = atomicfile.Plan(c.dest, true)
	return err
}

func (s *gitSource) run(ctx context.Context, c *command) (string, error) { return c.runGit(ctx, c.env) }

// gitSrc is the git source's parsed URL; only git's code asks.
func (c *command) gitSrc() *gitsrc.Source { return c.src.(*gitSource).g }

// flags registers git's flags as the git sources' (FlagSet.Group): given
// for another kind of source, they are bad usage.
func (g *gitOptions) flags(fs *cli.FlagSet) {
	fs.Group("git")
	defer fs.Group()
	fs.String(&g.tokenFile, "git-token-file", "", "git over https: a token, or user:password, in `FILE` (read once, never logged)")
	fs.String(&g.sshKeyFile, "ssh-key-file", "", "git over ssh: the private key in `FILE`")
	fs.String(&g.knownHosts, "known-hosts-file", "", "git over ssh: the server's key must be in `FILE` (known_hosts format)")
	fs.Bool(&g.insecureHost, "ssh-insecure-ignore-host-key", "git over ssh: accept any server key (unsafe)")
	fs.String(&g.expect, "expect-commit", "", "git: fail (DEST untouched) unless the ref resolves to commit `SHA`")
	fs.Bool(&g.gitDir, "git-dir", "git: keep a .git in DEST, a repository git status finds clean")
}

// prepareGit checks a git source's flags and reads its credentials once.
func (c *command) prepareGit(env *cli.Env) error {
	g, s := &c.git, c.gitSrc()
	switch {
	case c.sum != nil || c.checksumURL != "":
		return errors.New("a checksum applies to a download; a git checkout is verified by its commit (--expect-commit)")
	case c.archiveFlag != "":
		return errors.New("--archive does not apply to a git source")
	case g.expect != "" && !gitsrc.IsSHA(g.expect):
		return fmt.Errorf("invalid --expect-commit %q: want a full 40-digit commit SHA", g.expect)
	case s.Submodules && g.gitDir:
		return errors.New("--git-dir and ?submodules=1: a repository with its submodules' repositories inside is not supported; drop one")
	case g.gitDir && c.info.subdir != "":
		return errors.New("--git-dir keeps the whole repository, and //subdir checks out part of it: drop one")
	}
	scheme, _, _ := strings.Cut(s.URL, "://")
	switch {
	case g.tokenFile != "":
		if scheme != "https" && scheme != "http" {
			return fmt.Errorf("--git-token-file is for git over https, and the source is %s://", scheme)
		}
		b, err := os.ReadFile(g.tokenFile)
		if err != nil {
			return fmt.Errorf("--git-token-file: %w", err)
		}
		v := strings.TrimSpace(string(b))
		env.Secrets.Add(v)
		user, pw, ok := strings.Cut(v, ":")
		if !ok {
			// A token alone: forges take it as the password of any user.
			user, pw = "x-access-token", v
		}
		env.Secrets.Add(pw)
		if pw == "" {
			return fmt.Errorf("--git-token-file %s is empty", g.tokenFile)
		}
		g.basic = &githttp.BasicAuth{Username: user, Password: pw}
		g.auth = g.basic
	case scheme == "ssh":
		auth, err := g.sshAuth(s.URL)
		if err != nil {
			return err
		}
		g.auth = auth
	}
	hc, err := c.httpClient()
	if err != nil {
		return err
	}
	// Over http(s), initbox's own client: its TLS flags, no https → http
	// at any hop, and a cap on what an answer go-git reads whole may hold.
	hc.Transport = gitsrc.CapBodies(hc.Transport)
	g.transports = map[string]transport.Transport{
		"https": githttp.NewClient(hc), "http": githttp.NewClient(hc),
		"ssh": gitssh.DefaultClient, "git": gitproto.DefaultClient,
	}
	g.remote, err = gitsrc.NewRemote(s, g.auth, g.transports)
	return err
}

// sshAuth is the key of --ssh-key-file for the user the URL names (git by
// default), with the server's key checked against --known-hosts-file.
func (g *gitOptions) sshAuth(rawURL string) (transport.AuthMethod, error) {
	user := "git"
	if i := strings.Index(rawURL, "@"); i > len("ssh://") {
		user = rawURL[len("ssh://"):i]
	}
	if g.sshKeyFile == "" {
		return nil, errors.New("git over ssh needs --ssh-key-file")
	}
	keys, err := gitssh.NewPublicKeysFromFile(user, g.sshKeyFile, "")
	if err != nil {
		return nil, fmt.Errorf("--ssh-key-file %s: %v", g.sshKeyFile, err)
	}
	switch {
	case g.knownHosts != "":
		cb, err := knownhosts.New(g.knownHosts)
		if err != nil {
			return nil, fmt.Errorf("--known-hosts-file: %v", err)
		}
		keys.HostKeyCallback = cb
	case g.insecureHost:
		keys.HostKeyCallback = ssh.InsecureIgnoreHostKey()
	default:
		return nil, errors.New("git over ssh needs --known-hosts-file (or --ssh-insecure-ignore-host-key): an unknown server key is refused")
	}
	return keys, nil
}

// markerDir is where a checkout keeps its marker: beside the files, or in
// .git with --git-dir, where git status does not list it.
func (c *command) markerDir() string {
	if c.git.gitDir {
		return ".git"
	}
	return "."
}

// gitMarker is what a checked-out tree records for the next run.
func (c *command) gitMarker(commit string) string {
	subs := ""
	if c.gitSrc().Submodules {
		subs = "submodules: 1\n" // the same commit, with more in it
	}
	return fmt.Sprintf("source: %s\nsubdir: %s\nref: %s\n%scommit: %s\n", c.info.display, c.info.subdir, c.gitSrc().Ref, subs, commit)
}

// gitRecorded is the commit DEST holds from this very source, subdir and
// ref, or "".
func (c *command) gitRecorded() string {
	fi, err := os.Lstat(c.dest)
	if err != nil || !fi.IsDir() {
		return ""
	}
	b, err := readNoFollow(filepath.Join(c.dest, c.markerDir(), markerName), 4096)
	if err != nil {
		return ""
	}
	s := string(b)
	i := strings.Index(s, "commit: ")
	if i < 0 {
		return ""
	}
	commit := strings.TrimSpace(s[i+len("commit: "):])
	if s != c.gitMarker(commit) {
		return "" // another source, subdir or ref
	}
	return commit
}

func (c *command) runGit(ctx context.Context, env *cli.Env) (string, error) {
	start := time.Now()
	s := c.gitSrc()
	recorded := c.gitRecorded()
	// A full SHA already checked out needs no network at all.
	if gitsrc.IsSHA(s.Ref) && recorded == s.Ref && (c.git.expect == "" || c.git.expect == s.Ref) {
		env.Log.Info("up to date", "dest", c.dest, "commit", recorded)
		return "up to date: " + c.dest + " (commit " + recorded + ")", nil
	}
	if err := c.place.Ensure(); err != nil {
		return "", err
	}
	var summary string
	_, err := retry.Until(ctx, retry.Transfer.BackOff(backoff.SystemClock), func(ctx context.Context, attempt int) error {
		res, err := c.git.remote.Resolve(ctx, s)
		if err != nil {
			return c.classifyGit(err)
		}
		if c.git.expect != "" && !res.Commit.IsZero() && res.Commit.String() != c.git.expect {
			return retry.Permanent(fmt.Errorf("%s resolves to commit %s, not the expected %s", refName(s), res.Commit, c.git.expect))
		}
		if !res.Commit.IsZero() && recorded == res.Commit.String() {
			summary = "up to date: " + c.dest + " (commit " + recorded + ")"
			env.Log.Info("up to date", "dest", c.dest, "commit", recorded)
			return nil
		}
		summary, err = c.checkoutGit(ctx, env, res, start)
		return err
	}, func(attempt int, err error, next time.Duration) time.Duration {
		env.Log.Warn("attempt failed", "source", c.info.display, "attempt", attempt, "reason", err.Error(), "retry_in", cli.Round(next))
		return next
	})
	if err != nil {
		return "", c.failed(err)
	}
	return summary, nil
}

func refName(s *gitsrc.Source) string {
	if s.Ref == "" {
		return "the remote's HEAD"
	}
	return "ref " + s.Ref
}

// checkoutGit writes the commit into a directory staged next to DEST and
// swaps that in; the staging is gone afterwards, whatever happens. As for
// downloads, go-getter's Client reads the source (git::URL, its forced
// getter syntax) and drives gitGetter, a go-getter Getter of initbox's own:
// go-getter's GitGetter execs the git binary, which a scratch image does
// not have, and clones with a worktree initbox does not trust.
func (c *command) checkoutGit(ctx context.Context, env *cli.Env, res *gitsrc.Resolved, start time.Time) (string, error) {
	tree, err := c.place.TempDir()
	if err != nil {
		return "", retry.Permanent(err)
	}
	defer os.RemoveAll(tree)
	g := c.getters.git
	g.res = res
	// The subdir is the Getter's (findDir: a directory of the commit, no
	// link on the way), not go-getter's, which copies from a whole tree.
	if _, err := c.client.Get(ctx, &getter.Request{Src: c.info.getterSrc, Dst: tree, GetMode: getter.ModeDir, Pwd: "/"}); err != nil {
		return "", err
	}
	commit, st := g.commit, g.stats
	if err := writeMarker(tree, c.markerDir(), c.gitMarker(commit.String())); err != nil {
		return "", retry.Permanent(err)
	}
	if err := os.Chmod(tree, 0o755); err != nil {
		return "", retry.Permanent(err)
	}
	if err := c.place.PublishDir(tree); err != nil {
		return "", retry.Permanent(err)
	}
	elapsed := time.Since(start)
	env.Log.Info("fetched", "dest", c.dest, "commit", commit.String(), "entries", st.Files, "size", st.Bytes, "elapsed", cli.Round(elapsed))
	return fmt.Sprintf("fetched %s to %s (commit %s, %d entries, %s, %s)", c.info.display, c.dest, commit, st.Files, cli.HumanBytes(st.Bytes), cli.Round(elapsed)), nil
}

// gitGetter is a go-getter Getter for git:: sources: the resolved commit
// fetched into an object store staged next to DEST (removed afterwards),
// its tree (and submodules, and .git with --git-dir) written into the
// directory go-getter gives.
type gitGetter struct {
	c      *command
	res    *gitsrc.Resolved // the attempt's (checkoutGit)
	commit plumbing.Hash
	stats  gitsrc.Stats
}

// gitDetectors are go-getter's: github.com/ORG/REPO, gitlab.com/ORG/REPO
// and git@host:path become git:: URLs. (Its BitBucket detector asks
// bitbucket.org's API over the network, at every run: not taken.)
var gitDetectors = []getter.Detector{new(getter.GitHubDetector), new(getter.GitLabDetector), new(getter.GitDetector)}

// Detect takes git:: (and ssh://, git://) sources, and what go-getter's
// detectors recognise, as go-getter's own GitGetter does.
func (g *gitGetter) Detect(req *getter.Request) (bool, error) {
	if req.Src == "" || req.Forced != "" && req.Forced != "git" {
		return false, nil
	}
	if req.Forced == "git" {
		if src, ok, err := detectGit(req.Src); err != nil || ok {
			if ok {
				req.Src = src
			}
			return true, err
		}
		return true, nil
	}
	if u, err := url.Parse(req.Src); err == nil && u.Scheme != "" {
		return u.Scheme == "ssh" || u.Scheme == "git", nil
	}
	src, ok, err := detectGit(req.Src)
	if ok {
		req.Src = src
	}
	return ok, err
}

// detectGit runs go-getter's git detectors on a source that is not a URL.
func detectGit(src string) (string, bool, error) {
	if u, err := url.Parse(src); err == nil && u.Scheme != "" {
		return "", false, nil
	}
	for _, d := range gitDetectors {
		out, ok, err := d.Detect(src, "")
		if err != nil {
			return "", true, err
		}
		if ok {
			return strings.TrimPrefix(out, "git::"), true, nil
		}
	}
	return "", false, nil
}

func (g *gitGetter) source(req *getter.Request, base srcInfo) (source, error) {
	gs, err := gitsrc.Parse(req.Src)
	if err != nil {
		return nil, err
	}
	s := &gitSource{srcInfo: base, g: gs}
	s.kind = "git"
	s.display = redact.URL(gs.URL)
	if gs.Ref != "" {
		s.display += "@" + gs.Ref
	}
	s.getterSrc = "git::" + gs.URL
	return s, nil
}

func (g *gitGetter) Mode(context.Context, *url.URL) (getter.Mode, error) { return getter.ModeDir, nil }

func (g *gitGetter) GetFile(context.Context, *getter.Request) error {
	return errors.New("a git source is a directory: a commit's tree")
}

func (g *gitGetter) Get(ctx context.Context, req *getter.Request) error {
	c, env, res := g.c, g.c.env, g.res
	objects, err := c.place.TempDir()
	if err != nil {
		return retry.Permanent(err)
	}
	defer os.RemoveAll(objects)
	// Progress for fetches that last, and --max-size on the pack as it
	// arrives.
	t := &transfer{length: -1, max: c.maxSize}
	stop := progress(ctx, env, c.info.display, t)
	store, err := c.git.remote.Fetch(ctx, c.gitSrc(), res, objects, c.maxUnpacked, func(n int) error {
		if t.got.Add(int64(n)) > c.maxSize {
			return &tooLargeError{max: c.maxSize}
		}
		return nil
	})
	stop()
	if err != nil {
		var tl *tooLargeError
		if errors.As(err, &tl) {
			return retry.Permanent(err)
		}
		return c.classifyGit(err)
	}
	commit, treeHash, err := store.Commit(res)
	if err != nil {
		return retry.Permanent(err)
	}
	if c.git.expect != "" && commit.String() != c.git.expect {
		return retry.Permanent(fmt.Errorf("%s resolves to commit %s, not the expected %s", refName(c.gitSrc()), commit, c.git.expect))
	}
	tree := req.Dst
	st, subs, err := store.Checkout(ctx, treeHash, c.info.subdir, tree, archive.Limits{Files: c.maxFiles, Bytes: c.maxUnpacked})
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return retry.Permanent(fmt.Errorf("checking out %s: %w", commit, err))
	}
	if !c.gitSrc().Submodules {
		// As git clone without --recurse-submodules: each an empty
		// directory.
		for _, sm := range subs {
			env.Log.Info("submodule left empty (give ?submodules=1 to check it out)", "path", sm.Path, "commit", sm.Commit.String())
		}
	} else if len(subs) > 0 {
		root, err := os.OpenRoot(tree)
		if err != nil {
			return retry.Permanent(err)
		}
		err = c.checkoutSubmodules(ctx, env, root, c.gitSrc().URL, store, treeHash, c.info.subdir, subs, &st, 1)
		root.Close()
		if err != nil {
			return err
		}
	}
	if c.git.gitDir {
		if c.git.remote.Local() {
			// A file:// store is read in place: .git gets a copy of what
			// it needs.
			if _, err := store.CopyTo(ctx, objects, res, commit, c.gitSrc().Depth); err != nil {
				return retry.Permanent(err)
			}
		}
		if err := gitsrc.MakeGitDir(tree, objects, res, commit, redact.URL(c.gitSrc().URL), st.Index); err != nil {
			return retry.Permanent(err)
		}
	}
	g.commit, g.stats = commit, st
	return nil
}

// maxSubmoduleDepth bounds submodules of submodules (a repository that
// names itself would otherwise never end).
const maxSubmoduleDepth = 8

// checkoutSubmodules fetches and writes each submodule met in a checkout,
// recursively, at the commit the superproject records, into the empty
// directory the checkout left for it, as git clone --recurse-submodules
// does; the limits hold for the whole. prefix is where the checkout
// started in the superproject's tree (//subdir), where .gitmodules paths
// are rooted.
func (c *command) checkoutSubmodules(ctx context.Context, env *cli.Env, root *os.Root, superURL string, super *gitsrc.Store, superTree plumbing.Hash, prefix string, subs []gitsrc.Submodule, st *gitsrc.Stats, level int) error {
	if level > maxSubmoduleDepth {
		return retry.Permanent(fmt.Errorf("submodules nest more than %d deep", maxSubmoduleDepth))
	}
	modules, err := super.Modules(superTree)
	if err != nil {
		return retry.Permanent(err)
	}
	for _, sm := range subs {
		mod, ok := modules[path.Join(prefix, sm.Path)]
		if !ok {
			return retry.Permanent(fmt.Errorf("submodule %q is not in .gitmodules (or its entry is one git ignores: a name or path with ..)", sm.Path))
		}
		subURL, err := gitsrc.SubmoduleURL(superURL, mod.URL)
		if err != nil {
			return retry.Permanent(err)
		}
		src := &gitsrc.Source{URL: subURL, Ref: sm.Commit.String(), Depth: c.gitSrc().Depth}
		// Credentials go where they were given for: the token to the
		// superproject's host, the SSH key to SSH servers (whose keys
		// --known-hosts-file vouches for).
		var auth transport.AuthMethod
		switch {
		case strings.HasPrefix(subURL, "ssh://"):
			if auth, err = c.git.sshAuth(subURL); err != nil {
				return retry.Permanent(fmt.Errorf("submodule %q: %v", sm.Path, err))
			}
		case c.git.basic != nil && gitsrc.SameHost(subURL, c.gitSrc().URL):
			auth = c.git.basic
		}
		remote, err := gitsrc.NewRemote(src, auth, c.git.transports)
		if err != nil {
			return retry.Permanent(fmt.Errorf("submodule %q: %v", sm.Path, err))
		}
		res, err := remote.Resolve(ctx, src)
		if err != nil {
			return c.classifyGit(fmt.Errorf("submodule %q (%s): %w", sm.Path, redact.URL(subURL), err))
		}
		objects, err := c.place.TempDir()
		if err != nil {
			return retry.Permanent(err)
		}
		defer os.RemoveAll(objects)
		store, err := remote.Fetch(ctx, src, res, objects, c.maxUnpacked, nil)
		if err != nil {
			return c.classifyGit(fmt.Errorf("submodule %q (%s): %w", sm.Path, redact.URL(subURL), err))
		}
		commit, tree, err := store.Commit(res)
		if err != nil {
			return retry.Permanent(fmt.Errorf("submodule %q: %w", sm.Path, err))
		}
		subRoot, err := root.OpenRoot(sm.Path)
		if err != nil {
			return retry.Permanent(err)
		}
		// The limits hold for the whole checkout: this one starts where
		// the others left off.
		lim := archive.Limits{Files: c.maxFiles, Bytes: c.maxUnpacked, SpentFiles: st.Files, SpentBytes: st.Bytes}
		before := st.Files
		sst, nested, err := store.CheckoutRoot(ctx, tree, subRoot, lim)
		st.Files, st.Bytes = sst.Files, sst.Bytes
		switch {
		case err != nil && ctx.Err() != nil:
			err = ctx.Err()
		case err != nil:
			err = retry.Permanent(fmt.Errorf("checking out submodule %q at %s: %w", sm.Path, commit, err))
		default:
			env.Log.Info("submodule", "path", sm.Path, "source", redact.URL(subURL), "commit", commit.String(), "entries", st.Files-before)
			if len(nested) > 0 {
				err = c.checkoutSubmodules(ctx, env, subRoot, subURL, store, tree, "", nested, st, level+1)
			}
		}
		subRoot.Close()
		if err != nil {
			return err
		}
		os.RemoveAll(objects)
	}
	return nil
}

// classifyGit: a refused login, a missing repository or ref, a hostile
// tree and a limit are final; network trouble and 5xx are retried.
func (c *command) classifyGit(err error) error {
	var nr *gitsrc.NoRefError
	var ee *gitsrc.EntryError
	var rn *gitsrc.RefNameError
	switch {
	case errors.As(err, &rn), strings.Contains(err.Error(), gitsrc.ErrListingTooLarge.Error()):
		// (go-git keeps a listing's read error as text only.)
		return retry.Permanent(err)
	case strings.Contains(err.Error(), "http redirect:"), errors.As(err, new(*tlsconfig.DowngradeError)):
		// go-git's refusals of a redirect (not to .../info/refs, another
		// scheme) and initbox's of a downgrade: the server will say the
		// same next time.
		return retry.Permanent(err)
	case errors.Is(err, transport.ErrAuthenticationRequired):
		return retry.Permanent(errors.New("authentication required: the server refused the credentials (or none were given: --git-token-file)"))
	case errors.Is(err, transport.ErrAuthorizationFailed):
		return retry.Permanent(errors.New("authorization failed: the credentials may not read this repository"))
	case errors.Is(err, transport.ErrRepositoryNotFound):
		return retry.Permanent(errors.New("repository not found"))
	case errors.Is(err, transport.ErrEmptyRemoteRepository):
		return retry.Permanent(errors.New("the remote repository is empty"))
	case errors.As(err, &nr), errors.As(err, &ee), errors.Is(err, archive.ErrLimit):
		return retry.Permanent(err)
	case strings.Contains(err.Error(), "knownhosts: key is unknown"), strings.Contains(err.Error(), "knownhosts: key mismatch"):
		return retry.Permanent(fmt.Errorf("the SSH server's key is not in --known-hosts-file: %v", err))
	case strings.Contains(err.Error(), "unable to authenticate"):
		return retry.Permanent(fmt.Errorf("ssh: the server refused the key: %v", err))
	}
	return err
}
