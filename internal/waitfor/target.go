package waitfor

import (
	"fmt"
	"net/url"
	"strings"
)

type spec struct {
	kind   *kind
	target string
}

// splitTargets reads the two target forms: "KIND TARGET..." when the first
// argument names a kind, otherwise URL-style targets that each carry their
// kind ("dns:NAME", "tcp://HOST:PORT", "postgres://…", "https://…").
func splitTargets(args []string) ([]spec, error) {
	if k := kindByName(args[0]); k != nil {
		if len(args) == 1 {
			return nil, fmt.Errorf("%s: no target given", args[0])
		}
		var out []spec
		rest := args[1:]
		for i := 0; i < len(rest); i++ {
			a := rest[i]
			if strings.TrimSpace(a) == "" {
				return nil, fmt.Errorf("%s: empty target", k.name)
			}
			// TYPE NAME is one target, as TYPE/NAME is.
			if k.pairs && !strings.Contains(a, "/") && i+1 < len(rest) && !strings.Contains(rest[i+1], "/") {
				a += "/" + rest[i+1]
				i++
			}
			out = append(out, spec{k, a})
		}
		return out, nil
	}
	var out []spec
	for _, a := range args {
		s, err := parseURLTarget(a)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

func parseURLTarget(a string) (spec, error) {
	scheme, rest, ok := strings.Cut(a, ":")
	if ok {
		for _, k := range kinds {
			for _, s := range k.schemes {
				if !strings.EqualFold(s, scheme) {
					continue
				}
				if k.keepScheme && strings.HasPrefix(rest, "//") {
					return spec{k, a}, nil
				}
				rest = strings.TrimPrefix(rest, "//")
				if strings.TrimSpace(rest) == "" {
					return spec{}, fmt.Errorf("%s: empty target", a)
				}
				if k.urlOnly {
					return spec{}, fmt.Errorf("invalid target %q: want %s", a, k.urlForm)
				}
				return spec{k, rest}, nil
			}
		}
	}
	return spec{}, unknownTarget(a)
}

// unknownTarget names every kind and every URL form, from the table.
func unknownTarget(a string) error {
	var names, forms []string
	for _, k := range kinds {
		names = append(names, k.name)
		forms = append(forms, k.urlForm)
	}
	return fmt.Errorf("unknown target %q: start with a kind (%s) or write it URL-style: %s", a, strings.Join(names, ", "), strings.Join(forms, ", "))
}

// userinfoPassword is the password of user:password@… in a URL or DSN,
// found before any parsing, so that even an unparsable target is printed
// with it masked.
func userinfoPassword(target string) string {
	_, rest, ok := strings.Cut(target, "://")
	if !ok {
		rest = target
	}
	at := strings.LastIndex(rest, "@")
	if at < 0 {
		return ""
	}
	_, pw, ok := strings.Cut(rest[:at], ":")
	if !ok {
		return ""
	}
	if u, err := url.PathUnescape(pw); err == nil {
		return u
	}
	return pw
}
