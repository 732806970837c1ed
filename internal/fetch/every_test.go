package fetch

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/initbox/initbox/internal/cli"
	"github.com/initbox/initbox/internal/testenv"
)

// fetch --every against a server with ETags: a conditional GET each time,
// DEST replaced (and the app told) only when the content changed — not on
// a 304, not on a new ETag for the same bytes — and SIGTERM ends it, exit 0.
func TestEveryFetchesOnlyWhatChanged(t *testing.T) {
	var mu sync.Mutex
	body, etag := "v1\n", `"1"`
	var full, notModified, reloads atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/-/reload" {
			reloads.Add(1)
			return
		}
		mu.Lock()
		b, e := body, etag
		mu.Unlock()
		if r.Header.Get("If-None-Match") == e {
			notModified.Add(1)
			w.WriteHeader(http.StatusNotModified)
			return
		}
		full.Add(1)
		w.Header().Set("ETag", e)
		fmt.Fprint(w, b)
	}))
	defer srv.Close()
	set := func(b, e string) { mu.Lock(); body, etag = b, e; mu.Unlock() }
	dir := t.TempDir()
	dest := filepath.Join(dir, "conf", "app.txt")
	ready := filepath.Join(dir, "ready")
	ctx, cancel := context.WithCancelCause(context.Background())
	done := make(chan testenv.Result, 1)
	go func() {
		done <- testenv.Run(t, ctx, Applet, nil, srv.URL+"/app.txt", dest, "--every", "1s",
			"--on-change", srv.URL+"/-/reload", "--ready-file", ready, "--termination-log", "")
	}()
	wait := func(what string, ok func() bool) { t.Helper(); testenv.Eventually(t, 15*time.Second, what, ok) }
	content := func() string { b, _ := os.ReadFile(dest); return string(b) }
	wait("the first fetch", func() bool { _, err := os.Stat(ready); return err == nil })
	if content() != "v1\n" {
		t.Fatalf("first fetch: %q", content())
	}
	wait("a conditional GET answered 304", func() bool { return notModified.Load() >= 1 })
	if reloads.Load() != 0 || full.Load() != 1 {
		t.Fatalf("after a 304: %d full GETs, %d reloads", full.Load(), reloads.Load())
	}
	// New bytes: DEST follows, the app is told once.
	set("v2\n", `"2"`)
	wait("the new content", func() bool { return content() == "v2\n" })
	wait("the reload", func() bool { return reloads.Load() == 1 })
	// A new ETag for the same bytes: fetched, found the same, not written.
	fi, _ := os.Stat(dest)
	set("v2\n", `"3"`)
	n := full.Load()
	wait("the GET for the new ETag", func() bool { return full.Load() > n })
	wait("a 304 for that ETag", func() bool { return notModified.Load() >= 3 })
	if fi2, _ := os.Stat(dest); !os.SameFile(fi, fi2) || reloads.Load() != 1 {
		t.Fatalf("the same bytes were written again (same file %v) or notified (%d reloads)", os.SameFile(fi, fi2), reloads.Load())
	}
	cancel(&cli.SignalError{Signal: syscall.SIGTERM})
	r := <-done
	r.MustExit(t, 0, `why="not modified (304)"`, `why="the same content"`, "msg=notified")
}

func TestEveryBadUsage(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "f")
	os.WriteFile(src, []byte("x"), 0o644)
	for want, args := range map[string][]string{
		"--every applies to http sources":           {src, filepath.Join(dir, "d"), "--every", "1m"},
		"at least 1s between fetches":               {"http://127.0.0.1:1/f", filepath.Join(dir, "d"), "--every", "100ms"},
		"--on-change, --ready-file and --listen go": {"http://127.0.0.1:1/f", filepath.Join(dir, "d"), "--ready-file", filepath.Join(dir, "r")},
		"--every applies to http sources ":          {"git::https://127.0.0.1:1/r.git", filepath.Join(dir, "g"), "--every", strconv.Itoa(60) + "s"},
	} {
		run(t, nil, args...).MustExit(t, 2, strings.TrimSpace(want))
	}
}
