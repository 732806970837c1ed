package e2enode

import (
	"github.com/initbox/initbox/internal/image"

	"archive/zip"
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/cgi"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"

	"github.com/initbox/initbox/internal/testenv"
	"github.com/initbox/initbox/internal/testenv/grpctest"
	"github.com/initbox/initbox/internal/testenv/nodetest"
	"github.com/initbox/initbox/internal/testenv/pgtest"
)

// The examples' image reference, under which the node has this build.
const exampleImage = "ghcr.io/initbox/initbox:latest"

// startNode brings up the single-node cluster with the image `make image`
// builds imported under the examples' reference.
func startNode(t testing.TB) *nodetest.Node {
	t.Helper()
	if why := nodetest.Prerequisites(); why != "" {
		testenv.Skip(t, why)
	}
	img, err := image.TestSpec(t).Image("amd64")
	if err != nil {
		t.Fatal(err)
	}
	tag, _ := name.NewTag(exampleImage)
	archive := filepath.Join(t.TempDir(), "initbox.tar")
	if err := tarball.WriteToFile(archive, tag, img); err != nil {
		t.Fatal(err)
	}
	return nodetest.Start(t, map[string]string{exampleImage: archive})
}

// restricted are the labels of a namespace that enforces the restricted
// Pod Security profile: every initbox example runs in one.
var restricted = map[string]string{"pod-security.kubernetes.io/enforce": "restricted", "pod-security.kubernetes.io/enforce-version": "latest"}

// example reads examples/FILE with the replacements (old, new pairs)
// applied to its text — servers the node has instead of the internet's;
// each old string must occur — every container set to imagePullPolicy
// Never, and each app container whose image the node lacks replaced by
// busybox running standIns[its name].
func example(t *testing.T, file string, replace []string, standIns map[string]string) []nodetest.Object {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "examples", file))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(replace); i += 2 {
		if !strings.Contains(string(b), replace[i]) {
			t.Fatalf("%s no longer holds %q to replace", file, replace[i])
		}
	}
	text := strings.NewReplacer(replace...).Replace(string(b))
	objs := nodetest.PullNever(nodetest.Decode(t, []byte(text)))
	seen := map[string]bool{}
	for _, spec := range nodetest.PodSpecs(objs) {
		for _, c := range nodetest.Containers(spec) {
			name, _ := c["name"].(string)
			img, _ := c["image"].(string)
			if img == exampleImage || img == "busybox:1.36" {
				continue
			}
			script, ok := standIns[name]
			if !ok {
				t.Fatalf("%s: container %s (%s) has no stand-in", file, name, img)
			}
			seen[name] = true
			c["image"] = "busybox:1.36"
			c["command"] = []any{"sh", "-c", script}
			delete(c, "args")
		}
	}
	for name := range standIns {
		if !seen[name] {
			t.Fatalf("%s: no container %s to stand in for", file, name)
		}
	}
	return objs
}

// logsOf is the log of container c in every pod of pods, joined.
func logsOf(t *testing.T, n *nodetest.Node, ns string, pods []corev1.Pod, c string) string {
	t.Helper()
	var b strings.Builder
	for _, p := range pods {
		b.WriteString(n.Logs(t, ns, p.Name, c, false))
	}
	return b.String()
}

func mustContain(t *testing.T, what, s string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(s, w) {
			t.Errorf("%s: want %q in:\n%s", what, w, s)
		}
	}
}

// sitezip is the archive nginx-fetched-content and run-one-init-container
// fetch: a small site in a top directory, as html5-boilerplate's release.
func sitezip(t testing.TB) []byte {
	var b bytes.Buffer
	z := zip.NewWriter(&b)
	for name, body := range map[string]string{"index.html": "<h1>served by initbox fetch</h1>\n", "css/style.css": "body{}\n", "404.html": "gone\n"} {
		w, _ := z.Create(name)
		io.WriteString(w, body)
	}
	if err := z.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestNode runs the seeds' pods, every example and the failure, sidecar,
// Pod Security and RBAC cases on one real node.
func TestNode(t *testing.T) {
	testenv.RealServer(t, "the kubelet node")
	n := startNode(t)

	t.Run("seeds", func(t *testing.T) { t.Parallel(); testSeeds(t, n) })
	t.Run("failure", func(t *testing.T) { t.Parallel(); testFailure(t, n) })
	t.Run("migration-job", func(t *testing.T) { t.Parallel(); testMigrationJob(t, n) })
	t.Run("downward-api", func(t *testing.T) { t.Parallel(); testDownwardAPI(t, n) })
	t.Run("fetched-content", func(t *testing.T) { t.Parallel(); testFetchedContent(t, n) })
	t.Run("install-probe", func(t *testing.T) { t.Parallel(); testInstallProbe(t, n) })
	t.Run("register-preStop", func(t *testing.T) { t.Parallel(); testRegisterManagement(t, n) })
	t.Run("statefulset-peers", func(t *testing.T) { t.Parallel(); testPeers(t, n) })
	t.Run("pod-certificates", func(t *testing.T) { t.Parallel(); testPodCertificates(t, n) })
	t.Run("postgres", func(t *testing.T) { t.Parallel(); testPostgresExamples(t, n) })
	t.Run("sysctl-privileged", func(t *testing.T) { t.Parallel(); testSysctl(t, n) })
	t.Run("run-one-init-container", func(t *testing.T) { t.Parallel(); testRunOne(t, n) })
	t.Run("mysql-redis", func(t *testing.T) { t.Parallel(); testMySQLRedis(t, n) })
	t.Run("grpc-health", func(t *testing.T) { t.Parallel(); testGRPC(t, n) })
	t.Run("git-checkout", func(t *testing.T) { t.Parallel(); testGitCheckout(t, n) })
	t.Run("podinfo", func(t *testing.T) { t.Parallel(); testPodinfo(t, n) })
}

// testSeeds: the documentation's pod and initbox's, created before their
// Services exist, under the search list and CoreDNS the kubelet gives.
func testSeeds(t *testing.T, n *nodetest.Node) {
	const ns = "seeds"
	n.Namespace(t, ns, nil)
	initbox := example(t, "myapp-pod.yaml", nil, nil)
	busybox := func(name, cmd string) nodetest.Object {
		return nodetest.Decode(t, []byte(fmt.Sprintf(`
apiVersion: v1
kind: Pod
metadata: {name: %s, labels: {app.kubernetes.io/name: MyApp}}
spec:
  initContainers:
  - name: init-myservice
    image: busybox:1.36
    imagePullPolicy: Never
    command: ['sh', '-c', %[2]q]
  - name: init-mydb
    image: busybox:1.36
    imagePullPolicy: Never
    command: ['sh', '-c', %[3]q]
  containers:
  - name: myapp-container
    image: busybox:1.36
    imagePullPolicy: Never
    command: ['sh', '-c', 'echo The app is running! && sleep 3600']
`, name, nslookupLoop("myservice", cmd), nslookupLoop("mydb", cmd))))[0]
	}
	// The documentation's manifest today (the name qualified by hand with
	// the namespace), and the short name its older versions and most
	// copies use, which README says never resolves with BusyBox.
	docs := busybox("myapp-docs", docsSuffix)
	short := busybox("myapp-short", "")
	n.Create(t, ns, append(initbox, docs, short)...)
	for _, p := range []string{"myapp-pod", "myapp-docs", "myapp-short"} {
		n.WaitPod(t, ns, p, 90*time.Second, "waiting in its first init container", func(p *corev1.Pod) bool {
			s := p.Status.InitContainerStatuses
			return len(s) > 0 && s[0].State.Running != nil
		})
	}
	time.Sleep(5 * time.Second) // every loop has asked a few times by now
	for _, p := range []string{"myapp-pod", "myapp-docs", "myapp-short"} {
		if pod := n.Pod(t, ns, p); nodetest.Running(pod) {
			t.Fatalf("%s runs before its Services exist", p)
		}
	}
	created := time.Now()
	for _, svc := range []string{"myservice", "mydb"} {
		// What `kubectl create service clusterip NAME --tcp=80:9376` makes.
		n.Create(t, ns, nodetest.Decode(t, []byte(`{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "`+svc+`"},
			"spec": {"selector": {"app": "`+svc+`"}, "ports": [{"port": 80, "targetPort": 9376}]}}`))...)
	}
	// When CoreDNS first answers for each name — its cache serves pods and
	// this query alike — and when each pod runs.
	answered := map[string]time.Duration{}
	ready := map[string]time.Duration{}
	deadline := time.Now().Add(30 * time.Second)
	for len(ready) < 3 && time.Now().Before(deadline) {
		for _, svc := range []string{"myservice", "mydb"} {
			if _, ok := answered[svc]; !ok && coreDNSAnswers(t, n, svc+"."+ns+".svc.cluster.local.") {
				answered[svc] = time.Since(created)
			}
		}
		for _, p := range []string{"myapp-pod", "myapp-docs", "myapp-short"} {
			if _, ok := ready[p]; !ok && nodetest.Running(n.Pod(t, ns, p)) {
				ready[p] = time.Since(created)
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("after the Services were created: CoreDNS answered for myservice %v, mydb %v; Running: initbox %v, docs' busybox loop %v, short-name busybox loop %v (absent: not within 30 s)",
		answered["myservice"], answered["mydb"], ready["myapp-pod"], ready["myapp-docs"], ready["myapp-short"])
	// initbox notices within a probe (200 ms) of CoreDNS answering: its own
	// log line says when, to the millisecond.
	log := n.Logs(t, ns, "myapp-pod", "init-myservice", false)
	m := regexp.MustCompile(`time=(\S+) level=INFO msg=ready`).FindStringSubmatch(log)
	if m == nil {
		t.Fatalf("no ready line from init-myservice:\n%s", log)
	}
	noticed, err := time.Parse(time.RFC3339Nano, m[1])
	if err != nil {
		t.Fatal(err)
	}
	late := noticed.Sub(created.Add(answered["myservice"]))
	t.Logf("initbox noticed myservice %v after CoreDNS first answered for it (this test polls every 50 ms)", late.Round(time.Millisecond))
	if answered["myservice"] == 0 || late > 500*time.Millisecond {
		t.Errorf("initbox noticed myservice %v after CoreDNS answered (want within a probe interval)", late)
	}
	// Then the second init container, and the app: the kubelet's own time.
	dns := max(answered["myservice"], answered["mydb"])
	if d, ok := ready["myapp-pod"]; !ok || d > dns+6*time.Second {
		t.Errorf("initbox's pod: Running %v after its Services, CoreDNS answering after %v", d, dns)
	}
	mustContain(t, "the app's log", n.Logs(t, ns, "myapp-pod", "myapp-container", false), "The app is running!")
	// BusyBox's nslookup asks every name of the search list and exits 1
	// when any of them fails: it prints the Service's address, from
	// myservice.seeds.svc.cluster.local, and the loop goes on.
	log = n.Logs(t, ns, "myapp-short", "init-myservice", false)
	t.Logf("short-name busybox loop after 30 s: its log (%d bytes) ends:\n%s", len(log), tail(log, 300))
	if _, ok := ready["myapp-short"]; ok {
		t.Errorf("the short-name busybox loop succeeded on this node: README's claim that it never does is wrong")
	}
	mustContain(t, "the short-name loop", log, "Name:\tmyservice.seeds.svc.cluster.local", "waiting for myservice")
}

// coreDNSAnswers asks the cluster's CoreDNS (on the node's address, the
// kube-dns Service's endpoint) for name's A record.
func coreDNSAnswers(t *testing.T, n *nodetest.Node, name string) bool {
	c, err := n.Dial(context.Background(), "udp", nodetest.NodeIP+":53")
	if err != nil {
		t.Fatal(err)
	}
	co := &dns.Conn{Conn: c}
	defer co.Close()
	co.SetDeadline(time.Now().Add(2 * time.Second))
	m := new(dns.Msg)
	m.SetQuestion(name, dns.TypeA)
	if err := co.WriteMsg(m); err != nil {
		return false
	}
	r, err := co.ReadMsg()
	return err == nil && r.Rcode == dns.RcodeSuccess && len(r.Answer) > 0
}

// nslookupLoop is the Kubernetes documentation's init container script
// for svc, the name followed by suffix.
func nslookupLoop(svc, suffix string) string {
	return "until nslookup " + svc + suffix + "; do echo waiting for " + svc + "; sleep 2; done"
}

// docsSuffix qualifies a name with the pod's namespace, as the
// documentation's current manifest does by hand.
const docsSuffix = ".$(cat /var/run/secrets/kubernetes.io/serviceaccount/namespace).svc.cluster.local"

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// idle ends a stand-in's script: it stays up and ends at once on SIGTERM,
// as the app it stands in for would (sleep as PID 1 would ignore SIGTERM
// and use up the pod's grace period before a native sidecar's turn).
const idle = "trap 'exit 0' TERM; sleep 3600 & wait"

// restrictedPod is a pod of one initbox container, named "wait", with
// args (a YAML list) in list (initContainers or containers), under the
// restricted profile and never restarted; with app, an initbox app
// container follows with those args.
func restrictedPod(t *testing.T, name, serviceAccount, list, args, app string) nodetest.Object {
	t.Helper()
	const c = `
  - name: %s
    image: ghcr.io/initbox/initbox:latest
    imagePullPolicy: Never
    args: %s
    securityContext: {runAsUser: 65532, readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}`
	y := fmt.Sprintf("apiVersion: v1\nkind: Pod\nmetadata: {name: %s}\nspec:\n  restartPolicy: Never\n"+
		"  securityContext: {runAsNonRoot: true, seccompProfile: {type: RuntimeDefault}}\n", name)
	if serviceAccount != "" {
		y += "  serviceAccountName: " + serviceAccount + "\n"
	}
	y += "  " + list + ":" + fmt.Sprintf(c, "wait", args) + "\n"
	if app != "" {
		y += "  containers:" + fmt.Sprintf(c, "app", app) + "\n"
	}
	return nodetest.Decode(t, []byte(y))[0]
}

// testFailure: why an init container failed is in the pod's status, where
// `kubectl describe` shows it, with the exit codes README documents.
func testFailure(t *testing.T, n *nodetest.Node) {
	const ns = "failure"
	n.Namespace(t, ns, restricted)
	pod := func(name, args string) nodetest.Object {
		return restrictedPod(t, name, "", "initContainers", args, "[sleep, 1s]")
	}
	n.Create(t, ns,
		pod("timeout", `[waitfor, tcp, "db.failure.svc.cluster.local:5432", --timeout, 3s]`),
		pod("badflag", `[waitfor, tcp, "db:5432", --timeout, soon]`))
	for name, want := range map[string]struct {
		code int32
		msg  string
	}{"timeout": {1, "db.failure.svc.cluster.local"}, "badflag": {2, "soon"}} {
		p := n.WaitPod(t, ns, name, 90*time.Second, "Failed", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodFailed })
		term := p.Status.InitContainerStatuses[0].State.Terminated
		if term == nil || term.ExitCode != want.code || !strings.Contains(term.Message, want.msg) {
			t.Errorf("%s: init container terminated %+v, want exit %d and a message naming %q", name, term, want.code, want.msg)
			continue
		}
		if p.Status.ContainerStatuses[0].State.Waiting == nil {
			t.Errorf("%s: the app container ran after a failed init container: %+v", name, p.Status.ContainerStatuses[0].State)
		}
		t.Logf("%s: exit %d, reason %s, message %q", name, term.ExitCode, term.Reason, term.Message)
	}

	// restartPolicy Always (a Deployment's pods): the kubelet restarts the
	// init container, and the reason stays in lastState while it waits.
	again := pod("restarted", `[waitfor, tcp, "db.failure.svc.cluster.local:5432", --timeout, 2s]`)
	again["spec"].(map[string]any)["restartPolicy"] = "Always"
	n.Create(t, ns, again)
	p := n.WaitPod(t, ns, "restarted", 90*time.Second, "restarted with the reason in lastState", func(p *corev1.Pod) bool {
		s := p.Status.InitContainerStatuses
		return len(s) > 0 && s[0].RestartCount > 0 && s[0].LastTerminationState.Terminated != nil
	})
	last := p.Status.InitContainerStatuses[0].LastTerminationState.Terminated
	if last.ExitCode != 1 || !strings.Contains(last.Message, "timed out after 2s") || p.Status.Phase != corev1.PodPending {
		t.Errorf("restarted: phase %s, lastState %+v", p.Status.Phase, last)
	}
}

// testMigrationJob: waitfor k8s with the pod's projected token and the
// example's Role; without the Role it fails at once with the rule to add.
func testMigrationJob(t *testing.T, n *nodetest.Node) {
	const ns = "migration"
	n.Namespace(t, ns, restricted)
	n.Expose(t, ns, "shop-db", 5432, 15432)
	objs := example(t, "app-waits-for-migration-job.yaml", nil, map[string]string{
		"migrate": "sleep 4; echo migrated",
		"web":     "echo web started; " + idle,
	})
	n.Create(t, ns, objs...)
	pods := n.WaitReady(t, ns, "app=shop-web", 2, 120*time.Second)
	mustContain(t, "web", logsOf(t, n, ns, pods, "web"), "web started")
	var job struct {
		Status struct{ CompletionTime time.Time }
	}
	code, body := n.Server.Do(t, "GET", "/apis/batch/v1/namespaces/"+ns+"/jobs/shop-migrate-v42", nil)
	if err := json.Unmarshal(body, &job); code != 200 || err != nil || job.Status.CompletionTime.IsZero() {
		t.Fatalf("the Job is not complete: %d %s", code, body)
	}
	for _, p := range pods {
		fin := p.Status.InitContainerStatuses[0].State.Terminated.FinishedAt.Time
		// Both times have one-second resolution.
		if fin.Before(job.Status.CompletionTime.Add(-time.Second)) {
			t.Errorf("%s's wait ended at %s, before the Job completed at %s", p.Name, fin, job.Status.CompletionTime)
		}
	}

	// The same wait as a service account without the Role.
	n.Create(t, ns, nodetest.Decode(t, []byte(`{"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "no-role"}}`))[0],
		restrictedPod(t, "no-role", "no-role", "containers", `["waitfor", "k8s:job/shop-migrate-v42", "--timeout", "5m"]`, ""))
	p := n.WaitPod(t, ns, "no-role", 60*time.Second, "Failed", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodFailed })
	term := p.Status.ContainerStatuses[0].State.Terminated
	elapsed := term.FinishedAt.Sub(term.StartedAt.Time)
	t.Logf("without the Role: exit %d after %s: %s", term.ExitCode, elapsed, term.Message)
	if term.ExitCode != 1 || elapsed > 3*time.Second || !strings.Contains(term.Message, "jobs") || !strings.Contains(term.Message, "batch") {
		t.Errorf("without the Role: want exit 1 at once naming the rule (batch, jobs); got exit %d after %s: %q", term.ExitCode, elapsed, term.Message)
	}
}

// testDownwardAPI: render reads the kubelet's own downward-API volume.
func testDownwardAPI(t *testing.T, n *nodetest.Node) {
	const ns = "downward"
	n.Namespace(t, ns, restricted)
	objs := example(t, "config-from-downward-api.yaml", nil, map[string]string{
		"app": "cat /config/app.conf; ls -ln /config; " + idle,
	})
	n.Create(t, ns, objs...)
	p := n.WaitReady(t, ns, "app=app", 1, 90*time.Second)[0]
	got := n.Logs(t, ns, p.Name, "app", false)
	mustContain(t, "the rendered config", got,
		"# downward/app-0 on node", "listen = "+p.Status.PodIP+":8080", "advertise = app-0.app.downward.svc.cluster.local",
		"zone = eu-west-1a", "log-level = info",
		"database = postgres://app:change+me%3B+it+may+hold+%40+and+%2F+safely@postgres.shop.svc:5432/app",
		"-r--r-----", " 65532 ")
}

// filesServer serves the site archive the fetch examples download, in
// place of github.com, inside the node.
func filesServer(t *testing.T, n *nodetest.Node, ns string, port int) {
	site := sitezip(t)
	mux := http.NewServeMux()
	mux.HandleFunc("/h5bp/html5-boilerplate/releases/download/v9.0.1/html5-boilerplate_v9.0.1.zip", func(w http.ResponseWriter, r *http.Request) {
		w.Write(site)
	})
	n.Serve(t, port, mux)
	n.Expose(t, ns, "files", 80, port)
}

// testFetchedContent: nginx-fetched-content's download lands in the
// volume the app serves.
func testFetchedContent(t *testing.T, n *nodetest.Node) {
	const ns = "fetched"
	n.Namespace(t, ns, restricted)
	filesServer(t, n, ns, 18080)
	objs := example(t, "nginx-fetched-content.yaml",
		[]string{"https://github.com/", "http://files.fetched.svc.cluster.local/"},
		map[string]string{"nginx": "cd /usr/share/nginx/html && find . -type f | sort && cat index.html; " + idle})
	n.Create(t, ns, objs...)
	n.WaitReady(t, ns, "", 1, 90*time.Second)
	mustContain(t, "the served tree", n.Logs(t, ns, "nginx-with-content", "nginx", false),
		"./404.html\n./css/style.css\n./index.html\n", "<h1>served by initbox fetch</h1>")
}

// testInstallProbe: the installed waitfor is the app's startup probe.
func testInstallProbe(t *testing.T, n *nodetest.Node) {
	const ns = "probe"
	n.Namespace(t, ns, restricted)
	objs := example(t, "install-probe-tool.yaml", nil, map[string]string{
		// The app serves only after 6 s: the probe must fail before.
		"api": "mkdir -p /tmp/www && echo ok > /tmp/www/index.html && sleep 6 && exec httpd -f -p 8080 -h /tmp/www",
	})
	n.Create(t, ns, objs...)
	p := n.WaitReady(t, ns, "", 1, 120*time.Second)[0]
	started := p.Status.ContainerStatuses[0].State.Running.StartedAt.Time
	var readyAt time.Time
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.ContainersReady {
			readyAt = c.LastTransitionTime.Time
		}
	}
	t.Logf("started %s, ready %s (the app serves 6 s after starting; probe period 5 s)", started, readyAt)
	if readyAt.Sub(started) < 5*time.Second {
		t.Errorf("the startup probe passed %s after the start, before the app served", readyAt.Sub(started))
	}
}

// management is the HTTP service register-management-service talks to.
type management struct {
	mu     sync.Mutex
	posts  []string
	delete map[string]time.Time
}

func (m *management) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case r.Method == "POST" && r.URL.Path == "/register":
		r.ParseForm()
		m.posts = append(m.posts, r.PostForm.Encode()+" key="+r.Header.Get("Idempotency-Key"))
		fmt.Fprintf(w, "instance-%s", r.PostForm.Get("instance"))
	case r.Method == "DELETE" && strings.HasPrefix(r.URL.Path, "/instances/"):
		m.delete[strings.TrimPrefix(r.URL.Path, "/instances/")] = time.Now()
	default:
		http.Error(w, "no", 404)
	}
}

// testRegisterManagement: register-management-service registers before
// the app starts and its preStop hook deregisters on deletion.
func testRegisterManagement(t *testing.T, n *nodetest.Node) {
	const ns = "register"
	n.Namespace(t, ns, restricted)
	m := &management{delete: map[string]time.Time{}}
	n.Serve(t, 18081, m)
	n.Expose(t, ns, "management", 80, 18081)
	objs := example(t, "register-management-service.yaml", nil, map[string]string{
		"worker": "echo instance id: $(cat /shared/instance-id); " + idle,
	})
	n.Create(t, ns, objs...)
	p := n.WaitReady(t, ns, "", 1, 90*time.Second)[0]
	mustContain(t, "the worker", n.Logs(t, ns, p.Name, "worker", false), "instance id: instance-worker-0")
	m.mu.Lock()
	posts := strings.Join(m.posts, "\n")
	m.mu.Unlock()
	mustContain(t, "the registration", posts, "instance=worker-0&ip="+p.Status.PodIP+"&namespace=register", "key=")
	asked := time.Now()
	n.Server.Must(t, "DELETE", "/api/v1/namespaces/"+ns+"/pods/worker-0", nil)
	deadline := time.Now().Add(30 * time.Second)
	for {
		m.mu.Lock()
		at, ok := m.delete["worker-0"]
		m.mu.Unlock()
		if ok {
			t.Logf("deregistered %s after the pod's deletion", at.Sub(asked).Round(time.Millisecond))
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no DELETE /instances/worker-0 within the 30 s grace period; kubelet log:\n%s", n.Log("kubelet", 3000))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// testPeers: statefulset-peers' pods wait for each other in DNS.
func testPeers(t *testing.T, n *nodetest.Node) {
	const ns = "peers"
	n.Namespace(t, ns, restricted)
	objs := example(t, "statefulset-peers.yaml", nil, map[string]string{"member": "nslookup peers; " + idle})
	n.Create(t, ns, objs...)
	pods := n.WaitReady(t, ns, "app=peers", 3, 120*time.Second)
	for _, p := range pods {
		log := n.Logs(t, ns, p.Name, "wait-for-peers", false)
		mustContain(t, p.Name+"'s wait", log, "msg=ready")
	}
}

// testPodCertificates: each StatefulSet pod gets a certificate for its own
// names, signed by the CA Secret.
func testPodCertificates(t *testing.T, n *nodetest.Node) {
	const ns = "certs"
	n.Namespace(t, ns, restricted)
	ca := testenv.NewCA(t, "shop-ca")
	n.Server.Must(t, "POST", "/api/v1/namespaces/"+ns+"/secrets", map[string]any{"apiVersion": "v1", "kind": "Secret",
		"metadata": map[string]any{"name": "shop-ca"}, "type": "kubernetes.io/tls",
		"stringData": map[string]any{"tls.crt": string(ca.CertPEM), "tls.key": string(ca.KeyPEM())}})
	objs := example(t, "statefulset-pod-certificates.yaml", nil, map[string]string{"app": "cat /certs/tls.crt; ls /certs; " + idle})
	n.Create(t, ns, objs...)
	pods := n.WaitReady(t, ns, "app=web", 3, 180*time.Second)
	for _, p := range pods {
		log := n.Logs(t, ns, p.Name, "app", false)
		mustContain(t, p.Name, log, "truststore.p12")
		blk, _ := pem.Decode([]byte(log))
		if blk == nil {
			t.Errorf("%s: no certificate in the log:\n%s", p.Name, log)
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			t.Error(err)
			continue
		}
		if _, err := c.Verify(x509.VerifyOptions{Roots: ca.Pool(), DNSName: p.Name + ".web.certs.svc.cluster.local"}); err != nil {
			t.Errorf("%s: %v (SANs %v %v)", p.Name, err, c.DNSNames, c.IPAddresses)
		}
		if !strings.Contains(fmt.Sprint(c.IPAddresses), p.Status.PodIP) {
			t.Errorf("%s: the certificate's IPs %v lack the pod's %s", p.Name, c.IPAddresses, p.Status.PodIP)
		}
	}
}

// testPostgresExamples: web-waits-for-postgres and register-sidecar-
// postgres against a real PostgreSQL inside the node behind Services.
func testPostgresExamples(t *testing.T, n *nodetest.Node) {
	const ns = "pg"
	n.Namespace(t, ns, restricted)
	pg := pgtest.StartIn(t, n.Enter(), nodetest.NodeIP, 15433)
	for _, sql := range []string{"CREATE ROLE web LOGIN PASSWORD 'change-me'", "CREATE DATABASE web OWNER web",
		"CREATE ROLE registry LOGIN PASSWORD 'reg-pw'", "CREATE DATABASE registry OWNER registry"} {
		pg.PSQL(t, sql)
	}
	n.Expose(t, ns, "db", 5432, 15433)
	n.Expose(t, ns, "registry-db", 5432, 15433)

	// web-waits-for-postgres: the Job's migration stand-in runs; the test
	// then brings the schema to the version the web pods wait for.
	objs := example(t, "web-waits-for-postgres.yaml", []string{"db.default.svc", "db.pg.svc"}, map[string]string{
		"migrate": "echo migrating",
		"web":     "echo web started; " + idle,
	})
	n.Create(t, ns, objs...)
	deadline := time.Now().Add(90 * time.Second)
	for {
		var job struct{ Status struct{ Succeeded int } }
		_, body := n.Server.Do(t, "GET", "/apis/batch/v1/namespaces/"+ns+"/jobs/web-migrate", nil)
		json.Unmarshal(body, &job)
		if job.Status.Succeeded > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the migration Job did not complete: %s\n%s", body, n.Events(t, ns, ""))
		}
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(3 * time.Second)
	if len(n.ReadyPods(t, ns, "app=web")) > 0 {
		t.Fatal("web pods are ready before the schema exists")
	}
	pg.PSQLIn(t, "web", `CREATE TABLE schema_migrations (version bigint, dirty boolean); INSERT INTO schema_migrations VALUES (20261101, false); ALTER TABLE schema_migrations OWNER TO web`)
	pods := n.WaitReady(t, ns, "app=web", 2, 90*time.Second)
	mustContain(t, "web", logsOf(t, n, ns, pods, "web"), "web started")

	// register-sidecar-postgres: the native sidecar registers before the
	// app starts and deregisters when the pod is deleted.
	objs = example(t, "register-sidecar-postgres.yaml", nil, map[string]string{"cache": "echo cache started; " + idle})
	for _, o := range objs {
		if o["kind"] == "Secret" {
			o["stringData"] = map[string]any{"dsn": "postgres://registry:reg-pw@registry-db.pg.svc.cluster.local:5432/registry?sslmode=disable"}
		}
	}
	n.Create(t, ns, objs...)
	cache := n.WaitPod(t, ns, "cache-0", 90*time.Second, "Ready", nodetest.Running)
	row := pg.PSQLIn(t, "registry", `SELECT ip, node, extract(epoch from last_seen) FROM instances WHERE name = 'pg/cache-0'`)
	if !strings.HasPrefix(row, cache.Status.PodIP+"|node|") {
		t.Fatalf("registry row %q, want the pod's IP %s and node", row, cache.Status.PodIP)
	}
	app := cache.Status.ContainerStatuses[0].State.Running.StartedAt.Time
	var regAt float64
	fmt.Sscanf(row[strings.LastIndex(row, "|")+1:], "%f", &regAt)
	if reg := time.Unix(int64(regAt), 0); app.Before(reg.Add(-time.Second)) {
		t.Errorf("the app started at %s, before the registration at %s", app, reg)
	}
	asked := time.Now()
	n.Server.Must(t, "DELETE", "/api/v1/namespaces/"+ns+"/pods/cache-0", nil)
	for deadline := time.Now().Add(30 * time.Second); ; {
		if pg.PSQLIn(t, "registry", `SELECT count(*) FROM instances WHERE name = 'pg/cache-0'`) == "0" {
			t.Logf("the sidecar deregistered %s after the deletion", time.Since(asked).Round(time.Millisecond))
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the row is still there 30 s (the grace period) after the deletion")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// testSysctl: the elasticsearch example needs a privileged init container:
// the restricted profile refuses it, a privileged namespace runs it. The
// value asked for is the machine's own (vm.* is not namespaced: a test
// must not change the machine), so sysctl --min has nothing to raise.
func testSysctl(t *testing.T, n *nodetest.Node) {
	cur, err := os.ReadFile("/proc/sys/vm/max_map_count")
	if err != nil {
		t.Fatal(err)
	}
	objs := example(t, "elasticsearch-sysctl-chown.yaml", []string{"vm.max_map_count=262144", "vm.max_map_count=" + strings.TrimSpace(string(cur))},
		map[string]string{"search": "ls -lnd /usr/share/opensearch/data /usr/share/opensearch/data/nodes; " + idle})
	n.Namespace(t, "strict", restricted)
	// The node has no storage provisioner: the claim becomes an emptyDir.
	var tmpl map[string]any
	for _, o := range objs {
		if o["kind"] == "StatefulSet" {
			spec := o["spec"].(map[string]any)
			delete(spec, "volumeClaimTemplates")
			tmpl = spec["template"].(map[string]any)
			tmpl["spec"].(map[string]any)["volumes"] = []any{map[string]any{"name": "data", "emptyDir": map[string]any{}}}
		}
	}
	code, body := n.Server.Do(t, "POST", "/api/v1/namespaces/strict/pods", map[string]any{"apiVersion": "v1", "kind": "Pod",
		"metadata": map[string]any{"name": "es"}, "spec": tmpl["spec"]})
	if code != http.StatusForbidden || !strings.Contains(string(body), "violates PodSecurity") {
		t.Errorf("the privileged pod under the restricted profile: %d %s", code, body)
	}
	n.Namespace(t, "privileged", map[string]string{"pod-security.kubernetes.io/enforce": "privileged"})
	n.Create(t, "privileged", objs...)
	pods := n.WaitReady(t, "privileged", "", 1, 120*time.Second)
	log := n.Logs(t, "privileged", pods[0].Name, "search", false)
	for _, want := range []string{" 1000 ", "/usr/share/opensearch/data/nodes"} {
		mustContain(t, "the data volume", log, want)
	}
	if !strings.Contains(log, "drwxrwxr-x") {
		t.Errorf("/data/nodes is not 0775: %s", log)
	}
}

// testRunOne: run-one-init-container's four steps in one container: the
// waits (a Service "api" and a TCP port behind "postgres"), the download
// and the rendered config, all seen by the app.
func testRunOne(t *testing.T, n *nodetest.Node) {
	const ns = "runone"
	n.Namespace(t, ns, restricted)
	filesServer(t, n, ns, 18083)
	n.Serve(t, 18084, http.NotFoundHandler()) // something listening for "postgres:5432"
	objs := example(t, "run-one-init-container.yaml",
		[]string{"https://github.com/", "http://files.runone.svc.cluster.local/"},
		map[string]string{"nginx": "cat /etc/nginx/conf.d/default.conf; cat /usr/share/nginx/html/index.html; " + idle})
	n.Create(t, ns, objs...)
	n.WaitPod(t, ns, "web", 60*time.Second, "waiting in init", func(p *corev1.Pod) bool {
		s := p.Status.InitContainerStatuses
		return len(s) > 0 && s[0].State.Running != nil
	})
	time.Sleep(3 * time.Second)
	if nodetest.Running(n.Pod(t, ns, "web")) {
		t.Fatal("web runs before api and postgres exist")
	}
	n.Expose(t, ns, "api", 80, 18084)
	n.Expose(t, ns, "postgres", 5432, 18084)
	p := n.WaitPod(t, ns, "web", 60*time.Second, "Ready", nodetest.Running)
	mustContain(t, "what nginx sees", n.Logs(t, ns, "web", "nginx", false),
		"# rendered for web ("+p.Status.PodIP+")", "proxy_pass http://api.default.svc.cluster.local/;", "<h1>served by initbox fetch</h1>")
}

// testMySQLRedis: app-waits-for-mysql-and-redis against Debian's MariaDB
// and Redis run inside the node, behind Services; the pods wait for the
// schema row, then start.
func testMySQLRedis(t *testing.T, n *nodetest.Node) {
	for _, p := range []string{"mariadb-install-db", "/usr/sbin/mariadbd", "mariadb", "redis-server"} {
		if _, err := exec.LookPath(p); err != nil {
			testenv.Skip(t, "Debian's mariadb-server, mariadb-client and redis-server are needed: "+err.Error())
		}
	}
	const ns = "mysqlredis"
	n.Namespace(t, ns, restricted)
	dir := t.TempDir()
	data, sock := filepath.Join(dir, "data"), filepath.Join(dir, "sock")
	if out, err := exec.Command("mariadb-install-db", "--no-defaults", "--datadir="+data, "--user=root",
		"--auth-root-authentication-method=normal", "--skip-test-db").CombinedOutput(); err != nil {
		t.Fatalf("mariadb-install-db: %v\n%s", err, out)
	}
	initSQL := filepath.Join(dir, "init.sql")
	// One statement a line: what --init-file reads.
	os.WriteFile(initSQL, []byte("CREATE DATABASE shop;\nCREATE USER 'shop'@'%' IDENTIFIED BY 'change-me';\nGRANT ALL ON shop.* TO 'shop'@'%';\n"+
		"CREATE TABLE shop.schema_migrations (version INT);\n"), 0o644)
	n.Run(t, "mariadb", 0, 0, "/usr/sbin/mariadbd", "--no-defaults", "--datadir="+data, "--socket="+sock, "--port=13306",
		"--bind-address="+nodetest.NodeIP, "--user=root", "--skip-name-resolve", "--pid-file="+filepath.Join(dir, "pid"),
		"--innodb-buffer-pool-size=16M", "--skip-log-bin", "--init-file="+initSQL)
	n.Run(t, "redis", 0, 0, "redis-server", "--port", "16379", "--bind", nodetest.NodeIP, "--dir", dir, "--save", "",
		"--appendonly", "no", "--requirepass", "change-me-too")
	n.Expose(t, ns, "mysql", 3306, 13306)
	n.Expose(t, ns, "redis", 6379, 16379)
	objs := example(t, "app-waits-for-mysql-and-redis.yaml", []string{".default.svc", "." + ns + ".svc"},
		map[string]string{"shop": "echo shop started; " + idle})
	n.Create(t, ns, objs...)
	time.Sleep(8 * time.Second)
	if r := n.ReadyPods(t, ns, "app=shop"); len(r) > 0 {
		t.Fatal("shop pods are ready before the schema row exists")
	}
	for _, p := range n.Pods(t, ns, "app=shop") {
		if s := p.Status.InitContainerStatuses; len(s) == 0 || s[0].State.Running == nil || s[0].RestartCount > 0 {
			t.Fatalf("%s: want wait-for-mysql waiting, running since its start: %+v", p.Name, s)
		}
	}
	if out, err := exec.Command("mariadb", "--no-defaults", "-S", sock, "-u", "root", "-e", "INSERT INTO shop.schema_migrations VALUES (42)").CombinedOutput(); err != nil {
		t.Fatalf("mariadb: %v\n%s", err, out)
	}
	pods := n.WaitReady(t, ns, "app=shop", 2, 60*time.Second)
	mustContain(t, "shop", logsOf(t, n, ns, pods, "shop"), "shop started")
}

// testGRPC: grpc-health's frontends wait for the cart service's health to
// be SERVING on a grpc-go health server inside the node.
func testGRPC(t *testing.T, n *nodetest.Node) {
	const ns = "grpc"
	n.Namespace(t, ns, restricted)
	srv := grpctest.StartWith(t, n.Command, "-addr", nodetest.NodeIP+":19090")
	srv.Set(t, "shop.Cart", "NOT_SERVING")
	objs := example(t, "grpc-health.yaml", []string{"cart.default.svc", "cart.grpc.svc"}, map[string]string{"frontend": "echo frontend started; " + idle})
	n.Create(t, ns, objs...)
	n.Endpoints(t, ns, "cart", "grpc", 19090)
	time.Sleep(6 * time.Second)
	if r := n.ReadyPods(t, ns, "app=frontend"); len(r) > 0 {
		t.Fatal("frontends are ready while shop.Cart is NOT_SERVING")
	}
	srv.Set(t, "shop.Cart", "SERVING")
	pods := n.WaitReady(t, ns, "app=frontend", 2, 60*time.Second)
	mustContain(t, "frontend", logsOf(t, n, ns, pods, "frontend"), "frontend started")
}

// testGitCheckout: git-checkout's fetch git:: from Debian's git
// http-backend inside the node, with the token from the Secret, pinned by
// --expect-commit; the app sees the tree's dist/ and no .git.
func testGitCheckout(t *testing.T, n *nodetest.Node) {
	if _, err := os.Stat("/usr/lib/git-core/git-http-backend"); err != nil {
		testenv.Skip(t, "Debian's git is needed (git http-backend)")
	}
	const ns, token = "gitco", "s3cret-deploy-token"
	n.Namespace(t, ns, restricted)
	root, work := t.TempDir(), t.TempDir()
	git := func(dir string, args ...string) string {
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	for p, body := range map[string]string{"README.md": "top\n", "dist/index.html": "<h1>from git</h1>\n", "dist/js/app.js": "let a = 1\n"} {
		os.MkdirAll(filepath.Dir(filepath.Join(work, p)), 0o755)
		os.WriteFile(filepath.Join(work, p), []byte(body), 0o644)
	}
	git(work, "init", "-q", "-b", "main")
	git(work, "add", ".")
	git(work, "commit", "-qm", "site")
	git(work, "tag", "v9.0.1")
	commit := git(work, "rev-parse", "HEAD")
	bare := filepath.Join(root, "h5bp", "html5-boilerplate.git")
	git(root, "clone", "-q", "--bare", work, bare)
	backend := &cgi.Handler{Path: "/usr/lib/git-core/git-http-backend", Root: "/",
		Env: []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1"}}
	n.Serve(t, 18085, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, pw, ok := r.BasicAuth(); !ok || pw != token {
			w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
			http.Error(w, "who are you", http.StatusUnauthorized)
			return
		}
		backend.ServeHTTP(w, r)
	}))
	n.Expose(t, ns, "git", 80, 18085)
	objs := example(t, "git-checkout.yaml", []string{"https://github.com/", "http://git.gitco.svc.cluster.local/",
		"0ee24d45bf7283cbb4f5e9f1e0ba1cd5ff6306a6", commit, "replace-with-a-read-only-deploy-token", token},
		map[string]string{"nginx": "cd /usr/share/nginx/html && find . | sort && cat index.html; " + idle})
	n.Create(t, ns, objs...)
	p := n.WaitPod(t, ns, "site-from-git", 90*time.Second, "Ready", nodetest.Running)
	log := n.Logs(t, ns, "site-from-git", "nginx", false)
	mustContain(t, "the checkout", log, ".\n./.initbox-fetch\n./index.html\n./js\n./js/app.js\n", "<h1>from git</h1>")
	if strings.Contains(log, ".git") || strings.Contains(log, "README") {
		t.Errorf("more than dist/ was checked out:\n%s", log)
	}
	msg := p.Status.InitContainerStatuses[0].State.Terminated.Message
	if !strings.Contains(msg, commit[:12]) || strings.Contains(msg, token) {
		t.Errorf("the checkout's termination message %q: want the commit, never the token", msg)
	}
}

// BenchmarkPodStartup: the seed pattern on the real kubelet, every
// dependency already there — the seeds' four busybox init containers
// (sh -c loops, wget, sed), the same four steps as four initbox init
// containers, and one initbox run container. One pod at a time, the three
// forms interleaved; the time from the pod's creation to Ready, as the
// test sees it (polled every 20 ms) and from the pod's own timestamps
// (whole seconds). make bench runs it with -benchtime 20x.
func BenchmarkPodStartup(b *testing.B) {
	n := startNode(b)
	const ns = "bench"
	n.Namespace(b, ns, nil)
	site := sitezip(b)
	n.Serve(b, 18090, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(site) }))
	n.Expose(b, ns, "files", 80, 18090)
	n.Expose(b, ns, "myservice", 80, 18090)
	n.Expose(b, ns, "mydb", 80, 18090)
	n.Create(b, ns, nodetest.Decode(b, []byte(`{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "tmpl"},
		"data": {"app.conf.tmpl": "name={{ .Pod.Name }}\n", "app.conf.sed": "name=POD_NAME\n"}}`))...)
	const url = "http://files.bench.svc.cluster.local/site.zip"
	ib := func(name string, args ...string) map[string]any {
		return map[string]any{"name": name, "image": exampleImage, "imagePullPolicy": "Never", "args": args}
	}
	bb := func(name, script string) map[string]any {
		return map[string]any{"name": name, "image": nodetest.BusyboxImage, "imagePullPolicy": "Never", "command": []any{"sh", "-c", script}}
	}
	forms := map[string][]map[string]any{
		"busybox": {
			bb("init-myservice", nslookupLoop("myservice", docsSuffix)),
			bb("init-mydb", nslookupLoop("mydb", docsSuffix)),
			bb("init-fetch", "wget -q -O /shared/site.zip "+url+" && mkdir -p /shared/html && unzip -q -o /shared/site.zip -d /shared/html && rm /shared/site.zip"),
			bb("init-render", `sed "s/POD_NAME/$POD_NAME/" /templates/app.conf.sed > /shared/app.conf`),
		},
		"initbox-four": {
			ib("init-myservice", "waitfor", "dns", "myservice"),
			ib("init-mydb", "waitfor", "dns", "mydb"),
			ib("init-fetch", "fetch", url, "/shared/html"),
			ib("init-render", "render", "/templates/app.conf.tmpl", "--out", "/shared/app.conf"),
		},
		"initbox-run": {
			ib("init-run", "run", "waitfor dns myservice & waitfor dns mydb", "fetch "+url+" /shared/html",
				"render /templates/app.conf.tmpl --out /shared/app.conf"),
		},
	}
	order := []string{"busybox", "initbox-four", "initbox-run"}
	seen := map[string][]time.Duration{}
	stamped := map[string][]time.Duration{}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, form := range order {
			name := fmt.Sprintf("%s-%d", form, i)
			var inits []any
			for _, c := range forms[form] {
				c = maps.Clone(c)
				c["env"] = []any{map[string]any{"name": "POD_NAME", "valueFrom": map[string]any{"fieldRef": map[string]any{"fieldPath": "metadata.name"}}}}
				c["volumeMounts"] = []any{map[string]any{"name": "shared", "mountPath": "/shared"}, map[string]any{"name": "tmpl", "mountPath": "/templates"}}
				inits = append(inits, c)
			}
			app := bb("app", "cat /shared/app.conf; "+idle)
			app["volumeMounts"] = []any{map[string]any{"name": "shared", "mountPath": "/shared"}}
			pod := nodetest.Object{"apiVersion": "v1", "kind": "Pod", "metadata": map[string]any{"name": name},
				"spec": map[string]any{
					"terminationGracePeriodSeconds": 0,
					"initContainers":                inits,
					"containers":                    []any{app},
					"volumes": []any{map[string]any{"name": "shared", "emptyDir": map[string]any{}},
						map[string]any{"name": "tmpl", "configMap": map[string]any{"name": "tmpl"}}}}}
			start := time.Now()
			n.Create(b, ns, pod)
			var p *corev1.Pod
			for p = n.Pod(b, ns, name); !nodetest.Running(p); p = n.Pod(b, ns, name) {
				if time.Since(start) > 60*time.Second {
					b.Fatalf("%s not Ready after 60 s: %+v", name, p.Status)
				}
				time.Sleep(20 * time.Millisecond)
			}
			seen[form] = append(seen[form], time.Since(start))
			for _, c := range p.Status.Conditions {
				if c.Type == corev1.PodReady {
					stamped[form] = append(stamped[form], c.LastTransitionTime.Sub(p.CreationTimestamp.Time))
				}
			}
			if log := n.Logs(b, ns, name, "app", false); log != "name="+name+"\n" {
				b.Fatalf("%s: the app saw %q", name, log)
			}
			n.Server.Do(b, "DELETE", "/api/v1/namespaces/"+ns+"/pods/"+name+"?gracePeriodSeconds=0", nil)
		}
	}
	b.StopTimer()
	median := func(ds []time.Duration) time.Duration {
		ds = slices.Clone(ds)
		slices.Sort(ds)
		return ds[len(ds)/2]
	}
	for _, form := range order {
		b.ReportMetric(float64(median(seen[form]).Milliseconds()), "ms-median-"+form)
		b.ReportMetric(median(stamped[form]).Seconds(), "s-median-stamped-"+form)
	}
	b.ReportMetric(float64(median(seen["initbox-four"]))/float64(median(seen["initbox-run"])), "x-four/run")
	b.ReportMetric(float64(median(seen["busybox"]))/float64(median(seen["initbox-run"])), "x-busybox/run")
}

// testPodinfo: render --podinfo on the kubelet's own downward-API volume —
// labels, an annotation no naive parser survives, the container's limits
// by .Pod.Files — read through the kubelet's ..data link.
func testPodinfo(t *testing.T, n *nodetest.Node) {
	const ns = "podinfo"
	n.Namespace(t, ns, restricted)
	tmpl := `labels={{ index .Pod.Labels "app" }}/{{ index .Pod.Labels "tier" }}
note={{ index .Pod.Annotations "example.com/note" | toJson }}
cpu={{ index .Pod.Files "limits/cpu" }} memory={{ index .Pod.Files "limits/memory" }}
name={{ .Pod.Name }}
`
	pod := restrictedPod(t, "info", "", "initContainers",
		`[render, /tmpl/t, --podinfo, /etc/podinfo, --out, /out/conf]`, "[sleep, 1h]")
	pod["metadata"] = map[string]any{"name": "info", "labels": map[string]any{"app": "web", "tier": "front"},
		"annotations": map[string]any{"example.com/note": "line one\nline \"two\" \\ grüße 🚀"}}
	spec := pod["spec"].(map[string]any)
	res := map[string]any{"limits": map[string]any{"cpu": "250m", "memory": "64Mi"}}
	wait := spec["initContainers"].([]any)[0].(map[string]any)
	wait["resources"] = res
	wait["volumeMounts"] = []any{map[string]any{"name": "podinfo", "mountPath": "/etc/podinfo"},
		map[string]any{"name": "tmpl", "mountPath": "/tmpl"}, map[string]any{"name": "out", "mountPath": "/out"}}
	app := spec["containers"].([]any)[0].(map[string]any)
	app["image"], app["command"] = nodetest.BusyboxImage, []any{"sh", "-c", "cat /out/conf; " + idle}
	delete(app, "args")
	app["volumeMounts"] = []any{map[string]any{"name": "out", "mountPath": "/out"}}
	spec["restartPolicy"] = "Always"
	spec["volumes"] = []any{
		map[string]any{"name": "tmpl", "configMap": map[string]any{"name": "info"}},
		map[string]any{"name": "out", "emptyDir": map[string]any{}},
		map[string]any{"name": "podinfo", "downwardAPI": map[string]any{"items": []any{
			map[string]any{"path": "labels", "fieldRef": map[string]any{"fieldPath": "metadata.labels"}},
			map[string]any{"path": "annotations", "fieldRef": map[string]any{"fieldPath": "metadata.annotations"}},
			map[string]any{"path": "limits/cpu", "resourceFieldRef": map[string]any{"containerName": "wait", "resource": "limits.cpu", "divisor": "1m"}},
			map[string]any{"path": "limits/memory", "resourceFieldRef": map[string]any{"containerName": "wait", "resource": "limits.memory", "divisor": "1Mi"}},
			map[string]any{"path": "name", "fieldRef": map[string]any{"fieldPath": "metadata.name"}},
		}}}}
	n.Create(t, ns, nodetest.Object{"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]any{"name": "info"},
		"data": map[string]any{"t": tmpl}}, pod)
	n.WaitPod(t, ns, "info", 90*time.Second, "Ready", nodetest.Running)
	got := n.Logs(t, ns, "info", "app", false)
	want := "labels=web/front\nnote=\"line one\\nline \\\"two\\\" \\\\ grüße 🚀\"\ncpu=250 memory=64\nname=info\n"
	if got != want {
		t.Errorf("rendered from the kubelet's downward-API volume:\n got %q\nwant %q", got, want)
	}
}
