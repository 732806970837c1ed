// Package sleep is the sleep applet: the seeds' `sleep 60`, without a
// shell, stopping at once on SIGTERM.
package sleep

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/initbox/initbox/internal/cli"
)

// Applet is sleep's entry in the applet table.
var Applet = cli.Applet{
	Name:     "sleep",
	Summary:  "wait for a duration, stopping at once on SIGTERM",
	Synopsis: "[flags] DURATION",
	Help: `Waits DURATION — a Go duration (90s, 5m, 1h30m) or a number of seconds, as
busybox's sleep takes it — then exits 0. SIGTERM or SIGINT end it at once
(143, 130), also as PID 1.

EXAMPLES
  sleep 60
  sleep 2m30s`,
	New: func() cli.Command { return &command{} },
}

type command struct{ d time.Duration }

func (c *command) Flags(*cli.FlagSet) {}

func (c *command) Prepare(_ *cli.Env, args []string) ([]string, error) {
	if len(args) != 1 {
		return nil, errors.New("want one argument: the DURATION")
	}
	if secs, err := strconv.ParseFloat(args[0], 64); err == nil && secs >= 0 && secs < 1e9 {
		c.d = time.Duration(secs * float64(time.Second))
		return nil, nil
	}
	d, err := cli.ParseDuration(args[0])
	if err != nil {
		return nil, fmt.Errorf("invalid duration %q: %v", args[0], err)
	}
	c.d = d
	return nil, nil
}

func (c *command) Run(ctx context.Context, _ *cli.Env) (string, error) {
	t := time.NewTimer(c.d)
	defer t.Stop()
	select {
	case <-t.C:
		return "slept " + c.d.String(), nil
	case <-ctx.Done():
		return "", context.Cause(ctx)
	}
}
