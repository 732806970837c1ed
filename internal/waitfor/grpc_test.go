package waitfor

import (
	"bufio"
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/initbox/initbox/internal/testenv"
	"github.com/initbox/initbox/internal/testenv/grpctest"
)

// A target that is never ready, for the leak test.
var _ = silentTarget("grpc", func(s silent) string { return s.addr })

// grpc-health-probe and waitfor grpc, state by state, against grpc-go's
// own health server: not started, started while waiting, SERVING,
// NOT_SERVING then SERVING, a service it does not know then does, TLS
// required vs offered, client certificates.
func TestGRPCAgainstGrpcHealthProbe(t *testing.T) {
	grpctest.Binaries(t)
	port := freePort(t)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	if code, out := grpctest.Probe(t, "-addr", addr, "-connect-timeout", "1s"); code == 0 {
		t.Fatalf("grpc-health-probe with no server: %d %s", code, out)
	}
	run(t, nil, "grpc", addr, "--timeout", "1s").MustExit(t, 1, "connection refused")

	// Started while waiting: soon after the oracle's first SERVING.
	var srv *grpctest.Server
	noticedWithOracle(t, "grpc-health-probe", func() { srv = grpctest.Start(t, "-addr", addr) }, func() bool {
		code, _ := grpctest.Probe(t, "-addr", addr)
		return code == 0
	}, "grpc", addr)

	// NOT_SERVING: both say so; waitfor waits until SERVING.
	srv.Set(t, "", "NOT_SERVING")
	if code, out := grpctest.Probe(t, "-addr", addr); code == 0 || !strings.Contains(out, "NOT_SERVING") {
		t.Fatalf("grpc-health-probe, NOT_SERVING: %d %s", code, out)
	}
	after(time.Second, func() { srv.Set(t, "", "SERVING") })
	r := run(t, nil, "grpc", addr, "--timeout", "30s", "-v")
	r.MustExit(t, 0, "msg=ready", "reason=NOT_SERVING")
	if r.Elapsed < time.Second {
		t.Fatalf("ready after %s, while NOT_SERVING", r.Elapsed)
	}
	// A service the server does not know (NOT_FOUND), then SERVING.
	if code, out := grpctest.Probe(t, "-addr", addr, "-service", "shop.Cart"); code == 0 || !strings.Contains(out, "NotFound") {
		t.Fatalf("grpc-health-probe, unknown service: %d %s", code, out)
	}
	after(time.Second, func() { srv.Set(t, "shop.Cart", "SERVING") })
	run(t, nil, "grpc", addr, "--service", "shop.Cart", "--timeout", "30s", "-v").MustExit(t, 0, "msg=ready", `the server does not know the service \"shop.Cart\" (NOT_FOUND: unknown service)`)
	if code, out := grpctest.Probe(t, "-addr", addr, "-service", "shop.Cart"); code != 0 {
		t.Fatalf("grpc-health-probe, now SERVING: %d %s", code, out)
	}
	srv.Set(t, "shop.Cart", "SERVICE_UNKNOWN")
	if code, _ := grpctest.Probe(t, "-addr", addr, "-service", "shop.Cart"); code == 0 {
		t.Fatal("grpc-health-probe: SERVICE_UNKNOWN is healthy")
	}
	run(t, nil, "grpc", addr, "--service", "shop.Cart", "--timeout", "1s").MustExit(t, 1, "SERVICE_UNKNOWN")
	// grpc:// URL form.
	run(t, nil, "grpc://"+addr).MustExit(t, 0, "msg=ready")
}

func TestGRPCTLS(t *testing.T) {
	ca := testenv.NewCA(t, "grpc CA")
	dir := t.TempDir()
	c, k, _ := ca.Issue(t, "grpc", "127.0.0.1")
	os.WriteFile(filepath.Join(dir, "srv.crt"), c, 0o644)
	os.WriteFile(filepath.Join(dir, "srv.key"), k, 0o600)
	caFile := ca.WriteFile(t, dir)
	srv := grpctest.Start(t, "-cert", filepath.Join(dir, "srv.crt"), "-key", filepath.Join(dir, "srv.key"))
	if code, out := grpctest.Probe(t, "-addr", srv.Addr, "-tls", "-tls-ca-cert", caFile); code != 0 {
		t.Fatalf("grpc-health-probe -tls: %d %s", code, out)
	}
	if code, _ := grpctest.Probe(t, "-addr", srv.Addr, "-connect-timeout", "1s"); code == 0 {
		t.Fatal("grpc-health-probe in plaintext took a TLS server")
	}
	run(t, nil, "grpc", srv.Addr, "--timeout", "1s").MustExit(t, 1)
	run(t, nil, "grpc", srv.Addr, "--tls", "--ca-file", caFile).MustExit(t, 0, "msg=ready")
	other := testenv.NewCA(t, "other CA")
	run(t, nil, "grpc", srv.Addr, "--tls", "--ca-file", other.WriteFile(t, t.TempDir()), "--timeout", "1s").MustExit(t, 1, "certificate")

	// Client certificates required.
	mtls := grpctest.Start(t, "-cert", filepath.Join(dir, "srv.crt"), "-key", filepath.Join(dir, "srv.key"), "-client-ca", caFile)
	cert, key := ca.WriteClientCert(t, t.TempDir(), "app")
	if code, out := grpctest.Probe(t, "-addr", mtls.Addr, "-tls", "-tls-ca-cert", caFile, "-tls-client-cert", cert, "-tls-client-key", key); code != 0 {
		t.Fatalf("grpc-health-probe with a client certificate: %d %s", code, out)
	}
	run(t, nil, "grpc", mtls.Addr, "--tls", "--ca-file", caFile, "--timeout", "1s").MustExit(t, 1)
	run(t, nil, "grpc", mtls.Addr, "--tls", "--ca-file", caFile, "--cert-file", cert, "--key-file", key).MustExit(t, 0, "msg=ready")

	// grpcs:// is TLS; --server-name is the name verified and the
	// :authority sent, as grpc-health-probe -tls-server-name sends it.
	run(t, nil, "grpcs://"+srv.Addr, "--ca-file", caFile).MustExit(t, 0, "msg=ready")
	run(t, nil, "grpc://"+srv.Addr, "--timeout", "1s").MustExit(t, 1)
	c2, k2, _ := ca.Issue(t, "api.internal", "api.internal")
	os.WriteFile(filepath.Join(dir, "named.crt"), c2, 0o644)
	os.WriteFile(filepath.Join(dir, "named.key"), k2, 0o600)
	named := grpctest.Start(t, "-cert", filepath.Join(dir, "named.crt"), "-key", filepath.Join(dir, "named.key"), "-authority", "api.internal")
	if code, out := grpctest.Probe(t, "-addr", named.Addr, "-tls", "-tls-ca-cert", caFile, "-tls-server-name", "api.internal"); code != 0 {
		t.Fatalf("grpc-health-probe -tls-server-name: %d %s", code, out)
	}
	if code, _ := grpctest.Probe(t, "-addr", named.Addr, "-tls", "-tls-ca-cert", caFile, "-tls-no-verify"); code == 0 {
		t.Fatal("the server took a call for another :authority: this part tests nothing")
	}
	run(t, nil, "grpcs://"+named.Addr, "--ca-file", caFile, "--server-name", "api.internal").MustExit(t, 0, "msg=ready")
}

// Servers that are not gRPC: an HTTP/1 server, one that closes at once;
// and a gRPC server without the health service, which ends the wait at
// once (grpc-health-probe fails on it too).
func TestGRPCNotGRPC(t *testing.T) {
	bare := grpctest.Start(t, "-no-health")
	if code, out := grpctest.Probe(t, "-addr", bare.Addr); code == 0 || !strings.Contains(out, "does not implement the grpc health protocol") {
		t.Fatalf("grpc-health-probe without a health service: %d %s", code, out)
	}
	r := run(t, nil, "grpc", bare.Addr, "--timeout", "60s")
	r.MustExit(t, 1, "the server has no grpc.health.v1 service (UNIMPLEMENTED")
	if r.Elapsed > 10*time.Second {
		t.Fatalf("UNIMPLEMENTED took %s", r.Elapsed)
	}
	h1 := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer h1.Close()
	run(t, nil, "grpc", strings.TrimPrefix(h1.URL, "http://"), "--timeout", "1s").MustExit(t, 1, "an HTTP/1 server answered, not HTTP/2")
	run(t, nil, "grpc", openPort(t), "--timeout", "1s").MustExit(t, 1, "the server closed the connection")
	run(t, nil, "grpc", "nohostport").MustExit(t, 2, "want HOST:PORT")
}

// The frame reader, the header block handling and the message decoder
// never panic and stay within their bounds, whatever a server sends.
func FuzzGRPCResponse(f *testing.F) {
	settings := []byte{0, 0, 0, h2Settings, 0, 0, 0, 0, 0}
	f.Add(settings)
	f.Add(append(settings, 0, 0, 8, h2Ping, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8))
	f.Add([]byte{0, 0, 4, h2RSTStream, 0, 0, 0, 0, 1, 0, 0, 0, 2})
	f.Add([]byte{0, 0, 1, h2Headers, h2EndHeaders | h2EndStream, 0, 0, 0, 1, 0x88})
	f.Fuzz(func(t *testing.T, b []byte) {
		var w bytes.Buffer
		code, _, body, err := h2Response(bufio.NewReader(bytes.NewReader(b)), &w)
		if err == nil && code == 0 {
			if m, err := grpcUnframe(body); err == nil {
				healthStatus(m)
			}
		}
	})
}

func FuzzHealthStatus(f *testing.F) {
	f.Add([]byte{0x08, 0x01})
	f.Add([]byte{0x12, 0x03, 'a', 'b', 'c', 0x08, 0x02})
	f.Add([]byte{0x0d, 1, 2, 3, 4, 0x08, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) { healthStatus(b) })
}

func TestHealthMessages(t *testing.T) {
	if got := healthRequest("shop.Cart"); !bytes.Equal(got, append([]byte{0x0a, 9}, "shop.Cart"...)) {
		t.Fatalf("%x", got)
	}
	if len(healthRequest("")) != 0 {
		t.Fatal("an empty service is not sent")
	}
	for b, want := range map[string]uint64{"\x08\x01": 1, "\x08\x02": 2, "": 0, "\x12\x01x\x08\x03": 3, "\x19\x00\x00\x00\x00\x00\x00\x00\x00\x08\x01": 1} {
		if got, err := healthStatus([]byte(b)); err != nil || got != want {
			t.Errorf("healthStatus(%x) = %d, %v; want %d", b, got, err, want)
		}
	}
	for _, b := range []string{"\x08", "\x12\x05ab", "\x0f"} {
		if _, err := healthStatus([]byte(b)); err == nil {
			t.Errorf("healthStatus(%x) took a malformed message", b)
		}
	}
}
