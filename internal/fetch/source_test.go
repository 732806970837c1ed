package fetch

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/initbox/initbox/internal/cli"
	"github.com/initbox/initbox/internal/redact"
)

// The source forms people type from Terraform, Nomad and Packer resolve
// through go-getter's detection and forced-getter syntax to the kind of
// source they name, with its //subdir and query read once.
func TestSourceForms(t *testing.T) {
	dir := t.TempDir()
	wd, _ := os.Getwd()
	for _, tc := range []struct {
		src, kind, want string // want: what the kind parsed, as described below
		subdir          string
	}{
		{"github.com/ORG/REPO//sub?ref=v1", "git", "https://github.com/ORG/REPO.git ref=v1 depth=1", "sub"},
		{"github.com/ORG/REPO", "git", "https://github.com/ORG/REPO.git ref= depth=1", ""},
		{"gitlab.com/ORG/REPO?ref=main&depth=0", "git", "https://gitlab.com/ORG/REPO.git ref=main depth=0", ""},
		{"git@github.com:ORG/REPO.git", "git", "ssh://git@github.com/ORG/REPO.git ref= depth=1", ""},
		{"git@github.com:ORG/REPO.git//charts/app?ref=v2", "git", "ssh://git@github.com/ORG/REPO.git ref=v2 depth=1", "charts/app"},
		{"git::git@github.com:ORG/REPO.git//d", "git", "ssh://git@github.com/ORG/REPO.git ref= depth=1", "d"},
		{"git::https://h.example/r.git//sub?ref=x&depth=3", "git", "https://h.example/r.git ref=x depth=3", "sub"},
		{"git::file:///srv/repo.git?ref=main", "git", "file:///srv/repo.git ref=main depth=1", ""},
		{"ssh://git@h.example:2222/r.git", "git", "ssh://git@h.example:2222/r.git ref= depth=1", ""},
		{"git://h.example/r.git", "git", "git://h.example/r.git ref= depth=1", ""},
		{"https://h.example/a.tgz//sub?archive=tgz&checksum=sha256:00", "http", "https://h.example/a.tgz archive=tgz checksum=sha256:00 name=a.tgz", "sub"},
		{"http::https://h.example/a.bin?x=1", "http", "https://h.example/a.bin?x=1 archive= checksum= name=a.bin", ""},
		{"file::" + dir + "/f.zip", "file", dir + "/f.zip archive= name=f.zip", ""},
		{"file://" + dir + "/f.tgz?archive=none", "file", dir + "/f.tgz archive=none name=f.tgz", ""},
		{dir + "/site//public", "file", dir + "/site archive= name=site", "public"},
		{"rel/conf.json", "file", filepath.Join(wd, "rel/conf.json") + " archive= name=conf.json", ""},
	} {
		c := &command{env: &cli.Env{Secrets: &redact.Set{}}}
		c.client = c.newClient()
		s, err := c.resolveSource(tc.src)
		if err != nil {
			t.Errorf("%s: %v", tc.src, err)
			continue
		}
		var got string
		switch s := s.(type) {
		case *gitSource:
			got = s.g.URL + " ref=" + s.g.Ref + " depth=" + strconv.Itoa(s.g.Depth)
		case *httpSource:
			got = s.url.String() + " archive=" + s.archive + " checksum=" + s.checksum + " name=" + s.name
		case *localSource:
			got = s.path + " archive=" + s.archive + " name=" + s.name
		}
		if i := s.info(); i.kind != tc.kind || got != tc.want || i.subdir != tc.subdir {
			t.Errorf("%s:\n got %s %q subdir %q\nwant %s %q subdir %q", tc.src, i.kind, got, i.subdir, tc.kind, tc.want, tc.subdir)
		}
	}
	for src, want := range map[string]string{
		"s3::https://b.s3.amazonaws.com/k": "s3:: sources are not supported",
		"hg::https://h/r":                  "hg:: sources are not supported",
		"ftp://h/a":                        "ftp:// sources are not supported",
		"git::ftp://h/r.git":               `git over "ftp" is not supported`,
		"https://h/a.tgz//../../etc":       "invalid //subdir",
		"github.com/ORG":                   "GitHub URLs should be github.com/username/repo",
		"":                                 "empty source",
		"file://remote.example/etc/passwd": "a file:// URL names a local path",
	} {
		c := &command{env: &cli.Env{Secrets: &redact.Set{}}}
		c.client = c.newClient()
		if _, err := c.resolveSource(src); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", src, err, want)
		}
	}
}
