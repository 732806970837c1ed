package nodetest

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

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
