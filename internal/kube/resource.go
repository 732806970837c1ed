package kube

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"sync"
)

// Resource is a kind of object the API serves.
type Resource struct {
	Group, Version, Name string // Name is the plural resource: jobs
	Namespaced           bool
}

// Path is the collection's path, in namespace ns when namespaced.
func (r Resource) Path(ns string) string {
	base := "/api/" + r.Version
	if r.Group != "" {
		base = "/apis/" + r.Group + "/" + r.Version
	}
	if r.Namespaced {
		base += "/namespaces/" + url.PathEscape(ns)
	}
	return base + "/" + r.Name
}

// GroupName is "jobs.batch", or "pods" for the core group.
func (r Resource) GroupName() string {
	if r.Group == "" {
		return r.Name
	}
	return r.Name + "." + r.Group
}

// builtin maps the names of the resources waited on most, known without
// discovery. Built on first use: most runs of the binary never need it.
var builtin = sync.OnceValue(func() map[string]Resource {
	m := map[string]Resource{}
	for _, b := range []struct {
		r     Resource
		names string
	}{
		{Resource{"", "v1", "pods", true}, "pod pods po"},
		{Resource{"", "v1", "services", true}, "service services svc"},
		{Resource{"", "v1", "configmaps", true}, "configmap configmaps cm"},
		{Resource{"", "v1", "secrets", true}, "secret secrets"},
		{Resource{"", "v1", "persistentvolumeclaims", true}, "persistentvolumeclaim persistentvolumeclaims pvc"},
		{Resource{"", "v1", "namespaces", false}, "namespace namespaces ns"},
		{Resource{"", "v1", "nodes", false}, "node nodes no"},
		{Resource{"batch", "v1", "jobs", true}, "job jobs"},
		{Resource{"apps", "v1", "deployments", true}, "deployment deployments deploy"},
		{Resource{"apps", "v1", "statefulsets", true}, "statefulset statefulsets sts"},
		{Resource{"apps", "v1", "daemonsets", true}, "daemonset daemonsets ds"},
		{Resource{"apps", "v1", "replicasets", true}, "replicaset replicasets rs"},
		{Resource{"discovery.k8s.io", "v1", "endpointslices", true}, "endpointslice endpointslices"},
	} {
		for _, n := range strings.Fields(b.names) {
			m[n] = b.r
			m[n+"."+b.r.Group] = b.r
		}
	}
	return m
})

// apiResourceList is a discovery document of one group version.
type apiResourceList struct {
	GroupVersion string `json:"groupVersion"`
	Resources    []struct {
		Name         string   `json:"name"`
		SingularName string   `json:"singularName"`
		Kind         string   `json:"kind"`
		Namespaced   bool     `json:"namespaced"`
		ShortNames   []string `json:"shortNames"`
	} `json:"resources"`
}

// Resolve finds the resource named as kubectl names it: a plural,
// singular, kind or short name, optionally with its group
// (deployments.apps, widgets.example.com), through discovery unless it is
// a common built-in.
func (c *Client) Resolve(ctx context.Context, name string) (Resource, error) {
	name = strings.ToLower(name)
	if r, ok := builtin()[name]; ok {
		return r, nil
	}
	want, group, _ := strings.Cut(name, ".")
	var gvs []string
	if group == "" {
		gvs = append(gvs, "v1")
	}
	var groups struct {
		Groups []struct {
			Name             string `json:"name"`
			PreferredVersion struct {
				GroupVersion string `json:"groupVersion"`
			} `json:"preferredVersion"`
		} `json:"groups"`
	}
	if err := c.Get(ctx, "/apis", nil, &groups); err != nil {
		return Resource{}, fmt.Errorf("discovery: %w", err)
	}
	for _, g := range groups.Groups {
		if group == "" || g.Name == group {
			gvs = append(gvs, g.PreferredVersion.GroupVersion)
		}
	}
	for _, gv := range gvs {
		path := "/apis/" + gv
		if gv == "v1" {
			path = "/api/v1"
		}
		var list apiResourceList
		if err := c.Get(ctx, path, nil, &list); err != nil {
			continue // a group whose discovery fails is skipped, as kubectl does
		}
		for _, r := range list.Resources {
			if strings.Contains(r.Name, "/") {
				continue // a subresource
			}
			match := r.Name == want || r.SingularName == want || strings.ToLower(r.Kind) == want
			for _, s := range r.ShortNames {
				match = match || s == want
			}
			if match {
				g, v, ok := strings.Cut(gv, "/")
				if !ok {
					g, v = "", gv
				}
				return Resource{Group: g, Version: v, Name: r.Name, Namespaced: r.Namespaced}, nil
			}
		}
	}
	return Resource{}, fmt.Errorf("the server has no resource %q", name)
}
