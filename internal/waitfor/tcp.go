package waitfor

import (
	"context"
	"crypto/tls"
	"fmt"
	"github.com/initbox/initbox/internal/neterr"
	"net"
	"strconv"
)

var tcpKind = kind{
	name:    "tcp",
	schemes: []string{"tcp"},
	new:     newTCP,
}

type tcpProbe struct {
	addr string
	dial func(ctx context.Context, network, addr string) (net.Conn, error)
	tls  *tls.Config // nil: a connect is enough
}

func newTCP(o *options, target string) (probe, error) {
	host, port, err := net.SplitHostPort(target)
	if err != nil || host == "" {
		return nil, fmt.Errorf("want HOST:PORT")
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		return nil, fmt.Errorf("invalid port %q", port)
	}
	p := &tcpProbe{addr: target}
	if p.dial, err = o.dialer(host); err != nil {
		return nil, err
	}
	if o.tls {
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
	conn, err := p.dial(ctx, "tcp", p.addr)
	if err != nil {
		return neterr.Reason(err)
	}
	defer conn.Close()
	if p.tls == nil {
		return nil
	}
	tc := tls.Client(conn, p.tls)
	if err := tc.HandshakeContext(ctx); err != nil {
		return neterr.Reason(err)
	}
	return tc.Close()
}
