package fetch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	getter "github.com/hashicorp/go-getter/v2"

	"github.com/initbox/initbox/internal/cli"
	"github.com/initbox/initbox/internal/header"
	"github.com/initbox/initbox/internal/redact"
	"github.com/initbox/initbox/internal/retry"
)

// transfer is what one attempt learned: the response status, the server's
// Retry-After, and the body's bytes, hashed and bounded as they stream.
type transfer struct {
	status     int
	retryAfter time.Duration
	length     int64 // Content-Length, -1 if unknown
	got        atomic.Int64
	max        int64
	hash       *hashers
	tooLarge   bool
}

// errTooLarge ends a body that passes --max-size, with or without a
// Content-Length: never a silent truncation.
type tooLargeError struct{ max int64 }

func (e *tooLargeError) Error() string {
	return fmt.Sprintf("the download is larger than --max-size %s", cli.FormatBytes(e.max))
}

// meter is the http.RoundTripper under go-getter's HttpGetter: it records
// the status, and wraps a successful body so that it is hashed, counted and
// bounded while go-getter copies it.
type meter struct {
	base http.RoundTripper
	t    *transfer
}

func (m *meter) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := m.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	m.t.status = resp.StatusCode
	m.t.retryAfter = retryAfter(resp.Header.Get("Retry-After"))
	if req.Method == http.MethodGet && resp.StatusCode == http.StatusOK {
		m.t.length = resp.ContentLength
		if m.t.max > 0 && resp.ContentLength > m.t.max {
			resp.Body.Close()
			m.t.tooLarge = true
			return nil, &tooLargeError{m.t.max}
		}
		resp.Body = &meteredBody{rc: resp.Body, t: m.t}
	}
	return resp, nil
}

type meteredBody struct {
	rc io.ReadCloser
	t  *transfer
}

func (b *meteredBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if n > 0 {
		got := b.t.got.Add(int64(n))
		if b.t.max > 0 && got > b.t.max {
			b.t.tooLarge = true
			return 0, &tooLargeError{b.t.max}
		}
		b.t.hash.Write(p[:n])
	}
	return n, err
}

func (b *meteredBody) Close() error { return b.rc.Close() }

// retryAfter reads Retry-After in seconds or as an HTTP date, capped at
// five minutes.
func retryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	var d time.Duration
	if n, err := strconv.Atoi(v); err == nil {
		d = time.Duration(n) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = time.Until(t)
	}
	return min(max(d, 0), 5*time.Minute)
}

// httpClient builds the client go-getter uses: TLS verified (or as the
// flags say), a redirect from https to http refused, at most 10 redirects,
// and the meter for this attempt.
func (c *command) httpClient(t *transfer) (*http.Client, error) {
	tlsCfg, err := c.tls.Config("")
	if err != nil {
		return nil, err
	}
	base := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       tlsCfg,
		TLSHandshakeTimeout:   30 * time.Second,
		ResponseHeaderTimeout: 60 * time.Second,
		ForceAttemptHTTP2:     true,
		DisableCompression:    true, // the bytes hashed are the bytes sent
	}
	return &http.Client{
		Transport: &meter{base: base, t: t},
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 10 {
				return errors.New("stopped after 10 redirects")
			}
			if via[0].URL.Scheme == "https" && req.URL.Scheme != "https" {
				return &redirectError{to: redact.URL(req.URL.String())}
			}
			return nil
		},
	}, nil
}

type redirectError struct{ to string }

func (e *redirectError) Error() string {
	return "refused a redirect from https to plain http (" + e.to + ")"
}

// getHTTP downloads the source into the new file dst through go-getter's
// HttpGetter (no HEAD first, no X-Terraform-Get), hashing as it streams.
func (c *command) getHTTP(ctx context.Context, dst string, t *transfer) error {
	client, err := c.httpClient(t)
	if err != nil {
		return err
	}
	hdr := http.Header{}
	hdr.Set("User-Agent", "initbox-fetch/"+cli.Version())
	req, _ := http.NewRequest(http.MethodGet, c.src.url.String(), nil)
	if err := header.Apply(req, c.headers, c.env.Secrets); err != nil {
		return err
	}
	for k, v := range req.Header {
		hdr[k] = v
	}
	hg := &getter.HttpGetter{
		Client:                client,
		Header:                hdr,
		DoNotCheckHeadFirst:   true,
		XTerraformGetDisabled: true,
	}
	gc := &getter.Client{Getters: []getter.Getter{hg}, Decompressors: map[string]getter.Decompressor{}}
	_, err = gc.Get(ctx, &getter.Request{Src: c.src.url.String(), Dst: dst, GetMode: getter.ModeFile, Pwd: "/"})
	if err != nil {
		return err
	}
	if t.status != http.StatusOK {
		return fmt.Errorf("unexpected status %d", t.status)
	}
	if t.length >= 0 && t.got.Load() != t.length {
		return fmt.Errorf("the body ended after %d of %d bytes", t.got.Load(), t.length)
	}
	return nil
}

// getSums fetches a checksum file (small, bounded) with the same client.
// Headers go along only to the source's own host.
func (c *command) getSums(ctx context.Context, raw string) (*checksum, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		if err == nil && (u.Scheme == "" || u.Scheme == "file") {
			f, err := os.Open(u.Path)
			if err != nil {
				return nil, retry.Permanent(fmt.Errorf("reading --checksum-url: %w", err))
			}
			defer f.Close()
			sum, err := fromSums(f, c.src.name)
			if err != nil {
				return nil, retry.Permanent(fmt.Errorf("the checksum file %s: %w", u.Path, err))
			}
			return sum, nil
		}
		return nil, fmt.Errorf("invalid --checksum-url %q", redact.URL(raw))
	}
	t := &transfer{max: 1 << 20, hash: newHashers(nil), length: -1}
	client, err := c.httpClient(t)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, raw, nil)
	if err != nil {
		return nil, err
	}
	if c.src.url != nil && u.Host == c.src.url.Host {
		if err := header.Apply(req, c.headers, c.env.Secrets); err != nil {
			return nil, err
		}
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetching the checksum file: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, &statusError{code: resp.StatusCode, what: "the checksum file", retryAfter: retryAfter(resp.Header.Get("Retry-After"))}
	}
	sum, err := fromSums(resp.Body, c.src.name)
	if err != nil {
		return nil, retry.Permanent(fmt.Errorf("the checksum file %s: %w", redact.URL(raw), err))
	}
	return sum, nil
}

type statusError struct {
	code       int
	what       string
	retryAfter time.Duration
}

func (e *statusError) Error() string {
	return fmt.Sprintf("%s: %d %s", e.what, e.code, http.StatusText(e.code))
}

// retryable reports whether a status is worth another attempt.
func retryable(code int) bool {
	return code >= 500 || code == http.StatusRequestTimeout || code == http.StatusTooManyRequests
}
