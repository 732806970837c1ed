// Package keep is the engine of initbox's long-running modes (render
// --watch, and the sidecar modes after it): it runs an applet's pass, then
// runs it again whenever one of its inputs changes, keeps the output true,
// and tells the app when it changed — for a native sidecar
// (restartPolicy: Always), which lives as long as the pod.
//
// What it owes the pod: the first pass's failure ends the run as the
// one-shot applet would (the kubelet shows it); a later pass's failure is
// logged and counted and the last good output stays; --ready-file is
// written after the first good pass (a startupProbe that starts the app
// only then); --listen serves /healthz, /readyz and /metrics; SIGTERM ends
// it at once with exit 0, nothing half-written (the applet's writes are
// atomic). A pass that changes nothing notifies no one.
package keep

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/initbox/initbox/internal/atomicfile"
	"github.com/initbox/initbox/internal/cli"
	"github.com/initbox/initbox/internal/redact"
)

// Options are the flags every watch mode shares.
type Options struct {
	OnChange  []string
	Method    string
	ReadyFile string
	Listen    string
	Debounce  time.Duration
}

// Flags registers them.
func (o *Options) Flags(fs *cli.FlagSet) {
	fs.Strings(&o.OnChange, "on-change", "when the output changed, `signal:SIG:NAME` (every process NAME in the pod's PID namespace), signal:SIG:@PIDFILE, or an http(s) URL to request (repeatable, in order)")
	fs.String(&o.Method, "on-change-method", "POST", "the `METHOD` of an --on-change URL's request")
	fs.String(&o.ReadyFile, "ready-file", "", "write `PATH` once the first pass succeeded (for a startupProbe)")
	fs.String(&o.Listen, "listen", "", "serve /healthz, /readyz and /metrics on `ADDR` (:8080, 127.0.0.1:9000)")
	fs.Duration(&o.Debounce, "debounce", 50*time.Millisecond, "wait `DURATION` of quiet after a change before the pass (the kubelet's volume swap is several steps)")
}

// Used reports whether any of the flags was given: they need a watch mode.
func (o *Options) Used() bool {
	return len(o.OnChange) > 0 || o.ReadyFile != "" || o.Listen != ""
}

// A Pass is one run of the applet's work: whether its output changed, what
// to say, and its error. Dirs are the directories to watch for the next
// pass (tree: with the directories below).
type Pass func(ctx context.Context) (Result, error)

// Result is what a pass did.
type Result struct {
	Changed bool
	Summary string
	Dirs    []Dir
	// Next, when positive, runs the next pass after this long at the
	// latest (cert: when the pair enters its renewal window).
	Next time.Duration
}

// Dir is a directory whose changes start the next pass.
type Dir struct {
	Path string
	Tree bool
}

// A Source wakes the engine from outside the file system: an API watch.
type Source interface {
	// Run keeps watching until ctx ends, calling changed after each
	// change; it retries its own failures and returns only then.
	Run(ctx context.Context, changed func())
	// Healthy is nil while the watch is up, or has been down for less
	// than its bound; otherwise why not (/healthz answers 503 with it).
	Healthy() error
}

// Engine keeps a pass's output true.
type Engine struct {
	Log     *slog.Logger
	Secrets *redact.Set
	Opts    *Options
	Pass    Pass
	Sources []Source

	notifiers []notifier
	metrics   metrics
	ready     atomic.Bool
}

// Check reads the options: any error is bad usage.
func (e *Engine) Check() error {
	if e.Opts.Method == "" {
		return errors.New("--on-change-method is empty")
	}
	for _, v := range e.Opts.OnChange {
		n, err := parseNotifier(v, e.Opts.Method, e.Secrets)
		if err != nil {
			return err
		}
		e.notifiers = append(e.notifiers, n)
	}
	if e.Opts.Listen != "" {
		if _, _, err := net.SplitHostPort(e.Opts.Listen); err != nil {
			return fmt.Errorf("invalid --listen %q: want HOST:PORT or :PORT", e.Opts.Listen)
		}
	}
	return nil
}

// Run runs the first pass, then a pass after every change, until ctx ends
// (SIGTERM: a clean stop, nil). It returns the first pass's error, or a
// failure of the engine itself (the watch, the listener).
func (e *Engine) Run(ctx context.Context) (string, error) {
	w, err := newDirWatcher()
	if err != nil {
		return "", err
	}
	defer w.close()
	if e.Opts.Listen != "" {
		stop, err := e.serve(e.Opts.Listen)
		if err != nil {
			return "", err
		}
		defer stop()
	}
	res, err := e.pass(ctx, w, true)
	if err != nil {
		return "", err
	}
	// The watches start from what the first pass listed (its
	// resourceVersion): no second list, no pass for what it already saw.
	for _, src := range e.Sources {
		go src.Run(ctx, w.poke)
	}
	e.ready.Store(true)
	if e.Opts.ReadyFile != "" {
		if err := atomicfile.Write(ctx, e.Opts.ReadyFile, strings.NewReader(res.Summary+"\n"), 0o644); err != nil {
			return "", fmt.Errorf("--ready-file: %w", err)
		}
	}
	e.Log.Info("watching", "dirs", len(res.Dirs), "notify", len(e.notifiers))
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	arm := func(d time.Duration) {
		timer.Stop()
		if d > 0 {
			timer.Reset(d)
		}
	}
	arm(res.Next)
	for {
		select {
		case <-ctx.Done():
			return fmt.Sprintf("stopped after %d passes, %d changes", e.metrics.passes.Load(), e.metrics.changes.Load()), nil
		case err := <-w.errs:
			return "", err
		case <-w.events:
		case <-timer.C:
		}
		// Let the change finish (the kubelet's swap is several steps).
		if !sleep(ctx, e.Opts.Debounce) {
			continue
		}
		select {
		case <-w.events:
		default:
		}
		res, err := e.pass(ctx, w, false)
		if err != nil && ctx.Err() == nil {
			e.Log.Error("pass failed; the last good output stays", "reason", err.Error())
			if res.Next <= 0 {
				res.Next = retryFailed // a time-driven pass must not stop at a failure
			}
		}
		arm(res.Next)
	}
}

// pass runs the applet's pass, re-arms the watches, and notifies on change.
func (e *Engine) pass(ctx context.Context, w *dirWatcher, first bool) (Result, error) {
	// A sidecar lives for the pod's life and passes are rare: what a pass
	// allocated (templates parsed, sprig's function map, a response) goes
	// back to the system after it, instead of staying as the heap's
	// headroom (measured: bench -only watch, BENCHMARKS.md).
	defer debug.FreeOSMemory()
	res, err := e.Pass(ctx)
	e.metrics.passes.Add(1)
	for _, d := range res.Dirs {
		if werr := w.watch(d.Path, d.Tree); werr != nil {
			if first {
				return res, werr
			}
			e.metrics.watchErrors.Add(1)
			e.Log.Warn("watch", "dir", d.Path, "reason", werr.Error())
		}
	}
	if err != nil {
		e.metrics.failures.Add(1)
		return res, err
	}
	e.metrics.lastSuccess.Store(time.Now().Unix())
	if !res.Changed {
		return res, nil
	}
	e.metrics.changes.Add(1)
	if first {
		return res, nil // the app starts after the first pass: nothing to tell it yet
	}
	e.notify(ctx)
	return res, nil
}

// notify runs the notifiers in order; a failure is logged and counted, and
// the next notifier still runs.
func (e *Engine) notify(ctx context.Context) {
	for _, n := range e.notifiers {
		if err := n.notify(ctx); err != nil {
			e.metrics.notifyFailures.Add(1)
			e.Log.Error("notify failed", "to", n.String(), "reason", e.Secrets.String(err.Error()))
			continue
		}
		e.metrics.notified.Add(1)
		e.Log.Info("notified", "to", n.String())
	}
}

// retryFailed is when a failed pass that had a deadline runs again.
const retryFailed = 30 * time.Second

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

type metrics struct {
	passes, changes, failures, notified, notifyFailures, watchErrors atomic.Int64
	lastSuccess                                                      atomic.Int64
}

// serve starts the sidecar's HTTP endpoints.
func (e *Engine) serve(addr string) (func(), error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--listen: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		for _, src := range e.Sources {
			if err := src.Healthy(); err != nil {
				http.Error(w, e.Secrets.String(err.Error()), http.StatusServiceUnavailable)
				return
			}
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		if !e.ready.Load() {
			http.Error(w, "the first pass has not succeeded yet", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		m := &e.metrics
		for _, c := range []struct {
			name, help string
			v          int64
		}{
			{"initbox_passes_total", "Passes run.", m.passes.Load()},
			{"initbox_changes_total", "Passes that changed the output.", m.changes.Load()},
			{"initbox_pass_failures_total", "Passes that failed (the last good output stayed).", m.failures.Load()},
			{"initbox_notifications_total", "Notifications that succeeded.", m.notified.Load()},
			{"initbox_notification_failures_total", "Notifications that failed.", m.notifyFailures.Load()},
			{"initbox_watch_errors_total", "Directories that could not be watched.", m.watchErrors.Load()},
		} {
			fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s counter\n%s %d\n", c.name, c.help, c.name, c.name, c.v)
		}
		fmt.Fprintf(w, "# HELP initbox_last_success_timestamp_seconds When a pass last succeeded.\n# TYPE initbox_last_success_timestamp_seconds gauge\ninitbox_last_success_timestamp_seconds %d\n", m.lastSuccess.Load())
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); srv.Serve(ln) }()
	return func() { srv.Close(); wg.Wait() }, nil
}
