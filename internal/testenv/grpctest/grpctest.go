// Package grpctest runs grpc-go's own health server and the
// grpc-health-probe oracle for initbox's tests, both built from the tools
// module test/grpc, once, into the Go build cache's directory.
package grpctest

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/initbox/initbox/internal/testenv"
)

var (
	buildMu sync.Mutex
	built   [2]string
)

// T is what Binaries needs of a test (the benchmarks' stand-in has it).
type T interface {
	Helper()
	Fatal(args ...any)
	Fatalf(format string, args ...any)
	Logf(format string, args ...any)
}

// Binaries returns the paths of healthserver and grpc-health-probe,
// building them the first time (a minute, cold).
func Binaries(t T) (server, probe string) {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if built[0] != "" {
		return built[0], built[1]
	}
	if _, err := exec.LookPath("go"); err != nil {
		if tt, ok := t.(testing.TB); ok {
			testenv.Skip(tt, "the go command is needed to build the gRPC test tools")
		}
		t.Fatal("the go command is needed to build the gRPC test tools")
	}
	tools := filepath.Join(testenv.RepoRoot(), "test", "grpc")
	mod, err := os.ReadFile(filepath.Join(tools, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	version := func(m string) string {
		v := regexp.MustCompile(`(?m)^\s*(?:require\s+)?` + regexp.QuoteMeta(m) + `\s+(v\S+)`).FindSubmatch(mod)
		if v == nil {
			t.Fatalf("test/grpc/go.mod does not require %s", m)
		}
		return string(v[1])
	}
	out, err := exec.Command("go", "env", "GOCACHE").Output()
	if err != nil {
		t.Fatal(err)
	}
	sum, _ := os.ReadFile(filepath.Join(tools, "healthserver", "main.go"))
	dir := filepath.Join(strings.TrimSpace(string(out)), "initbox-grpc",
		fmt.Sprintf("grpc-%s_probe-%s_%x", version("google.golang.org/grpc"), version("github.com/grpc-ecosystem/grpc-health-probe"), len(sum)))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	for _, b := range []struct{ name, pkg string }{
		{"healthserver", "./healthserver"},
		{"grpc-health-probe", "github.com/grpc-ecosystem/grpc-health-probe"},
	} {
		p := filepath.Join(dir, b.name)
		if _, err := os.Stat(p); err == nil {
			continue
		}
		start := time.Now()
		cmd := exec.Command("go", "build", "-o", p+".tmp", b.pkg)
		cmd.Dir = tools
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("building %s: %v\n%s", b.name, err, out)
		}
		if err := os.Rename(p+".tmp", p); err != nil {
			t.Fatal(err)
		}
		t.Logf("built %s in %s", b.name, time.Since(start).Round(time.Second))
	}
	built = [2]string{filepath.Join(dir, "healthserver"), filepath.Join(dir, "grpc-health-probe")}
	return built[0], built[1]
}

// Server is a running healthserver.
type Server struct {
	Addr  string
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Scanner
	mu    sync.Mutex
}

// Start runs healthserver with args (-addr, -cert, -key, -client-ca) until
// the test ends. The server as a whole starts SERVING (grpc-go's default).
func Start(t testing.TB, args ...string) *Server {
	t.Helper()
	bin, _ := Binaries(t)
	cmd := exec.Command(bin, args...)
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &Server{cmd: cmd, stdin: stdin, out: bufio.NewScanner(stdout)}
	t.Cleanup(s.Stop)
	if !s.out.Scan() || !strings.HasPrefix(s.out.Text(), "listening ") {
		t.Fatalf("healthserver did not start: %q", s.out.Text())
	}
	s.Addr = strings.TrimPrefix(s.out.Text(), "listening ")
	return s
}

// Set sets service's status ("" is the server as a whole): SERVING,
// NOT_SERVING, SERVICE_UNKNOWN or UNKNOWN.
func (s *Server) Set(t testing.TB, service, status string) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if service == "" {
		service = "-"
	}
	fmt.Fprintf(s.stdin, "SET %s %s\n", service, status)
	if !s.out.Scan() || s.out.Text() != "ok" {
		t.Fatalf("healthserver: %q", s.out.Text())
	}
}

// Stop kills the server (idempotent).
func (s *Server) Stop() {
	s.cmd.Process.Kill()
	s.cmd.Wait()
}

// Probe runs grpc-health-probe with args and returns its exit status and
// output.
func Probe(t testing.TB, args ...string) (int, string) {
	t.Helper()
	_, bin := Binaries(t)
	out, err := exec.Command(bin, args...).CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	}
	return code, strings.TrimSpace(string(out))
}
