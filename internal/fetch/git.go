package fetch

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	"github.com/go-git/go-git/v5/storage/memory"
	getter "github.com/hashicorp/go-getter/v2"

	"github.com/initbox/initbox/internal/retry"
)

// gitSource is a git:: source: a repository URL, the ref to check out
// (a tag, a branch, a commit; default: the remote's HEAD) and the depth of
// the clone (1 by default: only what the checkout needs).
type gitSource struct {
	url   string // without ref/depth and userinfo
	ref   string
	depth int
	user  *url.Userinfo
}

var commitRe = regexp.MustCompile(`^[0-9a-f]{40}$`)

func parseGit(raw string) (*gitSource, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("invalid git URL: %v", err.(*url.Error).Err)
	}
	switch u.Scheme {
	case "https", "http", "file":
	default:
		return nil, fmt.Errorf("git over %s is not supported: use https (or file)", u.Scheme)
	}
	g := &gitSource{depth: 1, user: u.User}
	q := u.Query()
	g.ref = q.Get("ref")
	if d := q.Get("depth"); d != "" {
		if g.depth, err = strconv.Atoi(d); err != nil || g.depth < 0 {
			return nil, fmt.Errorf("invalid ?depth=%q: want a whole number, 0 for the full history", d)
		}
	}
	q.Del("ref")
	q.Del("depth")
	u.RawQuery = q.Encode()
	u.User = nil
	g.url = u.String()
	return g, nil
}

func (c *command) gitAuth() transport.AuthMethod {
	if u := c.src.git.user; u != nil {
		pw, _ := u.Password()
		return &githttp.BasicAuth{Username: u.Username(), Password: pw}
	}
	for _, h := range c.headers {
		if h.Name != "Authorization" {
			continue
		}
		v, err := h.Resolve(c.env.Secrets)
		if tok, ok := strings.CutPrefix(v, "Bearer "); err == nil && ok {
			return &githttp.TokenAuth{Token: tok}
		}
	}
	return nil
}

// resolve asks the remote which commit (or tag object) ref names now, as
// git ls-remote does, without cloning.
func (c *command) resolve(ctx context.Context, auth transport.AuthMethod) (plumbing.ReferenceName, string, error) {
	g := c.src.git
	if commitRe.MatchString(g.ref) {
		return "", g.ref, nil
	}
	rem := git.NewRemote(memory.NewStorage(), &config.RemoteConfig{Name: "origin", URLs: []string{g.url}})
	refs, err := rem.ListContext(ctx, &git.ListOptions{Auth: auth, CABundle: c.caBundle(), InsecureSkipTLS: c.tls.Insecure})
	if err != nil {
		return "", "", gitErr(err)
	}
	want := []plumbing.ReferenceName{plumbing.NewTagReferenceName(g.ref), plumbing.NewBranchReferenceName(g.ref)}
	if g.ref == "" {
		want = []plumbing.ReferenceName{plumbing.HEAD}
	}
	for _, w := range want {
		for _, r := range refs {
			if r.Name() != w {
				continue
			}
			if r.Type() == plumbing.SymbolicReference { // HEAD -> refs/heads/main
				for _, t := range refs {
					if t.Name() == r.Target() {
						return t.Name(), t.Hash().String(), nil
					}
				}
			}
			return r.Name(), r.Hash().String(), nil
		}
	}
	return "", "", retry.Permanent(fmt.Errorf("the repository has no tag or branch %q", g.ref))
}

func (c *command) caBundle() []byte {
	if c.tls.CAFile == "" {
		return nil
	}
	b, _ := os.ReadFile(c.tls.CAFile)
	return b
}

// gitErr marks what another attempt will not fix.
func gitErr(err error) error {
	switch {
	case errors.Is(err, transport.ErrAuthenticationRequired), errors.Is(err, transport.ErrAuthorizationFailed),
		errors.Is(err, transport.ErrRepositoryNotFound), errors.Is(err, plumbing.ErrReferenceNotFound):
		return retry.Permanent(err)
	}
	return err
}

// gitGetter is a go-getter Getter that clones with go-git: no git binary,
// which a scratch image does not have.
type gitGetter struct {
	c      *command
	auth   transport.AuthMethod
	ref    plumbing.ReferenceName
	commit string
}

func (g *gitGetter) Detect(req *getter.Request) (bool, error) { return req.Forced == "git", nil }

func (g *gitGetter) Mode(context.Context, *url.URL) (getter.Mode, error) { return getter.ModeDir, nil }

func (g *gitGetter) GetFile(context.Context, *getter.Request) error {
	return errors.New("a git source is a directory")
}

func (g *gitGetter) Get(ctx context.Context, req *getter.Request) error {
	src := g.c.src.git
	opts := &git.CloneOptions{
		URL: src.url, Auth: g.auth, SingleBranch: true, Depth: src.depth, Tags: git.NoTags,
		CABundle: g.c.caBundle(), InsecureSkipTLS: g.c.tls.Insecure,
	}
	byCommit := g.ref == ""
	if byCommit {
		opts.Depth, opts.SingleBranch, opts.NoCheckout = 0, false, true // a commit may be on any branch
	} else {
		opts.ReferenceName = g.ref
	}
	repo, err := git.PlainCloneContext(ctx, req.Dst, false, opts)
	if err != nil {
		return gitErr(err)
	}
	if byCommit {
		wt, err := repo.Worktree()
		if err != nil {
			return err
		}
		if err := wt.Checkout(&git.CheckoutOptions{Hash: plumbing.NewHash(g.commit), Force: true}); err != nil {
			return retry.Permanent(fmt.Errorf("checking out %s: %w", g.commit, err))
		}
	}
	return nil
}

// fetchGit clones the repository into staging through go-getter's Client
// and the go-git getter, drops .git, and publishes the tree.
func (c *command) fetchGit(ctx context.Context) (*result, error) {
	auth := c.gitAuth()
	ref, commit, err := c.resolve(ctx, auth)
	if err != nil {
		return nil, err
	}
	if b, err := os.ReadFile(filepath.Join(c.dest, markerName)); err == nil && string(b) == c.gitMarker(commit) {
		return &result{upToDate: true, sha256: commit}, nil
	}
	tree, err := c.place.tempDir()
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tree)
	gc := &getter.Client{Getters: []getter.Getter{&gitGetter{c: c, auth: auth, ref: ref, commit: commit}}, Decompressors: map[string]getter.Decompressor{}}
	if _, err := gc.Get(ctx, &getter.Request{Src: "git::" + c.src.git.url, Dst: tree, GetMode: getter.ModeDir, Pwd: "/"}); err != nil {
		return nil, err
	}
	if err := os.RemoveAll(filepath.Join(tree, ".git")); err != nil {
		return nil, err
	}
	dir := tree
	if c.src.subdir != "" {
		dir = filepath.Join(tree, c.src.subdir)
		if fi, err := os.Lstat(dir); err != nil || !fi.IsDir() {
			return nil, retry.Permanent(fmt.Errorf("the repository has no directory %s", c.src.subdir))
		}
	}
	var files int
	var size int64
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		files++
		if fi, err := d.Info(); err == nil && fi.Mode().IsRegular() {
			size += fi.Size()
		}
		if files > c.maxFiles || size > c.maxUnpacked {
			return retry.Permanent(fmt.Errorf("the checkout passes --max-files %d or --max-unpacked %d", c.maxFiles, c.maxUnpacked))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, markerName), []byte(c.gitMarker(commit)), 0o644); err != nil {
		return nil, err
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, err
	}
	if err := c.place.publishDir(dir); err != nil {
		return nil, err
	}
	return &result{size: size, entries: files, sha256: commit}, nil
}

func (c *command) gitMarker(commit string) string {
	return fmt.Sprintf("source: %s\nsubdir: %s\nref: %s\ncommit: %s\n", c.src.display, c.src.subdir, c.src.git.ref, commit)
}
