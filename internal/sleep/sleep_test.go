package sleep

import (
	"context"
	"errors"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/initbox/initbox/internal/testenv"
)

func TestSleep(t *testing.T) {
	r := testenv.Run(t, context.Background(), Applet, nil, "300ms", "--termination-log", t.TempDir()+"/tl")
	r.MustExit(t, 0)
	if r.Elapsed < 300*time.Millisecond {
		t.Fatalf("slept %s", r.Elapsed)
	}
	testenv.Run(t, context.Background(), Applet, nil, "0.2").MustExit(t, 0)
	for _, bad := range [][]string{{}, {"soon"}, {"1s", "2s"}, {"-5"}} {
		testenv.Run(t, context.Background(), Applet, nil, bad...).MustExit(t, 2)
	}
	// A negative duration is named as one, not taken for a flag.
	testenv.Run(t, context.Background(), Applet, nil, "-1s").MustExit(t, 2, `invalid duration "-1s": negative duration`)
}

func TestSleepStopsOnSIGTERM(t *testing.T) {
	cmd := exec.Command(testenv.Binary(t), "sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	sent := time.Now()
	cmd.Process.Signal(syscall.SIGTERM)
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 143 {
		t.Fatalf("exit %v, want 143", err)
	}
	if took := time.Since(sent); took > time.Second {
		t.Fatalf("took %s", took)
	}
}
