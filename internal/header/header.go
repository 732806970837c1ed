// Package header reads HTTP headers given on the command line as 'K: V',
// where V may be @PATH: the value is then read from a file (a mounted Secret
// or a projected service-account token) each time it is used, so a rotated
// token is picked up. Values from files and values of credential headers
// are registered as secrets and never printed.
package header

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"net/textproto"
	"os"
	"strings"

	"github.com/initbox/initbox/internal/redact"
)

// Header is one parsed header.
type Header struct {
	Name  string
	Value string // literal value, when File is empty
	File  string // read the value from this file
}

// Parse reads 'K: V' or 'K: @PATH'. A file is read once to check it, so a
// typo in a path is bad usage now rather than a failure in every request.
func Parse(s string, secrets *redact.Set) (Header, error) {
	name, value, ok := strings.Cut(s, ":")
	name = strings.TrimSpace(name)
	if !ok || name == "" || strings.ContainsAny(name, " \t\r\n") {
		// Only the first word is quoted back: the rest of a malformed
		// header may be its credential ("Authorization Bearer abc").
		shown, _, _ := strings.Cut(strings.TrimSpace(s), " ")
		if len(shown) > 40 {
			shown = shown[:40]
		}
		if shown != strings.TrimSpace(s) {
			shown += " …"
		}
		return Header{}, fmt.Errorf("invalid header %q: want 'Name: value' or 'Name: @/path/to/file'", redact.Text(shown))
	}
	value = strings.TrimSpace(value)
	h := Header{Name: textproto.CanonicalMIMEHeaderKey(name)}
	if path, ok := strings.CutPrefix(value, "@"); ok {
		h.File = path
		if _, err := h.Resolve(secrets); err != nil {
			return Header{}, err
		}
		return h, nil
	}
	if strings.ContainsAny(value, "\r\n") {
		return Header{}, fmt.Errorf("header %s: the value contains a line break", h.Name)
	}
	h.Value = value
	if redact.IsSecretHeader(h.Name) {
		addSecret(secrets, value)
	}
	return h, nil
}

// addSecret registers a credential-bearing value whole and each part a
// server may echo alone: the token after the scheme word ("Bearer abc",
// "Basic dXNlcjpwdw=="), and a Basic credential's decoded password.
func addSecret(secrets *redact.Set, value string) {
	secrets.Add(value)
	scheme, tok, ok := strings.Cut(value, " ")
	if !ok {
		return
	}
	tok = strings.TrimSpace(tok)
	secrets.Add(tok)
	if strings.EqualFold(scheme, "basic") {
		if b, err := base64.StdEncoding.DecodeString(tok); err == nil {
			if _, pw, ok := strings.Cut(string(b), ":"); ok {
				secrets.Add(pw)
			}
		}
	}
}

// Resolve returns the header's current value, reading its file if it has one.
func (h Header) Resolve(secrets *redact.Set) (string, error) {
	if h.File == "" {
		return h.Value, nil
	}
	b, err := os.ReadFile(h.File)
	if err != nil {
		return "", fmt.Errorf("header %s: reading its value: %w", h.Name, err)
	}
	v := strings.TrimSpace(string(b))
	// A value kept in a file is a secret, whatever the header's name.
	addSecret(secrets, v)
	if strings.ContainsAny(v, "\r\n") {
		return "", fmt.Errorf("header %s: the value in %s contains a line break", h.Name, h.File)
	}
	return v, nil
}

// ParseAll parses every header.
func ParseAll(list []string, secrets *redact.Set) ([]Header, error) {
	out := make([]Header, 0, len(list))
	for _, s := range list {
		h, err := Parse(s, secrets)
		if err != nil {
			return nil, err
		}
		out = append(out, h)
	}
	return out, nil
}

// Apply sets the headers on req, reading files now. A Host header sets
// req.Host, as curl does.
func Apply(req *http.Request, hs []Header, secrets *redact.Set) error {
	for _, h := range hs {
		v, err := h.Resolve(secrets)
		if err != nil {
			return err
		}
		if h.Name == "Host" {
			req.Host = v
			continue
		}
		req.Header.Add(h.Name, v)
	}
	return nil
}
