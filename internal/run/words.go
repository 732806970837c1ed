package run

import (
	"errors"
	"fmt"
	"strings"
)

// splitWords splits a step into words as POSIX sh would — blanks separate
// words; single quotes keep everything; double quotes keep everything but
// \" \\ \$ \` and a backslash-newline; a backslash outside quotes keeps the
// next character — without any expansion: the kubelet already replaced
// $(VAR) in the pod spec, and a $ here is a $. An unquoted & alone
// separates steps that run in parallel. What a shell would treat as an
// operator is refused, naming it, whether it stands alone or is attached to
// a word (localhost;): unquoted ; & | < > ( ), a # that starts a word, and
// command substitution, $( or a backquote, unquoted or in double quotes.
// There is no shell to run them, and passing them on as text would hide the
// mistake.
func splitWords(s string) ([][]string, error) {
	var (
		groups [][]string
		words  []string
		cur    strings.Builder
		inWord bool
		quoted bool   // the current word has a quoted part
		ops    string // operator characters met unquoted in the current word
		i      int
	)
	end := func() error {
		if !inWord {
			return nil
		}
		w, op := cur.String(), ops
		cur.Reset()
		inWord, ops = false, ""
		if w == "&" && !quoted {
			if len(words) == 0 {
				return errors.New("& with no step before it")
			}
			groups = append(groups, words)
			words = nil
			return nil
		}
		if op != "" {
			if op == w || strings.Trim(w, "0123456789&") == op {
				return fmt.Errorf("%q is a shell operator, and run has no shell: give each step as its own argument (or list item)", w)
			}
			return fmt.Errorf("%q in %q is a shell operator, and run has no shell: quote it if it is text, or give each step as its own argument (or list item)", op, w)
		}
		quoted = false
		words = append(words, w)
		return nil
	}
	// sub refuses command substitution at s[i].
	sub := func(i int) error {
		if s[i] == '`' {
			return errors.New("a backquote is shell command substitution, and run has no shell")
		}
		if s[i] == '$' && i+1 < len(s) && s[i+1] == '(' {
			return errors.New("$( is shell command substitution, and run has no shell (or a $(VAR) the kubelet left as written: VAR is not defined in the container's env)")
		}
		return nil
	}
	for i = 0; i < len(s); i++ {
		ch := s[i]
		switch {
		case ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r':
			if err := end(); err != nil {
				return nil, err
			}
		case ch == '\\':
			inWord = true
			if i+1 >= len(s) {
				return nil, errors.New("a backslash at the end")
			}
			i++
			if s[i] != '\n' {
				cur.WriteByte(s[i])
			}
		case ch == '\'':
			inWord, quoted = true, true
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return nil, errors.New("an unterminated ' quote")
			}
			cur.WriteString(s[i+1 : i+1+j])
			i += j + 1
		case ch == '"':
			inWord, quoted = true, true
			i++
			for ; i < len(s) && s[i] != '"'; i++ {
				if err := sub(i); err != nil {
					return nil, err
				}
				if s[i] == '\\' && i+1 < len(s) && strings.IndexByte("\"\\$`\n", s[i+1]) >= 0 {
					i++
					if s[i] == '\n' {
						continue
					}
				}
				cur.WriteByte(s[i])
			}
			if i >= len(s) {
				return nil, errors.New(`an unterminated " quote`)
			}
		default:
			if err := sub(i); err != nil {
				return nil, err
			}
			if strings.IndexByte(";&|<>()", ch) >= 0 || ch == '#' && !inWord {
				// The operator is the run of such characters here.
				j := i
				for j < len(s) && strings.IndexByte(";&|<>()#", s[j]) >= 0 {
					j++
				}
				if ops == "" {
					ops = s[i:j]
				}
			}
			inWord = true
			cur.WriteByte(ch)
		}
	}
	if err := end(); err != nil {
		return nil, err
	}
	if len(words) == 0 {
		if len(groups) > 0 {
			return nil, errors.New("& with no step after it")
		}
		return nil, nil
	}
	return append(groups, words), nil
}
