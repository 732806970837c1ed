package gitsrc

import (
	"bufio"
	"bytes"
	"io"
	"path"
	"strconv"
	"strings"

	"github.com/go-git/go-git/v5/plumbing"
)

// What git checkout applies from .gitattributes, on Linux with no
// core.autocrlf or core.eol set (a container's git: core.eol is native,
// LF): the end-of-line conversion of `text`/`crlf`/`eol` (only eol=crlf,
// alone or with text or text=auto, writes anything but what is stored) and
// `ident`. A `filter=` (Git LFS) leaves the blob as stored, as git does
// without the filter installed; `working-tree-encoding` is not applied.
// The rules are git's convert.c (convert_attrs, will_convert_lf_to_crlf,
// gather_stats) and attr.c (files per directory, deeper ones and later
// lines win, macros in the top-level file only, the built-in binary
// macro); the fetch suite judges them against git clone over a generated
// matrix of attribute files and contents. go-git's own gitattributes
// package matches but does not convert, and its worktree is not used here.

// attrState is one attribute's value: unspecified, set, unset or a string.
type attrState struct {
	set   bool // specified at all
	value string
}

var (
	attrTrue  = "\x00true"
	attrFalse = "\x00false"
)

type attrRule struct {
	base    string // the directory of the .gitattributes, "" at the top
	pattern string
	attrs   [][2]string // name, value (attrTrue, attrFalse, "" = unspecified, or a value)
}

// attrStack holds the rules of every .gitattributes from the top down to
// the directory being written, and the macros of the top-level one.
type attrStack struct {
	rules  []attrRule
	macros map[string][][2]string
}

func newAttrStack() *attrStack {
	return &attrStack{macros: map[string][][2]string{"binary": {{"diff", attrFalse}, {"merge", attrFalse}, {"text", attrFalse}}}}
}

// maxAttrFile is what git reads of a .gitattributes (ATTR_MAX_FILE_SIZE).
const maxAttrFile = 100 << 20

// push adds the rules of the .gitattributes blob h in directory dir.
func (s *attrStack) push(r io.Reader, dir string) {
	sc := bufio.NewScanner(io.LimitReader(r, maxAttrFile))
	sc.Buffer(make([]byte, 64<<10), 2048+64<<10)
	for sc.Scan() {
		line := strings.TrimLeft(sc.Text(), " \t\r")
		line = strings.TrimRight(line, "\r")
		if line == "" || line[0] == '#' {
			continue
		}
		var pat, rest string
		if line[0] == '"' {
			q, err := strconv.QuotedPrefix(line)
			if err != nil {
				continue
			}
			pat, _ = strconv.Unquote(q)
			rest = line[len(q):]
		} else {
			i := strings.IndexAny(line, " \t")
			if i < 0 {
				i = len(line)
			}
			pat, rest = line[:i], line[i:]
		}
		var attrs [][2]string
		for _, f := range strings.Fields(rest) {
			switch {
			case strings.HasPrefix(f, "-"):
				attrs = append(attrs, [2]string{f[1:], attrFalse})
			case strings.HasPrefix(f, "!"):
				attrs = append(attrs, [2]string{f[1:], ""})
			default:
				if k, v, ok := strings.Cut(f, "="); ok {
					attrs = append(attrs, [2]string{k, v})
				} else {
					attrs = append(attrs, [2]string{f, attrTrue})
				}
			}
		}
		if strings.HasPrefix(pat, "[attr]") {
			if dir == "" { // macros only at the top, as git reads them
				s.macros[strings.TrimPrefix(pat, "[attr]")] = attrs
			}
			continue
		}
		if pat == "" || strings.HasPrefix(pat, "!") || strings.HasSuffix(pat, "/") {
			continue // negative patterns are refused by git; a dir/ pattern matches no file
		}
		s.rules = append(s.rules, attrRule{base: dir, pattern: pat, attrs: attrs})
	}
}

// lookup returns the attributes of the file at p (a path from the top of
// the repository): the last matching rule of the deepest file wins, a
// macro expanding where it is named.
func (s *attrStack) lookup(p string, names ...string) map[string]attrState {
	out := map[string]attrState{}
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	var apply func(attrs [][2]string, depth int)
	apply = func(attrs [][2]string, depth int) {
		// Within a line, a later attribute wins; so does a later line:
		// lines are taken last to first, and only unseen names are set.
		for i := len(attrs) - 1; i >= 0; i-- {
			name, v := attrs[i][0], attrs[i][1]
			if m, ok := s.macros[name]; ok && depth < 8 && v == attrTrue {
				if _, seen := out[name]; !seen {
					out[name] = attrState{set: true, value: attrTrue}
					apply(m, depth+1)
				}
				continue
			}
			if !want[name] {
				continue
			}
			if _, seen := out[name]; seen {
				continue
			}
			out[name] = attrState{set: v != "", value: v}
		}
	}
	for i := len(s.rules) - 1; i >= 0; i-- {
		r := s.rules[i]
		if matchAttr(r, p) {
			apply(r.attrs, 0)
		}
	}
	return out
}

// matchAttr: a pattern without a slash matches a name at any depth below
// its file's directory; one with a slash matches the path relative to it,
// "**" spanning directories.
func matchAttr(r attrRule, p string) bool {
	rel := p
	if r.base != "" {
		if !strings.HasPrefix(p, r.base+"/") {
			return false
		}
		rel = p[len(r.base)+1:]
	}
	pat := r.pattern
	if !strings.Contains(pat, "/") {
		return globMatch(pat, path.Base(rel))
	}
	pat = strings.TrimPrefix(pat, "/")
	return matchSegments(strings.Split(pat, "/"), strings.Split(rel, "/"))
}

func matchSegments(pat, name []string) bool {
	for len(pat) > 0 {
		if pat[0] == "**" {
			if len(pat) == 1 {
				return true
			}
			for i := 0; i <= len(name); i++ {
				if matchSegments(pat[1:], name[i:]) {
					return true
				}
			}
			return false
		}
		if len(name) == 0 || !globMatch(pat[0], name[0]) {
			return false
		}
		pat, name = pat[1:], name[1:]
	}
	return len(name) == 0
}

// globMatch is fnmatch of one path component: *, ?, [...] with ! or ^
// negating, \ escaping.
func globMatch(pat, name string) bool {
	if strings.Contains(pat, "[!") {
		pat = strings.ReplaceAll(pat, "[!", "[^")
	}
	ok, err := path.Match(pat, name)
	return err == nil && ok
}

// conversion is what checkout does to one blob.
type conversion struct {
	crlf  bool // LF to CRLF, as eol=crlf asks
	auto  bool // text=auto: only for text with no CR in it
	ident bool
}

func (s *attrStack) conversion(p string) conversion {
	a := s.lookup(p, "text", "crlf", "eol", "ident")
	var c conversion
	c.ident = a["ident"].set && a["ident"].value == attrTrue
	action := a["text"]
	if !action.set {
		action = a["crlf"] // the legacy name
	}
	binary := action.set && action.value == attrFalse
	auto := action.set && action.value == "auto"
	if binary {
		return c
	}
	switch eol := a["eol"]; {
	case eol.set && eol.value == "crlf":
		c.crlf, c.auto = true, auto
	case eol.set && eol.value == "lf", action.value == "input":
	}
	// text (set) or text=auto alone: core.eol, LF here; nothing to do.
	return c
}

// convert applies c to a blob's content (whole: a file to convert is
// text, read into memory up to the checkout's limits).
func (c conversion) convert(b []byte, blob plumbing.Hash) []byte {
	if c.ident {
		b = identToWorktree(b, blob)
	}
	if c.crlf && lfToCRLF(b, c.auto) {
		var out bytes.Buffer
		out.Grow(len(b) + len(b)/8)
		for i, ch := range b {
			if ch == '\n' && (i == 0 || b[i-1] != '\r') {
				out.WriteByte('\r')
			}
			out.WriteByte(ch)
		}
		b = out.Bytes()
	}
	return b
}

// lfToCRLF is will_convert_lf_to_crlf: there is a lone LF, and for
// text=auto the content looks like text and has no CR yet.
func lfToCRLF(b []byte, auto bool) bool {
	var lonelf, lonecr, crlf, nul, printable, nonprintable int
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch {
		case c == '\r':
			if i+1 < len(b) && b[i+1] == '\n' {
				crlf++
				i++
			} else {
				lonecr++
			}
		case c == '\n':
			lonelf++
		case c == 127:
			nonprintable++
		case c < 32:
			switch c {
			case '\b', '\t', '\033', '\014':
				printable++
			case 0:
				nul++
				nonprintable++
			default:
				nonprintable++
			}
		default:
			printable++
		}
	}
	if len(b) > 0 && b[len(b)-1] == '\032' {
		nonprintable--
	}
	if lonelf == 0 {
		return false
	}
	if auto {
		if lonecr > 0 || crlf > 0 {
			return false
		}
		if nul > 0 || printable>>7 < nonprintable {
			return false // binary
		}
	}
	return true
}

// identToWorktree expands $Id$ (and an $Id: …$ already there) to
// $Id: BLOB $, as git's ident_to_worktree does.
func identToWorktree(b []byte, blob plumbing.Hash) []byte {
	if !bytes.Contains(b, []byte("$Id")) {
		return b
	}
	var out bytes.Buffer
	for {
		i := bytes.Index(b, []byte("$Id"))
		if i < 0 {
			out.Write(b)
			return out.Bytes()
		}
		out.Write(b[:i])
		rest := b[i+3:]
		switch {
		case len(rest) > 0 && rest[0] == '$':
			out.WriteString("$Id: " + blob.String() + " $")
			b = rest[1:]
		case len(rest) > 0 && rest[0] == ':':
			end := bytes.IndexAny(rest[1:], "$\n")
			if end < 0 || rest[1+end] != '$' {
				out.WriteString("$Id")
				b = rest
				continue
			}
			out.WriteString("$Id: " + blob.String() + " $")
			b = rest[1+end+1:]
		default:
			out.WriteString("$Id")
			b = rest
		}
	}
}
