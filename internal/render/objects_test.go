package render

import (
	"context"
	"encoding/base64"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/initbox/initbox/internal/cli"
	"github.com/initbox/initbox/internal/testenv"
	"github.com/initbox/initbox/internal/testenv/kubetest"
)

func configMapObj(name string, data map[string]string) map[string]any {
	return map[string]any{"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]any{"name": name}, "data": data}
}

// render --configmap/--secret read through a real kube-apiserver, once and
// watched: a change through the API reaches the output in well under a
// second (no kubelet volume refresh in between), a Secret's value is masked
// in the logs, a deleted ConfigMap keeps the last good output, and a
// restart of the API server is survived.
func TestRenderFromTheAPI(t *testing.T) {
	s := kubetest.Start(t, "--watch-cache=false", "--etcd-compaction-interval=1s")
	s.Namespace(t, "render")
	s.Must(t, "POST", "/api/v1/namespaces/render/configmaps", configMapObj("app", map[string]string{"greeting": "hello"}))
	s.Must(t, "POST", "/api/v1/namespaces/render/secrets", map[string]any{"apiVersion": "v1", "kind": "Secret",
		"metadata": map[string]any{"name": "db"}, "data": map[string]string{"password": base64.StdEncoding.EncodeToString([]byte("s3cret-pw-42"))}})
	kc := s.Kubeconfig(t, "render")
	dir := t.TempDir()
	tpl := filepath.Join(dir, "app.conf.tmpl")
	os.WriteFile(tpl, []byte("{{ .ConfigMaps.app.greeting }} {{ .Secrets.db.password }}\n"), 0o644)
	out := filepath.Join(dir, "app.conf")

	// Once.
	run(t, tpl, "--out", out, "--configmap", "app", "--secret", "db", "--kubeconfig", kc).MustExit(t, 0)
	if b, _ := os.ReadFile(out); string(b) != "hello s3cret-pw-42\n" {
		t.Fatalf("once: %q", b)
	}
	run(t, tpl, "--out", out, "--configmap", "nope", "--kubeconfig", kc).MustExit(t, 1, "configmap nope not found in namespace render")
	// The pod's service account without a Role: the 403 names the rule;
	// with the rule, it reads (in its own namespace, from the token file).
	bare, env := s.ServiceAccount(t, "render", "bare")
	testenv.Run(t, context.Background(), Applet, env, tpl, "--out", out, "--configmap", "app", "--secret", "db", "--service-account-dir", bare, "--termination-log", "").
		MustExit(t, 1, `configmap app: forbidden: the service account needs this rule in a Role of its namespace: {apiGroups: [""], resources: ["configmaps"], verbs: ["get", "list", "watch"]}`)
	reader, env := s.ServiceAccount(t, "render", "reader", map[string]any{"apiGroups": []string{""}, "resources": []string{"configmaps", "secrets"}, "verbs": []string{"get", "list", "watch"}})
	testenv.Run(t, context.Background(), Applet, env, tpl, "--out", out, "--configmap", "app", "--secret", "db", "--service-account-dir", reader, "--termination-log", "").MustExit(t, 0)

	// Watched.
	listen := testenv.ClosedAddr(t)
	ctx, cancel := context.WithCancelCause(context.Background())
	done := make(chan testenv.Result, 1)
	go func() {
		done <- testenv.Run(t, ctx, Applet, nil, tpl, "--out", out, "--configmap", "app", "--secret", "db", "--kubeconfig", kc,
			"--watch", "--watch-silence", "5s", "--listen", listen, "--termination-log", "")
	}()
	content := func() string { b, _ := os.ReadFile(out); return string(b) }
	eventually(t, "the watch is up", func() bool { code, _ := get(t, "http://"+listen+"/readyz"); return code == 200 })
	start := time.Now()
	s.Must(t, "PUT", "/api/v1/namespaces/render/configmaps/app", configMapObj("app", map[string]string{"greeting": "bonjour"}))
	eventually(t, "the changed ConfigMap in the output", func() bool { return content() == "bonjour s3cret-pw-42\n" })
	took := time.Since(start)
	t.Logf("ConfigMap changed through the API → output rewritten in %s", took.Round(time.Millisecond))
	if took > 2*time.Second {
		t.Errorf("%s from the API's change to the output: a watch, not a poll, should take well under a second", took)
	}

	// The API server restarts mid-watch: the watch comes back (relisting
	// if its version expired) and the next change still arrives.
	s.Restart()
	s.Must(t, "PUT", "/api/v1/namespaces/render/configmaps/app", configMapObj("app", map[string]string{"greeting": "hallo"}))
	eventually(t, "a change after the API server's restart", func() bool { return content() == "hallo s3cret-pw-42\n" })
	if code, body := get(t, "http://"+listen+"/healthz"); code != 200 {
		t.Fatalf("/healthz after the restart: %d %s", code, body)
	}

	// Deleted: the pass fails, the last good output stays.
	s.Must(t, "DELETE", "/api/v1/namespaces/render/configmaps/app", nil)
	eventually(t, "the failed pass", func() bool {
		_, m := get(t, "http://"+listen+"/metrics")
		return strings.Contains(m, "initbox_pass_failures_total 1")
	})
	if content() != "hallo s3cret-pw-42\n" {
		t.Fatalf("a deleted ConfigMap replaced the output: %q", content())
	}
	cancel(&cli.SignalError{Signal: syscall.SIGTERM})
	r := <-done
	r.MustExit(t, 0, "configmap app not found in namespace render")
	if strings.Contains(r.Stderr, "s3cret-pw-42") {
		t.Fatalf("the Secret's value is in the log:\n%s", r.Stderr)
	}
}

// blackHole forwards TCP to addr until it is switched on; then it drops
// every byte either way and errs on nothing — the connections stay open,
// as behind a dropped route or a dead NAT entry. Switched off, it forwards
// again; a connection that lost bytes meanwhile is broken for TLS.
type blackHole struct {
	on atomic.Bool
	ln net.Listener
}

func newBlackHole(t *testing.T, addr string) *blackHole {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &blackHole{ln: ln}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go b.pipe(c, addr)
		}
	}()
	return b
}

func (b *blackHole) pipe(c net.Conn, addr string) {
	defer c.Close()
	up, err := net.Dial("tcp", addr)
	if err != nil {
		return
	}
	defer up.Close()
	copy := func(dst, src net.Conn) {
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			if b.on.Load() {
				n = 0 // dropped: nothing gets through, and nothing says so
			}
			if n > 0 {
				if _, werr := dst.Write(buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				return
			}
		}
	}
	go copy(up, c)
	copy(c, up)
}

// A watch whose connection is black-holed — no error, no byte — is taken
// for dead after --watch-silence, /healthz says so once it has been down
// longer than that, and once the route is back the change made meanwhile
// arrives within the bound (silence + the 2 s retry), with no restart of
// anything but the watch.
func TestRenderWatchSurvivesABlackHole(t *testing.T) {
	s := kubetest.Start(t)
	s.Namespace(t, "hole")
	s.Must(t, "POST", "/api/v1/namespaces/hole/configmaps", configMapObj("app", map[string]string{"v": "1"}))
	u, _ := url.Parse(s.URL)
	hole := newBlackHole(t, u.Host)
	kcFile := s.Kubeconfig(t, "hole")
	b, _ := os.ReadFile(kcFile)
	os.WriteFile(kcFile, []byte(strings.Replace(string(b), s.URL, "https://"+hole.ln.Addr().String(), 1)), 0o600)
	dir := t.TempDir()
	tpl := filepath.Join(dir, "t.tmpl")
	os.WriteFile(tpl, []byte("v={{ .ConfigMaps.app.v }}\n"), 0o644)
	out := filepath.Join(dir, "out")
	listen := testenv.ClosedAddr(t)
	const silence = 2 * time.Second
	ctx, cancel := context.WithCancelCause(context.Background())
	done := make(chan testenv.Result, 1)
	go func() {
		done <- testenv.Run(t, ctx, Applet, nil, tpl, "--out", out, "--configmap", "app", "--kubeconfig", kcFile,
			"--watch", "--watch-silence", silence.String(), "--listen", listen, "--termination-log", "")
	}()
	content := func() string { b, _ := os.ReadFile(out); return string(b) }
	eventually(t, "the first render", func() bool { return content() == "v=1\n" })
	time.Sleep(300 * time.Millisecond) // the watch is open

	hole.on.Store(true)
	s.Must(t, "PUT", "/api/v1/namespaces/hole/configmaps/app", configMapObj("app", map[string]string{"v": "2"}))
	eventually(t, "/healthz failing while the watch is down longer than the bound", func() bool {
		code, _ := get(t, "http://"+listen+"/healthz")
		return code == http.StatusServiceUnavailable
	})
	if content() != "v=1\n" {
		t.Fatalf("a change got through the black hole: %q", content())
	}
	hole.on.Store(false)
	back := time.Now()
	eventually(t, "the change made during the black hole", func() bool { return content() == "v=2\n" })
	took := time.Since(back)
	t.Logf("route back → change in the output after %s (bound: silence %s + retry 2s)", took.Round(time.Millisecond), silence)
	// The bound: a stuck list or watch opening ends after silence, the
	// retry comes 2 s later; 2 s more for a loaded machine.
	if took > silence+2*time.Second+2*time.Second {
		t.Errorf("the change took %s after the route came back, over the bound", took)
	}
	eventually(t, "/healthz healthy again", func() bool { code, _ := get(t, "http://"+listen+"/healthz"); return code == 200 })
	cancel(&cli.SignalError{Signal: syscall.SIGTERM})
	(<-done).MustExit(t, 0, "the watch was silent")
}
