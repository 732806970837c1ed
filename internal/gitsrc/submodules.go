package gitsrc

import (
	"errors"
	"fmt"
	"net/url"
	"path"
	"strings"

	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"

	"github.com/initbox/initbox/internal/redact"
)

// Module is a submodule as .gitmodules declares it.
type Module struct {
	Name string
	URL  string // as written: absolute, or relative to the superproject's
}

// Modules reads .gitmodules from the root of a commit's tree: the
// submodules by path. Entries git itself would refuse (a name or path
// with "..", an empty URL) are errors naming them.
func (s *Store) Modules(tree plumbing.Hash) (map[string]Module, error) {
	entries, err := readTree(s.st, tree)
	if err != nil {
		return nil, err
	}
	var blob plumbing.Hash
	for _, e := range entries {
		if e.Name == ".gitmodules" && (e.Mode == filemode.Regular || e.Mode == filemode.Deprecated) {
			blob = e.Hash
		}
	}
	if blob.IsZero() {
		return nil, errors.New("the commit has submodules but no .gitmodules file saying where they come from")
	}
	b, err := readBlob(s.st, blob, 1<<20)
	if err != nil {
		return nil, err
	}
	m := config.NewModules()
	if err := m.Unmarshal(b); err != nil {
		return nil, fmt.Errorf(".gitmodules: %v", err)
	}
	out := map[string]Module{}
	for name, sm := range m.Submodules {
		if err := sm.Validate(); err != nil {
			return nil, fmt.Errorf(".gitmodules: submodule %q: %v", name, err)
		}
		p := path.Clean(sm.Path)
		if _, dup := out[p]; dup {
			return nil, fmt.Errorf(".gitmodules: two submodules at %q", p)
		}
		out[p] = Module{Name: name, URL: sm.URL}
	}
	return out, nil
}

// SubmoduleURL is where a submodule's repository is, as git clone
// --recurse-submodules finds it: an absolute URL as it is, a relative one
// ("./x", "../x") against the superproject's URL, each ".." dropping one
// path component of it. Only what a fetch may follow from a repository it
// does not control is accepted: the superproject's own scheme or a safer
// one — never file:// from a remote (git's protocol.file.allow default,
// CVE-2022-39253), never http:// under https://.
func SubmoduleURL(super, rel string) (string, error) {
	raw := rel
	if i := strings.Index(rel, "::"); i > 0 && !strings.Contains(rel[:i], "/") {
		// git's <transport>::<address>: ext:: runs a command.
		return "", fmt.Errorf("submodule URL %q: git over %q is not supported", redact.URL(raw), rel[:i])
	}
	if strings.HasPrefix(rel, "/") {
		rel = "file://" + rel // a path, as git reads one
	}
	if strings.HasPrefix(rel, "./") || strings.HasPrefix(rel, "../") {
		u, err := url.Parse(super)
		if err != nil {
			return "", err
		}
		base := strings.TrimSuffix(u.Path, "/")
		for {
			switch {
			case strings.HasPrefix(rel, "./"):
				rel = rel[2:]
				continue
			case strings.HasPrefix(rel, "../"):
				rel = rel[3:]
				i := strings.LastIndex(base, "/")
				if i < 0 || base == "" {
					return "", fmt.Errorf("submodule URL %q climbs above the superproject's host", raw)
				}
				base = base[:i]
				continue
			}
			break
		}
		u.Path = base + "/" + rel
		u.RawPath = ""
		rel = u.String()
	}
	sub, err := Parse(rel)
	if err != nil {
		return "", fmt.Errorf("submodule URL %q: %v", redact.URL(raw), err)
	}
	if sub.Ref != "" || sub.Submodules || sub.Depth != 1 {
		return "", fmt.Errorf("submodule URL %q: ref, depth and submodules come from the superproject", redact.URL(raw))
	}
	from, _, _ := strings.Cut(super, "://")
	to, _, _ := strings.Cut(sub.URL, "://")
	switch {
	case to == "file" && from != "file":
		return "", fmt.Errorf("submodule URL %q is a path on this machine, and the superproject is not: refused, as git refuses it", redact.URL(raw))
	case (to == "http" || to == "git") && (from == "https" || from == "ssh"):
		// Plaintext and unauthenticated: whoever is on the path chooses
		// the submodule's content.
		return "", fmt.Errorf("submodule URL %q is plaintext %s:// under an %s:// superproject: refused as a downgrade", redact.URL(raw), to, from)
	}
	return sub.URL, nil
}

// SameHost reports whether two URLs name the same scheme and host, where a
// superproject's credentials may go too.
func SameHost(a, b string) bool {
	ua, err1 := url.Parse(a)
	ub, err2 := url.Parse(b)
	return err1 == nil && err2 == nil && ua.Scheme == ub.Scheme && strings.EqualFold(ua.Host, ub.Host)
}
