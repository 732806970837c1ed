package waitfor

import (
	"bytes"
	"context"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/initbox/initbox/internal/cli"
)

// result is one in-process run of the waitfor applet.
type result struct {
	code    int
	stderr  string
	elapsed time.Duration
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// run runs "waitfor args..." through cli.Run exactly as the binary does,
// with the process environment plus env.
func run(t *testing.T, env map[string]string, args ...string) result {
	t.Helper()
	return runCtx(t, context.Background(), env, args...)
}

func runCtx(t *testing.T, ctx context.Context, env map[string]string, args ...string) result {
	t.Helper()
	var stdout, stderr syncBuffer
	lookup := func(k string) (string, bool) {
		if v, ok := env[k]; ok {
			return v, true
		}
		return os.LookupEnv(k)
	}
	start := time.Now()
	code := cli.Run(ctx, []cli.Applet{Applet}, append([]string{"waitfor"}, args...), cli.Stdio{In: strings.NewReader(""), Out: &stdout, Err: &stderr}, lookup)
	r := result{code: code, stderr: stderr.String(), elapsed: time.Since(start)}
	t.Logf("waitfor %s → exit %d in %s\n%s", strings.Join(args, " "), r.code, r.elapsed.Round(time.Millisecond), r.stderr)
	return r
}

func (r result) mustExit(t *testing.T, code int, contains ...string) {
	t.Helper()
	if r.code != code {
		t.Fatalf("exit status %d, want %d; stderr:\n%s", r.code, code, r.stderr)
	}
	for _, c := range contains {
		if !strings.Contains(r.stderr, c) {
			t.Errorf("stderr lacks %q:\n%s", c, r.stderr)
		}
	}
}

// after runs f once d has passed, in the background.
func after(d time.Duration, f func()) {
	go func() { time.Sleep(d); f() }()
}
