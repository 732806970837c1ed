package register

import (
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/initbox/initbox/internal/testenv"
)

// register http to a management service that requires a client
// certificate of its CA: refused without one, registered with one.
func TestHTTPClientCertificate(t *testing.T) {
	testenv.PodEnv(t)
	serverCA, clientCA := testenv.NewCA(t, "server CA"), testenv.NewCA(t, "client CA")
	_, _, pair := serverCA.Issue(t, "registry", "127.0.0.1")
	var got atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(r.TLS.PeerCertificates) == 1 && r.TLS.PeerCertificates[0].Subject.CommonName == "web-0" {
			got.Add(1)
			w.WriteHeader(http.StatusCreated)
		}
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{pair}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: clientCA.Pool()}
	srv.StartTLS()
	defer srv.Close()
	dir := t.TempDir()
	ca := serverCA.WriteFile(t, dir)
	run(t, "http", srv.URL+"/register", "--ca-file", ca, "--timeout", "2s").MustExit(t, 1)
	cert, key := clientCA.WriteClientCert(t, dir, "web-0")
	run(t, "http", srv.URL+"/register", "--ca-file", ca, "--cert-file", cert, "--key-file", key, "--timeout", "10s").MustExit(t, 0, "msg=registered")
	if got.Load() != 1 {
		t.Fatalf("%d registrations with the client certificate", got.Load())
	}
}
