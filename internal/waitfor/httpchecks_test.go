package waitfor

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// --json, --body-regex and --expect-header judge a health endpoint that
// turns healthy a moment after the wait starts; each check's reason names
// what it saw.
func TestHTTPBodyAndHeaderChecks(t *testing.T) {
	var up atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/health":
			w.Header().Set("Content-Type", "application/json; charset=utf-8")
			if up.Load() {
				w.Header().Set("X-Ready", "yes")
				io.WriteString(w, `{"status":"UP","version":"2.4.1","checks":[{"name":"db","ok":true,"latency":1.5}],"meta":null}`)
				return
			}
			io.WriteString(w, `{"status":"DOWN","version":"2.4.1","checks":[{"name":"db","ok":false,"latency":0}]}`)
		case "/text":
			io.WriteString(w, "not json")
		}
	}))
	defer srv.Close()
	after(time.Second, func() { up.Store(true) })
	r := run(t, nil, "http", srv.URL+"/health", "--json", ".status=UP", "--json", "{.checks[0].ok}=true", "--json", "$.checks[0].latency=1.5",
		"--json", "meta", "--json", ".meta=null", "--body-regex", `"version":"2\.[0-9]+`, "--expect-header", "Content-Type: application/json",
		"--expect-header", "X-Ready:", "--timeout", "20s", "-v")
	r.MustExit(t, 0, "msg=ready", "no X-Ready header")
	if r.Elapsed < time.Second {
		t.Fatalf("ready after %s, before the endpoint was", r.Elapsed)
	}
	for _, c := range []struct {
		args []string
		why  string
	}{
		{[]string{"--json", ".nope"}, ".nope is not in the body"},
		{[]string{"--json", ".checks[3].ok"}, ".checks[3].ok is not in the body"},
		{[]string{"--json", ".checks[0].name=web"}, `.checks[0].name is "db", want web`},
		{[]string{"--json", ".checks[0]={}"}, `.checks[0] is "{`},
		{[]string{"--body-regex", `"version":"3\.`}, `does not match`},
		{[]string{"--expect-header", "X-Missing: x"}, "no X-Missing header"},
		{[]string{"--expect-header", "X-Ready: no"}, `X-Ready is "yes", want "no" in it`},
	} {
		run(t, nil, append([]string{"http", srv.URL + "/health", "--timeout", "1s"}, c.args...)...).MustExit(t, 1, c.why)
	}
	run(t, nil, "http", srv.URL+"/text", "--json", ".a", "--timeout", "1s").MustExit(t, 1, "the body is not JSON")
	for args, why := range map[string][]string{
		"invalid --json":          {"--json", "=x"},
		"unsupported path":        {"--json", ".a[x]"},
		"invalid --body-regex":    {"--body-regex", "("},
		"invalid --expect-header": {"--expect-header", "no colon"},
	} {
		run(t, nil, append([]string{"http", srv.URL}, why...)...).MustExit(t, 2, args)
	}
}

// --no-follow-redirects judges the 3xx itself; --data sends a body (POST
// unless --method says otherwise), @FILE read again at every probe.
func TestHTTPRedirectsAndData(t *testing.T) {
	var bodies []string
	var posts atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/moved":
			http.Redirect(w, r, "/down", http.StatusFound)
		case "/down":
			http.Error(w, "down", http.StatusServiceUnavailable)
		case "/rpc":
			b, _ := io.ReadAll(r.Body)
			bodies = append(bodies, r.Method+" "+r.Header.Get("Content-Type")+" "+string(b))
			if posts.Add(1) < 3 || !strings.Contains(string(b), "second") {
				http.Error(w, "not yet", http.StatusServiceUnavailable)
			}
		}
	}))
	defer srv.Close()
	run(t, nil, "http", srv.URL+"/moved", "--timeout", "1s").MustExit(t, 1, "status 503")
	run(t, nil, "http", srv.URL+"/moved", "--no-follow-redirects", "--status", "302").MustExit(t, 0, "msg=ready")
	run(t, nil, "http", srv.URL+"/moved", "--no-follow-redirects", "--status", "200", "--timeout", "1s").MustExit(t, 1, "status 302 Found")

	data := filepath.Join(t.TempDir(), "body.json")
	os.WriteFile(data, []byte(`{"probe":"first"}`), 0o600)
	after(800*time.Millisecond, func() { os.WriteFile(data, []byte(`{"probe":"second"}`), 0o600) })
	run(t, nil, "http", srv.URL+"/rpc", "--data", "@"+data, "--header", "Content-Type: application/json", "--timeout", "20s").MustExit(t, 0, "msg=ready")
	if !strings.HasPrefix(bodies[0], `POST application/json {"probe":"first"}`) || !strings.HasSuffix(bodies[len(bodies)-1], `{"probe":"second"}`) {
		t.Fatalf("the server got %q", bodies)
	}
	bodies = nil
	posts.Store(10)
	run(t, nil, "http", srv.URL+"/rpc", "--data", "a=second", "--method", "PUT").MustExit(t, 0)
	if bodies[0] != "PUT application/x-www-form-urlencoded a=second" {
		t.Fatalf("the server got %q", bodies)
	}
	run(t, nil, "http", srv.URL+"/rpc", "--data", "@/nonexistent").MustExit(t, 2, "--data @/nonexistent")
}

// The JSON path parser and lookup never panic, on any path or document.
func FuzzJSONPath(f *testing.F) {
	for _, s := range []string{".status=UP", "{.a[0].b}=1", "$.x", "a[", "[0]", "..", ".a[-1]", "a.b[99999999999999999999]"} {
		f.Add(s, `{"a":[{"b":1}],"status":"UP","x":null}`)
	}
	f.Fuzz(func(t *testing.T, path, doc string) {
		c, err := parseJSONCheck(path)
		if err != nil {
			return
		}
		var v any
		if jsonUnmarshal([]byte(doc), &v) == nil {
			if got, ok := lookupPath(v, c.path); ok {
				_ = jsonText(got)
			}
		}
	})
}
