package stats

import (
	"slices"
	"testing"
	"time"
)

func TestMedian(t *testing.T) {
	f := func(xs []float64, want float64) {
		t.Helper()
		in := slices.Clone(xs)
		if got := Median(xs); got != want {
			t.Errorf("Median(%v) = %v, want %v", xs, got, want)
		}
		if !slices.Equal(xs, in) {
			t.Errorf("Median changed its input to %v", xs)
		}
	}
	f(nil, 0)
	f([]float64{3}, 3)
	f([]float64{3, 1}, 3)
	f([]float64{5, 1, 3}, 3)
	f([]float64{4, 1, 3, 2}, 3)
}

func TestMedianOfAndBy(t *testing.T) {
	type run struct {
		opsPerS float64
		p99     time.Duration
	}
	rs := []run{{100, 9}, {300, 1}, {200, 5}}
	if got := MedianOf(rs, func(r run) float64 { return r.opsPerS }); got != 200 {
		t.Errorf("MedianOf ops = %v", got)
	}
	if got := MedianOf(rs, func(r run) time.Duration { return r.p99 }); got != 5 {
		t.Errorf("MedianOf p99 = %v", got)
	}
	if got := MedianBy(rs, func(r run) float64 { return r.opsPerS }); got != (run{200, 5}) {
		t.Errorf("MedianBy = %v", got)
	}
	if rs[0].opsPerS != 100 {
		t.Errorf("MedianBy changed its input: %v", rs)
	}
}

func TestSorted(t *testing.T) {
	in := [][]int{{5, 1}, nil, {3, 2, 4}}
	if got := Sorted(in...); !slices.Equal(got, []int{1, 2, 3, 4, 5}) {
		t.Errorf("Sorted = %v", got)
	}
	if in[0][0] != 5 {
		t.Errorf("Sorted changed its input: %v", in)
	}
}

func TestPct(t *testing.T) {
	s := make([]int, 200)
	for i := range s {
		s[i] = i
	}
	for _, c := range []struct{ p, want int }{{0, 0}, {1, 2}, {50, 100}, {99, 198}} {
		if got := Pct(s, c.p); got != c.want {
			t.Errorf("Pct(%d) = %d, want %d", c.p, got, c.want)
		}
	}
	if got := Pct([]int(nil), 99); got != 0 {
		t.Errorf("Pct(nil) = %d", got)
	}
}
