package gitsrc

import (
	"fmt"
	"strings"
)

// CheckRefName refuses a reference name git's check-ref-format refuses
// (git-check-ref-format(1), rules 1-10, without --allow-onelevel): a name
// from the remote is data, and one that holds "..", a leading "/" or a
// control character would otherwise become a path under .git. A full name
// begins with refs/.
func CheckRefName(name string) error {
	bad := func(why string) error { return fmt.Errorf("invalid ref name %q: %s", name, why) }
	switch {
	case name == "" || name == "@":
		return bad("empty or @")
	case !strings.HasPrefix(name, "refs/"):
		return bad("not under refs/")
	case strings.HasSuffix(name, "/"), strings.HasSuffix(name, "."):
		return bad("ends with / or .")
	case strings.Contains(name, ".."):
		return bad("holds ..")
	case strings.Contains(name, "@{"):
		return bad("holds @{")
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f || strings.ContainsRune(" ~^:?*[\\", r) {
			return bad(fmt.Sprintf("holds the character %q", r))
		}
	}
	for _, c := range strings.Split(name, "/") {
		switch {
		case c == "":
			return bad("an empty component (//)")
		case strings.HasPrefix(c, "."):
			return bad("a component beginning with .")
		case strings.HasSuffix(c, ".lock"):
			return bad("a component ending with .lock")
		}
	}
	return nil
}
