package pg

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"golang.org/x/sys/unix"

	"sync"
)

// libpq's keywords that pgconn does not know end up in its RuntimeParams,
// where they would be sent to the server as run-time parameters: the server
// refuses the login ("unrecognized configuration parameter"), and a DSN that
// psql accepts would never be ready. Each is taken out and handled here as
// libpq handles it; any other name there is one libpq refuses ("invalid
// connection option"). The list is libpq 15's (PQconndefaults), which
// TestKeywordsAgainstLibpq checks against the installed libpq.

// pgconnKeywords are the libpq keywords pgconn itself handles as libpq
// does (it calls dbname database).
var pgconnKeywords = []string{"service", "user", "password", "passfile", "channel_binding", "connect_timeout", "dbname", "host", "port",
	"sslmode", "sslcert", "sslkey", "sslpassword", "sslrootcert", "sslsni", "krbsrvname", "target_session_attrs"}

// runtimeKeywords are libpq keywords that are run-time parameters for the
// server, as libpq sends them.
var runtimeKeywords = map[string]bool{"client_encoding": true, "options": true, "application_name": true, "replication": true}

// envRuntime are parameters pgconn takes from libpq's environment
// variables (PGTZ, PGDATESTYLE, PGGEQO), which libpq sends too.
var envRuntime = map[string]string{"timezone": "PGTZ", "datestyle": "PGDATESTYLE", "geqo": "PGGEQO"}

// handledKeywords are libpq keywords pgconn leaves to initbox, with the
// environment variable libpq reads for each.
var handledKeywords = map[string]string{
	"hostaddr": "PGHOSTADDR", "fallback_application_name": "",
	"keepalives": "", "keepalives_idle": "", "keepalives_interval": "", "keepalives_count": "", "tcp_user_timeout": "",
	"sslcompression": "PGSSLCOMPRESSION", "sslcrl": "PGSSLCRL", "sslcrldir": "PGSSLCRLDIR", "requirepeer": "PGREQUIREPEER",
	"ssl_min_protocol_version": "PGSSLMINPROTOCOLVERSION", "ssl_max_protocol_version": "PGSSLMAXPROTOCOLVERSION",
	"gssencmode": "PGGSSENCMODE", "gsslib": "PGGSSLIB",
}

// envOnlyRuntime are run-time parameters libpq takes from an environment
// variable that pgconn does not read (PGCLIENTENCODING).
var envOnlyRuntime = map[string]string{"client_encoding": "PGCLIENTENCODING"}

// applyLibpq handles what pgconn left in cfg.RuntimeParams. dsn is the
// connection string as given, to tell a host given from a defaulted one.
func applyLibpq(cfg *pgconn.Config, dsn string) error {
	kw := map[string]string{}
	for k, v := range cfg.RuntimeParams {
		switch {
		case runtimeKeywords[k]:
		case envRuntime[k] != "" && os.Getenv(envRuntime[k]) == v:
		default:
			if _, ok := handledKeywords[k]; !ok {
				return fmt.Errorf("invalid connection option %q", k)
			}
			kw[k] = v
			delete(cfg.RuntimeParams, k)
		}
	}
	for k, env := range handledKeywords {
		if _, ok := kw[k]; !ok && env != "" {
			if v := os.Getenv(env); v != "" {
				kw[k] = v
			}
		}
	}
	for k, env := range envOnlyRuntime {
		if _, ok := cfg.RuntimeParams[k]; !ok {
			if v := os.Getenv(env); v != "" {
				cfg.RuntimeParams[k] = v
			}
		}
	}
	if v := kw["fallback_application_name"]; v != "" && cfg.RuntimeParams["application_name"] == "" {
		cfg.RuntimeParams["application_name"] = v
	}
	switch v := kw["gssencmode"]; v {
	case "", "disable", "prefer":
		// initbox has no GSSAPI: prefer falls back to no encryption, as a
		// libpq built without it does.
	case "require":
		return errors.New(`gssencmode value "require" invalid when GSSAPI support is not compiled in`)
	default:
		return fmt.Errorf("invalid gssencmode value: %q", v)
	}
	if v := kw["sslcompression"]; v != "" && v != "0" && v != "1" {
		return fmt.Errorf("invalid sslcompression value: %q", v) // ignored since libpq 14, but checked
	}
	// gsslib chooses between GSSAPI and SSPI on Windows; ignored elsewhere.
	if err := applyHostaddr(cfg, dsn, kw["hostaddr"]); err != nil {
		return err
	}
	if err := applyTLSVersions(cfg, kw["ssl_min_protocol_version"], kw["ssl_max_protocol_version"]); err != nil {
		return err
	}
	if err := applyCRL(cfg, kw["sslcrl"], kw["sslcrldir"]); err != nil {
		return err
	}
	return applyDialer(cfg, kw)
}

var crlNameRe = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[0-9a-f]{8}\.r[0-9]+$`) })

var hostKeyRe = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`(?:^|\s)host\s*=`) })

// applyHostaddr connects to the given addresses instead of resolving the
// hosts, one for each host in order; the host names still name the
// servers for TLS verification (pgconn set ServerName from them). With no
// host at all, the address is the host.
func applyHostaddr(cfg *pgconn.Config, dsn, v string) error {
	if v == "" {
		return nil
	}
	addrs := strings.Split(v, ",")
	for _, a := range addrs {
		if net.ParseIP(a) == nil {
			return fmt.Errorf("could not parse network address %q", a)
		}
	}
	hostGiven := os.Getenv("PGHOST") != "" || hostKeyRe().MatchString(dsn)
	if u, err := url.Parse(dsn); err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") {
		hostGiven = hostGiven || u.Host != "" && !strings.HasPrefix(u.Host, ":")
	}
	// The hosts in order, each once: pgconn lists a host twice for
	// sslmode=prefer (with TLS, then without).
	var hosts []string
	seen := map[string]bool{}
	for _, h := range append([]string{cfg.Host}, fallbackHosts(cfg)...) {
		if !seen[h] {
			seen[h] = true
			hosts = append(hosts, h)
		}
	}
	if hostGiven && len(hosts) != len(addrs) {
		return fmt.Errorf("could not match %d host names to %d hostaddr values", len(hosts), len(addrs))
	}
	if !hostGiven {
		if len(addrs) != 1 {
			return fmt.Errorf("could not match %d host names to %d hostaddr values", 1, len(addrs))
		}
		hosts = []string{cfg.Host}
	}
	to := map[string]string{}
	for i, h := range hosts {
		to[h] = addrs[i]
	}
	set := func(host *string, tc *tls.Config) {
		a, ok := to[*host]
		if !ok {
			return
		}
		if tc != nil && tc.ServerName == "" && hostGiven {
			tc.ServerName = *host
		}
		*host = a
	}
	set(&cfg.Host, cfg.TLSConfig)
	for _, f := range cfg.Fallbacks {
		set(&f.Host, f.TLSConfig)
	}
	return nil
}

func fallbackHosts(cfg *pgconn.Config) []string {
	var out []string
	for _, f := range cfg.Fallbacks {
		out = append(out, f.Host)
	}
	return out
}

func tlsVersion(name, v string) (uint16, error) {
	switch v {
	case "":
		return 0, nil
	case "TLSv1":
		return tls.VersionTLS10, nil
	case "TLSv1.1":
		return tls.VersionTLS11, nil
	case "TLSv1.2":
		return tls.VersionTLS12, nil
	case "TLSv1.3":
		return tls.VersionTLS13, nil
	}
	return 0, fmt.Errorf("invalid %s value: %q", name, v)
}

// applyTLSVersions: libpq's default minimum is TLSv1.2, as Go's.
func applyTLSVersions(cfg *pgconn.Config, min, max string) error {
	lo, err := tlsVersion("ssl_min_protocol_version", min)
	if err != nil {
		return err
	}
	hi, err := tlsVersion("ssl_max_protocol_version", max)
	if err != nil {
		return err
	}
	if lo != 0 && hi != 0 && lo > hi {
		return errors.New("invalid SSL protocol version range")
	}
	eachTLS(cfg, func(tc *tls.Config) {
		if lo != 0 {
			tc.MinVersion = lo
		}
		if hi != 0 {
			tc.MaxVersion = hi
		}
	})
	return nil
}

// EachTLS calls f with every TLS configuration of cfg (the host's and the
// fallbacks'); it reports whether there was one.
func EachTLS(cfg *pgconn.Config, f func(*tls.Config)) bool {
	n := 0
	eachTLS(cfg, func(tc *tls.Config) { n++; f(tc) })
	return n > 0
}

func eachTLS(cfg *pgconn.Config, f func(*tls.Config)) {
	if cfg.TLSConfig != nil {
		f(cfg.TLSConfig)
	}
	for _, fb := range cfg.Fallbacks {
		if fb.TLSConfig != nil {
			f(fb.TLSConfig)
		}
	}
}

// applyCRL checks the server's certificate against certificate revocation
// lists when the certificate is verified (verify-ca, verify-full, or a root
// certificate given), as libpq does through OpenSSL's CRL check of the leaf:
// a revoked leaf fails, and so does a leaf whose issuer has no list.
func applyCRL(cfg *pgconn.Config, file, dir string) error {
	if file == "" && dir == "" {
		return nil
	}
	var crls []*x509.RevocationList
	load := func(p string) error {
		b, err := os.ReadFile(p)
		if err != nil {
			return fmt.Errorf("could not load SSL certificate revocation list %q: %w", p, err)
		}
		der := [][]byte{}
		for rest := b; ; {
			var blk *pem.Block
			blk, rest = pem.Decode(rest)
			if blk == nil {
				break
			}
			if blk.Type == "X509 CRL" {
				der = append(der, blk.Bytes)
			}
		}
		if len(der) == 0 {
			der = append(der, b)
		}
		for _, d := range der {
			l, err := x509.ParseRevocationList(d)
			if err != nil {
				return fmt.Errorf("SSL certificate revocation list %q: %w", p, err)
			}
			crls = append(crls, l)
		}
		return nil
	}
	if file != "" {
		if err := load(file); err != nil {
			return err
		}
	}
	if dir != "" {
		ents, err := os.ReadDir(dir)
		if err != nil {
			return fmt.Errorf("could not load SSL certificate revocation list directory %q: %w", dir, err)
		}
		// OpenSSL finds a CRL in the directory by its issuer's name hash:
		// only HASH.rN files (c_rehash, openssl rehash) are read.
		for _, e := range ents {
			if !e.IsDir() && crlNameRe().MatchString(e.Name()) {
				if err := load(filepath.Join(dir, e.Name())); err != nil {
					return err
				}
			}
		}
	}
	eachTLS(cfg, func(tc *tls.Config) {
		if tc.InsecureSkipVerify && tc.VerifyPeerCertificate == nil {
			return // sslmode=require without a root certificate: nothing is verified
		}
		roots := tc.RootCAs
		tc.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("no server certificate")
			}
			return checkRevoked(cs.PeerCertificates, roots, crls)
		}
	})
	return nil
}

func checkRevoked(chain []*x509.Certificate, roots *x509.CertPool, crls []*x509.RevocationList) error {
	leaf := chain[0]
	// The issuer: in the chain the server sent, or among the roots.
	var issuers []*x509.Certificate
	issuers = append(issuers, chain[1:]...)
	if roots != nil {
		if cs, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: pool(chain[1:]), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err == nil {
			for _, c := range cs {
				issuers = append(issuers, c[1:]...)
			}
		}
	}
	for _, l := range crls {
		if string(l.RawIssuer) != string(leaf.RawIssuer) {
			continue
		}
		signed := false
		for _, is := range issuers {
			if l.CheckSignatureFrom(is) == nil {
				signed = true
				break
			}
		}
		if !signed {
			continue
		}
		for _, r := range l.RevokedCertificateEntries {
			if r.SerialNumber.Cmp(leaf.SerialNumber) == 0 {
				return errors.New("certificate revoked")
			}
		}
		return nil
	}
	return errors.New("unable to get certificate CRL")
}

func pool(cs []*x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range cs {
		p.AddCert(c)
	}
	return p
}

// applyDialer sets TCP keepalives and the user timeout as libpq does, and
// requirepeer's check of a Unix socket's server process.
func applyDialer(cfg *pgconn.Config, kw map[string]string) error {
	num := func(k string) (int, bool, error) {
		v, ok := kw[k]
		if !ok || v == "" {
			return 0, false, nil
		}
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil {
			return 0, false, fmt.Errorf("invalid integer value %q for connection option %q", v, k)
		}
		return n, true, nil
	}
	d := &net.Dialer{KeepAliveConfig: net.KeepAliveConfig{Enable: true, Idle: 5 * time.Minute, Interval: -1, Count: -1}}
	on, set, err := num("keepalives")
	if err != nil {
		return err
	}
	if set && on == 0 {
		d.KeepAlive = -1
		d.KeepAliveConfig = net.KeepAliveConfig{Enable: false}
	}
	for _, p := range []struct {
		k   string
		dst *time.Duration
	}{{"keepalives_idle", &d.KeepAliveConfig.Idle}, {"keepalives_interval", &d.KeepAliveConfig.Interval}} {
		n, set, err := num(p.k)
		if err != nil {
			return err
		}
		if set && n > 0 {
			*p.dst = time.Duration(n) * time.Second
		}
	}
	if n, set, err := num("keepalives_count"); err != nil {
		return err
	} else if set && n > 0 {
		d.KeepAliveConfig.Count = n
	}
	userTimeout, setUT, err := num("tcp_user_timeout")
	if err != nil {
		return err
	}
	if setUT && userTimeout > 0 {
		d.Control = func(network, _ string, c syscall.RawConn) error {
			if !strings.HasPrefix(network, "tcp") {
				return nil
			}
			var serr error
			err := c.Control(func(fd uintptr) {
				serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT, userTimeout)
			})
			if err != nil {
				return err
			}
			return serr
		}
	}
	peer := kw["requirepeer"]
	cfg.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, network, addr)
		if err != nil || peer == "" || network != "unix" {
			return c, err
		}
		if err := checkPeer(c, peer); err != nil {
			c.Close()
			return nil, err
		}
		return c, nil
	}
	return nil
}

// checkPeer is requirepeer: the process at the other end of the Unix
// socket runs as the named operating system user.
func checkPeer(c net.Conn, want string) error {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return nil
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return err
	}
	var cred *unix.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) { cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED) }); err != nil {
		return err
	}
	if cerr != nil {
		return fmt.Errorf("requirepeer: could not get peer credentials: %w", cerr)
	}
	name := strconv.Itoa(int(cred.Uid))
	if u, err := user.LookupId(name); err == nil {
		name = u.Username
	} else {
		return fmt.Errorf("requirepeer: local user with ID %d does not exist", cred.Uid)
	}
	if name != want {
		return fmt.Errorf("requirepeer specifies %q, but actual peer user name is %q", want, name)
	}
	return nil
}
