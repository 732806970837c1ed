package main

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/initbox/initbox/internal/applets"
	"github.com/initbox/initbox/internal/cli"
	"github.com/initbox/initbox/internal/testenv"
	"github.com/initbox/initbox/internal/testenv/dnstest"
	"github.com/initbox/initbox/internal/testenv/pgtest"
)

// faulty is a set of loopback servers, each misbehaving one way.
type faulty struct {
	refused    string // nothing listens
	blackhole  string // accepts, never answers
	reset      string // answers half a response, then RST
	garbage    string // answers bytes that are no protocol
	slowloris  string // HTTP headers, then a byte a second
	pgKilled   string // a real PostgreSQL that dies after its first answer
	selfSigned string // https, a certificate no one trusts
	wrongName  string // https, trusted (caFile), for another name
	expired    string // https, trusted (caFile), expired
	caFile     string
	dns        *dnstest.Server
}

func startFaulty(t *testing.T) *faulty {
	f := &faulty{}
	if _, err := pgtest.BinDir(); err == nil {
		f.startPGKilled(t)
	}
	listen := func(serve func(net.Conn)) string { return testenv.Serve(t, serve) }
	f.refused = testenv.ClosedAddr(t)
	f.blackhole = listen(testenv.Hold)
	f.reset = listen(func(c net.Conn) {
		bufio.NewReader(c).ReadString('\n')
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\npartial")
		c.(*net.TCPConn).SetLinger(0)
		c.Close()
	})
	f.garbage = listen(func(c net.Conn) {
		c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		c.Read(make([]byte, 4096))
		c.Write([]byte("\x00\xff\xfeNOT A PROTOCOL\r\n\r\n\x01\x02"))
		c.Close()
	})
	f.slowloris = listen(func(c net.Conn) {
		bufio.NewReader(c).ReadString('\n')
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n")
		for i := 0; i < 60; i++ {
			if _, err := c.Write([]byte("x")); err != nil {
				return
			}
			time.Sleep(time.Second)
		}
		c.Close()
	})
	ss := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	t.Cleanup(ss.Close)
	f.selfSigned = ss.URL
	ca, caKey := testCA(t)
	f.caFile = filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(f.caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw}), 0o644)
	tlsServer := func(name string, notAfter time.Time) string {
		s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
		s.TLS = &tls.Config{Certificates: []tls.Certificate{leaf(t, ca, caKey, name, notAfter)}}
		s.StartTLS()
		t.Cleanup(s.Close)
		return s.URL
	}
	f.wrongName = tlsServer("other.example", time.Now().Add(time.Hour))
	f.expired = tlsServer("127.0.0.1", time.Now().Add(-time.Hour))
	f.dns = dnstest.Start(t)
	return f
}

func testCA(t *testing.T) (*x509.Certificate, *ecdsa.PrivateKey) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "fault-ca"}, IsCA: true, BasicConstraintsValid: true,
		NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(48 * time.Hour), KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return c, key
}

// leaf is a certificate for name (a DNS name or an IP) valid until notAfter.
func leaf(t *testing.T, ca *x509.Certificate, caKey *ecdsa.PrivateKey, name string, notAfter time.Time) tls.Certificate {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: notAfter.Add(-24 * time.Hour), NotAfter: notAfter, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	if ip := net.ParseIP(name); ip != nil {
		tmpl.IPAddresses = []net.IP{ip}
	} else {
		tmpl.DNSNames = []string{name}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// pgKilledAddr is a real PostgreSQL (Debian's, started for the test) seen
// through a connection that dies mid-handshake: the server's first answer
// (the authentication request) gets through, then the connection is reset,
// as when the server is killed at that moment.
func (f *faulty) startPGKilled(t *testing.T) {
	srv := pgtest.Start(t)
	f.pgKilled = testenv.Serve(t, func(c net.Conn) {
		up, err := net.Dial("tcp", srv.Addr())
		if err != nil {
			c.Close()
			return
		}
		go io.Copy(up, c)
		buf := make([]byte, 64<<10)
		n, _ := up.Read(buf)
		c.Write(buf[:n])
		time.Sleep(50 * time.Millisecond)
		c.(*net.TCPConn).SetLinger(0)
		c.Close()
		up.Close()
	})
}

func (f *faulty) pgKilledAddr(t *testing.T) string {
	if f.pgKilled == "" {
		testenv.Skip(t, "PostgreSQL is not installed (apt-get install postgresql)")
	}
	return f.pgKilled
}

// TestFaultMatrix runs the applets that talk to servers against each kind
// of misbehaviour, and reads as the table of what a user then sees: the
// exit status, the reason, a give-up within --timeout + 1 s, and nothing
// written.
func TestFaultMatrix(t *testing.T) {
	f := startFaulty(t)
	out := t.TempDir()
	dest := filepath.Join(out, "dest")
	pg := func(addr string) string { return "postgres://app:pw@" + addr + "/app?sslmode=disable" }
	web := func(addr string) string { return "http://" + addr + "/x" }
	dnsFlags := []string{"--server", f.dns.Addr, "--resolv-conf", "/dev/null", "--hosts-file", ""}
	f.dns.Add(t, "slow.test. 5 IN A 127.0.0.1")

	for _, c := range []struct {
		fault string
		args  []string
		want  string // a regexp the error line must match
	}{
		// waitfor: every probe fails the same way until --timeout.
		{"refused", []string{"waitfor", "tcp", f.refused}, `connection refused`},
		{"refused", []string{"waitfor", "http", web(f.refused)}, `connection refused`},
		{"reset mid-stream", []string{"waitfor", "http", web(f.reset), "--body-contains", "never"}, `connection reset by peer|unexpected EOF|the body does not contain`},
		{"accepts, never answers", []string{"waitfor", "http", web(f.blackhole)}, `no answer within 500ms`},
		{"garbage", []string{"waitfor", "http", web(f.garbage)}, `malformed HTTP|bad response|EOF`},
		{"slowloris body", []string{"waitfor", "http", web(f.slowloris), "--body-contains", "never"}, `no answer within 500ms`},
		{"TLS self-signed", []string{"waitfor", "http", f.selfSigned}, `TLS: certificate signed by unknown authority`},
		{"TLS wrong name", []string{"waitfor", "http", f.wrongName, "--ca-file", f.caFile}, `TLS: cannot validate certificate for 127.0.0.1 because it doesn.t contain any IP SANs`},
		{"TLS expired", []string{"waitfor", "http", f.expired, "--ca-file", f.caFile}, `TLS: certificate has expired`},
		{"PostgreSQL killed mid-handshake", []string{"waitfor", "postgres", pg("PG-KILLED")}, `EOF|connection reset|unexpected`},
		{"accepts, never answers", []string{"waitfor", "postgres", pg(f.blackhole)}, `timeout|no answer within 500ms`},
		{"garbage", []string{"waitfor", "postgres", pg(f.garbage)}, `failed to receive message: invalid message length`},
		{"DNS truncation loop", append([]string{"waitfor", "dns", "slow.test"}, dnsFlags...), `the answer is truncated even over TCP`},
		// fetch: retried until --timeout, DEST never written.
		{"refused", []string{"fetch", web(f.refused), dest}, `connection refused`},
		{"reset mid-stream", []string{"fetch", web(f.reset), dest}, `connection reset by peer|unexpected EOF`},
		{"accepts, never answers", []string{"fetch", web(f.blackhole), dest}, `timed out`},
		{"garbage", []string{"fetch", web(f.garbage), dest}, `malformed HTTP|EOF`},
		{"slowloris body", []string{"fetch", web(f.slowloris), dest}, `timed out`},
		{"TLS self-signed", []string{"fetch", f.selfSigned + "/x", dest}, `TLS: certificate signed by unknown authority`},
		{"TLS wrong name", []string{"fetch", f.wrongName + "/x", dest, "--ca-file", f.caFile}, `TLS: cannot validate certificate for 127.0.0.1`},
		{"TLS expired", []string{"fetch", f.expired + "/x", dest, "--ca-file", f.caFile}, `TLS: certificate has expired`},
		// register: the registration is not recorded, --output not written.
		{"refused", []string{"register", "http", web(f.refused), "--output", dest}, `connection refused`},
		{"reset mid-stream", []string{"register", "http", web(f.reset), "--output", dest}, `connection reset by peer|unexpected EOF`},
		{"accepts, never answers", []string{"register", "http", web(f.blackhole), "--output", dest}, `no answer within 500ms|timed out`},
		{"garbage", []string{"register", "http", web(f.garbage), "--output", dest}, `malformed HTTP|EOF`},
		{"TLS wrong name", []string{"register", "http", f.wrongName + "/r", "--ca-file", f.caFile, "--output", dest}, `TLS: cannot validate certificate for 127.0.0.1`},
		{"PostgreSQL killed mid-handshake", []string{"register", "postgres", pg("PG-KILLED"), "--table", "t", "--key", "k=v"}, `EOF|connection reset|unexpected`},
	} {
		name := c.args[0] + " " + c.args[1] + ": " + c.fault
		t.Run(name, func(t *testing.T) {
			f.dns.TruncateAlways(c.fault == "DNS truncation loop")
			timeout := 2 * time.Second
			args := append(append([]string(nil), c.args...), "--timeout", timeout.String(), "--termination-log", "")
			for i, a := range args {
				if strings.Contains(a, "PG-KILLED") {
					args[i] = strings.Replace(a, "PG-KILLED", f.pgKilledAddr(t), 1)
				}
			}
			switch c.args[0] {
			case "waitfor", "register":
				args = append(args, "--attempt-timeout", "500ms")
			}
			r := testenv.Run(t, context.Background(), appletNamed(t, c.args[0]), nil, args[1:]...)
			if r.Code != 1 {
				t.Fatalf("exit %d, want 1:\n%s", r.Code, r.Stderr)
			}
			text := strings.ReplaceAll(r.Stderr, `\"`, `"`)
			if !regexp.MustCompile(c.want).MatchString(text) {
				t.Errorf("the reason does not match %q:\n%s", c.want, r.Stderr)
			}
			if r.Elapsed > timeout+time.Second {
				t.Errorf("gave up after %s, past --timeout %s + 1 s", r.Elapsed, timeout)
			}
			if ents, _ := os.ReadDir(out); len(ents) != 0 {
				t.Errorf("wrote %v", ents)
			}
		})
	}
}

func appletNamed(t *testing.T, name string) (a cli.Applet) {
	for _, x := range applets.All {
		if x.Name == name {
			return x
		}
	}
	t.Fatalf("no applet %s", name)
	return
}
