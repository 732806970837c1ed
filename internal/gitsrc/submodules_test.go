package gitsrc

import (
	"strings"
	"testing"
)

// Relative submodule URLs resolve as git's relative_url does ("./" adds
// to the superproject's URL, each "../" drops a component of it; the
// fetch suite's TestGitSubmodules checks both against git clone
// --recurse-submodules), and a fetch follows no URL git would refuse from
// a remote.
func TestSubmoduleURL(t *testing.T) {
	for _, c := range []struct{ super, rel, want string }{
		{"https://h/org/app.git", "../lib.git", "https://h/org/lib.git"},
		{"https://h/org/app.git", "./lib.git", "https://h/org/app.git/lib.git"},
		{"https://h/org/app.git", "./../../other/lib", "https://h/other/lib"},
		{"https://h/org/app.git/", "../lib.git", "https://h/org/lib.git"},
		{"ssh://git@h:2222/org/app.git", "../lib.git", "ssh://git@h:2222/org/lib.git"},
		{"https://h/org/app.git", "https://other/lib.git", "https://other/lib.git"},
		{"https://h/org/app.git", "git@github.com:o/lib.git", "ssh://git@github.com/o/lib.git"},
		{"file:///srv/git/app.git", "../lib.git", "file:///srv/git/lib.git"},
		{"file:///srv/git/app.git", "/srv/other/lib.git", "file:///srv/other/lib.git"},
		{"http://h/app.git", "https://h/lib.git", "https://h/lib.git"},
		{"git://h/app.git", "git://h/lib.git", "git://h/lib.git"},
		{"http://h/app.git", "git://h/lib.git", "git://h/lib.git"},
	} {
		got, err := SubmoduleURL(c.super, c.rel)
		if err != nil || got != c.want {
			t.Errorf("SubmoduleURL(%q, %q) = %q, %v; want %q", c.super, c.rel, got, err, c.want)
		}
	}
	for _, c := range []struct{ super, rel, why string }{
		{"https://h/app.git", "file:///etc", "a path on this machine"},
		{"https://h/app.git", "/srv/git/lib.git", "a path on this machine"},
		{"https://h/app.git", "http://h/lib.git", "plaintext http:// under an https:// superproject: refused as a downgrade"},
		{"https://h/app.git", "git://h/lib.git", "plaintext git:// under an https:// superproject: refused as a downgrade"},
		{"ssh://git@h/app.git", "git://h/lib.git", "plaintext git:// under an ssh://"},
		{"ssh://git@h/app.git", "http://h/lib.git", "plaintext http:// under an ssh://"},
		{"https://h/app.git", "../../x.git", "climbs above"},
		{"https://h/app.git", "ext::sh -c id", `git over "ext"`},
		{"https://h/app.git", "fd::3", `git over "fd"`},
		{"https://h/app.git", "lib.git", "not supported"},
		{"https://h/app.git", "https://h/lib.git?ref=main", "come from the superproject"},
	} {
		if got, err := SubmoduleURL(c.super, c.rel); err == nil || !strings.Contains(err.Error(), c.why) {
			t.Errorf("SubmoduleURL(%q, %q) = %q, %v; want an error with %q", c.super, c.rel, got, err, c.why)
		}
	}
}
