package testenv

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

// Result is one in-process run of an applet.
type Result struct {
	Code    int
	Stdout  string
	Stderr  string
	Elapsed time.Duration
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

// Run runs "APPLET args..." through cli.Run exactly as the binary does,
// with the process environment plus env, and logs what happened.
func Run(t testing.TB, ctx context.Context, a cli.Applet, env map[string]string, args ...string) Result {
	t.Helper()
	var stdout, stderr syncBuffer
	lookup := func(k string) (string, bool) {
		if v, ok := env[k]; ok {
			return v, true
		}
		return os.LookupEnv(k)
	}
	start := time.Now()
	code := cli.Run(ctx, []cli.Applet{a}, append([]string{a.Name}, args...), cli.Stdio{In: strings.NewReader(""), Out: &stdout, Err: &stderr}, lookup)
	r := Result{Code: code, Stdout: stdout.String(), Stderr: stderr.String(), Elapsed: time.Since(start)}
	t.Logf("%s %s → exit %d in %s\n%s", a.Name, strings.Join(args, " "), r.Code, r.Elapsed.Round(time.Millisecond), r.Stderr)
	return r
}

// MustExit fails t unless r exited with code and its stderr holds every
// one of contains, read as text (slog's \" quoting undone).
func (r Result) MustExit(t testing.TB, code int, contains ...string) {
	t.Helper()
	if r.Code != code {
		t.Fatalf("exit status %d, want %d; stderr:\n%s", r.Code, code, r.Stderr)
	}
	text := strings.ReplaceAll(r.Stderr, `\"`, `"`)
	for _, c := range contains {
		if !strings.Contains(r.Stderr, c) && !strings.Contains(text, c) {
			t.Errorf("stderr lacks %q:\n%s", c, r.Stderr)
		}
	}
}
