package waitfor

import (
	"bytes"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/initbox/initbox/internal/testenv"
)

// waitfor … -- CMD: CMD replaces waitfor (the same PID) once the wait
// succeeds, with argv and environment as given and its own exit status;
// a failed wait never runs it; a CMD that is not there is 127 at once.
func TestExecAfterTheWait(t *testing.T) {
	bin := testenv.Binary(t)
	sh, err := exec.LookPath("sh")
	if err != nil {
		testenv.Skip(t, "sh is needed: "+err.Error())
	}
	open := openPort(t)
	closed := func() string {
		l, _ := net.Listen("tcp", "127.0.0.1:0")
		defer l.Close()
		return l.Addr().String()
	}()
	start := func(args ...string) (*exec.Cmd, *bytes.Buffer, *bytes.Buffer) {
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), "INITBOX_TEST_VALUE=a value with spaces and a $sign")
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd, &stdout, &stderr
	}
	code := func(err error) int {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0
	}
	script := `printf '%s|' "$0" "$@"; printf 'pid=%s env=%s' "$$" "$INITBOX_TEST_VALUE"; exit 7`
	cmd, stdout, stderr := start("waitfor", "tcp", open, "--termination-log", "", "--", "sh", "-c", script, "zero", "one", "two words", "--timeout", "")
	rc := code(cmd.Wait())
	want := "zero|one|two words|--timeout||pid=" + strconv.Itoa(cmd.Process.Pid) + " env=a value with spaces and a $sign"
	if rc != 7 || stdout.String() != want {
		t.Fatalf("exit %d, stdout %q; want 7 and %q\n%s", rc, stdout.String(), want, stderr.String())
	}
	if !strings.Contains(stderr.String(), "msg=exec command=sh args=7") {
		t.Fatalf("no exec line:\n%s", stderr.String())
	}
	// A path with a slash is taken as it is.
	cmd, stdout, _ = start("waitfor", "tcp", open, "-q", "--", sh, "-c", "echo $0", "x")
	if rc := code(cmd.Wait()); rc != 0 || stdout.String() != "x\n" {
		t.Fatalf("exit %d, %q", rc, stdout.String())
	}
	// A failed wait never runs CMD.
	marker := filepath.Join(t.TempDir(), "ran")
	cmd, _, stderr = start("waitfor", "tcp", closed, "--timeout", "300ms", "--", "sh", "-c", "touch "+marker)
	if rc := code(cmd.Wait()); rc != 1 || !strings.Contains(stderr.String(), "timed out after 300ms") {
		t.Fatalf("exit %d\n%s", rc, stderr.String())
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("CMD ran after a failed wait")
	}
	// A missing CMD: 127 before any waiting, naming it.
	began := time.Now()
	tl := filepath.Join(t.TempDir(), "tl")
	os.WriteFile(tl, nil, 0o644)
	cmd, _, stderr = start("waitfor", "tcp", closed, "--timeout", "60s", "--termination-log", tl, "--", "no-such-app", "--flag")
	if rc := code(cmd.Wait()); rc != 127 || time.Since(began) > 10*time.Second || !strings.Contains(stderr.String(), "no-such-app: command not found") {
		t.Fatalf("exit %d after %s\n%s", rc, time.Since(began), stderr.String())
	}
	if b, _ := os.ReadFile(tl); !strings.HasPrefix(string(b), "waitfor: no-such-app: command not found") {
		t.Fatalf("termination message %q", b)
	}
	// What exists but cannot run is 126, as a shell says, before any
	// waiting: judged beside bash on the same commands.
	dir := t.TempDir()
	plain := filepath.Join(dir, "plain")
	os.WriteFile(plain, []byte("#!/bin/sh\n"), 0o644)
	for _, c := range []struct{ argv0, path string }{
		{dir, ""}, {plain, ""}, {"plain", dir}, {"no-such-app", dir}, {filepath.Join(dir, "missing"), ""},
	} {
		sh := exec.Command("bash", "-c", `"$0"`, c.argv0) // bash: POSIX 2.8.2 (dash says 127 for a PATH entry without x)
		if c.path != "" {
			sh.Env = append(os.Environ(), "PATH="+c.path)
		}
		want := code(sh.Run())
		ib := exec.Command(bin, "waitfor", "tcp", closed, "--timeout", "60s", "--", c.argv0)
		if c.path != "" {
			ib.Env = append(os.Environ(), "PATH="+c.path)
		}
		var stderr bytes.Buffer
		ib.Stderr = &stderr
		if rc := code(ib.Run()); rc != want || want != 126 && want != 127 {
			t.Errorf("-- %s (PATH %q): exit %d, bash says %d\n%s", c.argv0, c.path, rc, want, stderr.String())
		}
	}
	// "--" with nothing after it is bad usage.
	run(t, nil, "tcp", open, "--").MustExit(t, 2, "-- is followed by no command to run")
}
