package nodetest

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/initbox/initbox/internal/testenv"
	"github.com/initbox/initbox/internal/testenv/kubetest"
)

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
