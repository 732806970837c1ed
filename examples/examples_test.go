// Package examples holds Kubernetes manifests; this test keeps them valid.
package examples

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/yaml"
)

// Image is the reference every example uses.
const Image = "ghcr.io/initbox/initbox:latest"

// decodeStrict decodes one JSON document into v, refusing unknown fields:
// a typo in a manifest fails here, not in a cluster.
func decodeStrict(t *testing.T, doc []byte, v any) {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(doc))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		t.Fatalf("%T: %v", v, err)
	}
}

// podSpecs decodes every document of a file and returns the pod specs in it.
func podSpecs(t *testing.T, file string) []corev1.PodSpec {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var specs []corev1.PodSpec
	for _, part := range strings.Split(string(b), "\n---\n") {
		if strings.TrimSpace(part) == "" {
			continue
		}
		doc, err := yaml.YAMLToJSONStrict([]byte(part))
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		var meta struct{ APIVersion, Kind string }
		json.Unmarshal(doc, &meta)
		switch meta.APIVersion + "/" + meta.Kind {
		case "v1/Pod":
			var o corev1.Pod
			decodeStrict(t, doc, &o)
			specs = append(specs, o.Spec)
		case "apps/v1/Deployment":
			var o appsv1.Deployment
			decodeStrict(t, doc, &o)
			specs = append(specs, o.Spec.Template.Spec)
		case "apps/v1/StatefulSet":
			var o appsv1.StatefulSet
			decodeStrict(t, doc, &o)
			specs = append(specs, o.Spec.Template.Spec)
		case "batch/v1/Job":
			var o batchv1.Job
			decodeStrict(t, doc, &o)
			specs = append(specs, o.Spec.Template.Spec)
		case "v1/Service":
			decodeStrict(t, doc, &corev1.Service{})
		case "v1/Secret":
			decodeStrict(t, doc, &corev1.Secret{})
		case "v1/ConfigMap":
			decodeStrict(t, doc, &corev1.ConfigMap{})
		case "v1/ServiceAccount":
			decodeStrict(t, doc, &corev1.ServiceAccount{})
		case "rbac.authorization.k8s.io/v1/Role":
			decodeStrict(t, doc, &rbacv1.Role{})
		case "rbac.authorization.k8s.io/v1/RoleBinding":
			decodeStrict(t, doc, &rbacv1.RoleBinding{})
		default:
			t.Fatalf("%s: unexpected %s %s", file, meta.APIVersion, meta.Kind)
		}
	}
	return specs
}

func TestExamples(t *testing.T) {
	files, _ := filepath.Glob("*.yaml")
	if len(files) == 0 {
		t.Fatal("no examples")
	}
	for _, f := range files {
		t.Run(f, func(t *testing.T) {
			uses := 0
			for _, spec := range podSpecs(t, f) {
				for _, c := range append(append([]corev1.Container(nil), spec.InitContainers...), spec.Containers...) {
					if !strings.Contains(c.Image, "initbox") {
						continue
					}
					uses++
					if c.Image != Image {
						t.Errorf("%s: image %q, want %q", c.Name, c.Image, Image)
					}
					if exception(t, c) {
						continue
					}
					if spec.SecurityContext == nil || spec.SecurityContext.RunAsNonRoot == nil || !*spec.SecurityContext.RunAsNonRoot {
						t.Errorf("%s: its pod lacks runAsNonRoot", c.Name)
					}
					sc := c.SecurityContext
					switch {
					case sc == nil:
						t.Errorf("%s: no securityContext", c.Name)
					case sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot:
						t.Errorf("%s: not runAsNonRoot", c.Name)
					case sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem:
						t.Errorf("%s: root filesystem not read-only", c.Name)
					case sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
						t.Errorf("%s: privilege escalation allowed", c.Name)
					case sc.Capabilities == nil || len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL":
						t.Errorf("%s: capabilities not dropped", c.Name)
					}
					argv := append(append([]string(nil), c.Command...), c.Args...)
					if len(argv) == 0 {
						t.Errorf("%s: runs the image's default (help)", c.Name)
					}
				}
			}
			if uses == 0 {
				t.Error("no container uses initbox")
			}
		})
	}
}

// exception allows the two containers that cannot be "restricted": sysctl of
// a key no namespace owns runs privileged, and a chown runs as root — each
// only for that applet, with every capability dropped but CHOWN for chown.
func exception(t *testing.T, c corev1.Container) bool {
	sc := c.SecurityContext
	if sc == nil {
		return false
	}
	argv := append(append([]string(nil), c.Command...), c.Args...)
	root := sc.RunAsUser != nil && *sc.RunAsUser == 0
	switch {
	case sc.Privileged != nil && *sc.Privileged:
		if len(argv) == 0 || argv[0] != "sysctl" {
			t.Errorf("%s: privileged, but not a sysctl container", c.Name)
		}
	case root:
		if len(argv) == 0 || argv[0] != "prepare" {
			t.Errorf("%s: runs as root, but not a prepare container", c.Name)
		}
		if sc.Capabilities == nil || len(sc.Capabilities.Add) != 1 || sc.Capabilities.Add[0] != "CHOWN" {
			t.Errorf("%s: a root container may add CHOWN and nothing else", c.Name)
		}
	default:
		return false
	}
	if sc.Capabilities == nil || len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL" {
		t.Errorf("%s: capabilities not dropped", c.Name)
	}
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Errorf("%s: root filesystem not read-only", c.Name)
	}
	return true
}

// The README shows this manifest whole; it must be the tested one.
func TestREADMEShowsTheTestedManifest(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	ex, err := os.ReadFile("config-from-downward-api.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(readme, ex) {
		t.Error("README.md no longer holds examples/config-from-downward-api.yaml as it is")
	}
}
