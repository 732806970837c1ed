// Package retry is the one retry schedule initbox uses everywhere, built on
// github.com/cenkalti/backoff/v4, and the loop that drives it.
//
// The schedule has two phases. For the first Steady period it probes every
// Interval (jittered), which keeps detection latency near Interval/2 while a
// dependency is most likely to appear; after that the interval grows
// exponentially to MaxInterval, so a wait that lasts minutes costs the
// cluster less than one probe a second per target.
package retry

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// Schedule describes when attempts happen. The zero value is not useful;
// start from Probe or Transfer.
type Schedule struct {
	Interval    time.Duration // between attempt starts during Steady
	Steady      time.Duration // how long Interval is kept before growing
	MaxInterval time.Duration // the ceiling the interval grows to
	Multiplier  float64       // growth per attempt after Steady
	Jitter      float64       // ± fraction of every interval, against herds
}

// Probe is the default schedule of readiness probes: at most 5 probes a
// second per target for the first 30 s, and fewer than 1 a second from about
// 33 s on (MaxInterval less the jitter stays above 1 s).
var Probe = Schedule{
	Interval:    200 * time.Millisecond,
	Steady:      30 * time.Second,
	MaxInterval: 1200 * time.Millisecond,
	Multiplier:  1.5,
	Jitter:      0.1,
}

// Transfer is the default schedule for retrying downloads and requests,
// where a retry is expensive and failures are rarely fixed in milliseconds.
var Transfer = Schedule{
	Interval:    time.Second,
	Steady:      0,
	MaxInterval: 30 * time.Second,
	Multiplier:  2,
	Jitter:      0.2,
}

// Validate reports a schedule that cannot work, naming the flag-level field.
func (s Schedule) Validate() error {
	switch {
	case s.Interval <= 0:
		return errors.New("the interval must be positive")
	case s.MaxInterval < s.Interval:
		return fmt.Errorf("the maximum interval %s is below the interval %s", s.MaxInterval, s.Interval)
	case s.Jitter < 0 || s.Jitter >= 1:
		return errors.New("the jitter must be in [0, 1)")
	}
	return nil
}

// BackOff returns a fresh backoff.BackOff following s, timed by clock
// (backoff.SystemClock in production, a fake clock in tests).
func (s Schedule) BackOff(clock backoff.Clock) backoff.BackOff {
	mult := s.Multiplier
	if mult < 1 {
		mult = 1
	}
	mk := func(m float64) *backoff.ExponentialBackOff {
		b := &backoff.ExponentialBackOff{
			InitialInterval:     s.Interval,
			RandomizationFactor: s.Jitter,
			Multiplier:          m,
			MaxInterval:         s.MaxInterval,
			MaxElapsedTime:      0,
			Stop:                backoff.Stop,
			Clock:               clock,
		}
		b.Reset()
		return b
	}
	return &phased{clock: clock, start: clock.Now(), steady: s.Steady, constant: mk(1), growth: mk(mult)}
}

type phased struct {
	clock            backoff.Clock
	start            time.Time
	steady           time.Duration
	constant, growth *backoff.ExponentialBackOff
}

func (p *phased) NextBackOff() time.Duration {
	if p.clock.Now().Sub(p.start) < p.steady {
		return p.constant.NextBackOff()
	}
	return p.growth.NextBackOff()
}

func (p *phased) Reset() {
	p.start = p.clock.Now()
	p.constant.Reset()
	p.growth.Reset()
}

// Permanent marks an error that retrying cannot fix; Until stops on it.
func Permanent(err error) error { return backoff.Permanent(err) }

// IsPermanent reports whether err was marked Permanent.
func IsPermanent(err error) bool {
	var pe *backoff.PermanentError
	return errors.As(err, &pe)
}

// StoppedError is returned by Until when its context ends before success.
// It keeps the last attempt's error, which backoff's own Retry loses.
type StoppedError struct {
	Cause    error // context.Cause of the context: a timeout or a signal
	Last     error // the last attempt's error; nil when none completed
	Attempts int
}

func (e *StoppedError) Error() string {
	if e.Last == nil {
		return e.Cause.Error()
	}
	return fmt.Sprintf("%v: %v", e.Cause, e.Last)
}

func (e *StoppedError) Unwrap() []error { return []error{e.Cause, e.Last} }

// Until runs op until it succeeds, returns a Permanent error (returned
// unwrapped), or ctx ends (a *StoppedError). Intervals from b are measured
// between attempt starts, so a slow attempt does not stretch the schedule.
// after, when not nil, is told of every failed attempt and may lengthen the
// wait before the next one (a server's Retry-After).
func Until(ctx context.Context, b backoff.BackOff, op func(ctx context.Context, attempt int) error, after func(attempt int, err error, next time.Duration) time.Duration) (int, error) {
	var last error
	for attempt := 1; ; attempt++ {
		if ctx.Err() != nil {
			return attempt - 1, &StoppedError{Cause: context.Cause(ctx), Last: last, Attempts: attempt - 1}
		}
		began := time.Now()
		err := op(ctx, attempt)
		if err == nil {
			return attempt, nil
		}
		var pe *backoff.PermanentError
		if errors.As(err, &pe) {
			return attempt, pe.Err
		}
		if ctx.Err() != nil {
			// The wait ended during this attempt: whatever its error says
			// (the cause again, "terminated by SIGTERM: terminated by
			// SIGTERM", or a driver's "operation was canceled"), it is
			// the cut, not a reason. The previous attempt's stands.
			return attempt, &StoppedError{Cause: context.Cause(ctx), Last: last, Attempts: attempt}
		}
		// An attempt can be cut by the end of the wait a moment before
		// ctx reports it (a socket deadline taken from ctx fires first):
		// its context error is no reason of its own.
		if !isContextErr(ctx, err) {
			last = err
		}
		next := b.NextBackOff()
		if next == backoff.Stop {
			return attempt, err
		}
		if after != nil {
			next = after(attempt, err, next)
		}
		if err := Sleep(ctx, next-time.Since(began)); err != nil {
			return attempt, &StoppedError{Cause: context.Cause(ctx), Last: last, Attempts: attempt}
		}
	}
}

// isContextErr: err is the wait's own end (or any context's), not a reason.
func isContextErr(ctx context.Context, err error) bool {
	if cause := context.Cause(ctx); cause != nil && errors.Is(err, cause) {
		return true
	}
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// ParseRetryAfter reads an HTTP Retry-After header, in seconds or as an
// HTTP date, capped at five minutes; 0 when absent or unreadable.
func ParseRetryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	var d time.Duration
	if n, err := strconv.Atoi(v); err == nil {
		d = time.Duration(n) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = time.Until(t)
	}
	return min(max(d, 0), 5*time.Minute)
}

// Sleep waits for d or until ctx ends, whichever is first.
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
