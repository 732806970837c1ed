package nodetest

import (
	"encoding/json"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

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
