package main

import (
	"bytes"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/initbox/initbox/internal/testenv"
)

// A wait in progress stops promptly on SIGTERM/SIGINT with 143/130, says
// why in the termination message — also as PID 1, where the kernel
// delivers only the signals a process handles.
func TestSignals(t *testing.T) {
	bin := testenv.Binary(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	for _, tc := range []struct {
		name string
		sig  syscall.Signal
		pid1 bool
		code int
		msg  string
	}{
		{"SIGTERM", syscall.SIGTERM, false, 143, "waitfor: terminated by SIGTERM: tcp " + closed + ": connection refused"},
		{"SIGINT", syscall.SIGINT, false, 130, "waitfor: interrupted by SIGINT: tcp " + closed + ": connection refused"},
		{"SIGTERM as PID 1", syscall.SIGTERM, true, 143, "waitfor: terminated by SIGTERM"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.pid1 && os.Geteuid() != 0 {
				testenv.Skip(t, "a PID namespace needs root")
			}
			tl := filepath.Join(t.TempDir(), "tl")
			cmd := exec.Command(bin, "waitfor", "tcp", closed, "--termination-log", tl)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			if tc.pid1 {
				cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID}
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			time.Sleep(500 * time.Millisecond) // a few probes in
			sent := time.Now()
			if err := cmd.Process.Signal(tc.sig); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			var err error
			select {
			case err = <-done:
			case <-time.After(10 * time.Second):
				cmd.Process.Kill()
				t.Fatalf("still running 10 s after %s", tc.name)
			}
			took := time.Since(sent)
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != tc.code {
				t.Fatalf("exit %v, want %d; stderr:\n%s", err, tc.code, stderr.String())
			}
			if took > time.Second {
				t.Errorf("took %s to exit after the signal, want under 1 s", took)
			}
			b, _ := os.ReadFile(tl)
			if !strings.HasPrefix(string(b), tc.msg) {
				t.Errorf("termination message %q, want prefix %q", b, tc.msg)
			}
		})
	}
}
