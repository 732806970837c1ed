package register

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/initbox/initbox/internal/testenv"
	"github.com/initbox/initbox/internal/testenv/pgtest"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func run(t *testing.T, args ...string) testenv.Result {
	t.Helper()
	return testenv.Run(t, context.Background(), Applet, nil, append(args, "--termination-log", "", "--interval", "50ms")...)
}

// registry is a management service that drops duplicate requests by their
// Idempotency-Key, and fails the first attempts with 503 after reading the
// whole body, as an overloaded server does.
type registry struct {
	mu        sync.Mutex
	failFirst int
	status    int // answer with this instead of 201, when set
	requests  []*recorded
	byKey     map[string]bool
	instances map[string]string // key → body
	deleted   []string
}

type recorded struct {
	method, path, key, contentType, auth string
	body                                 []byte
}

func newRegistry(t *testing.T, failFirst int) (*registry, *httptest.Server) {
	r := &registry{failFirst: failFirst, byKey: map[string]bool{}, instances: map[string]string{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		defer r.mu.Unlock()
		rec := &recorded{req.Method, req.URL.Path, req.Header.Get("Idempotency-Key"), req.Header.Get("Content-Type"), req.Header.Get("Authorization"), body}
		r.requests = append(r.requests, rec)
		if len(r.requests) <= r.failFirst {
			w.Header().Set("Retry-After", "0")
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		if r.status != 0 {
			http.Error(w, "no: the field ip is required", r.status)
			return
		}
		switch req.Method {
		case http.MethodDelete:
			r.deleted = append(r.deleted, req.URL.Path)
			if len(r.instances) == 0 {
				http.NotFound(w, req)
				return
			}
			r.instances = map[string]string{}
			w.WriteHeader(http.StatusNoContent)
		default:
			if !r.byKey[rec.key] {
				r.byKey[rec.key] = true
				r.instances[rec.key] = string(body)
			}
			w.WriteHeader(http.StatusCreated)
			fmt.Fprintf(w, "instance-%d\n", len(r.instances))
		}
	}))
	t.Cleanup(srv.Close)
	return r, srv
}

func (r *registry) snapshot() ([]*recorded, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*recorded(nil), r.requests...), len(r.instances)
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	p := filepath.Join("testdata", name)
	if *update {
		os.WriteFile(p, got, 0o644)
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s:\ngot  %q\nwant %q", name, got, want)
	}
}

func TestHTTPRetriesThenRegistersOnce(t *testing.T) {
	testenv.PodEnv(t)
	reg, srv := newRegistry(t, 2)
	out := filepath.Join(t.TempDir(), "instance-id")
	token := filepath.Join(t.TempDir(), "token")
	os.WriteFile(token, []byte("s3cr3t-token\n"), 0o600)
	args := []string{"http", srv.URL + "/register", "--data", "instance={{ .Pod.Name }}&ip={{ .Pod.IP }}",
		"--data", "note=a b ✓ {{ \"x&y=z\" }}", "--header", "Authorization: @" + token, "--output", out, "--timeout", "20s"}
	r := run(t, args...)
	r.MustExit(t, 0, "msg=registered", "HTTP 503")
	if strings.Contains(r.Stderr, "s3cr3t") {
		t.Fatal("the token was logged")
	}
	reqs, n := reg.snapshot()
	if len(reqs) != 3 || n != 1 {
		t.Fatalf("%d requests, %d registrations; want 3 and 1", len(reqs), n)
	}
	for _, q := range reqs {
		if q.key != reqs[0].key || q.key == "" || q.auth != "s3cr3t-token" || q.contentType != "application/x-www-form-urlencoded" {
			t.Fatalf("request %+v differs from the first %+v", q, reqs[0])
		}
	}
	golden(t, "form.body", reqs[2].body)
	if b, _ := os.ReadFile(out); string(b) != "instance-1\n" {
		t.Fatalf("--output holds %q", b)
	}

	// A re-run of the same pod sends the same key: the server drops it.
	run(t, args...).MustExit(t, 0)
	reqs, n = reg.snapshot()
	if len(reqs) != 4 || reqs[3].key != reqs[0].key || n != 1 {
		t.Fatalf("re-run: %d requests, key %q vs %q, %d registrations", len(reqs), reqs[3].key, reqs[0].key, n)
	}
	// Another pod (another UID) gets another key.
	t.Setenv("POD_UID", "another")
	run(t, args...).MustExit(t, 0)
	if reqs, n = reg.snapshot(); reqs[4].key == reqs[0].key || n != 2 {
		t.Fatalf("another pod: key %q, %d registrations", reqs[4].key, n)
	}
}

func TestHTTPJSONBody(t *testing.T) {
	testenv.PodEnv(t)
	reg, srv := newRegistry(t, 0)
	run(t, "http", srv.URL+"/v1/instances", "--json",
		`{"name": {{ .Pod.Name | toJson }}, "ip": {{ .Pod.IP | toJson }}, "labels": {{ .Values.labels | toJson }}, "quote": {{ "a \"b\" \\ </script>" | toJson }}}`,
		"--value", "labels.tier=web", "--timeout", "10s").MustExit(t, 0)
	reqs, _ := reg.snapshot()
	if len(reqs) != 1 || reqs[0].contentType != "application/json" {
		t.Fatalf("%+v", reqs)
	}
	golden(t, "json.body", reqs[0].body)

	// Not JSON after templating: exit 2, nothing sent.
	run(t, "http", srv.URL+"/v1/instances", "--json", `{"name": {{ .Pod.Name }}}`).MustExit(t, 2, "--json is not JSON after templating")
	if reqs, _ = reg.snapshot(); len(reqs) != 1 {
		t.Fatalf("sent %d requests", len(reqs))
	}
}

func TestHTTPBadInputSendsNothing(t *testing.T) {
	testenv.PodEnv(t)
	reg, srv := newRegistry(t, 0)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"http", srv.URL, "--data", "x={{ .Values.missing }}"}, `map has no entry for key "missing"`},
		{[]string{"http", srv.URL + "/{{ .Pod.Nope }}"}, `map has no entry for key "Nope"`},
		{[]string{"http", srv.URL, "--data", "x={{ if }}"}, "--data x:1: missing value for if"},
		{[]string{"http", srv.URL, "--data", "novalue"}, `invalid --data "novalue": want NAME=TEMPLATE`},
		{[]string{"http", srv.URL, "--data", "a=1", "--json", "{}"}, "--data and --json exclude each other"},
		{[]string{"http", "ftp://x/y"}, `invalid URL "ftp://x/y"`},
		{[]string{"http", srv.URL, "--expect-status", "2yy"}, `invalid value "2yy" for --expect-status`},
		{[]string{"http", srv.URL, "--table", "t"}, "--table is not for http"},
		{[]string{"http", srv.URL, "--header", "Authorization: @/nonexistent/token"}, "/nonexistent/token"},
		{[]string{"gopher", srv.URL}, `unknown kind "gopher"`},
	} {
		run(t, c.args...).MustExit(t, 2, c.want)
	}
	if reqs, _ := reg.snapshot(); len(reqs) != 0 {
		t.Fatalf("sent %d requests", len(reqs))
	}
}

func TestHTTPClientErrorFailsAtOnce(t *testing.T) {
	testenv.PodEnv(t)
	reg, srv := newRegistry(t, 0)
	reg.status = http.StatusBadRequest
	r := run(t, "http", srv.URL+"/register", "--data", "instance={{ .Pod.Name }}", "--timeout", "30s")
	r.MustExit(t, 1, "HTTP 400 Bad Request: no: the field ip is required")
	if reqs, _ := reg.snapshot(); len(reqs) != 1 || r.Elapsed > 10*time.Second {
		t.Fatalf("%d requests in %s: a 400 is not retried", len(reqs), r.Elapsed)
	}
	// A status outside --expect-status is a failure too.
	reg.status = 0
	run(t, "http", srv.URL+"/register", "--expect-status", "200", "--timeout", "30s").MustExit(t, 1, "HTTP 201 Created")
	// A redirect that would turn the POST into a GET is refused at once.
	moved := httptest.NewServer(http.RedirectHandler(srv.URL+"/register", http.StatusFound))
	defer moved.Close()
	run(t, "http", moved.URL+"/old", "--timeout", "30s").MustExit(t, 1, "the server redirects POST to "+srv.URL+"/register as a GET; give the final URL")
	// 5xx goes on until --timeout, with the last reason.
	reg.failFirst = 1 << 30
	run(t, "http", srv.URL+"/register", "--timeout", "400ms").MustExit(t, 1, "timed out after 400ms: HTTP 503 Service Unavailable: busy")
}

func TestHTTPDeregister(t *testing.T) {
	testenv.PodEnv(t)
	reg, srv := newRegistry(t, 0)
	run(t, "http", srv.URL+"/register", "--data", "id={{ .Pod.UID }}").MustExit(t, 0)
	run(t, "http", srv.URL+"/register", "--deregister", "--deregister-url", srv.URL+"/instances/{{ .Pod.Name }}").MustExit(t, 0, "msg=deregistered")
	// Already gone (404) is success.
	run(t, "http", srv.URL+"/register", "--deregister", "--deregister-url", srv.URL+"/instances/{{ .Pod.Name }}").MustExit(t, 0, `msg="already gone"`)
	reg.mu.Lock()
	defer reg.mu.Unlock()
	if len(reg.deleted) != 2 || reg.deleted[0] != "/instances/web-0" || len(reg.instances) != 0 {
		t.Fatalf("deleted %q, left %v", reg.deleted, reg.instances)
	}
}

// The URL from a Service's environment variables, as the
// register-management-service example writes it: the host and the port are
// templates, so the URL is checked once rendered (a real kubelet run found
// it refused before rendering).
func TestHTTPTemplatedHostAndPort(t *testing.T) {
	testenv.PodEnv(t)
	reg, srv := newRegistry(t, 0)
	host, port, _ := strings.Cut(strings.TrimPrefix(srv.URL, "http://"), ":")
	t.Setenv("MANAGEMENT_SERVICE_HOST", host)
	t.Setenv("MANAGEMENT_SERVICE_PORT", port)
	u := "http://{{ .Env.MANAGEMENT_SERVICE_HOST }}:{{ .Env.MANAGEMENT_SERVICE_PORT }}"
	run(t, "http", u+"/register", "--data", "instance={{ .Pod.Name }}").MustExit(t, 0)
	run(t, "http", u+"/register", "--deregister", "--deregister-url", u+"/instances/{{ .Pod.Name }}").MustExit(t, 0, "msg=deregistered")
	t.Setenv("MANAGEMENT_SERVICE_HOST", "a b")
	run(t, "http", u+"/register", "--timeout", "5s").MustExit(t, 2, "not an http(s) URL")
	reg.mu.Lock()
	defer reg.mu.Unlock()
	if len(reg.deleted) != 1 || reg.deleted[0] != "/instances/web-0" {
		t.Fatalf("deleted %q", reg.deleted)
	}
}

// As a native sidecar: heartbeats every interval, each with its own key,
// then on SIGTERM one deregistration and exit 0; the ready file comes and
// goes with the registration.
func TestKeepaliveSidecar(t *testing.T) {
	reg, srv := newRegistry(t, 0)
	bin := testenv.Binary(t)
	ready := filepath.Join(t.TempDir(), "registered")
	cmd := exec.Command(bin, "register", "http", srv.URL+"/register", "--data", "id={{ .Pod.UID }}",
		"--keepalive", "200ms", "--ready-file", ready, "--termination-log", "")
	cmd.Env = append(os.Environ(), "POD_UID=uid-1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	deadline := time.Now().Add(10 * time.Second)
	for {
		reqs, _ := reg.snapshot()
		if len(reqs) >= 5 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d requests after 10 s:\n%s", len(reqs), stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if b, err := os.ReadFile(ready); err != nil || !strings.Contains(string(b), "registered with") {
		t.Fatalf("ready file: %q %v", b, err)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	err := cmd.Wait()
	if err != nil {
		t.Fatalf("exit %v after SIGTERM:\n%s", err, stderr.String())
	}
	reqs, n := reg.snapshot()
	keys := map[string]bool{}
	posts, deletes := 0, 0
	for _, q := range reqs {
		switch q.method {
		case http.MethodPost:
			posts++
			keys[q.key] = true
		case http.MethodDelete:
			deletes++
		}
	}
	if posts < 5 || len(keys) != posts || deletes != 1 || n != 0 {
		t.Fatalf("%d posts with %d keys, %d deletes, %d left registered:\n%s", posts, len(keys), deletes, n, stderr.String())
	}
	if _, err := os.Stat(ready); !os.IsNotExist(err) {
		t.Fatalf("the ready file is still there: %v", err)
	}
	if !strings.Contains(stderr.String(), "msg=deregistered") {
		t.Fatal(stderr.String())
	}
}

func TestPostgres(t *testing.T) {
	srv := pgtest.Start(t)
	dsn := srv.URL("postgres", pgtest.Password, "postgres")
	testenv.PodEnv(t)
	hostile := `x'); DROP TABLE instances; -- "quoted" ; \ 世界`
	t.Setenv("HOSTILE", hostile)
	args := []string{"postgres", dsn, "--table", "public.instances", "--key", "name={{ .Pod.Name }}{{ .Env.HOSTILE }}",
		"--set", "ip={{ .Pod.IP }}", "--set", "note={{ .Env.HOSTILE }}", "--touch", "seen", "--timeout", "20s"}

	// Without --create-table, a missing table is "not yet": it is used as
	// soon as a migration creates it.
	go func() {
		time.Sleep(700 * time.Millisecond)
		srv.PSQL(t, `CREATE TABLE instances (name text PRIMARY KEY, ip text, note text, seen timestamptz)`)
	}()
	r := run(t, args...)
	r.MustExit(t, 0, "the table does not exist yet", "msg=registered")
	if got := srv.PSQL(t, `SELECT count(*), min(name), min(ip), min(note) FROM instances`); got != "1|web-0"+hostile+"|10.1.2.3|"+hostile {
		t.Fatalf("rows: %q", got)
	}
	first := srv.PSQL(t, `SELECT seen FROM instances`)

	// A second run updates the one row.
	t.Setenv("POD_IP", "10.9.9.9")
	run(t, args...).MustExit(t, 0)
	if got := srv.PSQL(t, `SELECT count(*), min(ip), min(seen) > '`+first+`' FROM instances`); got != "1|10.9.9.9|t" {
		t.Fatalf("rows after the second run: %q", got)
	}

	// Deregistering deletes the row by its key; a second time is success.
	run(t, append(args, "--deregister")...).MustExit(t, 0)
	run(t, append(args, "--deregister")...).MustExit(t, 0)
	if got := srv.PSQL(t, `SELECT count(*) FROM instances`); got != "0" {
		t.Fatalf("rows after deregistering: %s", got)
	}

	// --create-table, with a composite key and a schema-qualified name
	// whose case is kept.
	run(t, "postgres", dsn, "--table", "Reg", "--key", "ns={{ .Pod.Namespace }}", "--key", "name={{ .Pod.Name }}", "--create-table").MustExit(t, 0)
	run(t, "postgres", dsn, "--table", "Reg", "--key", "ns={{ .Pod.Namespace }}", "--key", "name={{ .Pod.Name }}", "--create-table").MustExit(t, 0)
	if got := srv.PSQL(t, `SELECT count(*), min(ns), min(name) FROM "Reg"`); got != "1|shop|web-0" {
		t.Fatalf(`"Reg": %q`, got)
	}

	// An SQL error other than a missing table fails at once.
	r = run(t, "postgres", dsn, "--table", "instances", "--key", "name=x", "--set", "nocolumn=1", "--timeout", "30s")
	r.MustExit(t, 1, `42703 column "nocolumn" of relation "instances" does not exist`)

	// Invalid identifiers and DSNs are bad usage.
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"postgres", dsn, "--table", `instances"; DROP TABLE x; --`, "--key", "name=x"}, `invalid identifier "instances\"; DROP TABLE x; --"`},
		{[]string{"postgres", dsn, "--table", "instances", "--key", "na me=x"}, `invalid identifier "na me"`},
		{[]string{"postgres", dsn, "--table", "a.b.c", "--key", "name=x"}, `invalid --table "a.b.c"`},
		{[]string{"postgres", dsn, "--table", "instances"}, "at least one --key"},
		{[]string{"postgres", dsn, "--key", "name=x"}, "postgres wants --table"},
		{[]string{"postgres", "postgres://u:p@h:notaport/db", "--table", "t", "--key", "k=v"}, "invalid DSN"},
		{[]string{"postgres", dsn, "--table", "t", "--key", "k=v", "--data", "a=1"}, "--data is not for postgres"},
	} {
		r := run(t, c.args...)
		r.MustExit(t, 2, c.want)
		if strings.Contains(r.Stderr, pgtest.Password) {
			t.Fatal("the password was printed")
		}
	}
	if got := srv.PSQL(t, `SELECT count(*) FROM pg_tables WHERE tablename = 'instances'`); got != "1" {
		t.Fatal("the instances table is gone")
	}
}
