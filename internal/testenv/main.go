package testenv

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Runner is what Main runs: *testing.M, or testscript's.
type Runner interface{ Run() int }

// Main runs a package's tests as a child subreaper (PR_SET_CHILD_SUBREAPER):
// a process any test started that outlives its parent — git daemon's
// git-daemon, a server's worker — is reparented to the test binary instead
// of init, so that when the tests and then cleanups (the package's shared
// servers) are done, any process still running is one a test leaked. Main
// names each, kills it and fails the package.
func Main(m Runner, cleanups ...func()) {
	os.Exit(RunTests(m, cleanups...))
}

// RunTests is Main without the exit, for a TestMain that exits by itself.
func RunTests(m Runner, cleanups ...func()) int {
	_ = unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
	code := m.Run()
	for i := len(cleanups) - 1; i >= 0; i-- {
		cleanups[i]()
	}
	left := leftovers(2 * time.Second)
	for _, p := range left {
		fmt.Fprintf(os.Stderr, "testenv: a process a test started outlived the tests: pid %d: %s\n", p.pid, p.cmd)
		syscall.Kill(p.pid, syscall.SIGKILL)
	}
	if len(left) > 0 && code == 0 {
		code = 1
	}
	return code
}

type proc struct {
	pid int
	cmd string
}

// leftovers are this process's living children (what the subreaper
// inherited included), after up to grace for those already going down.
func leftovers(grace time.Duration) []proc {
	deadline := time.Now().Add(grace)
	for {
		reap()
		var out []proc
		self := os.Getpid()
		dirs, _ := filepath.Glob("/proc/[0-9]*")
		for _, d := range dirs {
			b, err := os.ReadFile(d + "/stat")
			if err != nil {
				continue
			}
			// pid (comm) state ppid …: comm may hold spaces and parens.
			s := string(b)
			i := strings.LastIndexByte(s, ')')
			if i < 0 {
				continue
			}
			f := strings.Fields(s[i+1:])
			if len(f) < 2 || f[0] == "Z" {
				continue
			}
			if ppid, _ := strconv.Atoi(f[1]); ppid != self {
				continue
			}
			pid, _ := strconv.Atoi(filepath.Base(d))
			cmd, _ := os.ReadFile(d + "/cmdline")
			out = append(out, proc{pid, strings.TrimSpace(strings.ReplaceAll(string(cmd), "\x00", " "))})
		}
		if len(out) == 0 || time.Now().After(deadline) {
			return out
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// reap collects the exit statuses of children that have ended.
func reap() {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if pid <= 0 || err != nil {
			return
		}
	}
}

// Guarded is m run as RunTests runs it, for a TestMain that hands m on
// (testscript.Main).
func Guarded(m Runner, cleanups ...func()) Runner { return guarded{m, cleanups} }

type guarded struct {
	m        Runner
	cleanups []func()
}

func (g guarded) Run() int { return RunTests(g.m, g.cleanups...) }
