package kube

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestKubeconfig(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("token", "from-file\n")
	ok := write("ok", `apiVersion: v1
kind: Config
current-context: b
clusters:
- {name: a, cluster: {server: "https://a.example:6443"}}
- {name: b, cluster: {server: "https://b.example:6443/", insecure-skip-tls-verify: true}}
users:
- {name: u, user: {tokenFile: token}}
contexts:
- {name: a, context: {cluster: a, user: u}}
- {name: b, context: {cluster: b, user: u, namespace: shop}}
`)
	cfg, err := FromKubeconfig(ok)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Server != "https://b.example:6443" || cfg.Namespace != "shop" || cfg.TokenFile != filepath.Join(dir, "token") || !cfg.TLS.InsecureSkipVerify {
		t.Fatalf("%+v", cfg)
	}
	for content, want := range map[string]string{
		"users: [{name: u, user: {exec: {command: aws}}}]\ncontexts: [{name: c, context: {cluster: k, user: u}}]\nclusters: [{name: k, cluster: {server: https://x}}]\ncurrent-context: c": "authenticates through a plugin",
		"current-context: nope\ncontexts: [{name: c, context: {cluster: k}}]":                                                                                       `no context "nope"`,
		"current-context: c\ncontexts: [{name: c, context: {cluster: k}}]":                                                                                          `no cluster "k" with a server`,
		"clusters: [{name: k, cluster: {server: https://x, certificate-authority: missing.pem}}]\ncontexts: [{name: c, context: {cluster: k}}]\ncurrent-context: c": "missing.pem: no such file or directory",
		"[": "--kubeconfig",
	} {
		if _, err := FromKubeconfig(write("bad", content)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", content, err, want)
		}
	}
}

func TestInClusterNeedsTheEnvironmentAndTheMount(t *testing.T) {
	none := func(string) (string, bool) { return "", false }
	if _, err := InCluster(t.TempDir(), none); err == nil || !strings.Contains(err.Error(), "give --kubeconfig") {
		t.Fatal(err)
	}
	env := func(k string) (string, bool) {
		return map[string]string{"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}[k], true
	}
	if _, err := InCluster(t.TempDir(), env); err == nil || !strings.Contains(err.Error(), "the service account's CA") {
		t.Fatal(err)
	}
}

func TestResourcePaths(t *testing.T) {
	for _, c := range []struct {
		name, ns, want string
	}{
		{"job", "shop", "/apis/batch/v1/namespaces/shop/jobs"},
		{"po", "a b", "/api/v1/namespaces/a%20b/pods"},
		{"ns", "x", "/api/v1/namespaces"},
		{"deployments.apps", "x", "/apis/apps/v1/namespaces/x/deployments"},
	} {
		r, ok := builtin()[c.name]
		if !ok || r.Path(c.ns) != c.want {
			t.Errorf("%s: %v %q, want %q", c.name, ok, r.Path(c.ns), c.want)
		}
	}
}
