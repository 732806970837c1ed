package waitfor

import (
	"crypto/tls"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/initbox/initbox/internal/testenv"
	"github.com/initbox/initbox/internal/testenv/pgtest"
)

// An mTLS server (as etcd is) that trusts client certificates of one CA
// only: the client's files first hold a certificate of another CA, and are
// replaced while waiting, as a rotated Secret's are. Ready only after the
// rotation: the pair is read again at every attempt.
func TestClientCertificateRotated(t *testing.T) {
	serverCA, good, bad := testenv.NewCA(t, "server CA"), testenv.NewCA(t, "client CA"), testenv.NewCA(t, "other CA")
	_, _, serverPair := serverCA.Issue(t, "server", "127.0.0.1")
	tlsCfg := &tls.Config{Certificates: []tls.Certificate{serverPair}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: good.Pool()}
	dir := t.TempDir()
	caFile := serverCA.WriteFile(t, dir)

	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	srv.TLS = tlsCfg
	srv.StartTLS()
	defer srv.Close()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", tlsCfg)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { c.(*tls.Conn).Handshake(); c.Close() }()
		}
	}()
	for _, c := range []struct {
		name string
		args []string
	}{
		{"tcp", []string{"tcp", ln.Addr().String(), "--tls"}},
		{"http", []string{"http", srv.URL + "/healthz"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			cert, key := bad.WriteClientCert(t, dir, "app")
			after(1500*time.Millisecond, func() { good.WriteClientCert(t, dir, "app") })
			r := run(t, nil, append(c.args, "--ca-file", caFile, "--cert-file", cert, "--key-file", key, "--timeout", "30s", "-v")...)
			r.MustExit(t, 0, "msg=ready")
			if r.Elapsed < 1500*time.Millisecond || !strings.Contains(r.Stderr, "not ready") {
				t.Fatalf("ready after %s, before the rotation", r.Elapsed)
			}
		})
	}
	// A banner after the handshake (SMTP over TLS): the byte read to catch a
	// refusal of the certificate is not lost to --expect.
	banner, err := tls.Listen("tcp", "127.0.0.1:0", tlsCfg)
	if err != nil {
		t.Fatal(err)
	}
	defer banner.Close()
	go func() {
		for {
			c, err := banner.Accept()
			if err != nil {
				return
			}
			go func() { c.Write([]byte("220 mail ready\r\n")); time.Sleep(time.Second); c.Close() }()
		}
	}()
	cert, key := good.WriteClientCert(t, dir, "app")
	run(t, nil, "tcp", banner.Addr().String(), "--tls", "--ca-file", caFile, "--cert-file", cert, "--key-file", key, "--expect", "220 mail ready").MustExit(t, 0, "msg=ready")
	// Bad input: one file without the other, a pair that does not load.
	run(t, nil, "http", srv.URL, "--cert-file", filepath.Join(dir, "client.crt")).MustExit(t, 2, "--cert-file and --key-file go together")
	run(t, nil, "http", srv.URL, "--cert-file", caFile, "--key-file", caFile).MustExit(t, 2, "the client certificate (--cert-file "+caFile)
}

// The same against PostgreSQL's own certificate authentication
// (hostssl … cert): login succeeds only with the rotated certificate.
func TestClientCertificatePostgres(t *testing.T) {
	serverCA, good, bad := testenv.NewCA(t, "pg server CA"), testenv.NewCA(t, "pg client CA"), testenv.NewCA(t, "other CA")
	c, k, _ := serverCA.Issue(t, "pg", "127.0.0.1", "localhost")
	srv := pgtest.StartTLS(t, c, k)
	conf, _ := os.ReadFile(filepath.Join(srv.Data, "postgresql.conf"))
	for name, body := range map[string]string{
		"client-ca.crt":   string(good.CertPEM),
		"pg_hba.conf":     "local all all trust\nhostssl all all 127.0.0.1/32 cert\n",
		"postgresql.conf": string(conf) + "\nssl_ca_file = 'client-ca.crt'\n",
	} {
		p := filepath.Join(srv.Data, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		if fi, err := os.Stat(srv.Data); err == nil {
			uid, gid := ownerOf(fi)
			os.Chown(p, uid, gid)
		}
	}
	srv.Stop()
	srv.Restart(t)
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	caFile := serverCA.WriteFile(t, dir)
	cert, key := bad.WriteClientCert(t, dir, "postgres")
	after(1500*time.Millisecond, func() { good.WriteClientCert(t, dir, "postgres") })
	dsn := "host=127.0.0.1 port=" + strconv.Itoa(srv.Port) + " user=postgres dbname=postgres sslmode=verify-full sslrootcert=" + caFile
	r := run(t, nil, "postgres", dsn, "--query", "SELECT 1", "--cert-file", cert, "--key-file", key, "--timeout", "30s", "-v")
	r.MustExit(t, 0, "msg=ready")
	if r.Elapsed < 1500*time.Millisecond {
		t.Fatalf("ready after %s, before the rotation", r.Elapsed)
	}
	run(t, nil, "postgres", "host=127.0.0.1 sslmode=disable", "--cert-file", cert, "--key-file", key).MustExit(t, 2, "sslmode=disable uses no TLS")
}
