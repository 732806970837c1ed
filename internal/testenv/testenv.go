// Package testenv holds what initbox's tests share: skipping an integration
// suite honestly, and building the binary once.
package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
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
	buildOnce sync.Once
	built     string
	buildErr  error
)

// Binary builds the multi-call binary once per test process, statically and
// stripped as the Makefile does, and returns its path.
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "initbox-bin-")
		if err != nil {
			buildErr = err
			return
		}
		built = filepath.Join(dir, "initbox")
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", built, ".")
		cmd.Dir = RepoRoot()
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = &buildError{out: string(out), err: err}
		}
	})
	if buildErr != nil {
		t.Fatalf("building initbox: %v", buildErr)
	}
	return built
}

type buildError struct {
	out string
	err error
}

func (e *buildError) Error() string { return e.err.Error() + "\n" + e.out }

// RepoRoot is the module's root directory.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}
