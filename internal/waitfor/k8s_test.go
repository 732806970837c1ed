package waitfor

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/initbox/initbox/internal/kube"
	"github.com/initbox/initbox/internal/redact"
	"github.com/initbox/initbox/internal/testenv"
	"github.com/initbox/initbox/internal/testenv/kubetest"
	"sigs.k8s.io/yaml"
)

// A target that is never ready, for the leak test: the API server is the
// silent one, through $KUBECONFIG.
var _ = silentTarget("k8s", func(s silent) string {
	kc := s.dir + "/kubeconfig"
	osWriteFile(kc, "apiVersion: v1\nkind: Config\ncurrent-context: c\nclusters: [{name: c, cluster: {server: \"https://"+s.addr+"\", insecure-skip-tls-verify: true}}]\nusers: [{name: u, user: {token: t}}]\ncontexts: [{name: c, context: {cluster: c, user: u, namespace: ns}}]\n")
	s.env["KUBECONFIG"] = kc
	return "job/migrate"
})

var (
	apiOnce sync.Once
	api     *kubetest.Server
)

// cluster is one API server for the package's tests (it takes seconds to
// start); each test uses its own namespace. The server outlives the tests.
func cluster(t *testing.T, ns string) *kubetest.Server {
	t.Helper()
	testenv.RealServer(t, "kube-apiserver and etcd") // before the Once: a skip inside it would leave api nil
	// Compacting etcd every second makes old resourceVersions expire
	// quickly, as they do in a busy cluster.
	apiOnce.Do(func() { api = kubetest.Start(&keepAlive{T: t}, "--etcd-compaction-interval=1s") })
	if api == nil {
		t.Fatal("the API server did not start")
	}
	api.Namespace(t, ns)
	return api
}

// keepAlive lets the shared server outlive the test that started it:
// its cleanups run when the package's tests are done (TestMain).
type keepAlive struct{ *testing.T }

var sharedCleanups []func()

func (k *keepAlive) Cleanup(f func()) { sharedCleanups = append(sharedCleanups, f) }
func (k *keepAlive) TempDir() string {
	d, err := osMkdirTemp()
	if err != nil {
		k.Fatal(err)
	}
	sharedCleanups = append(sharedCleanups, func() { os.RemoveAll(d) })
	return d
}

// TestMain stops the shared servers once the tests are done, then fails
// the package if any process a test started is still running.
func TestMain(m *testing.M) {
	testenv.Main(m, func() {
		for i := len(sharedCleanups) - 1; i >= 0; i-- {
			sharedCleanups[i]()
		}
	})
}

var readAll = map[string]any{"apiGroups": []string{"*"}, "resources": []string{"*"}, "verbs": []string{"get", "list", "watch"}}

func job(name string) map[string]any {
	return map[string]any{"apiVersion": "batch/v1", "kind": "Job", "metadata": map[string]any{"name": name},
		"spec": map[string]any{"template": map[string]any{"spec": map[string]any{
			"restartPolicy": "Never", "containers": []any{map[string]any{"name": "m", "image": "migrate:1"}}}}}}
}

func jobStatusTB(t testing.TB, s *kubetest.Server, ns, name string) { jobStatus(t, s, ns, name, true) }

func jobStatus(t testing.TB, s *kubetest.Server, ns, name string, complete bool) {
	now := time.Now().UTC().Format(time.RFC3339)
	conds := []any{
		map[string]any{"type": "SuccessCriteriaMet", "status": "True", "lastTransitionTime": now},
		map[string]any{"type": "Complete", "status": "True", "lastTransitionTime": now},
	}
	st := map[string]any{"startTime": now, "completionTime": now, "succeeded": 1, "conditions": conds}
	if !complete {
		conds = []any{
			map[string]any{"type": "FailureTarget", "status": "True", "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit", "lastTransitionTime": now},
			map[string]any{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit", "lastTransitionTime": now},
		}
		st = map[string]any{"startTime": now, "failed": 1, "conditions": conds}
	}
	s.Must(t, "PATCH", "/apis/batch/v1/namespaces/"+ns+"/jobs/"+name+"/status", map[string]any{"status": st})
}

func TestK8sJob(t *testing.T) {
	s := cluster(t, "jobs")
	sa, env := s.ServiceAccount(t, "jobs", "app", readAll)
	flags := []string{"--service-account-dir", sa, "--timeout", "60s"}

	// Completes while waiting (TYPE NAME form); the namespace is the
	// service account's.
	s.Must(t, "POST", "/apis/batch/v1/namespaces/jobs/jobs", job("migrate"))
	after(time.Second, func() { jobStatus(t, s, "jobs", "migrate", true) })
	r := run(t, env, append([]string{"k8s", "job", "migrate"}, flags...)...)
	r.MustExit(t, 0, "msg=ready", "k8s job/migrate")
	if r.Elapsed < time.Second {
		t.Fatalf("ready after %s, before the Job completed", r.Elapsed)
	}

	// Fails: exit 1 at once, with the Job's reason, even with a long timeout.
	s.Must(t, "POST", "/apis/batch/v1/namespaces/jobs/jobs", job("broken"))
	after(500*time.Millisecond, func() { jobStatus(t, s, "jobs", "broken", false) })
	r = run(t, env, append([]string{"k8s:job/broken", "tcp://127.0.0.1:1"}, flags...)...)
	r.MustExit(t, 1, "k8s job/broken: job broken failed: BackoffLimitExceeded: Job has reached the specified backoff limit")
	if r.Elapsed > 30*time.Second {
		t.Fatalf("a failed Job took %s to report", r.Elapsed)
	}

	// Not there at all: times out saying so.
	run(t, env, append([]string{"k8s", "job/nosuch", "--timeout", "1s"}, flags[:2]...)...).MustExit(t, 1, "job/nosuch not found")

	// A Job removed after it finished (ttlSecondsAfterFinished): with
	// --if-missing ready that is ready at once; with fail, exit 1 at once.
	r = run(t, env, append([]string{"k8s", "job/cleaned-up", "--if-missing", "ready"}, flags...)...)
	r.MustExit(t, 0, "counted as ready (--if-missing ready)", "msg=ready")
	r = run(t, env, append([]string{"k8s", "job/cleaned-up", "--if-missing", "fail"}, flags...)...)
	r.MustExit(t, 1, "job/cleaned-up not found (--if-missing fail)")
	if r.Elapsed > 10*time.Second {
		t.Fatalf("--if-missing fail took %s", r.Elapsed)
	}
	// A Job that is there is judged as ever: a running one is not ready.
	s.Must(t, "POST", "/apis/batch/v1/namespaces/jobs/jobs", job("running"))
	run(t, env, append([]string{"k8s", "job/running", "--if-missing", "ready", "--timeout", "2s"}, flags[:2]...)...).MustExit(t, 1, "timed out")
	run(t, env, "k8s", "job/x", "--if-missing", "maybe").MustExit(t, 2, `invalid value "maybe" for --if-missing`)
	run(t, env, "k8s", "job/x", "--if-missing", "ready", "--for", "create").MustExit(t, 2, "--if-missing does not apply")
}

func TestK8sEndpoints(t *testing.T) {
	s := cluster(t, "svc")
	sa, env := s.ServiceAccount(t, "svc", "app", readAll)
	slice := func(name string, ready ...bool) map[string]any {
		var eps []any
		for i, r := range ready {
			eps = append(eps, map[string]any{"addresses": []string{fmt.Sprintf("10.1.0.%d", i+1)}, "conditions": map[string]any{"ready": r}})
		}
		return map[string]any{"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
			"metadata":  map[string]any{"name": name, "labels": map[string]any{"kubernetes.io/service-name": "db"}},
			"endpoints": eps, "ports": []any{map[string]any{"port": 5432, "protocol": "TCP"}}}
	}
	s.Must(t, "POST", "/apis/discovery.k8s.io/v1/namespaces/svc/endpointslices", slice("db-a", false))
	after(700*time.Millisecond, func() {
		s.Must(t, "PATCH", "/apis/discovery.k8s.io/v1/namespaces/svc/endpointslices/db-a", map[string]any{
			"endpoints": slice("", true, false)["endpoints"]})
	})
	after(1500*time.Millisecond, func() {
		s.Must(t, "POST", "/apis/discovery.k8s.io/v1/namespaces/svc/endpointslices", slice("db-b", true))
	})
	r := run(t, env, "k8s", "endpoints", "db", "--min-ready", "2", "--service-account-dir", sa, "--timeout", "60s", "-v")
	r.MustExit(t, 0, "service db has 0 ready endpoints, want 2", "service db has 1 ready endpoints, want 2", "msg=ready")
	if r.Elapsed < 1500*time.Millisecond {
		t.Fatalf("ready after %s, before the second slice", r.Elapsed)
	}
}

func TestK8sPodsBySelector(t *testing.T) {
	s := cluster(t, "pods")
	sa, env := s.ServiceAccount(t, "pods", "app", readAll)
	for _, n := range []string{"web-0", "web-1", "other"} {
		app := "web"
		if n == "other" {
			app = "other"
		}
		s.Must(t, "POST", "/api/v1/namespaces/pods/pods", map[string]any{"apiVersion": "v1", "kind": "Pod",
			"metadata": map[string]any{"name": n, "labels": map[string]any{"app": app}},
			"spec":     map[string]any{"containers": []any{map[string]any{"name": "c", "image": "web:1"}}}})
	}
	ready := func(name string) {
		s.Must(t, "PATCH", "/api/v1/namespaces/pods/pods/"+name+"/status", map[string]any{"status": map[string]any{
			"conditions": []any{map[string]any{"type": "Ready", "status": "True"}}}})
	}
	ready("other")
	after(500*time.Millisecond, func() { ready("web-0") })
	after(1200*time.Millisecond, func() { ready("web-1") })
	r := run(t, env, "k8s", "pod", "-l", "app=web", "--min-ready", "2", "--service-account-dir", sa, "--timeout", "60s")
	r.MustExit(t, 0, "msg=ready")
	if r.Elapsed < 1200*time.Millisecond {
		t.Fatalf("ready after %s, before the second pod", r.Elapsed)
	}
	run(t, env, "k8s", "pod/web-0", "--service-account-dir", sa, "--timeout", "10s").MustExit(t, 0)
}

// Any resource, through discovery: a Deployment's condition, a custom
// resource's field, with a kubeconfig instead of a service account.
func TestK8sForAnyResource(t *testing.T) {
	s := cluster(t, "any")
	kc := s.Kubeconfig(t, "any")
	s.Must(t, "POST", "/apis/apps/v1/namespaces/any/deployments", map[string]any{"apiVersion": "apps/v1", "kind": "Deployment",
		"metadata": map[string]any{"name": "web"},
		"spec": map[string]any{"selector": map[string]any{"matchLabels": map[string]any{"app": "web"}},
			"template": map[string]any{"metadata": map[string]any{"labels": map[string]any{"app": "web"}},
				"spec": map[string]any{"containers": []any{map[string]any{"name": "c", "image": "web:1"}}}}}})
	after(600*time.Millisecond, func() {
		s.Must(t, "PATCH", "/apis/apps/v1/namespaces/any/deployments/web/status", map[string]any{"status": map[string]any{
			"conditions": []any{map[string]any{"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"}}}})
	})
	run(t, nil, "k8s", "deployments.apps/web", "--for", "condition=Available", "--kubeconfig", kc, "--timeout", "60s").MustExit(t, 0, "msg=ready")
	run(t, nil, "k8s", "deployment/web", "--for", "condition=Available=False", "--kubeconfig", kc, "--timeout", "1s").
		MustExit(t, 1, "condition Available is True")

	// A custom resource, by its group-qualified name and by its kind.
	s.Must(t, "POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", map[string]any{
		"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
		"metadata": map[string]any{"name": "widgets.example.com"},
		"spec": map[string]any{"group": "example.com", "scope": "Namespaced",
			"names": map[string]any{"plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": []string{"wd"}},
			"versions": []any{map[string]any{"name": "v1", "served": true, "storage": true,
				"subresources": map[string]any{"status": map[string]any{}},
				"schema":       map[string]any{"openAPIV3Schema": map[string]any{"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}}}})
	deadline := time.Now().Add(30 * time.Second)
	for {
		if code, _ := s.Do(t, "POST", "/apis/example.com/v1/namespaces/any/widgets", map[string]any{"apiVersion": "example.com/v1", "kind": "Widget",
			"metadata": map[string]any{"name": "w"}, "spec": map[string]any{"size": 3}}); code == 201 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the CRD was not served within 30 s")
		}
		time.Sleep(200 * time.Millisecond)
	}
	after(600*time.Millisecond, func() {
		s.Must(t, "PATCH", "/apis/example.com/v1/namespaces/any/widgets/w/status", map[string]any{"status": map[string]any{"phase": "Ready", "replicas": 3}})
	})
	run(t, nil, "k8s", "widgets.example.com/w", "--for", "jsonpath={.status.phase}=Ready", "--kubeconfig", kc, "--timeout", "60s").MustExit(t, 0, "msg=ready")
	run(t, nil, "k8s", "wd/w", "--for", "jsonpath='{.status.replicas}'=3", "--kubeconfig", kc, "--timeout", "10s").MustExit(t, 0)
	run(t, nil, "k8s", "widget/w", "--for", "jsonpath={.spec.size}=4", "--kubeconfig", kc, "--timeout", "1s").MustExit(t, 1, "{.spec.size} is 3, want 4")
	run(t, nil, "k8s", "gadgets/w", "--for", "create", "--kubeconfig", kc, "--timeout", "1s").MustExit(t, 1, `the server has no resource "gadgets"`)
}

// RBAC: a token without the rule is exit 1 at once, naming the rule.
func TestK8sForbiddenNamesTheRule(t *testing.T) {
	s := cluster(t, "rbac")
	sa, env := s.ServiceAccount(t, "rbac", "norules")
	r := run(t, env, "k8s", "job", "migrate", "--service-account-dir", sa, "--timeout", "60s")
	r.MustExit(t, 1, `forbidden: the service account needs this rule in a Role in namespace rbac: {apiGroups: ["batch"], resources: ["jobs"], verbs: ["get", "list", "watch"]}`)
	if r.Elapsed > 30*time.Second {
		t.Fatalf("took %s", r.Elapsed)
	}
	// A token the server does not know: 401, not retried.
	bad := t.TempDir()
	osWriteFile(bad+"/token", "not-a-token")
	osWriteFile(bad+"/ca.crt", string(s.CA))
	run(t, env, "k8s", "job", "migrate", "--service-account-dir", bad, "-n", "rbac", "--timeout", "60s").MustExit(t, 1, "unauthorized: the API server refused the token")
	// Outside a cluster, without a kubeconfig: bad usage.
	run(t, map[string]string{"KUBERNETES_SERVICE_HOST": "", "KUBECONFIG": ""}, "k8s", "job", "x").MustExit(t, 2)
}

// A watch broken by the server is resumed (or re-listed when its version
// is gone), and the token file rotated meanwhile is the one used.
func TestK8sWatchSurvivesARestartAndARotatedToken(t *testing.T) {
	// Its own server, restarted below; without the watch cache and with
	// etcd compacted every second, the version the watch resumes from has
	// likely expired by then (410), and the objects are listed again.
	s := kubetest.Start(t, "--watch-cache=false", "--etcd-compaction-interval=1s")
	s.Namespace(t, "restart")
	sa, env := s.ServiceAccount(t, "restart", "app", readAll)
	s.Must(t, "POST", "/apis/batch/v1/namespaces/restart/jobs", job("migrate"))
	done := make(chan struct{})
	go func() {
		defer close(done)
		time.Sleep(time.Second)
		// The old token dies with its service account; a new one is
		// written, as the kubelet would.
		s.Must(t, "DELETE", "/api/v1/namespaces/restart/serviceaccounts/app", nil)
		s.Must(t, "POST", "/api/v1/namespaces/restart/serviceaccounts", map[string]any{"apiVersion": "v1", "kind": "ServiceAccount", "metadata": map[string]any{"name": "app"}})
		s.WriteToken(t, sa, "restart", "app")
		s.Restart()
		jobStatus(t, s, "restart", "migrate", true)
	}()
	r := run(t, env, "k8s", "job", "migrate", "--service-account-dir", sa, "--timeout", "90s", "-v")
	<-done
	r.MustExit(t, 0, "msg=ready")
}

// The kube client reads a 410 for a version too old as Gone. Without the
// watch cache, a watch goes to etcd, which has compacted the version away.
func TestK8sWatchFromAnAncientVersionIsGone(t *testing.T) {
	s := kubetest.Start(t, "--watch-cache=false", "--etcd-compaction-interval=1s")
	s.Namespace(t, "gone")
	cfg, err := kube.FromKubeconfig(s.Kubeconfig(t, "gone"))
	if err != nil {
		t.Fatal(err)
	}
	c := kube.New(cfg, &redact.Set{})
	for i := 0; i < 3; i++ {
		s.Must(t, "POST", "/api/v1/namespaces/gone/configmaps", map[string]any{"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]any{"name": fmt.Sprintf("cm%d", i)}})
	}
	time.Sleep(3 * time.Second) // two compactions
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	w, err := c.Watch(ctx, "/api/v1/namespaces/gone/configmaps", url.Values{}, "1")
	if err == nil {
		defer w.Close()
		var ev kube.Event
		ev, err = w.Next()
		t.Logf("first event: %s %v", ev.Type, ev.Object["metadata"])
	}
	if !kube.Gone(err) {
		t.Fatalf("a watch from resourceVersion 1: %v, want 410 Gone", err)
	}
	if !strings.Contains(err.Error(), "410") {
		t.Fatal(err)
	}
}

// BenchmarkK8sWatchDetection: from a Job's status change to waitfor's exit,
// through the watch (make bench reports the median).
func BenchmarkK8sWatchDetection(b *testing.B) {
	s := kubetest.Start(b)
	s.Namespace(b, "bench")
	sa, env := s.ServiceAccount(b, "bench", "app", readAll)
	bin := testenv.Binary(b)
	var lat []time.Duration
	for i := 0; i < b.N; i++ {
		name := fmt.Sprintf("job-%d", i)
		s.Must(b, "POST", "/apis/batch/v1/namespaces/bench/jobs", job(name))
		cmd := exec.Command(bin, "waitfor", "k8s", "job", name, "--service-account-dir", sa, "--timeout", "60s", "-v", "--termination-log", "")
		cmd.Env = os.Environ()
		for k, v := range env {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
		stderr, _ := cmd.StderrPipe()
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		// Listed (its first "not ready"), then give the watch a moment.
		buf := make([]byte, 4096)
		var seen strings.Builder
		for !strings.Contains(seen.String(), "not complete yet") {
			n, err := stderr.Read(buf)
			if err != nil {
				b.Fatalf("waitfor ended before listing: %s", seen.String())
			}
			seen.Write(buf[:n])
		}
		go io.Copy(io.Discard, stderr)
		time.Sleep(200 * time.Millisecond)
		t0 := time.Now()
		jobStatusTB(b, s, "bench", name)
		if err := cmd.Wait(); err != nil {
			b.Fatalf("waitfor: %v", err)
		}
		lat = append(lat, time.Since(t0))
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "ms-median-detection")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "ms-max-detection")
}

// The example's Role is exactly enough for the example's waitfor.
func TestK8sExampleRoleSuffices(t *testing.T) {
	s := cluster(t, "example")
	b, err := os.ReadFile("../../examples/app-waits-for-migration-job.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var rules []map[string]any
	var args []string
	for _, doc := range strings.Split(string(b), "\n---\n") {
		var o struct {
			Kind  string           `json:"kind"`
			Rules []map[string]any `json:"rules"`
			Spec  struct {
				Template struct {
					Spec struct {
						InitContainers []struct {
							Args []string `json:"args"`
						} `json:"initContainers"`
					} `json:"spec"`
				} `json:"template"`
			} `json:"spec"`
		}
		if err := yaml.Unmarshal([]byte(doc), &o); err != nil {
			t.Fatal(err)
		}
		switch o.Kind {
		case "Role":
			rules = o.Rules
		case "Deployment":
			args = o.Spec.Template.Spec.InitContainers[0].Args
		}
	}
	if len(rules) == 0 || len(args) < 2 || args[0] != "waitfor" {
		t.Fatalf("rules %v, args %q", rules, args)
	}
	sa, env := s.ServiceAccount(t, "example", "shop-web", rules...)
	s.Must(t, "POST", "/apis/batch/v1/namespaces/example/jobs", job("shop-migrate-v42"))
	jobStatus(t, s, "example", "shop-migrate-v42", true)
	s.Must(t, "POST", "/apis/discovery.k8s.io/v1/namespaces/example/endpointslices", map[string]any{
		"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
		"metadata":  map[string]any{"name": "shop-db-1", "labels": map[string]any{"kubernetes.io/service-name": "shop-db"}},
		"endpoints": []any{map[string]any{"addresses": []string{"10.2.0.1"}}}})
	run(t, env, append(args[1:], "--service-account-dir", sa)...).MustExit(t, 0, "msg=ready")
}

// Where watches fail (a proxy that does not pass them), waitfor polls the
// list on the probe schedule instead, and still sees the change.
func TestK8sPollsWhenWatchesFail(t *testing.T) {
	s := cluster(t, "nowatch")
	var watches atomic.Int32
	kc := proxied(t, s, "nowatch", func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Query().Get("watch") == "" {
			return false
		}
		watches.Add(1)
		http.Error(w, "this proxy does not stream", http.StatusBadGateway)
		return true
	})
	s.Must(t, "POST", "/apis/batch/v1/namespaces/nowatch/jobs", job("migrate"))
	after(2*time.Second, func() { jobStatus(t, s, "nowatch", "migrate", true) })
	r := run(t, nil, "k8s", "job", "migrate", "--kubeconfig", kc, "--timeout", "60s", "-v")
	r.MustExit(t, 0, "msg=ready", "502 Bad Gateway")
	if n := watches.Load(); n < 3 || n > 4 {
		t.Fatalf("%d watch requests; want 3 failures, then polling", n)
	}
}

// A watch whose version has expired (410, as an ERROR event the way the API
// server sends it when etcd compacted past it) is answered by listing
// again. The proxy turns the first watch into that event; the rest pass.
func TestK8sRelistsOnGone(t *testing.T) {
	s := cluster(t, "gone410")
	var watches, lists atomic.Int32
	kc := proxied(t, s, "gone410", func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Query().Get("watch") != "" && watches.Add(1) == 1 {
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","status":"Failure","message":"too old resource version: 1 (200)","reason":"Expired","code":410}}`+"\n")
			return true
		}
		if r.URL.Query().Get("watch") == "" && strings.HasSuffix(r.URL.Path, "/jobs") {
			lists.Add(1)
		}
		return false
	})
	s.Must(t, "POST", "/apis/batch/v1/namespaces/gone410/jobs", job("migrate"))
	after(time.Second, func() { jobStatus(t, s, "gone410", "migrate", true) })
	r := run(t, nil, "k8s", "job", "migrate", "--kubeconfig", kc, "--timeout", "60s", "-v")
	r.MustExit(t, 0, "the watch's version expired; listing again", "msg=ready")
	if lists.Load() != 2 || watches.Load() < 2 {
		t.Fatalf("%d lists and %d watches; want a second list after the 410, then a watch", lists.Load(), watches.Load())
	}
}

// proxied returns a kubeconfig for namespace ns that talks to s through a
// proxy; intercept may answer a request itself (and return true) to inject
// a fault, else it goes on to the real server as the admin.
func proxied(t *testing.T, s *kubetest.Server, ns string, intercept func(http.ResponseWriter, *http.Request) bool) string {
	target, _ := url.Parse(s.URL)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(s.CA)
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	front := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if intercept(w, r) {
			return
		}
		r.Header.Set("Authorization", "Bearer "+kubetest.AdminToken)
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)
	kc := filepath.Join(t.TempDir(), "kubeconfig")
	osWriteFile(kc, `apiVersion: v1
kind: Config
current-context: c
clusters: [{name: p, cluster: {server: "`+front.URL+`", insecure-skip-tls-verify: true}}]
users: [{name: u, user: {token: unused}}]
contexts: [{name: c, context: {cluster: p, user: u, namespace: `+ns+`}}]
`)
	return kc
}
