package waitfor

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"syscall"

	"github.com/initbox/initbox/internal/cli"
	"github.com/initbox/initbox/internal/neterr"
	"github.com/initbox/initbox/internal/retry"
)

// The Redis probe speaks RESP2 itself: a readiness check sends three
// commands (AUTH, SELECT, PING) and reads three short replies. go-redis
// (v9.23) would add 5.9 MB to the binary, 1.29 MB compressed (measured:
// BENCHMARKS.md, "what each change cost"), for a pool, cluster and pub/sub
// this probe never uses; this file adds 20 KB (10 KB compressed).
// The reply parser is bounded (sizes, nesting) and fuzzed.

// The redis kind, registered in the table (register).
var _ = register(&kind{
	name: "redis", rank: 50, noun: "Redis",
	usage: "redis URL", urlForm: "redis://…",
	help: `PING answers PONG (after AUTH and SELECT): redis://[user:pw@]host[:6379][/db],
		rediss:// for TLS. LOADING, MASTERDOWN, BUSY are "not yet"; a refused password
		ends the wait (WRONGPASS).`,
	examples:   []string{"redis redis://cache:6379 grpc api:9090 --timeout 5m"},
	schemes:    []string{"redis", "rediss", "redis+socket"},
	keepScheme: true,
	tls:        fullTLS,
	options:    func() kindOptions { return &redisOptions{} },
})

type redisOptions struct {
	passwordFile string
	tls          bool
}

func (k *redisOptions) flags(fs *cli.FlagSet) {
	fs.String(&k.passwordFile, "password-file", "", "the password is in `FILE` (read once, never logged)")
	fs.Bool(&k.tls, "tls", "connect over TLS")
}

type redisProbe struct {
	addr       string
	host       string
	user, pass string
	auth       bool // send AUTH: a password, or a user with an empty one (an ACL nopass user)
	db         int
	dial       func(ctx context.Context, network, addr string) (net.Conn, error)
	tls        *tls.Config
}

func (k *redisOptions) probe(o *options, target string) (probe, error) {
	if !strings.Contains(target, "://") {
		target = "redis://" + target
	}
	if pw := userinfoPassword(target); pw != "" {
		o.env.Secrets.Add(pw)
	}
	u, err := url.Parse(target)
	if err != nil {
		return nil, fmt.Errorf("invalid URL: %v", errors.Unwrap(err))
	}
	p := &redisProbe{host: u.Hostname()}
	socket := u.Scheme == "unix" || u.Scheme == "redis+socket"
	switch {
	case socket:
		// A server's unixsocket: redis+socket:///path (or unix:///path,
		// as redis-cli -s PATH), the database as ?db=N.
		if u.Host != "" || u.Path == "" || !strings.HasPrefix(u.Path, "/") {
			return nil, fmt.Errorf("want %s:///PATH (an absolute path to the socket)", u.Scheme)
		}
		p.addr, p.host = u.Path, ""
	case u.Scheme != "redis" && u.Scheme != "rediss":
		return nil, errors.New("want redis://[user:password@]host[:port][/db], rediss:// for TLS or redis+socket:///PATH")
	case p.host == "":
		return nil, errors.New("the URL has no host")
	default:
		port := u.Port()
		if port == "" {
			port = "6379"
		}
		if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
			return nil, fmt.Errorf("invalid port %q", port)
		}
		p.addr = net.JoinHostPort(p.host, port)
	}
	if u.User != nil {
		var hasPW bool
		p.user = u.User.Username()
		p.pass, hasPW = u.User.Password()
		switch {
		case !hasPW && p.user != "":
			// redis://:password@ and redis://password@ both appear in
			// the wild; a lone name is a password, as redis-cli -u reads it.
			p.user, p.pass = "", p.user
			p.auth = true
		case hasPW && (p.pass != "" || p.user != ""):
			// redis://user:@ is an ACL user with no password (nopass):
			// AUTH user "", as redis-cli sends it.
			p.auth = true
		}
	}
	if k.passwordFile != "" {
		b, err := os.ReadFile(k.passwordFile)
		if err != nil {
			return nil, fmt.Errorf("--password-file: %v", err)
		}
		p.pass = strings.TrimRight(string(b), "\r\n")
		p.auth = true
	}
	if p.pass != "" {
		o.env.Secrets.Add(p.pass)
	}
	if db := strings.Trim(u.Path, "/"); db != "" && !socket {
		if p.db, err = strconv.Atoi(db); err != nil || p.db < 0 {
			return nil, fmt.Errorf("invalid database %q in the URL: want a number", db)
		}
	}
	if v := u.Query().Get("db"); v != "" {
		if p.db, err = strconv.Atoi(v); err != nil || p.db < 0 {
			return nil, fmt.Errorf("invalid ?db=%q: want a number", v)
		}
	}
	if u.Scheme == "rediss" || k.tls {
		if socket {
			return nil, errors.New("TLS over a unix socket: drop --tls")
		}
		if p.tls, err = o.tlsOpts.Config(p.host); err != nil {
			return nil, err
		}
	}
	if socket {
		var d net.Dialer
		p.dial = func(ctx context.Context, _, addr string) (net.Conn, error) { return d.DialContext(ctx, "unix", addr) }
	} else if p.dial, err = o.dialer(p.host); err != nil {
		return nil, err
	}
	p.dial = cappedDial(p.dial)
	return p, nil
}

func (p *redisProbe) Check(ctx context.Context) error {
	conn, stop, err := connect(ctx, p.dial, p.addr, p.tls)
	if err != nil {
		return err
	}
	defer conn.Close()
	defer stop()
	br := bufio.NewReader(conn)
	do := func(args ...string) (respValue, error) {
		if _, err := conn.Write(respCommand(args...)); err != nil {
			return respValue{}, neterr.Reason(err)
		}
		v, err := readRESP(br, 0)
		if err != nil {
			closed := errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET)
			if closed && p.tls == nil {
				return v, errors.New("the server closed the connection (is it TLS-only? use rediss://)")
			}
			var ne net.Error
			var big *ReplyTooLargeError
			switch {
			case errors.As(err, &big):
				return v, retry.Permanent(err)
			case errors.As(err, &ne):
				return v, neterr.Reason(err)
			}
			return v, fmt.Errorf("not a Redis reply: %v", err)
		}
		return v, nil
	}
	if p.auth {
		args := []string{"AUTH", p.pass}
		if p.user != "" {
			args = []string{"AUTH", p.user, p.pass}
		}
		v, err := do(args...)
		switch {
		case err != nil:
			return err
		case v.isError() && strings.Contains(v.s, "without any password configured"):
			// A password for a server that has none: redis-cli goes on,
			// and so does the probe.
		case v.isError() && (v.code() == "WRONGPASS" || strings.Contains(v.s, "invalid password")):
			return retry.Permanent(fmt.Errorf("the server refused the password (%s)", v.s))
		case v.isError():
			return redisNotYet(v)
		}
	}
	if p.db != 0 {
		v, err := do("SELECT", strconv.Itoa(p.db))
		switch {
		case err != nil:
			return err
		case v.isError() && transientRedis(v):
			return redisNotYet(v)
		case v.isError():
			// Out of range, cluster mode ("SELECT is not allowed"), a
			// Sentinel (no SELECT at all): the same every time.
			return retry.Permanent(fmt.Errorf("database %d: %s", p.db, v.s))
		}
	}
	v, err := do("PING")
	switch {
	case err != nil:
		return err
	case v.isError() && v.code() == "NOAUTH":
		return retry.Permanent(fmt.Errorf("the server wants a password (%s): give one in the URL or --password-file", v.s))
	case v.isError():
		return redisNotYet(v)
	case v.kind != '+' || v.s != "PONG":
		return fmt.Errorf("PING answered %s, not PONG", v)
	}
	return nil
}

// transientRedis: an error reply that passes by itself.
func transientRedis(v respValue) bool {
	switch v.code() {
	case "LOADING", "MASTERDOWN", "BUSY", "TRYAGAIN":
		return true
	}
	return strings.Contains(v.s, "max number of clients")
}

// redisNotYet is an error reply that may pass: LOADING (the dataset is
// being loaded), MASTERDOWN (a replica without its primary), BUSY (a
// script runs), max clients reached, …
func redisNotYet(v respValue) error {
	switch v.code() {
	case "LOADING":
		return errors.New("loading the dataset (LOADING)")
	case "MASTERDOWN":
		return errors.New("a replica whose link to its primary is down (MASTERDOWN)")
	case "BUSY":
		return errors.New("busy running a script (BUSY)")
	}
	return fmt.Errorf("the server answered %q", v.s)
}

// respCommand encodes a command as RESP: an array of bulk strings.
func respCommand(args ...string) []byte {
	b := []byte("*" + strconv.Itoa(len(args)) + "\r\n")
	for _, a := range args {
		b = append(b, '$')
		b = strconv.AppendInt(b, int64(len(a)), 10)
		b = append(b, "\r\n"...)
		b = append(b, a...)
		b = append(b, "\r\n"...)
	}
	return b
}

// respValue is one RESP2 reply.
type respValue struct {
	kind  byte // + - : $ *
	s     string
	n     int64
	null  bool
	elems []respValue
}

func (v respValue) isError() bool { return v.kind == '-' }

// code is an error reply's first word: WRONGPASS, LOADING, ERR, …
func (v respValue) code() string {
	c, _, _ := strings.Cut(v.s, " ")
	return c
}

func (v respValue) String() string {
	switch v.kind {
	case ':':
		return strconv.FormatInt(v.n, 10)
	case '*':
		return fmt.Sprintf("an array of %d", len(v.elems))
	}
	if v.null {
		return "nil"
	}
	return quoteReply([]byte(v.s))
}

// Bounds on what a reply may hold: a readiness check reads short ones.
const (
	maxRESPLine  = 64 << 10
	maxRESPBulk  = 1 << 20
	maxRESPArray = 1024
	maxRESPDepth = 8
)

// readRESP reads one RESP2 value.
func readRESP(br *bufio.Reader, depth int) (respValue, error) {
	line, err := readRESPLine(br)
	if err != nil {
		return respValue{}, err
	}
	if len(line) == 0 {
		return respValue{}, errors.New("an empty line")
	}
	v := respValue{kind: line[0]}
	rest := line[1:]
	switch v.kind {
	case '+', '-':
		v.s = rest
	case ':':
		if v.n, err = strconv.ParseInt(rest, 10, 64); err != nil {
			return v, fmt.Errorf("integer %q", rest)
		}
	case '$':
		n, err := strconv.ParseInt(rest, 10, 64)
		switch {
		case err != nil || n < -1:
			return v, fmt.Errorf("bulk length %q", rest)
		case n == -1:
			v.null = true
			return v, nil
		case n > maxRESPBulk:
			return v, fmt.Errorf("a bulk string of %d bytes", n)
		}
		b := make([]byte, n+2)
		if _, err := io.ReadFull(br, b); err != nil {
			return v, err
		}
		if b[n] != '\r' || b[n+1] != '\n' {
			return v, errors.New("a bulk string without its CRLF")
		}
		v.s = string(b[:n])
	case '*':
		n, err := strconv.ParseInt(rest, 10, 64)
		switch {
		case err != nil || n < -1:
			return v, fmt.Errorf("array length %q", rest)
		case n == -1:
			v.null = true
			return v, nil
		case n > maxRESPArray:
			return v, fmt.Errorf("an array of %d", n)
		case depth >= maxRESPDepth:
			return v, errors.New("arrays nested too deep")
		}
		for i := int64(0); i < n; i++ {
			e, err := readRESP(br, depth+1)
			if err != nil {
				return v, err
			}
			v.elems = append(v.elems, e)
		}
	default:
		return v, fmt.Errorf("type byte %q", v.kind)
	}
	return v, nil
}

// readRESPLine reads up to CRLF (not included), at most maxRESPLine.
func readRESPLine(br *bufio.Reader) (string, error) {
	var b []byte
	for {
		chunk, err := br.ReadSlice('\n')
		b = append(b, chunk...)
		if len(b) > maxRESPLine {
			return "", errors.New("a line too long")
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			if err == io.EOF && len(b) > 0 {
				return "", io.ErrUnexpectedEOF
			}
			return "", err
		}
		if len(b) < 2 || b[len(b)-2] != '\r' {
			return "", errors.New("a line without CR")
		}
		return string(b[:len(b)-2]), nil
	}
}
