package waitfor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/initbox/initbox/internal/neterr"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/initbox/initbox/internal/header"
	"github.com/initbox/initbox/internal/redact"
	"github.com/initbox/initbox/internal/tlsconfig"
)

var httpKind = kind{
	name:       "http",
	aliases:    []string{"https"},
	schemes:    []string{"http", "https"},
	keepScheme: true,
	new:        newHTTP,
}

// maxBody bounds how much of a body --body-contains reads.
const maxBody = 1 << 20

type httpProbe struct {
	url      string
	method   string
	headers  []header.Header
	statuses []statusRange
	contains string
	client   *http.Client
	secrets  *redact.Set
}

func newHTTP(o *options, target string) (probe, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, fmt.Errorf("invalid URL: %v", errors.Unwrap(err))
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("want an http:// or https:// URL")
	}
	if u.User != nil {
		if pw, ok := u.User.Password(); ok {
			o.env.Secrets.Add(pw)
		}
	}
	p := &httpProbe{url: target, method: strings.ToUpper(o.method), contains: o.bodyContains, secrets: o.env.Secrets}
	if p.statuses, err = parseStatuses(o.status); err != nil {
		return nil, err
	}
	if p.headers, err = header.ParseAll(o.headers, o.env.Secrets); err != nil {
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
	tr := &http.Transport{
		Proxy:             http.ProxyFromEnvironment,
		TLSClientConfig:   tlsCfg,
		DisableKeepAlives: true, // every probe is a fresh look at the server
		ForceAttemptHTTP2: true,
	}
	if net.ParseIP(u.Hostname()) == nil {
		r, err := o.nameResolver()
		if err != nil {
			return nil, err
		}
		tr.DialContext = r.DialContext
	}
	p.client = &http.Client{Transport: tr, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if len(via) >= 10 {
			return errors.New("stopped after 10 redirects")
		}
		return tlsconfig.Downgrade(req, via, redact.URL)
	}}
	return p, nil
}

func (p *httpProbe) Check(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, p.method, p.url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", "initbox-waitfor")
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
	if p.contains == "" {
		return nil
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return fmt.Errorf("reading the body: %w", neterr.Reason(err))
	}
	if !bytes.Contains(body, []byte(p.contains)) {
		return fmt.Errorf("status %d but the body does not contain %q", resp.StatusCode, p.contains)
	}
	return nil
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
