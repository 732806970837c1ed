package waitfor

import (
	"context"
	"testing"
	"time"

	"github.com/initbox/initbox/internal/testenv"
)

// result is one in-process run of the waitfor applet.
type result struct {
	testenv.Result
	code    int
	stderr  string
	elapsed time.Duration
}

// run runs "waitfor args..." as the binary does, with the process
// environment plus env.
func run(t *testing.T, env map[string]string, args ...string) result {
	t.Helper()
	r := testenv.Run(t, context.Background(), Applet, env, args...)
	return result{Result: r, code: r.Code, stderr: r.Stderr, elapsed: r.Elapsed}
}

func (r result) mustExit(t *testing.T, code int, contains ...string) {
	t.Helper()
	r.MustExit(t, code, contains...)
}

// after runs f once d has passed, in the background.
func after(d time.Duration, f func()) {
	go func() { time.Sleep(d); f() }()
}
