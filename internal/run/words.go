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
// separates steps that run in parallel. The shell's other operators alone
// (&&, ||, |, ;, <, >) are refused: there is no shell to run them.
func splitWords(s string) ([][]string, error) {
	var (
		groups [][]string
		words  []string
		cur    strings.Builder
		inWord bool
		quoted bool // the current word has a quoted part
		i      int
	)
	end := func() error {
		if !inWord {
			return nil
		}
		w := cur.String()
		cur.Reset()
		inWord = false
		if !quoted {
			switch w {
			case "&":
				if len(words) == 0 {
					return errors.New("& with no step before it")
				}
				groups = append(groups, words)
				words = nil
				return nil
			case "&&", "||", "|", ";", "<", ">", ">>", "2>&1", "2>", "&>":
				return fmt.Errorf("%q is a shell operator, and run has no shell: give each step as its own argument (or list item)", w)
			}
		}
		quoted = false
		words = append(words, w)
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
