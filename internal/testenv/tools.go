package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// T is what BuildTools needs of a test (the benchmarks' stand-in has it).
type T interface {
	Helper()
	Fatal(args ...any)
	Fatalf(format string, args ...any)
	Logf(format string, args ...any)
}

// Tool is a program a tools module under test/ builds: statically, with
// CGO_ENABLED=0, unless CGO asks for cgo (runc's seccomp support links
// libseccomp).
type Tool struct {
	Name, Pkg string
	Tags      string // -tags
	CGO       bool
}

// BuildTools builds the tools of the module test/<module> once into a
// directory of the Go build cache named after the versions its go.mod
// requires of versionOf ("label=module path" each: label-vX.Y.Z, joined by
// _) and extra, so later runs, and other test binaries running at once (a
// file lock), reuse them. It returns the directory.
func BuildTools(t T, module string, versionOf []string, extra string, tools ...Tool) string {
	if tb, ok := t.(testing.TB); ok {
		RealServer(tb, "tools built from the module proxy")
	}
	t.Helper()
	if _, err := exec.LookPath("go"); err != nil {
		what := "the go command is needed to build the test tools of test/" + module
		if tt, ok := t.(testing.TB); ok {
			Skip(tt, what)
		}
		t.Fatal(what)
	}
	dir := filepath.Join(RepoRoot(), "test", module)
	mod, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	var parts []string
	for _, lm := range versionOf {
		label, m, _ := strings.Cut(lm, "=")
		v := regexp.MustCompile(`(?m)^\s*(?:require\s+)?` + regexp.QuoteMeta(m) + `\s+(v\S+)`).FindSubmatch(mod)
		if v == nil {
			t.Fatalf("test/%s/go.mod does not require %s", module, m)
		}
		parts = append(parts, label+"-"+string(v[1]))
	}
	key := strings.Join(parts, "_") + extra
	out, err := exec.Command("go", "env", "GOCACHE").Output()
	if err != nil {
		t.Fatal(err)
	}
	cache := filepath.Join(strings.TrimSpace(string(out)), "initbox-"+module, key)
	if err := os.MkdirAll(cache, 0o755); err != nil {
		t.Fatal(err)
	}
	lock, err := os.OpenFile(filepath.Join(cache, "lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	for _, b := range tools {
		p := filepath.Join(cache, b.Name)
		if _, err := os.Stat(p); err == nil {
			continue
		}
		t.Logf("building %s into %s (minutes the first time)", b.Name, cache)
		start := time.Now()
		cmd := exec.Command("go", "build", "-tags", b.Tags, "-o", p+".tmp", b.Pkg)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if b.CGO {
			cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
		}
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("building %s: %v\n%s", b.Name, err, out)
		}
		if err := os.Rename(p+".tmp", p); err != nil {
			t.Fatal(err)
		}
		t.Logf("built %s in %s", b.Name, time.Since(start).Round(time.Second))
	}
	return cache
}

// Stop ends a started command as a supervisor does: SIGTERM, then SIGKILL
// after grace, and waits for it.
func Stop(cmd *exec.Cmd, grace time.Duration) {
	if cmd == nil || cmd.Process == nil {
		return
	}
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(grace):
		cmd.Process.Kill()
		<-done
	}
}

// StartGroup starts cmd as the leader of a process group of its own and,
// when the test ends, stops the whole group (SIGTERM, then SIGKILL after
// 5 s): a wrapper's children (git daemon's git-daemon) go with it. The
// test fails if any process of the group outlives that.
func StartGroup(t testing.TB, cmd *exec.Cmd) {
	t.Helper()
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", cmd.Path, err)
	}
	pgid := cmd.Process.Pid
	t.Cleanup(func() {
		syscall.Kill(-pgid, syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			syscall.Kill(-pgid, syscall.SIGKILL)
			<-done
		}
		// The leader is reaped; its children may still be going down.
		for i := 0; i < 50; i++ {
			if syscall.Kill(-pgid, 0) == syscall.ESRCH {
				return
			}
			if i == 25 {
				syscall.Kill(-pgid, syscall.SIGKILL)
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Errorf("a process of %s's group (%d) outlived the test", cmd.Path, pgid)
	})
}
