package waitfor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"

	"github.com/initbox/initbox/internal/cli"
	"github.com/initbox/initbox/internal/header"
	"github.com/initbox/initbox/internal/neterr"
	"github.com/initbox/initbox/internal/redact"
	"github.com/initbox/initbox/internal/tlsconfig"
	"github.com/initbox/initbox/internal/transport"
)

// The http kind, registered in the table (register).
var _ = register(&kind{
	name: "http", aliases: []string{"https"}, rank: 70, noun: "HTTP endpoints",
	usage: "http URL", urlForm: "http(s)://HOST/PATH",
	help: `the final status (after redirects) is in --status, and the body contains
		--body-contains (matches --body-regex, has --json PATH=VALUE)`,
	examples: []string{
		"http https://auth/healthz --ca-file /etc/ssl/ca.crt --header 'Authorization: @/var/run/secrets/token'",
		"http http://api/actuator/health --json .status=UP",
	},
	schemes:    []string{"http", "https"},
	keepScheme: true,
	urlOnly:    true,
	tls:        fullTLS,
	options:    func() kindOptions { return &httpOptions{} },
})

type httpOptions struct {
	status        string
	bodyContains  string
	bodyRegex     string
	jsonChecks    []string
	expectHeaders []string
	noFollow      bool
	data          string
	method        string
	headers       []string
}

func (k *httpOptions) flags(fs *cli.FlagSet) {
	fs.String(&k.status, "status", "200-399", "ready `STATUSES`, e.g. 200,204 or 200-299")
	fs.String(&k.bodyContains, "body-contains", "", "ready only when the body contains `TEXT`")
	fs.String(&k.bodyRegex, "body-regex", "", "ready only when the body matches `RE` (Go regexp syntax)")
	fs.Strings(&k.jsonChecks, "json", "ready only when the JSON body has `PATH[=VALUE]` (.status=UP, .checks[0].ok=true; repeatable)")
	fs.Strings(&k.expectHeaders, "expect-header", "ready only when the response has header `'K: V'` (V in its value; 'K:' for present; repeatable)")
	fs.Bool(&k.noFollow, "no-follow-redirects", "judge a 3xx itself instead of following it")
	fs.String(&k.data, "data", "", "send `TEXT` (or @FILE, read at each probe) as the request body; the method becomes POST")
	fs.String(&k.method, "method", "", "request `METHOD` (default GET; POST with --data)")
	fs.Strings(&k.headers, "header", "request header `'K: V'`; V as @PATH reads a file at each probe (repeatable)")
}

// maxBody bounds how much of a body --body-contains reads.
const maxBody = 1 << 20

type httpProbe struct {
	url      string
	method   string
	headers  []header.Header
	statuses []statusRange
	contains string
	bodyRE   *regexp.Regexp
	json     []jsonCheck
	expectH  []header.Header // --expect-header: K present, its value containing V
	data     string          // --data: the request body
	dataFile string          // --data @FILE: read at every probe
	client   *http.Client
	secrets  *redact.Set
}

// jsonCheck is one --json PATH[=VALUE]: the body's value at PATH exists
// (and, with a VALUE, reads as it).
type jsonCheck struct {
	path, value string
	hasValue    bool
}

// parseJSONCheck reads --json: PATH or PATH=VALUE, the path written as
// .a.b[0].c, a.b[0].c, $.a.b or {.a.b} (kubectl's form).
func parseJSONCheck(s string) (jsonCheck, error) {
	path, value, hasValue := strings.Cut(s, "=")
	p := strings.TrimSpace(path)
	if strings.HasPrefix(p, "{") && strings.HasSuffix(p, "}") {
		p = p[1 : len(p)-1]
	}
	p = strings.TrimPrefix(p, "$")
	p = strings.TrimPrefix(p, ".")
	if p == "" {
		return jsonCheck{}, fmt.Errorf("invalid --json %q: want PATH or PATH=VALUE, such as .status=UP", s)
	}
	if _, err := splitPath(p); err != nil {
		return jsonCheck{}, fmt.Errorf("invalid --json %q: %w", s, err)
	}
	return jsonCheck{path: p, value: value, hasValue: hasValue}, nil
}

// jsonText is how a JSON value compares with --json's VALUE: strings as
// they are, numbers as written shortest, true/false/null, objects and
// arrays as compact JSON.
func jsonText(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case nil:
		return "null"
	case bool:
		return strconv.FormatBool(x)
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func (k *httpOptions) probe(o *options, target string) (probe, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, fmt.Errorf("invalid URL: %v", errors.Unwrap(err))
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("want an http:// or https:// URL")
	}
	o.env.Secrets.AddUserinfo(u.User)
	p := &httpProbe{url: target, method: strings.ToUpper(k.method), contains: k.bodyContains, secrets: o.env.Secrets}
	if k.bodyRegex != "" {
		if p.bodyRE, err = regexp.Compile(k.bodyRegex); err != nil {
			return nil, fmt.Errorf("invalid --body-regex: %v", err)
		}
	}
	for _, j := range k.jsonChecks {
		c, err := parseJSONCheck(j)
		if err != nil {
			return nil, err
		}
		p.json = append(p.json, c)
	}
	for _, h := range k.expectHeaders {
		k, v, ok := strings.Cut(h, ":")
		k = strings.TrimSpace(k)
		if !ok || k == "" || strings.ContainsAny(k, " \t") {
			return nil, fmt.Errorf("invalid --expect-header %q: want 'Name: value' (or 'Name:' for present)", h)
		}
		p.expectH = append(p.expectH, header.Header{Name: http.CanonicalHeaderKey(k), Value: strings.TrimSpace(v)})
	}
	if k.data != "" {
		if f, ok := strings.CutPrefix(k.data, "@"); ok {
			if _, err := os.ReadFile(f); err != nil {
				return nil, fmt.Errorf("--data @%s: %v", f, err)
			}
			p.dataFile = f
		} else {
			p.data = k.data
		}
		if p.method == "" {
			p.method = http.MethodPost // as curl -d
		}
	}
	if p.method == "" {
		p.method = http.MethodGet
	}
	if p.statuses, err = parseStatuses(k.status); err != nil {
		return nil, err
	}
	if p.headers, err = header.ParseAll(k.headers, o.env.Secrets); err != nil {
		return nil, err
	}
	if _, err := http.NewRequest(p.method, target, nil); err != nil {
		return nil, fmt.Errorf("invalid request: %v", err)
	}
	tlsCfg, err := o.tlsOpts.Config(u.Hostname())
	if err != nil {
		return nil, err
	}
	if o.tlsOpts.ServerName == "" {
		tlsCfg.ServerName = "" // let net/http verify each redirect's own host
	}
	topts := transport.Options{TLS: tlsCfg, NoKeepAlives: true, Timeout: o.attemptTimeout}
	if net.ParseIP(u.Hostname()) == nil {
		r, err := o.nameResolver()
		if err != nil {
			return nil, err
		}
		topts.Dial = r.DialContext
	}
	tr := transport.New(topts)
	p.client = &http.Client{Transport: tr, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if k.noFollow {
			return http.ErrUseLastResponse // the 3xx itself is judged
		}
		if len(via) >= 10 {
			return errors.New("stopped after 10 redirects")
		}
		return tlsconfig.Downgrade(req, via, redact.URL)
	}}
	return p, nil
}

func (p *httpProbe) Check(ctx context.Context) error {
	var body io.Reader
	if p.dataFile != "" {
		b, err := os.ReadFile(p.dataFile)
		if err != nil {
			return fmt.Errorf("--data @%s: %v", p.dataFile, err)
		}
		body = bytes.NewReader(b)
	} else if p.data != "" {
		body = strings.NewReader(p.data)
	}
	req, err := http.NewRequestWithContext(ctx, p.method, p.url, body)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", "initbox-waitfor")
	if body != nil && !p.hasHeader("Content-Type") {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded") // as curl -d
	}
	if err := header.Apply(req, p.headers, p.secrets); err != nil {
		return err
	}
	resp, err := p.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return neterr.Reason(err)
	}
	defer resp.Body.Close()
	if !statusOK(p.statuses, resp.StatusCode) {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("status %s", resp.Status)
	}
	for _, h := range p.expectH {
		vals, ok := resp.Header[h.Name]
		if !ok {
			return fmt.Errorf("status %d but no %s header", resp.StatusCode, h.Name)
		}
		found := h.Value == ""
		for _, v := range vals {
			found = found || strings.Contains(v, h.Value)
		}
		if !found {
			got, want := strconv.Quote(strings.Join(vals, ", ")), strconv.Quote(h.Value)
			if redact.IsSecretHeader(h.Name) {
				// A cookie or a credential: which header differs is
				// the news, not its value.
				got, want = redact.Mask, redact.Mask
			}
			return fmt.Errorf("status %d but %s is %s, want %s in it", resp.StatusCode, h.Name, got, want)
		}
	}
	if p.contains == "" && p.bodyRE == nil && len(p.json) == 0 {
		return nil
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return fmt.Errorf("reading the body: %w", neterr.Reason(err))
	}
	if p.contains != "" && !bytes.Contains(b, []byte(p.contains)) {
		return fmt.Errorf("status %d but the body does not contain %q", resp.StatusCode, p.contains)
	}
	if p.bodyRE != nil && !p.bodyRE.Match(b) {
		return fmt.Errorf("status %d but the body does not match %q", resp.StatusCode, p.bodyRE.String())
	}
	if len(p.json) == 0 {
		return nil
	}
	var doc any
	if err := json.Unmarshal(b, &doc); err != nil {
		return fmt.Errorf("status %d but the body is not JSON: %v", resp.StatusCode, err)
	}
	for _, c := range p.json {
		v, ok := lookupPath(doc, c.path)
		switch {
		case !ok:
			return fmt.Errorf("status %d but .%s is not in the body", resp.StatusCode, c.path)
		case c.hasValue && jsonText(v) != c.value:
			got, want := quoteReply([]byte(jsonText(v))), c.value
			if secretPath(c.path) {
				got, want = redact.Mask, redact.Mask
			}
			return fmt.Errorf("status %d but .%s is %s, want %s", resp.StatusCode, c.path, got, want)
		}
	}
	return nil
}

func (p *httpProbe) hasHeader(name string) bool {
	for _, h := range p.headers {
		if strings.EqualFold(h.Name, name) {
			return true
		}
	}
	return false
}

type statusRange struct{ lo, hi int }

// parseStatuses reads "200-399", "200,204", "2xx".
func parseStatuses(s string) ([]statusRange, error) {
	var out []statusRange
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		bad := fmt.Errorf("invalid value %q for --status: want codes, ranges or classes such as 200,204 or 200-399 or 2xx", s)
		switch {
		case len(part) == 3 && strings.HasSuffix(strings.ToLower(part), "xx"):
			d := int(part[0] - '0')
			if d < 1 || d > 5 {
				return nil, bad
			}
			out = append(out, statusRange{d * 100, d*100 + 99})
		case strings.Contains(part, "-"):
			a, b, _ := strings.Cut(part, "-")
			lo, err1 := strconv.Atoi(strings.TrimSpace(a))
			hi, err2 := strconv.Atoi(strings.TrimSpace(b))
			if err1 != nil || err2 != nil || lo < 100 || hi > 599 || lo > hi {
				return nil, bad
			}
			out = append(out, statusRange{lo, hi})
		default:
			n, err := strconv.Atoi(part)
			if err != nil || n < 100 || n > 599 {
				return nil, bad
			}
			out = append(out, statusRange{n, n})
		}
	}
	return out, nil
}

func statusOK(rs []statusRange, code int) bool {
	for _, r := range rs {
		if code >= r.lo && code <= r.hi {
			return true
		}
	}
	return false
}

// secretPath: the JSON path's last key names a credential (.password,
// .auth.token, .items[0].client_secret), so its value is not quoted.
func secretPath(path string) bool {
	last := path
	if i := strings.LastIndexByte(last, '.'); i >= 0 {
		last = last[i+1:]
	}
	if i := strings.IndexByte(last, '['); i >= 0 {
		last = last[:i]
	}
	return last != "" && redact.SecretKey(last)
}
