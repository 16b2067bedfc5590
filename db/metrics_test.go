package db

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// TestLatencyHistograms checks that the engine records one commit sample
// per answered Propose and one apply sample per frame, and that a commit
// sample spans the whole wait (submission to answer, fsync included): with
// every fsync wait slowed by 3 ms, no commit takes less, while apply stays
// below it.
func TestLatencyHistograms(t *testing.T) {
	const slow = 3 * time.Millisecond
	testSyncHook = func() { time.Sleep(slow) }
	defer func() { testSyncHook = nil }()
	d := openTestStore(t, "/s", vfs.NewMem())
	defer d.Close()
	ctx := context.Background()
	m0 := d.Metrics()
	const writers, each = 16, 5
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if err := d.Set(ctx, "ns", fmt.Appendf(nil, "k%d-%d", w, i), []byte("v")); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	m1 := d.Metrics()
	commits := m1.Commit.Sub(&m0.Commit)
	applies := m1.Apply.Sub(&m0.Apply)
	if commits.Count != writers*each {
		t.Fatalf("commit samples %d, want %d (one per Set)", commits.Count, writers*each)
	}
	if frames := m1.Frames - m0.Frames; applies.Count != frames || frames == 0 {
		t.Fatalf("apply samples %d, frames %d: want one per frame", applies.Count, frames)
	}
	// Within one bucket (an eighth) of the 3 ms every commit waited.
	if p := commits.Quantile(0); p < slow-slow/8 {
		t.Fatalf("fastest commit %v, below the %v every fsync wait took", p, slow)
	}
	if p50, p99 := commits.Quantile(0.5), commits.Quantile(0.99); p99 < p50 {
		t.Fatalf("commit p99 %v < p50 %v", p99, p50)
	}
	if p := applies.Quantile(0.5); p <= 0 || p >= slow {
		t.Fatalf("apply p50 %v: want above 0 and below the sync wait %v", p, slow)
	}
	if m1.Commit.Count != m0.Commit.Count+commits.Count || m1.Commit.Mean() <= 0 {
		t.Fatalf("totals: %d then %d, mean %v", m0.Commit.Count, m1.Commit.Count, m1.Commit.Mean())
	}
	// Input refused at the API edge never reaches the pipeline: no sample.
	before := d.Metrics().Commit.Count
	if err := d.Set(ctx, "ns", nil, []byte("v")); err == nil {
		t.Fatal("empty key accepted")
	}
	if got := d.Metrics().Commit.Count; got != before {
		t.Fatalf("a Set refused at the API edge (never proposed) moved the commit count %d -> %d", before, got)
	}
}
