package fetch

import (
	"crypto/tls"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/initbox/initbox/internal/testenv"
)

// fetch from a server that requires a client certificate of its CA:
// refused without one (nothing written), downloaded with one.
func TestFetchClientCertificate(t *testing.T) {
	serverCA, clientCA := testenv.NewCA(t, "server CA"), testenv.NewCA(t, "client CA")
	_, _, pair := serverCA.Issue(t, "files", "127.0.0.1")
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "payload") }))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{pair}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: clientCA.Pool()}
	srv.StartTLS()
	defer srv.Close()
	dir := t.TempDir()
	ca := serverCA.WriteFile(t, dir)
	dest := filepath.Join(t.TempDir(), "f")
	run(t, nil, srv.URL+"/f", dest, "--ca-file", ca, "--timeout", "2s").MustExit(t, 1)
	if _, err := os.Stat(dest); err == nil {
		t.Fatal("a refused fetch wrote DEST")
	}
	cert, key := clientCA.WriteClientCert(t, dir, "web-0")
	run(t, nil, srv.URL+"/f", dest, "--ca-file", ca, "--cert-file", cert, "--key-file", key).MustExit(t, 0, "msg=fetched")
	if b, _ := os.ReadFile(dest); string(b) != "payload" {
		t.Fatalf("DEST holds %q", b)
	}
}
