package nodetest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/initbox/initbox/internal/testenv"
)

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
