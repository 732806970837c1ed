package fetch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"sync/atomic"
	"time"

	getter "github.com/hashicorp/go-getter/v2"

	"github.com/initbox/initbox/internal/cli"
	"github.com/initbox/initbox/internal/header"
	"github.com/initbox/initbox/internal/neterr"
	"github.com/initbox/initbox/internal/redact"
	"github.com/initbox/initbox/internal/retry"
	"github.com/initbox/initbox/internal/tlsconfig"
	"github.com/initbox/initbox/internal/transport"
)

// transfer is one attempt's body: its expected length, and its bytes,
// counted, bounded and hashed as they stream.
type transfer struct {
	length int64 // Content-Length, -1 if unknown
	got    atomic.Int64
	max    int64
	hash   *hashers
	// The response's validators, for --every's next conditional GET.
	etag, lastModified string
}

// errNotModified is a conditional GET's 304: what DEST holds is current.
var errNotModified = errors.New("not modified")

// tooLargeError ends a body that passes --max-size, with or without a
// Content-Length: never a silent truncation.
type tooLargeError struct{ max int64 }

func (e *tooLargeError) Error() string {
	return fmt.Sprintf("the download is larger than --max-size %s", cli.FormatBytes(e.max))
}

// chunk is the copy unit, and nbuf how many chunks are in flight. Large,
// because every read and write is a system call and every hand-over to the
// hashing goroutine may wake a thread: on the 1 GiB benchmark (BENCHMARKS.md)
// two 4 MiB chunks took ~3,000 voluntary context switches where four 1 MiB
// chunks took ~13,500, and fetch's CPU time fell by a fifth (1.8 → 1.5 s
// with the server's); go-getter's 32 KiB copy ran at half the speed of 1 MiB.
const (
	chunk = 4 << 20
	nbuf  = 2
)

// bufSize is the size of pump's buffers for a body of length bytes (-1 when
// unknown): a small file does not need megabytes. One byte more than the
// length lets the read that fills it also see the end.
func bufSize(length int64) int {
	if length >= 0 && length < chunk {
		return max(int(length)+1, 4<<10)
	}
	return chunk
}

// pump copies r to w in chunks, counting against t.max (0: no limit) and
// hashing each chunk (when t.hash is set) on another goroutine while the
// next one is read, so that hashing overlaps the transfer instead of
// following it. It stops when ctx ends.
func pump(ctx context.Context, w io.Writer, r io.Reader, t *transfer) (int64, error) {
	free := make(chan []byte, nbuf)
	for i := 0; i < nbuf; i++ {
		free <- make([]byte, bufSize(t.length))
	}
	full := make(chan []byte, nbuf)
	hashed := make(chan struct{})
	go func() {
		for b := range full {
			if t.hash != nil {
				t.hash.Write(b)
			}
			free <- b[:cap(b)]
		}
		close(hashed)
	}()
	defer func() { close(full); <-hashed }()
	var total int64
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		b := <-free
		// Fill the chunk, counting (for progress and --max-size) as
		// bytes arrive rather than once it is full.
		n := 0
		var rerr error
		for n < len(b) && rerr == nil {
			var m int
			m, rerr = r.Read(b[n:])
			n += m
			total = t.got.Add(int64(m))
			if t.max > 0 && total > t.max {
				free <- b
				return total, &tooLargeError{t.max}
			}
		}
		if n > 0 {
			if _, err := w.Write(b[:n]); err != nil {
				free <- b
				return total, err
			}
			full <- b[:n]
		} else {
			free <- b
		}
		switch rerr {
		case nil:
		case io.EOF:
			return total, nil
		default:
			return total, rerr
		}
	}
}

// httpClient builds the HTTP client: TLS verified (or as the flags say), a
// redirect from https to http refused, at most 10 redirects.
func (c *command) httpClient() (*http.Client, error) {
	tlsCfg, err := c.tls.Config("")
	if err != nil {
		return nil, err
	}
	base := transport.New(transport.Options{TLS: tlsCfg, ResponseHeaderTimeout: 60 * time.Second, NoCompression: true})
	return &http.Client{
		Transport: base,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 10 {
				return errors.New("stopped after 10 redirects")
			}
			return tlsconfig.Downgrade(req, via, redact.URL)
		},
	}, nil
}

// httpSource is a URL's file: https://host/a.tgz?checksum=…&archive=tgz.
type httpSource struct {
	srcInfo
	url *url.URL
}

func (s *httpSource) prepare(c *command) error {
	c.env.Secrets.AddUserinfo(s.url.User)
	return c.prepareDownload()
}

func (s *httpSource) run(ctx context.Context, c *command) (string, error) {
	return c.runDownload(ctx, s)
}

func (s *httpSource) failure(c *command, err error) error { return c.classify(neterr.Reason(err)) }

// httpGetter is a go-getter Getter for http and https files, of initbox's
// own: go-getter's HttpGetter copies in 32 KiB steps, cannot hash while
// streaming, and truncates silently at MaxBytes. It streams through
// transfer (counted, bounded by --max-size, hashed), with the client of
// httpClient.
type httpGetter struct {
	fileOnly
	c *command
	t *transfer // the attempt's (getFile)
}

func (g *httpGetter) Detect(req *getter.Request) (bool, error) {
	if req.Forced != "" && req.Forced != "http" && req.Forced != "https" {
		return false, nil
	}
	u, err := url.Parse(req.Src)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https"), nil
}

func (g *httpGetter) source(req *getter.Request, base srcInfo) (source, error) {
	u, err := url.Parse(req.Src)
	if err != nil {
		return nil, fmt.Errorf("invalid URL: %v", err.(*url.Error).Err)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("the URL has no host")
	}
	s := &httpSource{srcInfo: base, url: u}
	s.kind = "http"
	q := u.Query()
	s.checksum, s.archive = q.Get("checksum"), q.Get("archive")
	q.Del("checksum")
	q.Del("archive")
	u.RawQuery = q.Encode()
	s.getterSrc = u.String()
	s.name = path.Base(u.Path)
	if s.name == "/" || s.name == "." {
		s.name = ""
	}
	return s, nil
}

func (g *httpGetter) GetFile(ctx context.Context, req *getter.Request) error {
	hreq, err := http.NewRequestWithContext(ctx, http.MethodGet, req.URL().String(), nil)
	if err != nil {
		return err
	}
	hreq.Header.Set("User-Agent", "initbox-fetch/"+cli.Version())
	if v := g.c.validators; v.etag != "" || v.lastModified != "" {
		// --every: ask for the body only if it changed since the last one
		// published (RFC 9110 13.1: If-None-Match wins where both apply).
		if v.etag != "" {
			hreq.Header.Set("If-None-Match", v.etag)
		}
		if v.lastModified != "" {
			hreq.Header.Set("If-Modified-Since", v.lastModified)
		}
	}
	if err := header.Apply(hreq, g.c.headers, g.c.env.Secrets); err != nil {
		return err
	}
	client, err := g.c.httpClient()
	if err != nil {
		return err
	}
	resp, err := client.Do(hreq)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	t := g.t
	t.length = resp.ContentLength
	if resp.StatusCode == http.StatusNotModified && (g.c.validators.etag != "" || g.c.validators.lastModified != "") {
		return errNotModified
	}
	t.etag, t.lastModified = resp.Header.Get("ETag"), resp.Header.Get("Last-Modified")
	if resp.StatusCode != http.StatusOK {
		return &statusError{code: resp.StatusCode, what: "the server answered", retryAfter: retry.ParseRetryAfter(resp.Header.Get("Retry-After"))}
	}
	if t.max > 0 && resp.ContentLength > t.max {
		return &tooLargeError{t.max}
	}
	f, err := os.OpenFile(req.Dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = pump(ctx, f, resp.Body, t)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
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
			sum, err := fromSums(f, c.info.name)
			if err != nil {
				return nil, retry.Permanent(fmt.Errorf("the checksum file %s: %w", u.Path, err))
			}
			return sum, nil
		}
		return nil, fmt.Errorf("invalid --checksum-url %q", redact.URL(raw))
	}
	client, err := c.httpClient()
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, raw, nil)
	if err != nil {
		return nil, err
	}
	if hs, ok := c.src.(*httpSource); ok && u.Host == hs.url.Host {
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
		return nil, &statusError{code: resp.StatusCode, what: "the checksum file", retryAfter: retry.ParseRetryAfter(resp.Header.Get("Retry-After"))}
	}
	sum, err := fromSums(io.LimitReader(resp.Body, 1<<20), c.info.name)
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
