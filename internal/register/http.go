package register

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/initbox/initbox/internal/atomicfile"
	"github.com/initbox/initbox/internal/cli"
	"github.com/initbox/initbox/internal/header"
	"github.com/initbox/initbox/internal/neterr"
	"github.com/initbox/initbox/internal/oserr"
	"github.com/initbox/initbox/internal/redact"
	"github.com/initbox/initbox/internal/retry"
	"github.com/initbox/initbox/internal/tlsconfig"
	"github.com/initbox/initbox/internal/tmpl"
	"github.com/initbox/initbox/internal/transport"
)

// tmplT is a parsed template with the options that execute it.
type tmplT struct {
	t    *template.Template
	opts *tmpl.Options
}

func (t *tmplT) exec(data tmpl.Data) (string, error) {
	var b strings.Builder
	err := t.opts.Execute(t.t, data, &b)
	return b.String(), err
}

// field is one form field: a literal name and a templated value.
type field struct {
	name  string
	value *tmplT
}

// request is one rendered HTTP request.
type request struct {
	method, url, contentType string
	body                     []byte
	key                      string // Idempotency-Key
}

type httpTarget struct {
	c       *command
	client  *http.Client
	headers []header.Header
	expect  []statusRange
	urlT    *tmplT
	form    []field
	json    *tmplT
	deURL   *tmplT
	deForm  []field

	identity string // the pod's UID, or namespace/name
	reg, de  request
	shown    string // the URL without credentials, for logs
}

type statusRange struct{ lo, hi int }

func (c *command) newHTTP(rawURL string) (target, error) {
	if err := c.only("http", map[string]bool{
		"table": c.table != "", "key": len(c.keys) > 0, "set": len(c.sets) > 0,
		"touch": len(c.touch) > 0, "create-table": c.createTable,
	}); err != nil {
		return nil, err
	}
	h := &httpTarget{c: c}
	var err error
	if h.urlT, err = c.parse("URL", rawURL); err != nil {
		return nil, err
	}
	// A templated URL ("http://{{ .Env.X_SERVICE_HOST }}:{{ … }}/") is no
	// URL until rendered: build checks it then.
	if u, err := url.Parse(rawURL); !strings.Contains(rawURL, "{{") && (err != nil || u.Scheme != "http" && u.Scheme != "https" || u.Host == "") {
		return nil, fmt.Errorf("invalid URL %q: want http://HOST/PATH or https://…", redact.URL(rawURL))
	}
	h.shown = redact.URL(rawURL)
	if len(c.data) > 0 && c.json != "" {
		return nil, errors.New("--data and --json exclude each other: a body is a form or JSON")
	}
	for _, d := range c.data {
		f, err := c.parseForm("--data", d)
		if err != nil {
			return nil, err
		}
		h.form = append(h.form, f...)
	}
	if c.json != "" {
		text := c.json
		if path, ok := strings.CutPrefix(text, "@"); ok {
			b, err := os.ReadFile(path)
			if err != nil {
				return nil, fmt.Errorf("--json %s: %w", path, oserr.Reason(err))
			}
			text = string(b)
		}
		if h.json, err = c.parse("--json", text); err != nil {
			return nil, err
		}
	}
	if c.deregURL != "" {
		if h.deURL, err = c.parse("--deregister-url", c.deregURL); err != nil {
			return nil, err
		}
	}
	if c.deregData != "" {
		if h.deForm, err = c.parseForm("--deregister-data", c.deregData); err != nil {
			return nil, err
		}
	}
	for _, m := range []string{c.method, c.deregMethod} {
		if m == "" || strings.ContainsAny(m, " \t\r\n") {
			return nil, fmt.Errorf("invalid method %q", m)
		}
	}
	if h.expect, err = parseExpect(c.expect); err != nil {
		return nil, err
	}
	if h.headers, err = header.ParseAll(c.headers, c.env.Secrets); err != nil {
		return nil, err
	}
	tlsCfg, err := c.tls.Config("")
	if err != nil {
		return nil, err
	}
	h.client = &http.Client{
		Transport: transport.New(transport.Options{TLS: tlsCfg}),
		// A refused redirect is final: retrying meets the same one.
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			switch {
			case len(via) >= 10:
				return retry.Permanent(errors.New("stopped after 10 redirects"))
			case req.Method != via[0].Method:
				// A 301/302/303 turns a POST into a GET without its body:
				// the registration would silently not happen.
				return retry.Permanent(fmt.Errorf("the server redirects %s to %s as a %s; give the final URL", via[0].Method, redact.URL(req.URL.String()), req.Method))
			}
			if err := tlsconfig.Downgrade(req, via, redact.URL); err != nil {
				return retry.Permanent(err)
			}
			return nil
		},
	}
	return h, nil
}

// parseForm parses K=TEMPLATE&K2=TEMPLATE, splitting only outside {{ }}.
func (c *command) parseForm(flag, s string) ([]field, error) {
	var out []field
	for _, part := range splitOutside(s, '&') {
		if part == "" {
			continue
		}
		kv := splitOutside(part, '=')
		name := kv[0]
		if len(kv) < 2 || name == "" || strings.Contains(name, "{{") {
			return nil, fmt.Errorf("invalid %s %q: want NAME=TEMPLATE", flag, part)
		}
		t, err := c.parse(flag+" "+name, strings.TrimPrefix(part, name+"="))
		if err != nil {
			return nil, err
		}
		out = append(out, field{name: name, value: t})
	}
	return out, nil
}

// splitOutside splits s at sep where sep is not inside a {{ }} action.
func splitOutside(s string, sep byte) []string {
	var parts []string
	depth, start := 0, 0
	for i := 0; i < len(s); i++ {
		switch {
		case strings.HasPrefix(s[i:], "{{"):
			depth++
			i++
		case strings.HasPrefix(s[i:], "}}") && depth > 0:
			depth--
			i++
		case s[i] == sep && depth == 0:
			parts = append(parts, s[start:i])
			start = i + 1
		}
	}
	return append(parts, s[start:])
}

func parseExpect(s string) ([]statusRange, error) {
	var out []statusRange
	bad := fmt.Errorf("invalid value %q for --expect-status: want codes, ranges or classes such as 200,201 or 200-299 or 2xx", s)
	code := func(p string) (int, bool) {
		n, err := strconv.Atoi(p)
		return n, err == nil && n >= 100 && n <= 599
	}
	for _, p := range strings.Split(s, ",") {
		p = strings.TrimSpace(strings.ToLower(p))
		if len(p) == 3 && p[0] >= '1' && p[0] <= '5' && p[1:] == "xx" {
			lo := int(p[0]-'0') * 100
			out = append(out, statusRange{lo, lo + 99})
			continue
		}
		a, b, isRange := strings.Cut(p, "-")
		lo, ok1 := code(a)
		hi, ok2 := lo, true
		if isRange {
			hi, ok2 = code(b)
		}
		if !ok1 || !ok2 || hi < lo {
			return nil, bad
		}
		out = append(out, statusRange{lo, hi})
	}
	return out, nil
}

func (h *httpTarget) expected(code int) bool {
	for _, r := range h.expect {
		if code >= r.lo && code <= r.hi {
			return true
		}
	}
	return false
}

func (h *httpTarget) label() string { return h.shown }

func (h *httpTarget) render(data tmpl.Data) error {
	if pod, ok := data["Pod"].(map[string]any); ok {
		if uid, ok := pod["UID"].(string); ok && uid != "" {
			h.identity = uid
		} else if name, ok := pod["Name"].(string); ok {
			ns, _ := pod["Namespace"].(string)
			h.identity = ns + "/" + name
		}
	}
	var err error
	if h.reg, err = h.build(data, h.c.method, h.urlT, h.form, h.json); err != nil {
		return err
	}
	deURL := h.urlT
	if h.deURL != nil {
		deURL = h.deURL
	}
	h.de, err = h.build(data, h.c.deregMethod, deURL, h.deForm, nil)
	return err
}

// build renders one request and derives its Idempotency-Key.
func (h *httpTarget) build(data tmpl.Data, method string, urlT *tmplT, form []field, js *tmplT) (request, error) {
	r := request{method: method}
	var err error
	if r.url, err = urlT.exec(data); err != nil {
		return r, err
	}
	u, err := url.Parse(r.url)
	if err != nil || u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return r, fmt.Errorf("the URL rendered as %q, not an http(s) URL", redact.URL(r.url))
	}
	// A rendered URL's credentials (from the environment, a file) are
	// secrets too, in every form a server may echo them.
	h.c.env.Secrets.AddUserinfo(u.User)
	for k, vs := range u.Query() {
		if redact.SecretKey(k) {
			h.c.env.Secrets.Add(vs...)
		}
	}
	switch {
	case len(form) > 0:
		var b strings.Builder
		for i, f := range form {
			v, err := f.value.exec(data)
			if err != nil {
				return r, err
			}
			if i > 0 {
				b.WriteByte('&')
			}
			b.WriteString(url.QueryEscape(f.name) + "=" + url.QueryEscape(v))
		}
		r.body, r.contentType = []byte(b.String()), "application/x-www-form-urlencoded"
	case js != nil:
		s, err := js.exec(data)
		if err != nil {
			return r, err
		}
		if err := json.Unmarshal([]byte(s), new(any)); err != nil {
			return r, fmt.Errorf("--json is not JSON after templating: %v (write strings as {{ .Pod.Name | toJson }})", err)
		}
		r.body, r.contentType = []byte(s), "application/json"
	}
	sum := sha256.New()
	for _, p := range []string{h.identity, method, r.url} {
		sum.Write([]byte(p))
		sum.Write([]byte{0})
	}
	sum.Write(r.body)
	r.key = hex.EncodeToString(sum.Sum(nil)[:16])
	return r, nil
}

// statusError is a response outside --expect-status.
type statusError struct {
	code  int
	text  string
	after time.Duration
}

func (e *statusError) Error() string             { return e.text }
func (e *statusError) retryAfter() time.Duration { return e.after }

func (h *httpTarget) register(ctx context.Context, heartbeat int) error {
	key := h.reg.key
	if heartbeat > 0 {
		// A server that drops duplicates must still see each heartbeat;
		// each one keeps its key over its retries.
		key += "-" + strconv.Itoa(heartbeat)
	}
	body, err := h.do(ctx, h.reg, key)
	if err != nil {
		return err
	}
	if heartbeat == 0 && h.c.output != "" {
		if err := atomicfile.Write(ctx, h.c.output, bytes.NewReader(body), 0o644); err != nil {
			return retry.Permanent(fmt.Errorf("--output: %w", err))
		}
	}
	return nil
}

func (h *httpTarget) deregister(ctx context.Context) error {
	_, err := h.do(ctx, h.de, h.de.key)
	var se *statusError
	if errors.As(err, &se) && (se.code == http.StatusNotFound || se.code == http.StatusGone) {
		h.c.env.Log.Info("already gone", "target", h.shown, "status", se.code)
		return nil
	}
	return err
}

// maxBody bounds what is read of a response: an ID or a short message.
const maxBody = 1 << 20

// do sends r once and returns the body of an expected response.
func (h *httpTarget) do(ctx context.Context, r request, key string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, r.method, r.url, bytes.NewReader(r.body))
	if err != nil {
		return nil, retry.Permanent(err)
	}
	req.Header.Set("User-Agent", "initbox-register/"+cli.Version())
	req.Header.Set("Idempotency-Key", key)
	if r.contentType != "" {
		req.Header.Set("Content-Type", r.contentType)
	}
	for _, hd := range h.headers {
		v, err := hd.Resolve(h.c.env.Secrets)
		if err != nil {
			return nil, retry.Permanent(err)
		}
		req.Header.Set(hd.Name, v)
	}
	resp, err := h.client.Do(req)
	if err != nil {
		if retry.IsPermanent(err) {
			return nil, err // a refused redirect, inside the *url.Error
		}
		return nil, neterr.Reason(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return nil, neterr.Reason(err)
	}
	if h.expected(resp.StatusCode) {
		if len(body) > maxBody {
			return nil, retry.Permanent(fmt.Errorf("the response body is over %s", cli.FormatBytes(maxBody)))
		}
		return body, nil
	}
	se := &statusError{code: resp.StatusCode, text: "HTTP " + resp.Status + excerpt(resp.Header.Get("Content-Type"), body)}
	switch code := resp.StatusCode; {
	case code == http.StatusNotImplemented, code == http.StatusHTTPVersionNotSupported:
	case code >= 500, code == http.StatusRequestTimeout, code == http.StatusTooManyRequests:
		se.after = retry.ParseRetryAfter(resp.Header.Get("Retry-After"))
		return nil, se
	}
	return nil, retry.Permanent(se)
}

// excerpt is the start of a text or JSON response body, on one line, for
// an error; an HTML error page says nothing the status does not.
func excerpt(contentType string, b []byte) string {
	if strings.Contains(contentType, "html") {
		return ""
	}
	s := strings.Join(strings.Fields(strings.ToValidUTF8(string(b), "?")), " ")
	if s == "" {
		return ""
	}
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return ": " + s
}
