package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// HUPCounter is a real process that appends a line to a file at each
// SIGHUP, running under a name of the test's own (tag keeps two of one
// test apart), so that a signal sent by name reaches it and nothing else on
// the machine. It returns that name, the file and its pid; it is killed
// when the test ends.
func HUPCounter(t testing.TB, dir, tag string) (name, count string, pid int) {
	t.Helper()
	name = fmt.Sprintf("hup%s%d", tag, os.Getpid()%10000000)
	prog := filepath.Join(dir, name)
	sh, err := os.ReadFile("/bin/sh")
	if err != nil {
		Skip(t, "no /bin/sh to count signals with")
	}
	if err := os.WriteFile(prog, sh, 0o755); err != nil {
		t.Fatal(err)
	}
	count = filepath.Join(dir, name+".hups")
	cmd := exec.Command(prog, "-c", `trap 'echo hup >> "$0"' HUP; while :; do sleep 0.05; done`, count)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return name, count, cmd.Process.Pid
}

// Lines counts the lines of the file at p (0 when there is none).
func Lines(p string) int {
	b, _ := os.ReadFile(p)
	return strings.Count(string(b), "\n")
}

// Eventually polls ok every 20 ms until it holds, failing the test naming
// what did not happen within limit.
func Eventually(t testing.TB, limit time.Duration, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(limit); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if ok() {
			return
		}
	}
	t.Fatalf("after %s: %s", limit, what)
}
