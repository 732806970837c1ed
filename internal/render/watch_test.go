package render

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/initbox/initbox/internal/atomicfile"
	"github.com/initbox/initbox/internal/cli"
	"github.com/initbox/initbox/internal/testenv"
)

// configMap writes files into dir as the kubelet updates a ConfigMap
// volume: a new ..YYYY… directory, ..data swapped by one rename.
func configMap(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	var payload []atomicfile.DataFile
	for n, body := range files {
		payload = append(payload, atomicfile.DataFile{Name: n, Body: []byte(body), Mode: 0o644})
	}
	if err := atomicfile.WriteData(context.Background(), root, dir, payload, atomicfile.Owner{UID: -1, GID: -1}); err != nil {
		t.Fatal(err)
	}
}

func eventually(t *testing.T, what string, ok func() bool) {
	t.Helper()
	testenv.Eventually(t, 10*time.Second, what, ok)
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// render --watch on a template in a ConfigMap volume, a --values file
// beside it: the output follows each swap of ..data, the app (a real
// process, by name and by pid file, and an HTTP endpoint) is told each
// time the output changed and only then, a bad template keeps the last good
// output, and SIGTERM ends it with exit 0.
func TestWatchFollowsTheVolume(t *testing.T) {
	dir := t.TempDir()
	cm := filepath.Join(dir, "cm")
	os.Mkdir(cm, 0o755)
	configMap(t, cm, map[string]string{"app.conf.tmpl": "port={{ .Values.port }} v=1\n"})
	values := filepath.Join(dir, "values", "v.yaml")
	os.Mkdir(filepath.Dir(values), 0o755)
	os.WriteFile(values, []byte("port: 80\n"), 0o644)
	out := filepath.Join(dir, "out", "app.conf")
	// Two apps: one told by its name, one by its pid file (two signals to
	// one process could arrive as one).
	name, hups, _ := testenv.HUPCounter(t, dir, "n")
	_, hups2, pid := testenv.HUPCounter(t, dir, "p")
	pidFile := filepath.Join(dir, "app.pid")
	os.WriteFile(pidFile, []byte(strconv.Itoa(pid)+"\n"), 0o644)
	var posts atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.URL.Path == "/-/reload" {
			posts.Add(1)
		}
	}))
	defer srv.Close()
	ready := filepath.Join(dir, "ready")
	listen := testenv.ClosedAddr(t)

	ctx, cancel := context.WithCancelCause(context.Background())
	done := make(chan testenv.Result, 1)
	go func() {
		done <- testenv.Run(t, ctx, Applet, nil, filepath.Join(cm, "app.conf.tmpl"), "--values", values, "--out", out, "--watch",
			"--on-change", "signal:HUP:"+name, "--on-change", "signal:HUP:@"+pidFile, "--on-change", srv.URL+"/-/reload",
			"--ready-file", ready, "--listen", listen, "--termination-log", "")
	}()
	eventually(t, "the first render and --ready-file", func() bool { _, err := os.Stat(ready); return err == nil })
	if b, _ := os.ReadFile(out); string(b) != "port=80 v=1\n" {
		t.Fatalf("first render: %q", b)
	}
	if code, body := get(t, "http://"+listen+"/readyz"); code != 200 {
		t.Fatalf("/readyz: %d %s", code, body)
	}
	if n := testenv.Lines(hups) + testenv.Lines(hups2) + int(posts.Load()); n != 0 {
		t.Fatalf("the first render notified %d times: the app starts after it", n)
	}
	// Nothing changes: nothing runs (inotify, no polling).
	time.Sleep(300 * time.Millisecond)
	if _, m := get(t, "http://"+listen+"/metrics"); !strings.Contains(m, "initbox_passes_total 1\n") {
		t.Fatalf("passes while nothing changed:\n%s", m)
	}

	// The ConfigMap changes: the output follows, and each notifier runs
	// once.
	configMap(t, cm, map[string]string{"app.conf.tmpl": "port={{ .Values.port }} v=2\n"})
	eventually(t, "the output after the ConfigMap's swap", func() bool { b, _ := os.ReadFile(out); return string(b) == "port=80 v=2\n" })
	eventually(t, "a SIGHUP to each app and a POST", func() bool { return testenv.Lines(hups) == 1 && testenv.Lines(hups2) == 1 && posts.Load() == 1 })

	// The values file changes: so does the output.
	os.WriteFile(values, []byte("port: 8080\n"), 0o644)
	eventually(t, "the output after --values changed", func() bool { b, _ := os.ReadFile(out); return string(b) == "port=8080 v=2\n" })
	eventually(t, "the second round of notifications", func() bool { return testenv.Lines(hups) == 2 && testenv.Lines(hups2) == 2 && posts.Load() == 2 })

	// The same content again, as a fresh swap: nothing is written, no one
	// is told.
	fi, _ := os.Stat(out)
	configMap(t, cm, map[string]string{"app.conf.tmpl": "port={{ .Values.port }} v=2\n"})
	time.Sleep(500 * time.Millisecond)
	if fi2, _ := os.Stat(out); !os.SameFile(fi, fi2) || testenv.Lines(hups) != 2 || testenv.Lines(hups2) != 2 || posts.Load() != 2 {
		t.Fatalf("an unchanged render was written or notified: same file %v, %d+%d SIGHUPs, %d POSTs", os.SameFile(fi, fi2), testenv.Lines(hups), testenv.Lines(hups2), posts.Load())
	}

	// A broken template: the pass fails, the last good output stays, the
	// sidecar goes on and counts it.
	configMap(t, cm, map[string]string{"app.conf.tmpl": "port={{ .Values.port \n"})
	eventually(t, "the failed pass in /metrics", func() bool {
		_, m := get(t, "http://"+listen+"/metrics")
		return strings.Contains(m, "initbox_pass_failures_total 1")
	})
	if b, _ := os.ReadFile(out); string(b) != "port=8080 v=2\n" {
		t.Fatalf("a broken template replaced the output: %q", b)
	}
	_, m := get(t, "http://"+listen+"/metrics")
	for _, want := range []string{"initbox_changes_total 3", "initbox_notifications_total 6", "initbox_notification_failures_total 0"} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %q:\n%s", want, m)
		}
	}

	cancel(&cli.SignalError{Signal: syscall.SIGTERM})
	select {
	case r := <-done:
		r.MustExit(t, 0, "pass failed; the last good output stays")
	case <-time.After(5 * time.Second):
		t.Fatal("SIGTERM did not end the watch within 5 s")
	}
}

// A notification that cannot be delivered says why in one line, and the
// watch goes on.
func TestWatchNotifyFailuresSayWhy(t *testing.T) {
	dir := t.TempDir()
	tpl := filepath.Join(dir, "t.tmpl")
	os.WriteFile(tpl, []byte("a\n"), 0o644)
	out := filepath.Join(dir, "out")
	ctx, cancel := context.WithCancelCause(context.Background())
	done := make(chan testenv.Result, 1)
	go func() {
		done <- testenv.Run(t, ctx, Applet, nil, tpl, "--out", out, "--watch", "--on-change", "signal:HUP:nosuchprog12345",
			"--on-change", "signal:USR1:@"+filepath.Join(dir, "missing.pid"), "--termination-log", "")
	}()
	eventually(t, "the first render", func() bool { _, err := os.Stat(out); return err == nil })
	os.WriteFile(tpl, []byte("b\n"), 0o644)
	eventually(t, "the second render", func() bool { b, _ := os.ReadFile(out); return string(b) == "b\n" })
	time.Sleep(200 * time.Millisecond)
	cancel(&cli.SignalError{Signal: syscall.SIGTERM})
	r := <-done
	r.MustExit(t, 0, "no process named nosuchprog12345 in this PID namespace (is shareProcessNamespace: true set?)", "the pid file: open "+filepath.Join(dir, "missing.pid"))
}

func TestWatchBadUsage(t *testing.T) {
	dir := t.TempDir()
	tpl := filepath.Join(dir, "t.tmpl")
	os.WriteFile(tpl, []byte("a\n"), 0o644)
	for args, want := range map[string]string{
		"--on-change signal:HUP:x":            "go with --watch",
		"--watch --out -":                     "--out - (stdout) cannot be",
		"--watch --on-change signal:BOGUS:x":  `unknown signal "BOGUS"`,
		"--watch --on-change ftp://x/":        "want signal:SIG:NAME, signal:SIG:@PIDFILE or an http(s) URL",
		"--watch --on-change signal:HUP":      "want signal:SIG:NAME or signal:SIG:@PIDFILE",
		"--watch --listen nonsense":           "invalid --listen",
		"--watch --on-change-method= --out x": "--on-change-method is empty",
	} {
		a := append([]string{tpl}, strings.Fields(args)...)
		if !strings.Contains(args, "--out") {
			a = append(a, "--out", filepath.Join(dir, "o"))
		}
		r := run(t, a...)
		r.MustExit(t, 2, want)
	}
}

// Against a real reload target: nginx, from Debian's package, re-reads
// the configuration render --watch keeps true at each SIGHUP sent to the
// pid in its pid file.
func TestWatchReloadsNginx(t *testing.T) {
	testenv.RealServer(t, "nginx")
	nginx, err := exec.LookPath("nginx")
	if err != nil {
		if nginx = "/usr/sbin/nginx"; !exists(nginx) {
			testenv.Skip(t, "Debian's nginx is needed (make test installs nginx-light)")
		}
	}
	dir := t.TempDir()
	os.Chmod(dir, 0o755) // nginx's workers run as nobody
	port := strings.Split(testenv.ClosedAddr(t), ":")[1]
	tpl := filepath.Join(dir, "nginx.conf.tmpl")
	os.WriteFile(tpl, []byte(`daemon off;
pid {{ .Values.dir }}/nginx.pid;
error_log stderr;
events {}
http {
  access_log off;
  client_body_temp_path {{ .Values.dir }}/tmp;
  proxy_temp_path {{ .Values.dir }}/tmp;
  fastcgi_temp_path {{ .Values.dir }}/tmp;
  uwsgi_temp_path {{ .Values.dir }}/tmp;
  scgi_temp_path {{ .Values.dir }}/tmp;
  server {
    listen 127.0.0.1:{{ .Values.port }};
    location / { return 200 "{{ .Values.greeting }}\n"; }
  }
}
`), 0o644)
	values := filepath.Join(dir, "values.yaml")
	writeValues := func(greeting string) {
		os.WriteFile(values+".new", []byte(fmt.Sprintf("dir: %s\nport: %s\ngreeting: %s\n", dir, port, greeting)), 0o644)
		os.Rename(values+".new", values)
	}
	writeValues("hello v1")
	conf := filepath.Join(dir, "nginx.conf")
	ready := filepath.Join(dir, "ready")
	ctx, cancel := context.WithCancelCause(context.Background())
	done := make(chan testenv.Result, 1)
	go func() {
		done <- testenv.Run(t, ctx, Applet, nil, tpl, "--values", values, "--out", conf, "--watch",
			"--on-change", "signal:HUP:@"+filepath.Join(dir, "nginx.pid"), "--ready-file", ready, "--termination-log", "")
	}()
	eventually(t, "the first render", func() bool { _, err := os.Stat(ready); return err == nil })
	cmd := exec.Command(nginx, "-p", dir, "-c", conf, "-e", "stderr")
	var logs strings.Builder
	cmd.Stdout, cmd.Stderr = &logs, &logs
	testenv.StartGroup(t, cmd)
	url := "http://127.0.0.1:" + port + "/"
	eventually(t, "nginx serving the first configuration", func() bool { _, b := get(t, url); return b == "hello v1\n" })
	writeValues("hello v2")
	eventually(t, "nginx serving the re-rendered configuration", func() bool { _, b := get(t, url); return b == "hello v2\n" })
	cancel(&cli.SignalError{Signal: syscall.SIGTERM})
	r := <-done
	r.MustExit(t, 0, "notified")
	if t.Failed() {
		t.Log(logs.String())
	}
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }

// Another real reload target: HAProxy in master-worker mode re-reads its
// configuration at the SIGUSR2 its master gets through the pid file.
func TestWatchReloadsHAProxy(t *testing.T) {
	testenv.RealServer(t, "haproxy")
	haproxy := "/usr/sbin/haproxy"
	if !exists(haproxy) {
		testenv.Skip(t, "Debian's haproxy is needed (make test installs it)")
	}
	dir := t.TempDir()
	port := strings.Split(testenv.ClosedAddr(t), ":")[1]
	tpl := filepath.Join(dir, "haproxy.cfg.tmpl")
	os.WriteFile(tpl, []byte(`global
  log stderr format raw local0 warning
defaults
  mode http
  timeout client 5s
  timeout server 5s
  timeout connect 1s
frontend web
  bind 127.0.0.1:{{ .Values.port }}
  http-request return status 200 content-type text/plain string "{{ .Values.greeting }}"
`), 0o644)
	values := filepath.Join(dir, "values.yaml")
	writeValues := func(greeting string) {
		os.WriteFile(values+".new", []byte(fmt.Sprintf("port: %s\ngreeting: %s\n", port, greeting)), 0o644)
		os.Rename(values+".new", values)
	}
	writeValues("hello-v1")
	conf := filepath.Join(dir, "haproxy.cfg")
	pidFile := filepath.Join(dir, "haproxy.pid")
	ready := filepath.Join(dir, "ready")
	ctx, cancel := context.WithCancelCause(context.Background())
	done := make(chan testenv.Result, 1)
	go func() {
		done <- testenv.Run(t, ctx, Applet, nil, tpl, "--values", values, "--out", conf, "--watch",
			"--on-change", "signal:USR2:@"+pidFile, "--ready-file", ready, "--termination-log", "")
	}()
	eventually(t, "the first render", func() bool { _, err := os.Stat(ready); return err == nil })
	cmd := exec.Command(haproxy, "-W", "-db", "-f", conf, "-p", pidFile)
	var logs strings.Builder
	cmd.Stdout, cmd.Stderr = &logs, &logs
	testenv.StartGroup(t, cmd)
	url := "http://127.0.0.1:" + port + "/"
	eventually(t, "haproxy serving the first configuration", func() bool { _, b := get(t, url); return b == "hello-v1" })
	eventually(t, "haproxy's pid file", func() bool { return exists(pidFile) })
	writeValues("hello-v2")
	eventually(t, "haproxy serving the re-rendered configuration", func() bool { _, b := get(t, url); return b == "hello-v2" })
	cancel(&cli.SignalError{Signal: syscall.SIGTERM})
	r := <-done
	r.MustExit(t, 0, "notified")
	if t.Failed() {
		t.Log(logs.String())
	}
}
