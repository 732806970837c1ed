package waitfor

import (
	"context"
	"fmt"
	"net"
	"sync/atomic"

	"github.com/initbox/initbox/internal/retry"
)

// maxConnBytes is what a server may send on one probe's connection: a
// readiness check reads a greeting, the login's exchange and one reply or
// row, a few KiB. Every protocol probe's connection is capped so (the
// drivers would otherwise hold what a hostile server sends: a MySQL
// greeting of endless 16 MiB continuation packets, a RESP array of arrays
// of bulk strings, an endless result set).
const maxConnBytes = 4 << 20

// ReplyTooLargeError ends a probe whose server sent more than maxConnBytes.
type ReplyTooLargeError struct{ Max int64 }

func (e *ReplyTooLargeError) Error() string {
	return fmt.Sprintf("the server sent more than %d MiB on one connection: a readiness check reads one greeting and one reply", e.Max>>20)
}

// capConn ends reading once max bytes have come.
type capConn struct {
	net.Conn
	left int64
	max  int64
	hit  *atomic.Bool // told when the cap is reached; may be nil
}

func capped(c net.Conn, max int64, hit *atomic.Bool) net.Conn {
	return &capConn{Conn: c, left: max, max: max, hit: hit}
}

func (c *capConn) Read(p []byte) (int, error) {
	if c.left <= 0 {
		if c.hit != nil {
			c.hit.Store(true)
		}
		return 0, &ReplyTooLargeError{Max: c.max}
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.Conn.Read(p)
	c.left -= int64(n)
	return n, err
}

// cappedDial wraps a dial function so that its connections are capped.
func cappedDial(dial func(ctx context.Context, network, addr string) (net.Conn, error)) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		hit, _ := ctx.Value(capKey{}).(*atomic.Bool)
		return capped(c, maxConnBytes, hit), nil
	}
}

type capKey struct{}

// watchCap returns a context whose capped connections report reaching the
// cap to the error check returns: a driver that turns every read error
// into its own ("the connection broke") would otherwise hide why.
func watchCap(ctx context.Context) (context.Context, func(error) error) {
	hit := new(atomic.Bool)
	return context.WithValue(ctx, capKey{}, hit), func(err error) error {
		if err != nil && hit.Load() {
			return retry.Permanent(&ReplyTooLargeError{Max: maxConnBytes})
		}
		return err
	}
}
