// Package redact keeps passwords and tokens out of everything initbox prints:
// logs, errors, help and the termination message.
//
// Two layers work together. Values known to be secret (a header read from a
// file, a password taken from a DSN) are registered in a Set and replaced
// wherever they appear. Independently, Text masks the shapes secrets take in
// free text — URL userinfo and key=value pairs such as password=… — so a
// secret nobody registered still does not leak.
package redact

import (
	"encoding/base64"
	"encoding/json"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// Mask replaces every redacted value.
const Mask = "REDACTED"

// MinLen is the shortest value a Set redacts. Shorter values would turn every
// occurrence of a common letter into the mask and make logs unreadable; they
// are still covered by the structural rules in Text.
const MinLen = 3

// Set is a concurrency-safe collection of secret values. The zero value is
// ready to use.
type Set struct {
	mu   sync.RWMutex
	vals []string
}

// Add registers secret values; empty and very short ones are ignored.
// Each is masked as written and in the forms output gives it: quoted as
// slog's text handler and Go's %q quote a message, escaped as JSON (slog's
// JSON handler, a server's JSON body echoing it), both twice (a JSON body
// quoted in a log line), and URL-escaped (a query echoed back). The
// termination message shows text raw, the log quoted: a secret masked in
// one was printed in the other.
func (s *Set) Add(vals ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	seen := map[string]bool{}
	for _, v := range s.vals {
		seen[v] = true
	}
	for _, v := range vals {
		v = strings.TrimSpace(v)
		if len(v) < MinLen {
			continue
		}
		for _, f := range forms(v) {
			if !seen[f] {
				seen[f] = true
				s.vals = append(s.vals, f)
			}
		}
	}
	// Longest first, so a secret containing another is masked whole.
	sort.Slice(s.vals, func(i, j int) bool { return len(s.vals[i]) > len(s.vals[j]) })
}

// AddUserinfo registers a URL's user:password: the password, and the
// Basic credential a server may echo (base64 of user:password).
func (s *Set) AddUserinfo(u *url.Userinfo) {
	if u == nil {
		return
	}
	pw, ok := u.Password()
	if !ok {
		return
	}
	s.Add(pw, base64.StdEncoding.EncodeToString([]byte(u.Username()+":"+pw)))
}

// maxFormLen bounds the secrets whose escaped forms are registered too: a
// password or a token is short, but a template's `file` registers a whole
// file's content (100 MB in the resource-bounds test), whose nine forms
// would cost nine copies.
const maxFormLen = 4 << 10

// forms are the ways output may spell v.
func forms(v string) []string {
	if len(v) > maxFormLen {
		return []string{v}
	}
	quote := func(x string) string { q := strconv.Quote(x); return q[1 : len(q)-1] }
	jsonEsc := func(x string) string {
		var b strings.Builder
		e := json.NewEncoder(&b)
		e.Encode(x)
		q := strings.TrimSpace(b.String())
		return q[1 : len(q)-1]
	}
	return []string{v, quote(v), jsonEsc(v), quote(quote(v)), quote(jsonEsc(v)), jsonEsc(jsonEsc(v)),
		jsonEsc(quote(v)), url.QueryEscape(v), url.PathEscape(v)}
}

// String masks every registered value and every structural secret in text.
func (s *Set) String(text string) string {
	if s != nil {
		s.mu.RLock()
		for _, v := range s.vals {
			text = strings.ReplaceAll(text, v, Mask)
		}
		s.mu.RUnlock()
	}
	return Text(text)
}

// The patterns compile on first use, keeping them off every start.
var (
	// scheme://user:password@ — the password part, whatever the scheme.
	// (The password ends at the authority's end: an "@" further on — in a
	// ?ref=v1@sha, a path — is not userinfo.)
	userinfoRe = lazy(`([a-zA-Z][a-zA-Z0-9+.-]*://[^/?#\s:@]*:)[^@\s/?#]*@`)
	// key=value pairs, quoted or not, in query strings, libpq DSNs and
	// free text; masked when the key is a credential's (SecretKey).
	kvRe = lazy(`((?:^|[\s&?;,"'(])([A-Za-z0-9_.-]+)\s*=\s*)('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|[^\s&;,"'#]+)`)
	// "key": "value" in JSON, for the same keys.
	jsonRe = lazy(`("([A-Za-z0-9_.-]+)"\s*:\s*)"(?:[^"\\]|\\.)*"`)
	// Authorization-style headers: everything after the scheme word.
	authRe = lazy(`(?i)((?:proxy-)?authorization\s*[=:]\s*(?:[a-z]+\s+)?)(\S+)`)
)

// dsnKVRe finds a DSN's password key=value, in a query string or a libpq
// key=value string.
var (
	dsnKVRe = lazy(`(?i)(?:^|[\s?&])password\s*=\s*('(?:[^'\\]|\\.)*'|[^\s&]*)`)
)

// DSNSecrets returns the password of a connection string in every form it
// is written or may be echoed — raw, unescaped, unquoted — found by shape,
// so that it can be registered before anything parses the string: a parser's
// error may quote part of it.
func DSNSecrets(dsn string) []string {
	var out []string
	add := func(v string) {
		out = append(out, v)
		if u, err := url.PathUnescape(v); err == nil {
			out = append(out, u)
		}
		if u, err := url.QueryUnescape(v); err == nil {
			out = append(out, u)
		}
	}
	// URL userinfo: user:password up to the last @, as net/url reads it
	// (a raw @ or space in the password is a mistake, and a parser's error
	// may quote it).
	if i := strings.Index(dsn, "://"); i >= 0 {
		rest := dsn[i+3:]
		if at := strings.LastIndexByte(rest, '@'); at >= 0 {
			if user, pw, ok := strings.Cut(rest[:at], ":"); ok && !strings.Contains(user, "/") {
				add(pw)
			}
		}
	}
	for _, m := range dsnKVRe().FindAllStringSubmatch(dsn, -1) {
		v := m[1]
		if len(v) >= 2 && v[0] == '\'' && v[len(v)-1] == '\'' {
			add(v[1 : len(v)-1])
			v = strings.NewReplacer(`\'`, `'`, `\\`, `\`).Replace(v[1 : len(v)-1])
		}
		add(v)
	}
	return out
}

// maskPairs replaces the value of every match of re (group 1: what stays,
// group 2: the key) whose key is a credential's.
func maskPairs(text string, re *regexp.Regexp, mask string) string {
	ms := re.FindAllStringSubmatchIndex(text, -1)
	if ms == nil {
		return text
	}
	var b strings.Builder
	last := 0
	for _, m := range ms {
		// The short names (sig, key, …) only in a query string: in free
		// text, key=… is as often a log attribute (sysctl's key=vm.…).
		inQuery := m[2] < m[3] && (text[m[2]] == '?' || text[m[2]] == '&')
		if !secretKey(text[m[4]:m[5]], inQuery) {
			continue
		}
		b.WriteString(text[last:m[3]])
		b.WriteString(mask)
		last = m[1]
	}
	b.WriteString(text[last:])
	return b.String()
}

func lazy(expr string) func() *regexp.Regexp {
	return sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(expr) })
}

// Text masks secrets by their shape: URL userinfo passwords, credential
// key=value pairs and Authorization header values.
//
// Each pattern runs only on text that has what every match of it needs (a
// "://" and an "@", the word authorization, an "=", a quote and a colon), so
// the common texts — "tcp db:5432", a DNS name, a plain URL — compile no
// regexp at all: waitfor labels every target through here before its first
// probe, and compiling the four patterns costs 55 µs warm (a go test
// benchmark) and took 1.5 % of a `waitfor tcp` start, about 0.1 ms (perf
// record over 300 starts), with ~40 page faults of the ~730 such a start
// takes (perf stat). TestTextGuards checks the guards against the patterns
// alone.
func Text(text string) string {
	return shapes(text, true)
}

// shapes applies the four patterns; guard skips those that cannot match.
func shapes(text string, guard bool) string {
	if !guard || strings.Contains(text, "://") && strings.Contains(text, "@") {
		text = userinfoRe().ReplaceAllString(text, "${1}"+Mask+"@")
	}
	if !guard || containsFold(text, "authorization") {
		text = authRe().ReplaceAllString(text, "${1}"+Mask)
	}
	if !guard || strings.Contains(text, "=") {
		text = maskPairs(text, kvRe(), Mask)
	}
	if !guard || strings.Contains(text, `"`) && strings.Contains(text, ":") {
		text = maskPairs(text, jsonRe(), `"`+Mask+`"`)
	}
	return text
}

// containsFold reports whether text contains word (lower-case ASCII),
// ignoring ASCII case, as the (?i) of authRe does for it.
func containsFold(text, word string) bool {
	for i := 0; i+len(word) <= len(text); i++ {
		if strings.EqualFold(text[i:i+len(word)], word) {
			return true
		}
	}
	return false
}

// URL returns u fit for display: the userinfo password and credential query
// parameters are masked. An unparsable URL is masked structurally.
func URL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return Text(raw)
	}
	if u.User != nil {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), Mask)
		}
	}
	if u.RawQuery != "" {
		q := u.Query()
		changed := false
		for k := range q {
			if SecretKey(k) {
				q[k] = []string{Mask}
				changed = true
			}
		}
		if changed {
			u.RawQuery = q.Encode()
		}
	}
	s := u.String()
	// url.String escapes the mask's neighbours oddly in userinfo; undo that.
	return strings.Replace(s, url.QueryEscape(Mask), Mask, -1)
}

// IsSecretHeader reports whether an HTTP header by this name usually
// carries a credential.
func IsSecretHeader(name string) bool { return secretKey(name, false) }

// The names whose values are masked, as a query parameter, a key=value
// pair, a JSON key or a header (compared without regard to case). The
// README's Secrets section lists them; keep the two in step.
var (
	// Header names masked when they are the whole key, everywhere.
	secretNames = []string{"authorization", "proxy-authorization", "cookie", "set-cookie"}
	// Query parameters masked when they are the whole key of a URL's query
	// (they would match too much elsewhere). sig: Azure SAS; key: Google's
	// and many other API keys.
	queryNames = []string{"sig", "key", "pwd", "pass", "jwt"}
	// Words masked wherever they appear in a key: password, client_secret,
	// X-Amz-Signature, X-Goog-Signature, X-Amz-Credential,
	// X-Amz-Security-Token, access_token, private_key, sessionid, ….
	secretWords = []string{"password", "passwd", "passphrase", "secret", "token", "apikey", "api-key", "api_key",
		"signature", "credential", "auth", "private_key", "privatekey", "access_key", "accesskey", "sessionid", "session_id"}
)

// SecretKey reports whether a query parameter of this name carries a
// credential (the short names included).
func SecretKey(k string) bool { return secretKey(k, true) }

// secretKey: a header, key=value or JSON key (query: a URL's query
// parameter, where the short names count too).
func secretKey(k string, query bool) bool {
	k = strings.ToLower(k)
	names := secretNames
	if query {
		names = append(queryNames[:len(queryNames):len(queryNames)], secretNames...)
	}
	for _, n := range names {
		if k == n {
			return true
		}
	}
	for _, w := range secretWords {
		if strings.Contains(k, w) {
			return true
		}
	}
	return false
}
