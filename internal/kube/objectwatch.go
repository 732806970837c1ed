package kube

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

// ObjectWatch keeps one object's latest state from the API server: listed,
// then watched from that resourceVersion with bookmarks. A watch that says
// nothing — no event, no bookmark — for Silence is taken for dead (a
// black-holed connection never errs) and started again; a 410 Gone
// relists; any other failure is retried every RetryEvery. So a change is
// seen within Silence + RetryEvery after the API server can tell it again,
// and Healthy says so while the watch has been down for longer than
// Silence.
type ObjectWatch struct {
	Client *Client
	// Collection is the objects' path, /api/v1/namespaces/NS/configmaps;
	// Kind and Name say which one, for messages ("configmap app").
	Collection, Kind, Name string
	Silence, RetryEvery    time.Duration
	Log                    *slog.Logger

	mu        sync.Mutex
	obj       map[string]any // nil: not there
	rv        string
	synced    bool
	downSince time.Time // zero while the watch is up
	lastErr   error
	restarts  atomic.Int64
}

func (w *ObjectWatch) defaults() {
	if w.Silence <= 0 {
		w.Silence = 90 * time.Second
	}
	if w.RetryEvery <= 0 {
		w.RetryEvery = 2 * time.Second
	}
}

// Object is the object's latest state; false when it is not there.
func (w *ObjectWatch) Object() (map[string]any, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.obj, w.obj != nil
}

// Restarts counts the watches started again after silence or failure.
func (w *ObjectWatch) Restarts() int64 { return w.restarts.Load() }

// Sync lists the object once: what a one-shot run reads, and the first
// pass of a watching one.
func (w *ObjectWatch) Sync(ctx context.Context) error {
	w.defaults()
	return w.list(ctx)
}

func (w *ObjectWatch) list(ctx context.Context) error {
	var list struct {
		Metadata struct {
			ResourceVersion string `json:"resourceVersion"`
		} `json:"metadata"`
		Items []map[string]any `json:"items"`
	}
	q := url.Values{"fieldSelector": {"metadata.name=" + w.Name}}
	// A black-holed connection answers nothing and never errs: the list
	// gets Silence, as a watch does.
	lctx, cancel := context.WithTimeout(ctx, w.Silence)
	defer cancel()
	if err := w.Client.Get(lctx, w.Collection, q, &list); err != nil {
		if lctx.Err() != nil && ctx.Err() == nil {
			err = fmt.Errorf("no answer to the list within %s", w.Silence)
		}
		return w.explain(err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.obj, w.rv, w.synced = nil, list.Metadata.ResourceVersion, true
	if len(list.Items) > 0 {
		w.obj = list.Items[0]
	}
	return nil
}

// explain words a 403 as the rule the service account lacks.
func (w *ObjectWatch) explain(err error) error {
	var se *StatusError
	if errors.As(err, &se) && se.Code == http.StatusForbidden {
		return fmt.Errorf("%s %s: forbidden: the service account needs this rule in a Role of its namespace: {apiGroups: [\"\"], resources: [%q], verbs: [\"get\", \"list\", \"watch\"]} (%s)", w.Kind, w.Name, w.Kind+"s", se.Message)
	}
	return fmt.Errorf("%s %s: %w", w.Kind, w.Name, err)
}

// Healthy is nil unless the watch has been down for longer than Silence.
func (w *ObjectWatch) Healthy() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.downSince.IsZero() && time.Since(w.downSince) > w.Silence {
		return fmt.Errorf("the watch of %s %s has been down for %s: %v", w.Kind, w.Name, time.Since(w.downSince).Round(time.Second), w.lastErr)
	}
	return nil
}

func (w *ObjectWatch) down(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.downSince.IsZero() {
		w.downSince = time.Now()
	}
	w.lastErr = err
}

func (w *ObjectWatch) up() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.downSince, w.lastErr = time.Time{}, nil
}

// Run watches until ctx ends, calling changed after every change of the
// object (created, modified, deleted, or different after a relist).
func (w *ObjectWatch) Run(ctx context.Context, changed func()) {
	w.defaults()
	for ctx.Err() == nil {
		w.mu.Lock()
		rv, synced := w.rv, w.synced
		w.mu.Unlock()
		if !synced || rv == "" {
			before, _ := w.Object()
			if err := w.list(ctx); err != nil {
				w.fail(ctx, err)
				continue
			}
			if after, _ := w.Object(); !sameVersion(before, after) {
				changed()
			}
			w.mu.Lock()
			rv = w.rv
			w.mu.Unlock()
		}
		err := w.watch(ctx, rv, changed)
		if ctx.Err() != nil {
			return
		}
		w.restarts.Add(1)
		if Gone(err) {
			w.mu.Lock()
			w.rv = "" // relist
			w.mu.Unlock()
			continue
		}
		if err != nil && !errors.Is(err, io.EOF) {
			w.fail(ctx, err)
		}
	}
}

func (w *ObjectWatch) fail(ctx context.Context, err error) {
	w.down(err)
	if w.Log != nil {
		w.Log.Warn("watch", "object", w.Kind+" "+w.Name, "reason", err.Error(), "retry_in", w.RetryEvery)
	}
	t := time.NewTimer(w.RetryEvery)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// errSilent ends a watch that said nothing for Silence.
var errSilent = errors.New("the watch was silent (no event, no bookmark)")

// watch follows one watch from rv until it ends, is silent for Silence,
// or ctx ends.
func (w *ObjectWatch) watch(ctx context.Context, rv string, changed func()) error {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// The watch's response must start within Silence too.
	opening := time.AfterFunc(w.Silence, cancel)
	wt, err := w.Client.Watch(wctx, w.Collection, url.Values{"fieldSelector": {"metadata.name=" + w.Name}}, rv)
	if !opening.Stop() && err != nil {
		w.down(errSilent)
		return errSilent
	}
	if err != nil {
		return err
	}
	defer wt.Close()
	w.up()
	type next struct {
		ev  Event
		err error
	}
	evs := make(chan next)
	go func() {
		for {
			ev, err := wt.Next()
			select {
			case evs <- next{ev, err}:
			case <-wctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	silence := time.NewTimer(w.Silence)
	defer silence.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-silence.C:
			w.down(errSilent)
			return errSilent
		case n := <-evs:
			if n.err != nil {
				return n.err
			}
			silence.Reset(w.Silence)
			md, _ := n.ev.Object["metadata"].(map[string]any)
			newRV, _ := md["resourceVersion"].(string)
			w.mu.Lock()
			if newRV != "" {
				w.rv = newRV
			}
			switch n.ev.Type {
			case "ADDED", "MODIFIED":
				w.obj = n.ev.Object
			case "DELETED":
				w.obj = nil
			}
			w.mu.Unlock()
			if n.ev.Type != "BOOKMARK" {
				changed()
			}
		}
	}
}

func sameVersion(a, b map[string]any) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	ma, _ := a["metadata"].(map[string]any)
	mb, _ := b["metadata"].(map[string]any)
	return ma["resourceVersion"] == mb["resourceVersion"]
}
