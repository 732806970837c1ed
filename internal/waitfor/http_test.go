package waitfor

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// A target that is never ready, for the leak test.
var _ = silentTarget("http", func(s silent) string { return "http://" + s.addr + "/" })

func TestHTTP503Then200(t *testing.T) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) <= 3 {
			http.Error(w, "warming up", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	}))
	defer srv.Close()
	r := run(t, nil, "http", srv.URL+"/healthz", "--timeout", "10s", "-v")
	r.MustExit(t, 0, "status 503 Service Unavailable", "attempts=4")
}

func TestHTTPStatusAndBody(t *testing.T) {
	var body atomic.Value
	body.Store(`{"status":"starting"}`)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent + 0*len(r.URL.Path))
		fmt.Fprint(w, body.Load())
	}))
	defer srv.Close()
	// 204 is outside --status 200.
	run(t, nil, "http", srv.URL, "--status", "200", "--timeout", "600ms").MustExit(t, 1, "status 204 No Content")
	okSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, body.Load()) }))
	defer okSrv.Close()
	after(500*time.Millisecond, func() { body.Store(`{"status":"up"}`) })
	r := run(t, nil, "http", okSrv.URL, "--body-contains", `"status":"up"`, "--timeout", "10s", "-v")
	r.MustExit(t, 0, `the body does not contain`)
}

func TestHTTPRedirectsFollowed(t *testing.T) {
	final := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "here") }))
	defer final.Close()
	hop := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, final.URL+"/x", http.StatusFound)
	}))
	defer hop.Close()
	run(t, nil, "http", hop.URL, "--status", "200", "--body-contains", "here", "--timeout", "5s").MustExit(t, 0)
}

// A server that sends headers and then trickles the body must not hold a
// probe beyond --attempt-timeout.
func TestHTTPSlowBody(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(200)
		for i := 0; i < 100; i++ {
			if _, err := fmt.Fprint(w, "."); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}))
	defer srv.Close()
	r := run(t, nil, "http", srv.URL, "--body-contains", "never", "--attempt-timeout", "300ms", "--timeout", "1s")
	r.MustExit(t, 1, "no answer within 300ms")
	if r.Elapsed > 2500*time.Millisecond {
		t.Fatalf("a slow body held the wait for %s", r.Elapsed)
	}
}

func TestHTTPSWithTestCAAndRotatedHeaderFile(t *testing.T) {
	token := filepath.Join(t.TempDir(), "token")
	writeFile(t, token, "Bearer first-Token-Value\n")
	srv := newTLSServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer rotated-Token-Value" {
			http.Error(w, "no", http.StatusUnauthorized)
		}
	}))
	defer srv.Close()
	ca := writeCA(t, srv)
	after(500*time.Millisecond, func() { os.WriteFile(token, []byte("Bearer rotated-Token-Value"), 0o600) })
	// The file is read at every probe, so the rotated token gets in; its
	// value is given through the flag's environment twin.
	r := run(t, map[string]string{"INITBOX_WAITFOR_HEADER": "Authorization: @" + token}, "http", srv.URL, "--ca-file", ca, "--timeout", "10s", "-v")
	r.MustExit(t, 0, "status 401 Unauthorized")
	for _, secret := range []string{"first-Token-Value", "rotated-Token-Value"} {
		if strings.Contains(r.Stderr, secret) {
			t.Errorf("the token %q leaked into the log", secret)
		}
	}
	// Without the CA the certificate is not trusted.
	run(t, nil, "http", srv.URL, "--timeout", "600ms").MustExit(t, 1, "TLS: certificate signed by unknown authority")
}

func TestHTTPBadInputIsUsageError(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nope")
	for _, args := range [][]string{
		{"http", "ftp://x/"},
		{"http", "http://x/", "--status", "banana"},
		{"http", "http://x/", "--status", "700"},
		{"http", "http://x/", "--header", "no colon"},
		{"http", "http://x/", "--header", "Authorization: @" + missing},
		{"http", "http://x/", "--ca-file", missing},
	} {
		r := run(t, nil, args...)
		r.MustExit(t, 2)
		if n := strings.Count(strings.TrimSpace(r.Stderr), "\n"); n != 0 {
			t.Errorf("%v: the error is %d lines, want one", args, n+1)
		}
	}
}
