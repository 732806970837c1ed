package waitfor

import (
	"crypto/tls"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/initbox/initbox/internal/testenv"
	"github.com/initbox/initbox/internal/testenv/dnstest"
)

// A target that is never ready, for the leak test.
var _ = silentTarget("tcp", func(silent) string { return "silent.test:80" })

func TestTCPPortOpensWhileWaiting(t *testing.T) {
	addr := testenv.ClosedAddr(t)
	testenv.ListenLater(t, addr, 600*time.Millisecond)
	r := run(t, nil, "tcp", addr, "--timeout", "10s")
	r.MustExit(t, 0, "msg=ready", "tcp "+addr)
	if r.Elapsed < 600*time.Millisecond {
		t.Fatalf("ready after %s, before the port opened", r.Elapsed)
	}
}

func TestTCPRefusedTimesOutWithReason(t *testing.T) {
	addr := testenv.ClosedAddr(t)
	run(t, nil, "tcp", addr, "--timeout", "700ms").MustExit(t, 1, "timed out after 700ms: tcp "+addr+": connection refused")
}

func TestTCPNameResolvedLikeThePod(t *testing.T) {
	s := dnstest.Start(t)
	_, flags := s.ResolvConf(t, "ndots:5")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	r := run(t, nil, append([]string{"tcp", "db:" + port, "--timeout", "800ms"}, flags...)...)
	r.MustExit(t, 1, "tcp db:"+port+": NXDOMAIN for db.default.svc.cluster.local.")
	s.Add(t, "db.default.svc.cluster.local. 5 IN A 127.0.0.1")
	run(t, nil, append([]string{"tcp", "db:" + port, "--timeout", "5s"}, flags...)...).MustExit(t, 0)
}

func TestTCPWithTLS(t *testing.T) {
	srv := newTLSServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	ca := writeCA(t, srv)
	addr := strings.TrimPrefix(srv.URL, "https://")
	// httptest's certificate is for 127.0.0.1 and example.com.
	run(t, nil, "tcp", addr, "--tls", "--ca-file", ca, "--timeout", "5s").MustExit(t, 0)
	run(t, nil, "tcp", addr, "--tls", "--timeout", "700ms").MustExit(t, 1, "TLS: certificate signed by unknown authority")
	run(t, nil, "tcp", addr, "--tls", "--ca-file", ca, "--server-name", "db.internal", "--timeout", "700ms").MustExit(t, 1, "TLS: certificate is valid for")
	run(t, nil, "tcp", addr, "--tls", "--insecure-skip-verify", "--timeout", "5s").MustExit(t, 0)
	// A plain TCP server is not a TLS server.
	plain := httptest.NewServer(http.NotFoundHandler())
	defer plain.Close()
	run(t, nil, "tcp", strings.TrimPrefix(plain.URL, "http://"), "--tls", "--ca-file", ca, "--timeout", "700ms").MustExit(t, 1, "TLS: ")
}

func writeCA(t *testing.T, srv *httptest.Server) string {
	t.Helper()
	cert := srv.Certificate()
	p := filepath.Join(t.TempDir(), "ca.pem")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := pemEncode(f, cert.Raw); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestAnyReadyIsEnough(t *testing.T) {
	open, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer open.Close()
	closed := testenv.ClosedAddr(t)
	run(t, nil, "tcp", closed, open.Addr().String(), "--timeout", "700ms").MustExit(t, 1, "tcp "+closed+": connection refused")
	run(t, nil, "tcp", closed, open.Addr().String(), "--any", "--timeout", "5s").MustExit(t, 0)
}

var _ = tls.VersionTLS12
