package cli

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"time"
)

// Exit statuses shared by every applet.
const (
	ExitOK     = 0
	ExitFailed = 1
	ExitUsage  = 2
)

// UsageError marks bad usage or bad input: exit 2, never worth a retry.
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

// SignalError is the cause of a context cancelled by SIGINT or SIGTERM.
type SignalError struct{ Signal syscall.Signal }

func (e *SignalError) Error() string {
	switch e.Signal {
	case syscall.SIGTERM:
		return "terminated by SIGTERM"
	case syscall.SIGINT:
		return "interrupted by SIGINT"
	}
	return "stopped by " + e.Signal.String()
}

// TimeoutError is the cause of a context whose --timeout expired.
type TimeoutError struct{ After time.Duration }

func (e *TimeoutError) Error() string { return fmt.Sprintf("timed out after %s", e.After) }

// ExitCode is the one place where an outcome becomes an exit status.
func ExitCode(ctx context.Context, err error) int {
	if err == nil {
		return ExitOK
	}
	var se *SignalError
	if errors.As(context.Cause(ctx), &se) {
		return 128 + int(se.Signal)
	}
	var ue *UsageError
	if errors.As(err, &ue) {
		return ExitUsage
	}
	return ExitFailed
}

// Is lets errors.Is(err, context.DeadlineExceeded) hold for a --timeout,
// as it does for any other deadline.
func (e *TimeoutError) Is(target error) bool { return target == context.DeadlineExceeded }

// Is lets errors.Is(err, context.Canceled) hold for a signal.
func (e *SignalError) Is(target error) bool { return target == context.Canceled }
