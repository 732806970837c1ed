package testenv

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// KubeletMap formats labels or annotations exactly as the kubelet writes
// them into a downwardAPI volume (kubernetes pkg/fieldpath FormatMap):
// sorted, key=%q, no final newline.
func KubeletMap(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%v=%q\n", k, m[k])
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// Podinfo lays out a downwardAPI volume as the kubelet's atomic writer
// does: the files in a timestamped directory, ..data pointing at it, and a
// symlink per top-level entry through ..data.
func Podinfo(t testing.TB, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	ts := "..2026_11_21_12_00_00.123456789"
	for name, content := range files {
		p := filepath.Join(dir, ts, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		top := strings.SplitN(name, "/", 2)[0]
		if err := os.Symlink(filepath.Join("..data", top), filepath.Join(dir, top)); err != nil && !os.IsExist(err) {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(ts, filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	return dir
}

// HardLabels are label values that break naive parsers: several lines,
// quotes, backslashes, unicode, invalid UTF-8, an = in the value, empty.
var HardLabels = map[string]string{
	"app":                          "web",
	"example.com/multi":            "line one\nline \"two\"\n\ttabbed \\ end",
	"example.com/unicode":          "grüße, 世界 🚀",
	"example.com/invalid-utf8":     "bad \xff\xfe bytes",
	"example.com/equals":           "a=b=c",
	"example.com/empty":            "",
	"kubectl.kubernetes.io/config": `{"apiVersion":"v1","kind":"Pod"}`,
}

// PodEnv sets the downward API variables a pod spec would, and one plain
// variable (APP_MODE).
func PodEnv(t testing.TB) {
	for k, v := range map[string]string{
		"POD_NAME": "web-0", "POD_NAMESPACE": "shop", "POD_UID": "0b5e5d3e-3c53-4f3a-9b5d-1d2a3b4c5d6e",
		"POD_IP": "10.1.2.3", "POD_IPS": "10.1.2.3,fd00::3", "NODE_NAME": "node-7", "HOST_IP": "192.168.0.7",
		"POD_SERVICE_ACCOUNT": "web", "APP_MODE": "production",
	} {
		t.Setenv(k, v)
	}
}
