package main

import (
	"testing"
	"time"
)

func TestQuantile(t *testing.T) {
	ds := func(v ...int) []time.Duration {
		out := make([]time.Duration, len(v))
		for i, x := range v {
			out[i] = time.Duration(x)
		}
		return out
	}
	for _, tc := range []struct {
		in   []time.Duration
		q    float64
		want time.Duration
	}{
		{ds(3, 1, 2), 0.5, 2}, {ds(3, 1, 2), 1, 3}, {ds(3, 1, 2), 0, 1},
		{ds(4, 1, 3, 2), 0.5, 2}, {ds(4, 1, 3, 2), 0.95, 4},
		{ds(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20), 0.95, 19},
		{nil, 0.5, 0},
	} {
		if got := quantile(tc.in, tc.q); got != tc.want {
			t.Errorf("quantile(%v, %v) = %v, want %v", tc.in, tc.q, got, tc.want)
		}
	}
}
