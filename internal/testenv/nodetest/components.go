package nodetest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"path/filepath"
	"time"
)

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
