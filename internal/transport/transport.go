// Package transport builds the one kind of http.Transport every initbox
// client uses (waitfor http, fetch, register, the Kubernetes API client):
// proxies from the environment, HTTP/1.1 (build.flags leaves HTTP/2 out of
// net/http), bounded dials and TLS handshakes, and each client's few
// differences named in Options.
package transport

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"time"
)

// Options are what differs between initbox's HTTP clients.
type Options struct {
	TLS *tls.Config
	// Dial replaces the dialer (waitfor's pod-faithful resolver); nil is a
	// net.Dialer bounded by Timeout, with 30 s keep-alives.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// Timeout bounds a dial and, separately, a TLS handshake (default 30 s).
	// net/http finishes a dial its cancelled request no longer wants, so
	// this is also how long such a dial outlives its attempt.
	Timeout time.Duration
	// ResponseHeaderTimeout bounds the wait for a response's headers
	// after the request is sent (0: none; the caller's context bounds it).
	ResponseHeaderTimeout time.Duration
	// NoKeepAlives: every request on a new connection (a probe is a fresh
	// look at the server).
	NoKeepAlives bool
	// NoCompression: the body is the server's bytes, as hashed (fetch).
	NoCompression bool
}

// New builds the transport for o.
func New(o Options) *http.Transport {
	if o.Timeout <= 0 {
		o.Timeout = 30 * time.Second
	}
	dial := o.Dial
	if dial == nil {
		dial = (&net.Dialer{Timeout: o.Timeout, KeepAlive: 30 * time.Second}).DialContext
	}
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           dial,
		TLSClientConfig:       o.TLS,
		TLSHandshakeTimeout:   o.Timeout,
		ResponseHeaderTimeout: o.ResponseHeaderTimeout,
		DisableKeepAlives:     o.NoKeepAlives,
		DisableCompression:    o.NoCompression,
	}
}
