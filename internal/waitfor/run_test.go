package waitfor

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/initbox/initbox/internal/testenv"
)

// Running waitfor as the binary does, and a logger that says nothing.

// run runs "waitfor args..." as the binary does, with the process
// environment plus env.
func run(t *testing.T, env map[string]string, args ...string) testenv.Result {
	t.Helper()
	return testenv.Run(t, context.Background(), Applet, env, args...)
}

// after runs f once d has passed, in the background.
func after(d time.Duration, f func()) {
	go func() { time.Sleep(d); f() }()
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
