package tmpl

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/initbox/initbox/internal/oserr"
)

// PodEnv maps .Pod's fields to the environment variables a pod spec sets
// from the downward API (fieldRef). The plural forms are comma-joined by
// the kubelet.
var PodEnv = []struct{ Field, Env, FieldRef string }{
	{"Name", "POD_NAME", "metadata.name"},
	{"Namespace", "POD_NAMESPACE", "metadata.namespace"},
	{"UID", "POD_UID", "metadata.uid"},
	{"IP", "POD_IP", "status.podIP"},
	{"IPs", "POD_IPS", "status.podIPs"},
	{"NodeName", "NODE_NAME", "spec.nodeName"},
	{"HostIP", "HOST_IP", "status.hostIP"},
	{"HostIPs", "HOST_IPS", "status.hostIPs"},
	{"ServiceAccount", "POD_SERVICE_ACCOUNT", "spec.serviceAccountName"},
}

// podFiles maps the file names of a downwardAPI volume to .Pod's fields.
var podFiles = map[string]string{
	"name": "Name", "namespace": "Namespace", "uid": "UID",
	"labels": "Labels", "annotations": "Annotations",
}

// LoadPod builds .Pod from the environment (names from PodEnv, each with
// prefix) and from a downwardAPI volume at dir (when not empty), which
// wins where both give a field. Every file of the volume is also in
// .Pod.Files under its path.
func LoadPod(lookupEnv func(string) (string, bool), prefix, dir string) (map[string]any, error) {
	pod := map[string]any{
		"Labels":      map[string]any{},
		"Annotations": map[string]any{},
		"Files":       map[string]any{},
	}
	for _, f := range PodEnv {
		v, ok := lookupEnv(prefix + f.Env)
		if !ok {
			continue
		}
		if strings.HasSuffix(f.Field, "IPs") {
			pod[f.Field] = splitList(v)
		} else {
			pod[f.Field] = v
		}
	}
	// One of IP and IPs implies the other.
	for _, p := range [][2]string{{"IP", "IPs"}, {"HostIP", "HostIPs"}} {
		one, many := p[0], p[1]
		if _, ok := pod[many]; !ok {
			if v, ok := pod[one].(string); ok && v != "" {
				pod[many] = []string{v}
			}
		}
		if _, ok := pod[one]; !ok {
			if l, ok := pod[many].([]string); ok && len(l) > 0 {
				pod[one] = l[0]
			}
		}
	}
	if dir != "" {
		if err := readPodinfo(dir, pod); err != nil {
			return nil, err
		}
	}
	return pod, nil
}

func splitList(v string) []string {
	l := []string{}
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			l = append(l, s)
		}
	}
	return l
}

// readPodinfo reads a downwardAPI volume. The kubelet publishes its files
// as symlinks into ..data, a symlink it swaps atomically: resolving
// ..data once reads one consistent snapshot.
func readPodinfo(dir string, pod map[string]any) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("--podinfo %s: %w", dir, oserr.Reason(err))
	}
	if !fi.IsDir() {
		return fmt.Errorf("--podinfo %s: not a directory", dir)
	}
	root := dir
	if target, err := os.Readlink(filepath.Join(dir, "..data")); err == nil {
		if !filepath.IsAbs(target) {
			target = filepath.Join(dir, target)
		}
		root = target
	}
	files := pod["Files"].(map[string]any)
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if strings.HasPrefix(d.Name(), "..") && p != root {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		files[filepath.ToSlash(rel)] = string(b)
		switch field := podFiles[rel]; field {
		case "":
		case "Labels", "Annotations":
			m, err := ParseMap(string(b))
			if err != nil {
				return fmt.Errorf("%s:%w", filepath.Join(dir, rel), err)
			}
			am := make(map[string]any, len(m))
			for k, v := range m {
				am[k] = v
			}
			pod[field] = am
		default:
			pod[field] = string(b)
		}
		return nil
	})
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			return fmt.Errorf("--podinfo: %s: %w", pe.Path, pe.Err)
		}
		return fmt.Errorf("--podinfo: %w", err)
	}
	return nil
}

// ParseMap reads the kubelet's format of labels and annotations: one
// key="value" per line, the value quoted as Go's %q. An error starts with
// the line number.
func ParseMap(s string) (map[string]string, error) {
	m := map[string]string{}
	for i, line := range strings.Split(s, "\n") {
		if line == "" {
			continue
		}
		k, q, ok := strings.Cut(line, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("%d: want key=\"value\"", i+1)
		}
		v, err := strconv.Unquote(q)
		if err != nil {
			return nil, fmt.Errorf("%d: the value of %s is not a quoted string", i+1, k)
		}
		m[k] = v
	}
	return m, nil
}
