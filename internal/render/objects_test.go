package render

import (
	"context"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
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
