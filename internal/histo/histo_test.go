package histo

import (
	"encoding/json"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"
)

// TestBuckets checks the bucket layout: contiguous ranges, every value in
// the bucket whose bounds hold it, widths at most an eighth of the lower
// bound, powers of two on boundaries.
func TestBuckets(t *testing.T) {
	for i := 0; i < NumBuckets-1; i++ {
		lo, hi := Bounds(i)
		nlo, _ := Bounds(i + 1)
		if hi != nlo || lo >= hi {
			t.Fatalf("bucket %d [%d,%d) then %d", i, lo, hi, nlo)
		}
		if i >= SubBuckets && (hi-lo)*SubBuckets > lo {
			t.Fatalf("bucket %d [%d,%d) wider than lower/8", i, lo, hi)
		}
		if bucket(lo) != i || bucket(hi-1) != i {
			t.Fatalf("bucket %d [%d,%d): bucket(lo)=%d bucket(hi-1)=%d", i, lo, hi, bucket(lo), bucket(hi-1))
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 100000 {
		v := r.Uint64() >> r.IntN(64)
		i := bucket(v)
		lo, hi := Bounds(i)
		if i == NumBuckets-1 {
			if v < lo {
				t.Fatalf("v %d in last bucket below %d", v, lo)
			}
			continue
		}
		if v < lo || v >= hi {
			t.Fatalf("v %d in bucket %d [%d,%d)", v, i, lo, hi)
		}
	}
	for e := 0; e <= maxExp+1; e++ {
		v := uint64(1) << e
		if lo, _ := Bounds(bucket(v)); lo != v && bucket(v) != NumBuckets-1 {
			t.Fatalf("2^%d is not a bucket boundary (bucket lower %d)", e, lo)
		}
	}
}

// exact is the nearest-rank quantile of sorted xs.
func exact(xs []time.Duration, q float64) time.Duration {
	i := int(q*float64(len(xs))+0.999999) - 1
	return xs[max(0, min(i, len(xs)-1))]
}

// within checks got is within one bucket (12.5%) of want.
func within(t *testing.T, name string, got, want time.Duration) {
	t.Helper()
	d := got - want
	if d < 0 {
		d = -d
	}
	if float64(d) > float64(want)/SubBuckets+1 {
		t.Errorf("%s: got %v want %v (off by %.1f%%, more than one bucket)", name, got, want, 100*float64(d)/float64(want))
	}
}

// TestQuantiles compares Quantile with exact quantiles of known inputs:
// uniform, log-normal-like and a point mass.
func TestQuantiles(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	inputs := map[string]func() time.Duration{
		"uniform 0-10ms": func() time.Duration { return time.Duration(r.Int64N(int64(10 * time.Millisecond))) },
		"exp-spread":     func() time.Duration { return time.Duration(1000 << r.IntN(20)) },
		"heavy-tail": func() time.Duration {
			if r.IntN(100) == 0 {
				return 50*time.Millisecond + time.Duration(r.Int64N(int64(time.Millisecond)))
			}
			return 200*time.Microsecond + time.Duration(r.Int64N(int64(100*time.Microsecond)))
		},
		"point 3ms": func() time.Duration { return 3 * time.Millisecond },
	}
	for name, gen := range inputs {
		var h Histogram
		xs := make([]time.Duration, 20000)
		var sum time.Duration
		for i := range xs {
			xs[i] = gen()
			sum += xs[i]
			h.Record(xs[i])
		}
		slices.Sort(xs)
		s := h.Snapshot()
		if s.Count != uint64(len(xs)) || s.Sum != sum {
			t.Fatalf("%s: count %d sum %v, want %d %v", name, s.Count, s.Sum, len(xs), sum)
		}
		for _, q := range []float64{0.01, 0.5, 0.9, 0.99, 0.999, 1} {
			within(t, name+" q"+jsonF(q), s.Quantile(q), exact(xs, q))
		}
	}
}

func jsonF(f float64) string { b, _ := json.Marshal(f); return string(b) }

func TestEmpty(t *testing.T) {
	var h Histogram
	s := h.Snapshot()
	if s.Count != 0 || s.Quantile(0.5) != -1 || s.Mean() != 0 || len(s.Buckets()) != 0 {
		t.Fatalf("empty snapshot: %+v q50 %v", s.Count, s.Quantile(0.5))
	}
	h.Record(-time.Second) // counts as 0
	if s := h.Snapshot(); s.Count != 1 || s.Quantile(1) > 1 {
		t.Fatalf("negative: count %d q %v", s.Count, s.Quantile(1))
	}
}

// TestSubAddCountBelow checks windows, merging and the cumulative counts
// /metrics exports.
func TestSubAddCountBelow(t *testing.T) {
	var h Histogram
	for range 100 {
		h.Record(time.Microsecond) // 1000 ns < 2^10
	}
	old := h.Snapshot()
	for range 30 {
		h.Record(time.Millisecond) // < 2^20
	}
	for range 7 {
		h.Record(2 * time.Second) // < 2^31
	}
	now := h.Snapshot()
	w := now.Sub(&old)
	if w.Count != 37 || w.Sum != 30*time.Millisecond+14*time.Second {
		t.Fatalf("window count %d sum %v", w.Count, w.Sum)
	}
	within(t, "window p50", w.Quantile(0.5), time.Millisecond)
	if got := now.CountBelow(1 << 10); got != 100 {
		t.Fatalf("below 2^10 ns: %d", got)
	}
	if got := now.CountBelow(1 << 20); got != 130 {
		t.Fatalf("below 2^20 ns: %d", got)
	}
	if got := now.CountBelow(1 << 31); got != 137 {
		t.Fatalf("below 2^31 ns: %d", got)
	}
	bounds := []time.Duration{1 << 9, 1 << 10, 1 << 20, 1 << 31, 1 << 40}
	cum := now.CountsBelow(nil, bounds)
	for i, b := range bounds {
		if cum[i] != now.CountBelow(b) {
			t.Fatalf("CountsBelow %v: %d, CountBelow %d", b, cum[i], now.CountBelow(b))
		}
	}
	if !slices.Equal(cum, []uint64{0, 100, 130, 137, 137}) {
		t.Fatalf("cumulative %v", cum)
	}
	sum := old
	sum.Add(&w)
	if sum != now {
		t.Fatal("old + window != now")
	}
}

// TestConcurrent records from many goroutines: nothing is lost.
func TestConcurrent(t *testing.T) {
	var h Histogram
	var wg sync.WaitGroup
	const g, n = 8, 5000
	for i := range g {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range n {
				h.Record(time.Duration(i*n + j))
			}
		}()
	}
	wg.Wait()
	s := h.Snapshot()
	if s.Count != g*n || s.Sum != time.Duration(g*n*(g*n-1)/2) {
		t.Fatalf("count %d sum %d", s.Count, s.Sum)
	}
}

func TestRecordDoesNotAllocate(t *testing.T) {
	var h Histogram
	if a := testing.AllocsPerRun(1000, func() { h.Record(1234567) }); a != 0 {
		t.Fatalf("Record allocates %.1f times", a)
	}
}

func TestJSON(t *testing.T) {
	var h Histogram
	for i := range 1000 {
		h.Record(time.Duration(i) * time.Microsecond)
	}
	s := h.Snapshot()
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var back Snapshot
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back != s {
		t.Fatalf("round trip differs: %s", b)
	}
	var m map[string]any
	json.Unmarshal(b, &m)
	if m["count"].(float64) != 1000 || m["p99_ns"].(float64) <= m["p50_ns"].(float64) {
		t.Fatalf("json %s", b)
	}
}

func BenchmarkRecord(b *testing.B) {
	var h Histogram
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		v := time.Duration(1000)
		for pb.Next() {
			h.Record(v)
			v += 7919
		}
	})
}
