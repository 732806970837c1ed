// Package grpctest runs grpc-go's own health server and the
// grpc-health-probe oracle for initbox's tests, both built from the tools
// module test/grpc, once, into the Go build cache's directory.
package grpctest

import (
	"bufio"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/initbox/initbox/internal/testenv"
)

var (
	buildMu sync.Mutex
	built   [2]string
)

// Binaries returns the paths of healthserver and grpc-health-probe,
// building them the first time (a minute, cold).
func Binaries(t testenv.T) (server, probe string) {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if built[0] == "" {
		src, _ := os.ReadFile(filepath.Join(testenv.RepoRoot(), "test", "grpc", "healthserver", "main.go"))
		dir := testenv.BuildTools(t, "grpc", []string{"grpc=google.golang.org/grpc", "probe=github.com/grpc-ecosystem/grpc-health-probe"},
			fmt.Sprintf("_%x", sha256.Sum256(src))[:13],
			testenv.Tool{Name: "healthserver", Pkg: "./healthserver"}, testenv.Tool{Name: "grpc-health-probe", Pkg: "github.com/grpc-ecosystem/grpc-health-probe"})
		built = [2]string{filepath.Join(dir, "healthserver"), filepath.Join(dir, "grpc-health-probe")}
	}
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
	return StartWith(t, exec.Command, args...)
}

// StartWith is Start with command making the process (the node harness's
// runs it inside the node's network namespace).
func StartWith(t testing.TB, command func(string, ...string) *exec.Cmd, args ...string) *Server {
	testenv.RealServer(t, "grpc-go")
	t.Helper()
	bin, _ := Binaries(t)
	cmd := command(bin, args...)
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
