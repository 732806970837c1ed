package waitfor

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/initbox/initbox/internal/cli"
	"github.com/initbox/initbox/internal/neterr"
)

// The tcp kind, registered in the table (register).
var _ = register(&kind{
	name: "tcp", rank: 20, noun: "TCP ports",
	usage: "tcp HOST:PORT", urlForm: "tcp://HOST:PORT",
	help: `a TCP connection opens (with --tls: and a verified handshake; with
		--send/--expect: the reply contains --expect, as --send 'ruok' --expect imok,
		--expect '220 ' for SMTP)`,
	examples: []string{"tcp db:5432 cache:6379", "tcp zk:2181 --send ruok --expect imok"},
	schemes:  []string{"tcp"},
	tls:      fullTLS,
	options:  func() kindOptions { return &tcpOptions{} },
})

type tcpOptions struct {
	send, expect string
	tls          bool
}

func (k *tcpOptions) flags(fs *cli.FlagSet) {
	fs.String(&k.expect, "expect", "", "ready when the reply contains `VALUE` (\\r\\n escapes)")
	fs.String(&k.send, "send", "", "send `TEXT` first (\\r \\n \\t \\0 \\\\ \\xHH escapes), then wait for --expect")
	fs.Bool(&k.tls, "tls", "also complete a verified TLS handshake")
}

type tcpProbe struct {
	addr string
	dial func(ctx context.Context, network, addr string) (net.Conn, error)
	tls  *tls.Config // nil: a connect is enough
	// A line protocol: send, then read until expect arrives.
	send, expect []byte
}

// maxReply bounds what a line-protocol check reads.
const maxReply = 64 << 10

func (k *tcpOptions) probe(o *options, target string) (probe, error) {
	host, port, err := net.SplitHostPort(target)
	if err != nil || host == "" {
		return nil, fmt.Errorf("want HOST:PORT")
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		return nil, fmt.Errorf("invalid port %q", port)
	}
	p := &tcpProbe{addr: target}
	if k.send != "" {
		if p.send, err = unescape(k.send); err != nil {
			return nil, fmt.Errorf("--send: %v", err)
		}
		if k.expect == "" {
			return nil, errors.New("--send needs --expect TEXT: what the reply must contain")
		}
	}
	if k.expect != "" {
		if p.expect, err = unescape(k.expect); err != nil {
			return nil, fmt.Errorf("--expect: %v", err)
		}
	}
	if p.dial, err = o.dialer(host); err != nil {
		return nil, err
	}
	if k.tls {
		if p.tls, err = o.tlsOpts.Config(host); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// dialer returns how to dial host: directly for an IP address, otherwise
// through the pod-faithful resolver.
func (o *options) dialer(host string) (func(ctx context.Context, network, addr string) (net.Conn, error), error) {
	if net.ParseIP(host) != nil {
		var d net.Dialer
		return d.DialContext, nil
	}
	r, err := o.nameResolver()
	if err != nil {
		return nil, err
	}
	return r.DialContext, nil
}

func (p *tcpProbe) Check(ctx context.Context) error {
	conn, stop, err := connect(ctx, p.dial, p.addr, p.tls)
	if err != nil {
		return err
	}
	defer conn.Close()
	defer stop()
	var early []byte // what the server sent first, read while judging the client certificate
	if tc, ok := conn.(*tls.Conn); ok {
		if early, err = clientCertAccepted(ctx, tc, p.tls); err != nil {
			return err
		}
	}
	if p.expect == nil {
		return nil
	}
	return p.converse(ctx, conn, early)
}

// connect opens one attempt's connection: the attempt's deadline set on
// it (and cut at once when ctx ends: call stop when done), then a
// verified TLS handshake when cfg is not nil. The redis and grpc probes
// speak their protocols over it.
func connect(ctx context.Context, dial func(ctx context.Context, network, addr string) (net.Conn, error), addr string, cfg *tls.Config) (conn net.Conn, stop func() bool, err error) {
	conn, err = dial(ctx, "tcp", addr)
	if err != nil {
		return nil, nil, neterr.Reason(err)
	}
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	raw := conn
	stop = context.AfterFunc(ctx, func() { raw.SetDeadline(time.Now()) })
	if cfg != nil {
		tc := tls.Client(conn, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			stop()
			conn.Close()
			return nil, nil, neterr.Reason(err)
		}
		conn = tc
	}
	return conn, stop, nil
}

// clientCertAccepted: in TLS 1.3 the client's handshake ends before the
// server has judged the client's certificate; a refusal comes as an alert
// after it. When a certificate was sent, the probe reads for a moment: an
// alert is "not yet" (the server's words), anything else — a session
// ticket, data, the server closing, silence — means it was taken.
func clientCertAccepted(ctx context.Context, tc *tls.Conn, cfg *tls.Config) ([]byte, error) {
	if cfg.GetClientCertificate == nil || tc.ConnectionState().Version < tls.VersionTLS13 {
		return nil, nil
	}
	dl := time.Now().Add(250 * time.Millisecond)
	if d, ok := ctx.Deadline(); ok && d.Before(dl) {
		dl = d
	}
	tc.SetReadDeadline(dl)
	if d, ok := ctx.Deadline(); ok {
		defer tc.SetReadDeadline(d) // the attempt's, as connect set it
	} else {
		defer tc.SetReadDeadline(time.Time{})
	}
	var b [1]byte
	n, err := tc.Read(b[:])
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Op == "remote error" {
		return nil, fmt.Errorf("the server refused the client certificate: %v", oe.Err)
	}
	return b[:n], nil // a banner's first byte, for --expect
}

// converse sends p.send (if any) and reads until the reply contains
// p.expect, the server closes, or the attempt's deadline.
func (p *tcpProbe) converse(ctx context.Context, conn net.Conn, early []byte) error {
	if len(p.send) > 0 {
		if _, err := conn.Write(p.send); err != nil {
			return neterr.Reason(err)
		}
	}
	got := append([]byte(nil), early...)
	if bytes.Contains(got, p.expect) {
		return nil
	}
	buf := make([]byte, 4096)
	for {
		n, err := conn.Read(buf)
		got = append(got, buf[:n]...)
		if bytes.Contains(got, p.expect) {
			return nil
		}
		if len(got) > maxReply {
			return fmt.Errorf("no %q in the first %d bytes of the reply", p.expect, maxReply)
		}
		if err != nil {
			why := "the reply ended"
			if !errors.Is(err, io.EOF) {
				why = neterr.Reason(err).Error()
			}
			if len(got) == 0 {
				return fmt.Errorf("%s with nothing in it, want %q", why, p.expect)
			}
			if ctx.Err() != nil || errors.Is(err, os.ErrDeadlineExceeded) {
				return &explainedError{fmt.Errorf("the reply so far is without %q: %s", p.expect, quoteReply(got))}
			}
			return fmt.Errorf("%s without %q: %s", why, p.expect, quoteReply(got))
		}
	}
}

// quoteReply shows the start of a reply, quoted, for the reason.
func quoteReply(b []byte) string {
	if len(b) > 80 {
		return strconv.Quote(string(b[:80])) + "…"
	}
	return strconv.Quote(string(b))
}

// unescape reads --send and --expect: the text as written, with \r \n
// \t \0 \\ and \xHH for the bytes a line protocol needs.
func unescape(s string) ([]byte, error) {
	var out []byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' {
			out = append(out, c)
			continue
		}
		if i+1 == len(s) {
			return nil, errors.New(`a lone \ at the end (write \\ for a backslash)`)
		}
		i++
		switch s[i] {
		case 'r':
			out = append(out, '\r')
		case 'n':
			out = append(out, '\n')
		case 't':
			out = append(out, '\t')
		case '0':
			out = append(out, 0)
		case '\\':
			out = append(out, '\\')
		case 'x':
			if i+2 >= len(s) {
				return nil, errors.New(`\x wants two hex digits`)
			}
			v, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
			if err != nil {
				return nil, fmt.Errorf(`\x%s: want two hex digits`, s[i+1:i+3])
			}
			out = append(out, byte(v))
			i += 2
		default:
			return nil, fmt.Errorf(`unknown escape \%c (known: \r \n \t \0 \\ \xHH)`, s[i])
		}
	}
	if len(out) == 0 {
		return nil, errors.New("empty")
	}
	return out, nil
}
