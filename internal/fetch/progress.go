package fetch

import (
	"context"
	"time"

	"github.com/initbox/initbox/internal/cli"
)

// Progress is logged only for transfers that last: the first line after
// progressAfter, then one every progressEvery.
const (
	progressAfter = 2 * time.Second
	progressEvery = 5 * time.Second
)

// progress logs a transfer's progress until the returned stop is called.
func progress(ctx context.Context, env *cli.Env, what string, t *transfer) (stop func()) {
	done := make(chan struct{})
	start := time.Now()
	go func() {
		timer := time.NewTimer(progressAfter)
		defer timer.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-timer.C:
			}
			got := t.got.Load()
			secs := time.Since(start).Seconds()
			rate := float64(got) / secs
			attrs := []any{"source", what, "bytes", got, "done", cli.HumanBytes(got), "rate", cli.HumanBytes(int64(rate)) + "/s"}
			if t.length > 0 {
				attrs = append(attrs, "of", cli.HumanBytes(t.length))
				if rate > 0 {
					attrs = append(attrs, "eta", cli.Round(time.Duration(float64(t.length-got)/rate*float64(time.Second))))
				}
			}
			env.Log.Info("downloading", attrs...)
			timer.Reset(progressEvery)
		}
	}()
	return func() { close(done) }
}
