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
	"os"
	"os/exec"
	"sync"
	"testing"

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
