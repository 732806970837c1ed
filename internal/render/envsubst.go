package render

import (
	"bytes"
	"fmt"
	"io"
)

// writer keeps the first write error, so the expansion loop need not check
// every write.
type writer struct {
	w   io.Writer
	err error
}

func (w *writer) Write(p []byte) {
	if w.err == nil {
		_, w.err = w.w.Write(p)
	}
}

func (w *writer) WriteString(s string) {
	if w.err == nil {
		_, w.err = io.WriteString(w.w, s)
	}
}

func (w *writer) dollar() { w.WriteString("$") }

// envsubst expands shell-style references in one pass, linear in the
// input: $NAME, ${NAME}, ${NAME:-default} (unset or empty), ${NAME-default}
// (unset), ${NAME:?message}, ${NAME?message}, and $$ for a literal $. A
// default is literal text up to the first }. A $ not starting a reference
// is kept as written, as GNU envsubst keeps it.
//
// With only (--envsubst-vars), it is GNU envsubst's SHELL-FORMAT mode byte
// for byte: $NAME and ${NAME} of the listed names are replaced and every
// other byte stays as written — $$, ${NAME:-x}, other names.
type envsubst struct {
	lookup     func(string) (string, bool)
	only       map[string]bool // when not nil, other names are left as written
	allowUnset bool            // an unset $NAME is empty instead of an error
	seen       map[string]value
}

type value struct {
	v   string
	set bool
}

// get looks name up once per expansion: the process environment's lookup
// takes a lock and a copy, and a large file repeats a handful of names.
func (e *envsubst) get(name []byte) (string, bool) {
	if v, ok := e.seen[string(name)]; ok {
		return v.v, v.set
	}
	v, set := e.lookup(string(name))
	if e.seen == nil {
		e.seen = map[string]value{}
	}
	e.seen[string(name)] = value{v, set}
	return v, set
}

func isNameStart(c byte) bool { return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
func isName(c byte) bool      { return isNameStart(c) || c >= '0' && c <= '9' }

// expand writes src to w with its references replaced. An error names the
// file and line: an unset variable, a ${NAME:?} check, a malformed ${.
func (e *envsubst) expand(file string, src []byte, w io.Writer) error {
	out := writer{w: w}
	fail := func(at int, format string, args ...any) error {
		line := 1 + bytes.Count(src[:at], []byte{'\n'})
		return fmt.Errorf("%s:%d: %s", file, line, fmt.Sprintf(format, args...))
	}
	i := 0
	for {
		j := bytes.IndexByte(src[i:], '$')
		if j < 0 {
			out.Write(src[i:])
			return out.err
		}
		out.Write(src[i : i+j])
		at := i + j
		i = at + 1
		switch {
		case i < len(src) && src[i] == '$':
			out.dollar()
			if e.only == nil {
				i++ // $$ is one literal $; with a list, GNU keeps both
			}
		case i < len(src) && isNameStart(src[i]):
			k := i
			for k < len(src) && isName(src[k]) {
				k++
			}
			name := src[i:k]
			if e.only != nil && !e.only[string(name)] {
				out.Write(src[at:k])
			} else if v, ok := e.get(name); ok {
				out.WriteString(v)
			} else if !e.allowUnset {
				return fail(at, "$%s is not set (set it, write ${%s:-default}, or give --allow-unset)", name, name)
			}
			i = k
		case i < len(src) && src[i] == '{':
			end, err := e.braced(src, at, &out)
			if err != nil {
				return fail(at, "%s", err)
			}
			i = end
		default:
			out.dollar()
		}
	}
}

// braced expands the ${…} starting at src[at] into out and returns the
// index after it.
func (e *envsubst) braced(src []byte, at int, out *writer) (int, error) {
	k := at + 2
	for k < len(src) && isName(src[k]) {
		k++
	}
	name := src[at+2 : k]
	if e.only != nil && (len(name) == 0 || !isNameStart(name[0]) || !e.only[string(name)]) {
		// Not ours: a name outside the list, or text that only looks
		// like a reference (a shell script's ${arr[@]}).
		out.WriteString("${")
		return at + 2, nil
	}
	if e.only != nil && (k >= len(src) || src[k] != '}') {
		// ${NAME:-x} and the like: GNU's list mode replaces only ${NAME}.
		out.WriteString("${")
		return at + 2, nil
	}
	// The reference ends at the first } and must not span lines. Each
	// search stops at that brace, which keeps the expansion linear.
	rest := bytes.IndexByte(src[k:], '}')
	if rest < 0 || bytes.IndexByte(src[k:k+rest], '\n') >= 0 {
		return 0, fmt.Errorf("unterminated ${%s (no } on the line)", name)
	}
	end := k + rest + 1
	if len(name) == 0 || !isNameStart(name[0]) {
		return 0, fmt.Errorf("invalid reference %q", src[at:end])
	}
	op := string(src[k : end-1])
	v, set := e.get(name)
	switch {
	case op == "":
		if !set && !e.allowUnset {
			return 0, fmt.Errorf("${%s} is not set (set it, write ${%s:-default}, or give --allow-unset)", name, name)
		}
		out.WriteString(v)
	case len(op) >= 2 && op[:2] == ":-":
		if !set || v == "" {
			v = op[2:]
		}
		out.WriteString(v)
	case op[0] == '-':
		if !set {
			v = op[1:]
		}
		out.WriteString(v)
	case len(op) >= 2 && op[:2] == ":?", op[0] == '?':
		msg := op[1:]
		if op[0] == ':' {
			msg = op[2:]
		}
		if !set || op[0] == ':' && v == "" {
			if msg == "" {
				msg = "not set"
				if set {
					msg = "empty"
				}
			}
			return 0, fmt.Errorf("%s: %s", name, msg)
		}
		out.WriteString(v)
	default:
		return 0, fmt.Errorf("invalid reference %q: want ${%s}, ${%s:-default} or ${%s:?message}", src[at:end], name, name, name)
	}
	return end, nil
}
