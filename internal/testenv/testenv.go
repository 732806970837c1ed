// Package testenv holds what initbox's tests share: skipping an integration
// suite honestly, and building the binary once.
package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// RequireAll reports whether integration suites must not skip
// (INITBOX_REQUIRE_ALL=1, as .ci/run sets it).
func RequireAll() bool { return os.Getenv("INITBOX_REQUIRE_ALL") == "1" }

// Skip skips t naming what is missing, or fails it under INITBOX_REQUIRE_ALL.
func Skip(t testing.TB, what string) {
	t.Helper()
	if RequireAll() {
		t.Fatalf("INITBOX_REQUIRE_ALL=1 but this suite cannot run: %s", what)
	}
	t.Skipf("skipped: %s", what)
}

var (
	buildMu sync.Mutex
	builds  = map[string]string{}
)

// Binary builds the multi-call binary for this machine once per test
// process, statically and stripped as the Makefile does, and returns its path.
func Binary(t testing.TB) string {
	t.Helper()
	return BinaryFor(t, runtime.GOARCH)
}

// BinaryFor is Binary for linux/goarch.
func BinaryFor(t testing.TB, goarch string) string {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if p, ok := builds[goarch]; ok {
		return p
	}
	dir, err := os.MkdirTemp("", "initbox-bin-")
	if err != nil {
		t.Fatal(err)
	}
	// Tests run the binary as other users too.
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "initbox")
	args := append([]string{"build", "-trimpath", "-ldflags=-s -w"}, BuildFlags(t)...)
	cmd := exec.Command("go", append(args, "-o", p, ".")...)
	cmd.Dir = RepoRoot()
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+goarch)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building initbox for %s: %v\n%s", goarch, err, out)
	}
	builds[goarch] = p
	return p
}

// BuildFlags are the flags of build.flags, which every build of initbox
// uses (the Makefile reads the same file).
func BuildFlags(t testing.TB) []string {
	b, err := os.ReadFile(filepath.Join(RepoRoot(), "build.flags"))
	if err != nil {
		t.Fatal(err)
	}
	var flags []string
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			flags = append(flags, l)
		}
	}
	return flags
}

// RepoRoot is the module's root directory.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// ReadFile returns the file at path, failing the test if it cannot be read.
func ReadFile(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// RealServer marks t as a suite that runs a real server or tool
// (PostgreSQL, MariaDB, git http-backend, kube-apiserver, a kubelet…):
// under -short (make test-fast) it is skipped, so the fast loop is the
// unit and command-line tests. make test runs everything.
func RealServer(t testing.TB, what string) {
	t.Helper()
	if testing.Short() {
		t.Skipf("-short: %s is a real-server suite (make test runs it)", what)
	}
}
