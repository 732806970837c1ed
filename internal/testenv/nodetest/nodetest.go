// Package nodetest brings up a real single-node Kubernetes cluster for a
// test: etcd, kube-apiserver, kube-controller-manager, kube-scheduler, a
// kubelet, kube-proxy (iptables), containerd with runc and Debian's CNI
// bridge, and CoreDNS as the cluster DNS behind the kube-dns Service —
// every component real, built once from the Go module proxy (test/kube,
// test/node) into the Go build cache.
//
// The whole node lives in a network and mount namespace of its own, held
// by an anchor process: nothing reaches or changes the machine's network
// (the kubelet's and kube-proxy's iptables rules, the CNI bridge, pod
// veths all live in it), and the kubelet's mounts die with the namespace.
// The test reaches the API server and pods through sockets made inside the
// namespace (Dial). Images come from the test (initbox's own) and from
// here (busybox from Debian's busybox-static, a pause image), imported
// into containerd; nothing is ever pulled: the sandbox image has a name no
// registry answers.
package nodetest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/initbox/initbox/internal/testenv"
	"github.com/initbox/initbox/internal/testenv/kubetest"
)

// The node's addresses. The node IP sits on the namespace's loopback
// device: pods reach it through the bridge, processes in the namespace
// directly.
const (
	NodeName    = "node"
	NodeIP      = "10.201.0.1"
	PodCIDR     = "10.244.0.0/24"
	ServiceCIDR = "10.96.0.0/16"
	APIServerIP = "10.96.0.1"
	DNSIP       = "10.96.0.10"
	// SandboxImage is the pause image's name: a registry that does not
	// exist, so a missing image fails instead of reaching the internet.
	SandboxImage = "initbox.invalid/pause:test"
	// BusyboxImage is Debian's busybox-static as an image, under the name
	// the Kubernetes documentation's manifests use.
	BusyboxImage = "docker.io/library/busybox:1.36"
)

// Node is a running cluster of one node.
type Node struct {
	*kubetest.Server
	Dir          string // the node's files: configs, logs, state
	Kubeconfig   string // admin kubeconfig (server https://NodeIP:6443)
	t            testing.TB
	anchor       *exec.Cmd
	netns        *os.File
	nsIno        uint64
	bin          map[string]string
	mu           sync.Mutex
	procs        []*proc
	hadK8sCgroup map[string]bool // the hierarchies that had a k8s.io cgroup before the node
	tasks        []string        // containerd's tasks at teardown
	mounts       map[string]bool // the machine's mount points before the node
	rules        string          // the machine's iptables rules before the node
}

type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
}

var (
	buildMu sync.Mutex
	bins    map[string]string
)

// Binaries builds (once per machine, into the Go build cache) every
// program of the node and returns their paths by name.
func Binaries(t testing.TB) map[string]string {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if bins != nil {
		return bins
	}
	apiserver, etcd := kubetest.Binaries(t)
	kube := testenv.BuildTools(t, "kube", []string{"kubernetes=k8s.io/kubernetes", "etcd=go.etcd.io/etcd/server/v3"}, "",
		testenv.Tool{Name: "kubelet", Pkg: "k8s.io/kubernetes/cmd/kubelet"},
		testenv.Tool{Name: "kube-controller-manager", Pkg: "k8s.io/kubernetes/cmd/kube-controller-manager"},
		testenv.Tool{Name: "kube-scheduler", Pkg: "k8s.io/kubernetes/cmd/kube-scheduler"},
		testenv.Tool{Name: "kube-proxy", Pkg: "k8s.io/kubernetes/cmd/kube-proxy"})
	ctd := "no_btrfs no_devmapper no_zfs"
	node := testenv.BuildTools(t, "node", []string{"containerd=github.com/containerd/containerd/v2", "runc=github.com/opencontainers/runc", "coredns=github.com/coredns/coredns"}, "",
		testenv.Tool{Name: "containerd", Pkg: "github.com/containerd/containerd/v2/cmd/containerd", Tags: ctd},
		testenv.Tool{Name: "containerd-shim-runc-v2", Pkg: "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2", Tags: ctd},
		testenv.Tool{Name: "ctr", Pkg: "github.com/containerd/containerd/v2/cmd/ctr", Tags: ctd},
		// seccomp: the restricted profile's RuntimeDefault needs it.
		testenv.Tool{Name: "runc", Pkg: "github.com/opencontainers/runc", Tags: "seccomp", CGO: true},
		testenv.Tool{Name: "coredns", Pkg: "github.com/coredns/coredns"})
	bins = map[string]string{"kube-apiserver": apiserver, "etcd": etcd}
	for _, n := range []string{"kubelet", "kube-controller-manager", "kube-scheduler", "kube-proxy"} {
		bins[n] = filepath.Join(kube, n)
	}
	for _, n := range []string{"containerd", "containerd-shim-runc-v2", "ctr", "runc", "coredns"} {
		bins[n] = filepath.Join(node, n)
	}
	bins["tools"] = node
	return bins
}

// CNIBin is where Debian's containernetworking-plugins puts the plugins.
const CNIBin = "/usr/lib/cni"

// Prerequisites says what the node needs from the machine, or "".
func Prerequisites() string {
	if os.Geteuid() != 0 {
		return "a node needs root"
	}
	for _, p := range []string{"unshare", "nsenter", "ip", "iptables", "iptables-restore"} {
		if _, err := exec.LookPath(p); err != nil {
			return p + " is not installed (apt-get install util-linux iproute2 iptables)"
		}
	}
	for _, p := range []string{CNIBin + "/bridge", CNIBin + "/host-local", CNIBin + "/loopback", CNIBin + "/portmap"} {
		if _, err := os.Stat(p); err != nil {
			return p + " is missing (apt-get install containernetworking-plugins)"
		}
	}
	if _, err := os.Stat("/bin/busybox"); err != nil {
		return "/bin/busybox is missing (apt-get install busybox-static)"
	}
	if _, err := exec.LookPath("go"); err != nil {
		return "the go command is needed to build the node's components"
	}
	return ""
}

// Start brings the node up with images (name → docker archive path) in
// containerd beside busybox and the pause image, and tears everything
// down when the test ends.
func Start(t testing.TB, images map[string]string) *Node {
	testenv.RealServer(t, "the kubelet node")
	t.Helper()
	if why := Prerequisites(); why != "" {
		testenv.Skip(t, why)
	}
	n := &Node{t: t, bin: Binaries(t)}
	n.Dir = t.TempDir()
	os.Chmod(n.Dir, 0o755)
	n.hadK8sCgroup = map[string]bool{}
	for _, h := range hierarchies() {
		if _, err := os.Stat(filepath.Join(h, "k8s.io")); err == nil {
			n.hadK8sCgroup[h] = true
		}
	}
	n.mounts = mountPoints()
	n.rules = iptablesRules()
	began := time.Now()

	// The anchor holds the namespaces; every component enters them.
	n.anchor = exec.Command("unshare", "--net", "--mount", "--propagation", "private", "--", "sleep", "infinity")
	if err := n.anchor.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.teardown)
	own, _ := os.Readlink("/proc/self/ns/net")
	for i := 0; ; i++ {
		l, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", n.anchor.Process.Pid))
		if err == nil && l != own {
			// One unshare(2) makes both namespaces: the mount one is there too.
			break
		}
		if i > 200 {
			t.Fatal("unshare did not make a network namespace")
		}
		time.Sleep(10 * time.Millisecond)
	}
	f, err := os.Open(fmt.Sprintf("/proc/%d/ns/net", n.anchor.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	n.netns = f
	var st syscall.Stat_t
	syscall.Fstat(int(f.Fd()), &st)
	n.nsIno = st.Ino
	n.sh(`ip link set lo up && ip addr add ` + NodeIP + `/32 dev lo &&
		echo 1 > /proc/sys/net/ipv4/ip_forward &&
		echo 1 > /proc/sys/net/bridge/bridge-nf-call-iptables &&
		echo 1 > /proc/sys/net/bridge/bridge-nf-call-ip6tables`)

	n.Server = kubetest.StartWith(t, kubetest.Options{
		Command: n.Command, Dial: n.Dial, Address: NodeIP, Cluster: true,
		SANs:  []net.IP{net.ParseIP(APIServerIP)},
		Extra: []string{"--allow-privileged=true", "--kubelet-preferred-address-types=InternalIP"},
	})
	n.Kubeconfig = n.Server.Kubeconfig(t, "default")

	n.startContainerd(images)
	n.startKubelet()
	n.start("kube-controller-manager", n.bin["kube-controller-manager"],
		"--kubeconfig", n.Kubeconfig, "--authentication-kubeconfig", n.Kubeconfig, "--authorization-kubeconfig", n.Kubeconfig,
		"--leader-elect=false", "--bind-address=127.0.0.1", "--secure-port=10257",
		"--service-account-private-key-file", filepath.Join(n.Server.Dir(), "sa.key"),
		"--root-ca-file", filepath.Join(n.Server.Dir(), "ca.crt"),
		"--use-service-account-credentials=false", "--allocate-node-cidrs=false",
		"--cluster-cidr", PodCIDR, "--service-cluster-ip-range", ServiceCIDR,
		"--controllers", "*,-cloud-node-lifecycle,-service-lb-controller,-node-route-controller,-persistentvolume-expander")
	n.start("kube-scheduler", n.bin["kube-scheduler"],
		"--kubeconfig", n.Kubeconfig, "--authentication-kubeconfig", n.Kubeconfig, "--authorization-kubeconfig", n.Kubeconfig,
		"--leader-elect=false", "--bind-address=127.0.0.1", "--secure-port=10259")
	n.start("kube-proxy", n.bin["kube-proxy"],
		"--kubeconfig", n.Kubeconfig, "--hostname-override", NodeName, "--proxy-mode", "iptables",
		"--cluster-cidr", PodCIDR, "--conntrack-max-per-core=0",
		"--metrics-bind-address=127.0.0.1:10249", "--healthz-bind-address=127.0.0.1:10256")
	n.startCoreDNS()
	n.waitNodeReady()
	t.Logf("node up in %s", time.Since(began).Round(100*time.Millisecond))
	return n
}

// Command makes a command that runs inside the node's namespaces.
func (n *Node) Command(name string, args ...string) *exec.Cmd {
	return exec.Command("nsenter", append([]string{"-t", strconv.Itoa(n.anchor.Process.Pid), "--net", "--mount", "--", name}, args...)...)
}

// Dial connects from inside the node's network namespace: the socket is
// made on a thread that entered it, so the connection lives there.
func (n *Node) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var c net.Conn
	err := n.inNetns(func() (err error) {
		var d net.Dialer
		c, err = d.DialContext(ctx, network, addr)
		return err
	})
	return c, err
}

// Listen opens a listener inside the node's network namespace, as Dial
// connects from it: a server of the test that pods reach.
func (n *Node) Listen(network, addr string) (net.Listener, error) {
	var l net.Listener
	err := n.inNetns(func() (err error) {
		l, err = net.Listen(network, addr)
		return err
	})
	return l, err
}

// inNetns runs f on an OS thread that entered the node's network
// namespace; sockets f makes belong to it. A thread that cannot go back
// stays locked and ends with its goroutine, so no other code runs there.
func (n *Node) inNetns(f func() error) error {
	ch := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		own, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			ch <- err
			return
		}
		defer own.Close()
		if err := setns(n.netns); err != nil {
			ch <- err
			return
		}
		err = f()
		if setns(own) == nil {
			runtime.UnlockOSThread()
		}
		ch <- err
	}()
	return <-ch
}

func setns(f *os.File) error {
	return unix.Setns(int(f.Fd()), unix.CLONE_NEWNET)
}

// Serve serves h inside the node on NodeIP:port until the test ends.
func (n *Node) Serve(t testing.TB, port int, h http.Handler) {
	t.Helper()
	l, err := n.Listen("tcp", net.JoinHostPort(NodeIP, strconv.Itoa(port)))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
}

// Expose makes a Service ns/name without a selector whose endpoint is the
// node's address: port is the Service's, target the node's, for a server
// that runs in the node rather than in a pod.
func (n *Node) Expose(t testing.TB, ns, name string, port, target int) {
	t.Helper()
	n.Server.Must(t, "POST", "/api/v1/namespaces/"+ns+"/services", map[string]any{
		"apiVersion": "v1", "kind": "Service", "metadata": map[string]any{"name": name},
		"spec": map[string]any{"ports": []any{map[string]any{"name": "p", "port": port, "targetPort": target, "protocol": "TCP"}}}})
	n.Endpoints(t, ns, name, "p", target)
}

// Endpoints adds the node's address, port target, as a ready endpoint of
// the Service ns/name's port portName (a Service a manifest made, for a
// server in the node).
func (n *Node) Endpoints(t testing.TB, ns, name, portName string, target int) {
	t.Helper()
	n.endpoints(t, ns, name, map[string]any{"name": portName, "port": target, "protocol": "TCP"})
}

// endpoints writes the EndpointSlice that makes the node's address, with
// ports, a ready endpoint of the Service ns/name.
func (n *Node) endpoints(t testing.TB, ns, name string, ports ...any) {
	t.Helper()
	n.Server.Must(t, "POST", "/apis/discovery.k8s.io/v1/namespaces/"+ns+"/endpointslices", map[string]any{
		"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
		"metadata": map[string]any{"name": name + "-node", "labels": map[string]any{
			"kubernetes.io/service-name": name, "endpointslice.kubernetes.io/managed-by": "initbox-nodetest"}},
		"addressType": "IPv4",
		"endpoints":   []any{map[string]any{"addresses": []any{NodeIP}, "conditions": map[string]any{"ready": true}}},
		"ports":       ports})
}

// Run starts a program in the node (a server the pods need) as uid:gid
// (0:0 keeps root) and stops it when the test ends.
func (n *Node) Run(t testing.TB, name string, uid, gid int, bin string, args ...string) {
	t.Helper()
	cmd := exec.Command("nsenter", append([]string{"-t", strconv.Itoa(n.anchor.Process.Pid), "--net", "--mount",
		"-S", strconv.Itoa(uid), "-G", strconv.Itoa(gid), "--", bin}, args...)...)
	f, err := os.Create(filepath.Join(n.Dir, name+".log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		testenv.Stop(cmd, 10*time.Second)
		f.Close()
	})
}

func (n *Node) sh(script string) {
	n.t.Helper()
	if out, err := n.Command("sh", "-c", script).CombinedOutput(); err != nil {
		n.t.Fatalf("in the node: %s: %v\n%s", script, err, out)
	}
}

// start runs a component in the node, its output in Dir/NAME.log.
func (n *Node) start(name, bin string, args ...string) *proc {
	n.t.Helper()
	p := &proc{name: name, cmd: n.Command(bin, args...), log: filepath.Join(n.Dir, name+".log")}
	f, err := os.Create(p.log)
	if err != nil {
		n.t.Fatal(err)
	}
	defer f.Close()
	p.cmd.Stdout, p.cmd.Stderr = f, f
	p.cmd.Env = append(os.Environ(), "PATH="+n.bin["tools"]+":/usr/sbin:/usr/bin:/sbin:/bin")
	if err := p.cmd.Start(); err != nil {
		n.t.Fatalf("starting %s: %v", name, err)
	}
	n.mu.Lock()
	n.procs = append(n.procs, p)
	n.mu.Unlock()
	return p
}

// Log is the tail of a component's log.
func (n *Node) Log(name string, max int) string {
	b, _ := os.ReadFile(filepath.Join(n.Dir, name+".log"))
	if len(b) > max {
		b = b[len(b)-max:]
	}
	return string(b)
}

func (n *Node) wait(what string, d time.Duration, ok func() bool, logs ...string) {
	n.t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			var b strings.Builder
			for _, l := range logs {
				fmt.Fprintf(&b, "\n--- %s.log:\n%s", l, n.Log(l, 3000))
			}
			n.t.Fatalf("%s: not after %s%s", what, d, b.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (n *Node) write(name, content string) string {
	n.t.Helper()
	p := filepath.Join(n.Dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		n.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		n.t.Fatal(err)
	}
	return p
}

func (n *Node) containerdSocket() string {
	return filepath.Join(n.Dir, "containerd", "containerd.sock")
}

func (n *Node) startContainerd(images map[string]string) {
	n.t.Helper()
	cni := n.write("cni/net.d/10-initbox.conflist", fmt.Sprintf(`{
  "cniVersion": "1.0.0",
  "name": "initbox",
  "plugins": [
    {"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": false, "hairpinMode": true,
     "ipam": {"type": "host-local", "dataDir": %q, "ranges": [[{"subnet": %q}]], "routes": [{"dst": "0.0.0.0/0"}]}},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
`, filepath.Join(n.Dir, "cni", "ipam"), PodCIDR))
	cfg := n.write("containerd/config.toml", fmt.Sprintf(`version = 3
root = %q
state = %q
disabled_plugins = ["io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = %q

[plugins."io.containerd.cri.v1.images"]
  snapshotter = "overlayfs"
  [plugins."io.containerd.cri.v1.images".pinned_images]
    sandbox = %q

[plugins."io.containerd.cri.v1.runtime"]
  # Where the suite runs (a container), a process may not lower its OOM
  # score: containerd's default of doing so fails every sandbox.
  restrict_oom_score_adj = true
  [plugins."io.containerd.cri.v1.runtime".cni]
    bin_dirs = [%q]
    conf_dir = %q
  [plugins."io.containerd.cri.v1.runtime".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
        BinaryName = %q
        SystemdCgroup = false
`, filepath.Join(n.Dir, "containerd", "root"), filepath.Join(n.Dir, "containerd", "state"), n.containerdSocket(),
		SandboxImage, CNIBin, filepath.Dir(cni), n.bin["runc"]))
	n.start("containerd", n.bin["containerd"], "--config", cfg)
	n.wait("containerd's socket", 60*time.Second, func() bool {
		c, err := net.Dial("unix", n.containerdSocket())
		if err == nil {
			c.Close()
		}
		return err == nil
	}, "containerd")

	all := map[string]string{}
	for k, v := range images {
		all[k] = v
	}
	all[BusyboxImage] = n.busyboxArchive()
	all[SandboxImage] = n.pauseArchive()
	for name, archive := range all {
		out, err := n.Command(n.bin["ctr"], "--address", n.containerdSocket(), "-n", "k8s.io", "images", "import", "--no-unpack=false", archive).CombinedOutput()
		if err != nil {
			n.t.Fatalf("ctr images import %s (%s): %v\n%s", archive, name, err, out)
		}
		out, err = n.Command(n.bin["ctr"], "--address", n.containerdSocket(), "-n", "k8s.io", "images", "ls", "-q").CombinedOutput()
		if err != nil || !bytes.Contains(out, []byte(name)) {
			n.t.Fatalf("after importing %s, containerd has no %s: %v\n%s", archive, name, err, out)
		}
	}
}

func (n *Node) startKubelet() {
	n.t.Helper()
	resolv := n.write("kubelet/resolv.conf", "nameserver "+NodeIP+"\n")
	cfg := n.write("kubelet/config.yaml", fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# The CI machine mounts cgroup v1 (hybrid): allowed, no QoS hierarchy, no allocatable enforcement.
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupsPerQOS: false
enforceNodeAllocatable: []
failSwapOn: false
localStorageCapacityIsolation: false
containerRuntimeEndpoint: unix://%s
clusterDNS: [%s]
clusterDomain: cluster.local
resolvConf: %s
address: %s
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
podLogsDir: %s
authentication:
  anonymous: {enabled: true}
  webhook: {enabled: false}
authorization:
  mode: AlwaysAllow
serializeImagePulls: false
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: "1Mi"}
evictionPressureTransitionPeriod: 1s
syncFrequency: 5s
nodeStatusReportFrequency: 10s
rotateCertificates: false
`, n.containerdSocket(), DNSIP, resolv, NodeIP, filepath.Join(n.Dir, "kubelet", "pods-logs")))
	n.start("kubelet", n.bin["kubelet"], "--config", cfg, "--kubeconfig", n.Kubeconfig,
		"--root-dir", filepath.Join(n.Dir, "kubelet", "root"), "--cert-dir", filepath.Join(n.Dir, "kubelet", "pki"),
		"--hostname-override", NodeName, "--node-ip", NodeIP, "-v", "2")
}

func (n *Node) startCoreDNS() {
	n.t.Helper()
	// The Corefile kubeadm installs, less what needs the internet
	// (forward) or a port of its own (health, ready, prometheus).
	// kubeadm's Corefile, less what needs the internet (forward) or a port
	// of its own (health, ready, prometheus). With no upstream, every name
	// outside the cluster's zones gets NXDOMAIN, as the root servers answer
	// for a TLD that does not exist ("myservice.", "kubernetes.default.").
	cf := n.write("coredns/Corefile", fmt.Sprintf(`cluster.local:53 in-addr.arpa:53 ip6.arpa:53 {
    bind %[1]s
    errors
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        kubeconfig %[2]s test
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }
    cache 30
    loop
    loadbalance
}
.:53 {
    bind %[1]s
    template ANY ANY {
        rcode NXDOMAIN
    }
}
`, NodeIP, n.Kubeconfig))
	n.start("coredns", n.bin["coredns"], "-conf", cf)
	n.Server.Must(n.t, "POST", "/api/v1/namespaces/kube-system/services", map[string]any{
		"apiVersion": "v1", "kind": "Service",
		"metadata": map[string]any{"name": "kube-dns", "labels": map[string]any{"k8s-app": "kube-dns"}},
		"spec": map[string]any{"clusterIP": DNSIP, "ports": []any{
			map[string]any{"name": "dns", "port": 53, "protocol": "UDP"},
			map[string]any{"name": "dns-tcp", "port": 53, "protocol": "TCP"}}}})
	// CoreDNS runs in the node, not as a pod: the Service's endpoints are
	// the node's address, as for the API server.
	n.endpoints(n.t, "kube-system", "kube-dns", map[string]any{"name": "dns", "port": 53, "protocol": "UDP"},
		map[string]any{"name": "dns-tcp", "port": 53, "protocol": "TCP"})
}

func (n *Node) waitNodeReady() {
	n.t.Helper()
	n.wait("node "+NodeName+" Ready", 120*time.Second, func() bool {
		code, body := n.Server.Do(n.t, "GET", "/api/v1/nodes/"+NodeName, nil)
		if code != 200 {
			return false
		}
		var node struct {
			Status struct {
				Conditions []struct{ Type, Status string }
			}
		}
		json.Unmarshal(body, &node)
		for _, c := range node.Status.Conditions {
			if c.Type == "Ready" && c.Status == "True" {
				return true
			}
		}
		return false
	}, "kubelet", "containerd")
	n.wait("the default ServiceAccount", 60*time.Second, func() bool {
		code, _ := n.Server.Do(n.t, "GET", "/api/v1/namespaces/default/serviceaccounts/default", nil)
		return code == 200
	}, "kube-controller-manager")
}

// teardown stops every component, then every process left in the node's
// namespaces (pods' processes, shims), removes the cgroups the pods made
// and lets the namespaces go; a leftover fails the test.
func (n *Node) teardown() {
	n.mu.Lock()
	procs := append([]*proc(nil), n.procs...)
	n.mu.Unlock()
	for i := len(procs) - 1; i >= 0; i-- {
		testenv.Stop(procs[i].cmd, 10*time.Second)
	}
	// What is left: the shims in the node's namespace, and the pods'
	// processes, each pod in network and mount namespaces of its own but
	// all in the cgroups runc made for this containerd's tasks.
	n.tasks = n.taskIDs()
	for i := 0; i < 50; i++ {
		left := append(n.processesInNode(), n.processesInCgroups()...)
		if len(left) == 0 {
			break
		}
		for _, pid := range left {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if n.anchor != nil && n.anchor.Process != nil {
		n.anchor.Process.Kill()
		n.anchor.Wait()
	}
	if n.netns != nil {
		n.netns.Close()
	}
	var left []string
	for i := 0; i < 20; i++ {
		if left = n.removeCgroups(); len(left) == 0 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, d := range left {
		n.t.Errorf("cgroup left after teardown: %s", d)
	}
	if pids := append(n.processesInNode(), n.processesInCgroups()...); len(pids) > 0 {
		n.t.Errorf("processes left in the node's namespace or the pods' cgroups after teardown: %v", pids)
	}
	for m := range mountPoints() {
		if !n.mounts[m] && nodeMount(m, n.Dir) {
			n.t.Errorf("mount left on the machine after teardown: %s", m)
		}
	}
	if r := iptablesRules(); r != n.rules {
		n.t.Errorf("the machine's iptables rules changed while the node ran:\nbefore:\n%s\nafter:\n%s", n.rules, r)
	}
}

// nodeMount says whether a mount point is one the node's components make
// (other tests running at once may mount elsewhere).
func nodeMount(m, dir string) bool {
	for _, p := range []string{dir, "/run/netns", "/var/run/netns", "/run/containerd", "/var/lib/kubelet", "/var/lib/containerd", "/run/runc"} {
		if m == p || strings.HasPrefix(m, p+"/") {
			return true
		}
	}
	return false
}

// mountPoints lists the mount points the test's own mount namespace sees.
func mountPoints() map[string]bool {
	m := map[string]bool{}
	b, _ := os.ReadFile("/proc/self/mountinfo")
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 4 {
			m[f[4]] = true
		}
	}
	return m
}

// iptablesRules is the machine's filter and nat rules, without counters.
func iptablesRules() string {
	var b strings.Builder
	for _, table := range []string{"filter", "nat"} {
		out, _ := exec.Command("iptables", "-w", "-t", table, "-S").CombinedOutput()
		b.Write(out)
	}
	return b.String()
}

// processesInNode lists the processes in the node's network namespace
// other than the anchor, which holds it.
func (n *Node) processesInNode() []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || (n.anchor != nil && pid == n.anchor.Process.Pid) {
			continue
		}
		var st syscall.Stat_t
		if syscall.Stat("/proc/"+e.Name()+"/ns/net", &st) == nil && st.Ino == n.nsIno {
			pids = append(pids, pid)
		}
	}
	return pids
}

// hierarchies are the cgroup v1 hierarchies (and the empty v2 one).
func hierarchies() []string {
	hs, _ := filepath.Glob("/sys/fs/cgroup/*")
	var dirs []string
	for _, h := range hs {
		if fi, err := os.Stat(h); err == nil && fi.IsDir() {
			dirs = append(dirs, h)
		}
	}
	return dirs
}

// taskIDs lists the tasks this node's containerd has: sandboxes and
// containers, each with a cgroup /k8s.io/ID in every hierarchy (with
// cgroupsPerQOS off the kubelet names no parent, and containerd's default
// is its namespace). Other nodes' tasks are not in the list.
func (n *Node) taskIDs() []string {
	ents, _ := os.ReadDir(filepath.Join(n.Dir, "containerd", "state", "io.containerd.runtime.v2.task", "k8s.io"))
	var ids []string
	for _, e := range ents {
		ids = append(ids, e.Name())
	}
	return ids
}

// taskCgroups are the cgroup directories of the node's tasks.
func (n *Node) taskCgroups() []string {
	var dirs []string
	for _, h := range hierarchies() {
		for _, id := range n.tasks {
			if d := filepath.Join(h, "k8s.io", id); exists(d) {
				dirs = append(dirs, d)
			}
		}
	}
	return dirs
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// processesInCgroups lists the processes in the node's tasks' cgroups:
// the pods' containers.
func (n *Node) processesInCgroups() []int {
	var pids []int
	for _, d := range n.taskCgroups() {
		b, _ := os.ReadFile(filepath.Join(d, "cgroup.procs"))
		for _, f := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil {
				pids = append(pids, pid)
			}
		}
	}
	return pids
}

// removeCgroups removes the node's tasks' cgroups, and k8s.io where the
// node made it and nothing else is in it; it returns what is left.
func (n *Node) removeCgroups() []string {
	var left []string
	for _, d := range n.taskCgroups() {
		if err := syscall.Rmdir(d); err != nil && !os.IsNotExist(err) {
			left = append(left, d)
		}
	}
	for _, h := range hierarchies() {
		if !n.hadK8sCgroup[h] {
			syscall.Rmdir(filepath.Join(h, "k8s.io")) // busy when another node's pods are there
		}
	}
	return left
}

// resources maps apiVersion/kind to the API path of its collection.
var resources = map[string]string{
	"v1/Pod":                            "/api/v1/namespaces/%s/pods",
	"v1/Service":                        "/api/v1/namespaces/%s/services",
	"v1/ConfigMap":                      "/api/v1/namespaces/%s/configmaps",
	"v1/Secret":                         "/api/v1/namespaces/%s/secrets",
	"v1/ServiceAccount":                 "/api/v1/namespaces/%s/serviceaccounts",
	"apps/v1/Deployment":                "/apis/apps/v1/namespaces/%s/deployments",
	"apps/v1/StatefulSet":               "/apis/apps/v1/namespaces/%s/statefulsets",
	"batch/v1/Job":                      "/apis/batch/v1/namespaces/%s/jobs",
	"rbac.authorization.k8s.io/v1/Role": "/apis/rbac.authorization.k8s.io/v1/namespaces/%s/roles",
	"rbac.authorization.k8s.io/v1/RoleBinding": "/apis/rbac.authorization.k8s.io/v1/namespaces/%s/rolebindings",
	"discovery.k8s.io/v1/EndpointSlice":        "/apis/discovery.k8s.io/v1/namespaces/%s/endpointslices",
}

// Object is one document of a manifest.
type Object = map[string]any

// Decode splits a multi-document YAML manifest into objects.
func Decode(t testing.TB, manifest []byte) []Object {
	t.Helper()
	var objs []Object
	for _, part := range strings.Split("\n"+string(manifest), "\n---") {
		if strings.TrimSpace(part) == "" {
			continue
		}
		j, err := yaml.YAMLToJSON([]byte(part))
		if err != nil {
			t.Fatal(err)
		}
		var o Object
		if err := json.Unmarshal(j, &o); err != nil {
			t.Fatal(err)
		}
		if o != nil {
			objs = append(objs, o)
		}
	}
	return objs
}

// Create creates objs in namespace, in order.
func (n *Node) Create(t testing.TB, namespace string, objs ...Object) {
	t.Helper()
	for _, o := range objs {
		key := fmt.Sprint(o["apiVersion"], "/", o["kind"])
		path, ok := resources[key]
		if !ok {
			t.Fatalf("nodetest cannot create a %s", key)
		}
		if md, ok := o["metadata"].(map[string]any); ok {
			md["namespace"] = namespace
		}
		n.Server.Must(t, "POST", fmt.Sprintf(path, namespace), o)
	}
}

// Namespace creates namespace ns with labels and waits for its default
// ServiceAccount, which pods need.
func (n *Node) Namespace(t testing.TB, ns string, labels map[string]string) {
	t.Helper()
	n.Server.Must(t, "POST", "/api/v1/namespaces", map[string]any{"apiVersion": "v1", "kind": "Namespace",
		"metadata": map[string]any{"name": ns, "labels": labels}})
	n.wait("namespace "+ns+"'s default ServiceAccount", 30*time.Second, func() bool {
		code, _ := n.Server.Do(t, "GET", "/api/v1/namespaces/"+ns+"/serviceaccounts/default", nil)
		return code == 200
	}, "kube-controller-manager")
}

// Pod reads ns/name, nil when there is none.
func (n *Node) Pod(t testing.TB, ns, name string) *corev1.Pod {
	t.Helper()
	code, body := n.Server.Do(t, "GET", "/api/v1/namespaces/"+ns+"/pods/"+name, nil)
	if code == 404 {
		return nil
	}
	if code != 200 {
		t.Fatalf("GET pod %s/%s: %d %s", ns, name, code, body)
	}
	var p corev1.Pod
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatal(err)
	}
	return &p
}

// WaitPod polls ns/name until ok says yes, and fails the test after d
// with the pod's status, its events and the kubelet's log.
func (n *Node) WaitPod(t testing.TB, ns, name string, d time.Duration, what string, ok func(*corev1.Pod) bool) *corev1.Pod {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		p := n.Pod(t, ns, name)
		if p != nil && ok(p) {
			return p
		}
		if time.Now().After(deadline) {
			st, _ := json.MarshalIndent(p, "", " ")
			t.Fatalf("pod %s/%s: not %s after %s:\n%s\nevents:\n%s\n--- kubelet.log:\n%s", ns, name, what, d, st, n.Events(t, ns, name), n.Log("kubelet", 3000))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Running says a pod runs with every container ready (nil: no pod, no).
func Running(p *corev1.Pod) bool {
	if p == nil {
		return false
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

// Logs is a container's log, as `kubectl logs` reads it (through the API
// server and the kubelet); previous asks for the last terminated one.
func (n *Node) Logs(t testing.TB, ns, pod, container string, previous bool) string {
	t.Helper()
	code, body := n.Server.Do(t, "GET", fmt.Sprintf("/api/v1/namespaces/%s/pods/%s/log?container=%s&previous=%t", ns, pod, container, previous), nil)
	if code != 200 {
		t.Fatalf("logs of %s/%s[%s]: %d %s", ns, pod, container, code, body)
	}
	return string(body)
}

// Events lists the events of an object as "Reason: message" lines, as
// `kubectl describe` shows them.
func (n *Node) Events(t testing.TB, ns, name string) string {
	t.Helper()
	q := ""
	if name != "" {
		q = "?fieldSelector=involvedObject.name%3D" + name
	}
	code, body := n.Server.Do(t, "GET", "/api/v1/namespaces/"+ns+"/events"+q, nil)
	if code != 200 {
		return fmt.Sprintf("(%d %s)", code, body)
	}
	var l corev1.EventList
	json.Unmarshal(body, &l)
	var b strings.Builder
	for _, e := range l.Items {
		fmt.Fprintf(&b, "%s %s: %s\n", e.Type, e.Reason, e.Message)
	}
	return b.String()
}

// Enter is the command prefix that runs a program in the node's
// namespaces (nsenter), for helpers that start servers themselves.
func (n *Node) Enter() []string {
	return []string{"nsenter", "-t", strconv.Itoa(n.anchor.Process.Pid), "--net", "--mount"}
}

// PodSpecs returns the pod specs of objs (pods and the templates of
// Deployments, StatefulSets and Jobs), to change before creating them.
func PodSpecs(objs []Object) []map[string]any {
	var specs []map[string]any
	for _, o := range objs {
		spec, _ := o["spec"].(map[string]any)
		switch o["kind"] {
		case "Pod":
		case "Deployment", "StatefulSet", "Job":
			tmpl, _ := spec["template"].(map[string]any)
			spec, _ = tmpl["spec"].(map[string]any)
		default:
			continue
		}
		if spec != nil {
			specs = append(specs, spec)
		}
	}
	return specs
}

// Containers returns the init containers and containers of a pod spec.
func Containers(spec map[string]any) []map[string]any {
	var cs []map[string]any
	for _, k := range []string{"initContainers", "containers"} {
		l, _ := spec[k].([]any)
		for _, c := range l {
			if m, ok := c.(map[string]any); ok {
				cs = append(cs, m)
			}
		}
	}
	return cs
}

// PullNever sets imagePullPolicy Never on every container of objs: the
// node has its images imported and must never reach a registry.
func PullNever(objs []Object) []Object {
	for _, spec := range PodSpecs(objs) {
		for _, c := range Containers(spec) {
			c["imagePullPolicy"] = "Never"
		}
	}
	return objs
}

// Pods lists the pods of ns matching a label selector ("" for all).
func (n *Node) Pods(t testing.TB, ns, selector string) []corev1.Pod {
	t.Helper()
	code, body := n.Server.Do(t, "GET", "/api/v1/namespaces/"+ns+"/pods?labelSelector="+url.QueryEscape(selector), nil)
	if code != 200 {
		t.Fatalf("listing pods of %s: %d %s", ns, code, body)
	}
	var l corev1.PodList
	json.Unmarshal(body, &l)
	return l.Items
}

// ReadyPods lists the Ready pods of ns matching selector, now.
func (n *Node) ReadyPods(t testing.TB, ns, selector string) []corev1.Pod {
	t.Helper()
	var ready []corev1.Pod
	for _, p := range n.Pods(t, ns, selector) {
		if Running(&p) {
			ready = append(ready, p)
		}
	}
	return ready
}

// WaitReady waits until count pods of ns matching selector are Ready and
// returns them; on timeout it fails with each pod's status and events.
func (n *Node) WaitReady(t testing.TB, ns, selector string, count int, d time.Duration) []corev1.Pod {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		var ready []corev1.Pod
		pods := n.Pods(t, ns, selector)
		for _, p := range pods {
			if Running(&p) {
				ready = append(ready, p)
			}
		}
		if len(ready) >= count {
			return ready
		}
		if time.Now().After(deadline) {
			var b strings.Builder
			for _, p := range pods {
				st, _ := json.MarshalIndent(p.Status, "", " ")
				fmt.Fprintf(&b, "--- pod %s:\n%s\nevents:\n%s", p.Name, st, n.Events(t, ns, p.Name))
				for _, c := range append(p.Status.InitContainerStatuses, p.Status.ContainerStatuses...) {
					if c.State.Running != nil || c.State.Terminated != nil || c.LastTerminationState.Terminated != nil {
						_, log := n.Server.Do(t, "GET", fmt.Sprintf("/api/v1/namespaces/%s/pods/%s/log?container=%s&tailLines=10", ns, p.Name, c.Name), nil)
						fmt.Fprintf(&b, "log of %s:\n%s\n", c.Name, log)
					}
				}
			}
			t.Fatalf("%s: %d of %d pods %q Ready after %s\n%s\nevents of %s:\n%s", ns, len(ready), count, selector, d, b.String(), ns, n.Events(t, ns, ""))
		}
		time.Sleep(200 * time.Millisecond)
	}
}
