package fetch

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path"
	"strings"

	getter "github.com/hashicorp/go-getter/v2"

	"github.com/initbox/initbox/internal/redact"
)

// A source is what SRC resolved to: one kind per file — httpSource
// (http.go), gitSource (git.go), localSource (local.go) — each built by
// its getter (a go-getter Getter of initbox's own) from the source as
// go-getter's detection left it. The command drives every kind through
// these three methods and never asks which kind it has.
type source interface {
	// info is what every kind has: how it is printed, its //subdir, the
	// name of the file it names.
	info() *srcInfo
	// prepare checks the command's flags against this kind of source and
	// reads, once, what it needs (credentials, the local file's type).
	// Any error is bad usage.
	prepare(c *command) error
	// run puts the source at DEST: staged, verified, published whole.
	run(ctx context.Context, c *command) (string, error)
}

// srcInfo is what every kind of source has.
type srcInfo struct {
	kind     string // "http", "git", "file": whose flags apply (FlagSet.Group)
	display  string // for logs: secrets masked
	subdir   string // go-getter's //subdir, cleaned
	checksum string // ?checksum=
	archive  string // ?archive=
	name     string // the file name, for the archive format and checksum files
	// getterSrc is the source as the getter reads it in go-getter's
	// Client, forced-getter prefix included ("git::https://…").
	getterSrc string
}

func (i *srcInfo) info() *srcInfo { return i }

// sourceGetter is a go-getter Getter of initbox's that also turns the
// request its Detect accepted into a source of its kind.
type sourceGetter interface {
	getter.Getter
	source(req *getter.Request, base srcInfo) (source, error)
}

// newClient is the one go-getter Client of a fetch, with initbox's getters
// in the order their detection is tried: git first (go-getter's GitHub,
// GitLab and git@host:path detectors, git:: and ssh://), then http(s),
// then local paths, which take whatever is left that is not a URL
// (go-getter's file detector). No go-getter decompressor: archives are
// initbox's own (internal/archive), through os.Root.
func (c *command) newClient() *getter.Client {
	c.getters = getters{git: &gitGetter{c: c}, http: &httpGetter{c: c}, file: &fileGetter{c: c}}
	return &getter.Client{
		Getters:       []getter.Getter{c.getters.git, c.getters.http, c.getters.file},
		Decompressors: map[string]getter.Decompressor{},
	}
}

// fileOnly is the Mode and Get of a getter whose sources each name one
// file (a URL's, a local one): a directory comes from unpacking an
// archive, or, for a local directory, from copyTree.
type fileOnly struct{}

func (fileOnly) Mode(context.Context, *url.URL) (getter.Mode, error) { return getter.ModeFile, nil }

func (fileOnly) Get(context.Context, *getter.Request) error {
	return errors.New("the source names one file; a directory comes from unpacking an archive")
}

type getters struct {
	git  *gitGetter
	http *httpGetter
	file *fileGetter
}

// forcedGetter is the getter SRC forces with go-getter's syntax
// ("s3::URL"), if it does.
func forcedGetter(src string) (string, bool) {
	name, rest, ok := strings.Cut(src, "::")
	if !ok || name == "" || rest == "" {
		return "", false
	}
	for _, r := range name {
		if !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9') {
			return "", false
		}
	}
	return name, true
}

// resolveSource reads SRC once, as go-getter's Client reads it: the
// //subdir split off first (getter.SourceDirSubdir), then each getter's
// detection in order (getter.Detect, which honours "git::"-style forcing
// and the detectors), the first that accepts building the source.
func (c *command) resolveSource(raw string) (source, error) {
	if strings.TrimSpace(raw) == "" {
		return nil, fmt.Errorf("empty source")
	}
	src, subdir := getter.SourceDirSubdir(raw)
	sub, err := cleanSubdir(subdir)
	if err != nil {
		return nil, err
	}
	pwd, _ := os.Getwd()
	for _, g := range c.client.Getters {
		req := &getter.Request{Src: src, Pwd: pwd}
		ok, err := getter.Detect(req, g)
		if err != nil {
			return nil, fmt.Errorf("invalid source: %v", err)
		}
		if ok {
			return g.(sourceGetter).source(req, srcInfo{display: redact.URL(raw), subdir: sub})
		}
	}
	if name, ok := forcedGetter(src); ok {
		return nil, fmt.Errorf("%s:: sources are not supported: use an http(s) URL, git:: or a local path", name)
	}
	scheme, _, _ := strings.Cut(src, "://")
	return nil, fmt.Errorf("%s:// sources are not supported: use http(s), git:: or a local path", scheme)
}

// cleanSubdir checks go-getter's //subdir: a relative path that stays
// inside what was fetched.
func cleanSubdir(s string) (string, error) {
	if s == "" {
		return "", nil
	}
	sub := path.Clean("/" + s)[1:]
	if sub == "" || strings.Contains(s, "..") {
		return "", fmt.Errorf("invalid //subdir %q", s)
	}
	return sub, nil
}
