package nodetest

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/initbox/initbox/internal/testenv"
	"github.com/initbox/initbox/internal/testenv/kubetest"
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
