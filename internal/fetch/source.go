package fetch

import (
	"fmt"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"

	getter "github.com/hashicorp/go-getter/v2"

	"github.com/initbox/initbox/internal/gitsrc"
	"github.com/initbox/initbox/internal/oserr"
	"github.com/initbox/initbox/internal/redact"
)

// source is what SRC names: a URL (http, https) fetched through go-getter,
// or a local file or directory (another mounted volume, e.g. a ConfigMap).
type source struct {
	display  string // for logs: secrets masked
	url      *url.URL
	local    string // a local path, when url is nil
	subdir   string // "//subdir" of an archive
	checksum string // from ?checksum=
	archive  string // from ?archive=
	name     string // the file name, for the archive format and checksum files
	git      *gitsrc.Source
}

// parseSource reads go-getter's URL forms: "https://host/a.tgz?checksum=
// sha256:…&archive=tgz", "https://host/a.tgz//subdir", "http::URL",
// "file::PATH", "file:///path", or a plain path.
func parseSource(raw string) (*source, error) {
	s := &source{display: redact.URL(raw)}
	src := raw
	isGit := false
	if forced, rest, ok := strings.Cut(src, "::"); ok && !strings.Contains(forced, "/") {
		switch strings.ToLower(forced) {
		case "http", "https", "file":
			src = rest
		case "git":
			src, isGit = rest, true
		default:
			return nil, fmt.Errorf("%s:: sources are not supported: use an http(s) URL or a local path", forced)
		}
	}
	// git@host:path is git's (and go-getter's) SSH form.
	if !isGit && !strings.Contains(src, "://") && strings.HasPrefix(src, "git@") && strings.Contains(src, ":") {
		isGit = true
	}
	src, s.subdir = getter.SourceDirSubdir(src)
	if s.subdir != "" {
		sub := path.Clean("/" + s.subdir)[1:]
		if sub == "" || strings.Contains(s.subdir, "..") {
			return nil, fmt.Errorf("invalid //subdir %q", s.subdir)
		}
		s.subdir = sub
	}
	if isGit {
		g, err := gitsrc.Parse(src)
		if err != nil {
			return nil, err
		}
		s.git = g
		s.display = redact.URL(g.URL)
		if g.Ref != "" {
			s.display += "@" + g.Ref
		}
		return s, nil
	}
	if !strings.Contains(src, "://") {
		if src == "" {
			return nil, fmt.Errorf("empty source")
		}
		s.local = filepath.Clean(src)
		s.name = filepath.Base(s.local)
		return s, nil
	}
	u, err := url.Parse(src)
	if err != nil {
		return nil, fmt.Errorf("invalid URL: %v", err.(*url.Error).Err)
	}
	switch u.Scheme {
	case "file":
		if u.Host != "" && u.Host != "localhost" {
			return nil, fmt.Errorf("a file:// URL names a local path, not host %q", u.Host)
		}
		s.local = filepath.Clean(u.Path)
		s.name = filepath.Base(s.local)
		q := u.Query()
		s.checksum, s.archive = q.Get("checksum"), q.Get("archive")
		return s, nil
	case "http", "https":
	default:
		return nil, fmt.Errorf("%s:// sources are not supported: use http(s) or a local path", u.Scheme)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("the URL has no host")
	}
	q := u.Query()
	s.checksum, s.archive = q.Get("checksum"), q.Get("archive")
	q.Del("checksum")
	q.Del("archive")
	u.RawQuery = q.Encode()
	s.url = u
	s.name = path.Base(u.Path)
	if s.name == "/" || s.name == "." {
		s.name = ""
	}
	return s, nil
}

// stat describes a local source: a file or a directory.
func (s *source) stat() (os.FileInfo, error) {
	fi, err := os.Stat(s.local)
	if err != nil {
		return nil, fmt.Errorf("source %s: %w", s.local, oserr.Reason(err))
	}
	return fi, nil
}
