package cli

import (
	"io"
	"log/slog"
	"os"
	"sync"
	"unicode/utf8"

	"github.com/initbox/initbox/internal/redact"
)

func newLogger(w io.Writer, format string, quiet, verbose bool) *slog.Logger {
	level := slog.LevelInfo
	switch {
	case quiet:
		level = slog.LevelError
	case verbose:
		level = slog.LevelDebug
	}
	opts := &slog.HandlerOptions{Level: level}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// redactWriter masks secrets in everything written through it. slog writes
// one whole record per Write, so a secret is never split across calls.
type redactWriter struct {
	mu      sync.Mutex
	w       io.Writer
	secrets *redact.Set
}

func (r *redactWriter) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, err := io.WriteString(r.w, r.secrets.String(string(p))); err != nil {
		return 0, err
	}
	return len(p), nil
}

// DefaultTerminationLog is where the kubelet reads a container's
// termination message.
const DefaultTerminationLog = "/dev/termination-log"

// MaxTerminationMessage bounds what initbox writes there: the kubelet keeps
// at most 4096 bytes and may cut each container's share further.
const MaxTerminationMessage = 1024

type terminationLog struct {
	path     string
	explicit bool
	secrets  *redact.Set
}

// write records msg, redacted and cut to MaxTerminationMessage bytes. The
// default path is written only when it already exists (inside a pod);
// an explicit one is created.
func (t terminationLog) write(msg string) {
	if t.path == "" {
		return
	}
	flags := os.O_WRONLY | os.O_TRUNC
	if t.explicit {
		flags |= os.O_CREATE
	}
	f, err := os.OpenFile(t.path, flags, 0o644)
	if err != nil {
		return // not in a pod, or not writable: nothing to tell
	}
	defer f.Close()
	_, _ = io.WriteString(f, TruncateMessage(t.secrets.String(msg), MaxTerminationMessage))
}

// TruncateMessage cuts msg to at most max bytes on a rune boundary, marking
// the cut with an ellipsis.
func TruncateMessage(msg string, max int) string {
	if len(msg) <= max {
		return msg
	}
	const ell = "…"
	cut := max - len(ell)
	for cut > 0 && !utf8.RuneStart(msg[cut]) {
		cut--
	}
	return msg[:cut] + ell
}
