package raftsm

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// TestCommitLatency: a node records one Raft commit sample per frame it
// proposed, on the frame's shard only; the store's commit samples (one per
// answered Propose) move by the same number and span at least the Raft
// commit of their frame; every replica records an apply sample for each
// frame it applies.
func TestCommitLatency(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts three NodeHosts")
	}
	ns, _ := startCluster(t, 3)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	n1 := ns[0].n
	d1 := n1.DB()
	shard := d1.Placement().ShardFor("lat")
	lat0, c0, m0 := n1.CommitLatency(), n1.Counters(), d1.Metrics()
	apply0 := ns[1].n.DB().Metrics().Apply.Count
	const writes = 12
	for i := range writes { // one at a time: one frame each
		if err := d1.Set(ctx, "lat", fmt.Appendf(nil, "k%d", i), []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	lat1, c1, m1 := n1.CommitLatency(), n1.Counters(), d1.Metrics()
	if got := c1.Proposals - c0.Proposals; got != writes {
		t.Fatalf("%d proposals for %d sequential writes", got, writes)
	}
	for s, h := range lat1 {
		h0 := lat0[s]
		w := h.Sub(&h0)
		want := uint64(0)
		if s == shard {
			want = writes
		}
		if w.Count != want {
			t.Fatalf("shard %d: %d Raft commit samples, want %d", s, w.Count, want)
		}
	}
	raft := lat1[shard]
	raft0 := lat0[shard]
	rw := raft.Sub(&raft0)
	cw := m1.Commit.Sub(&m0.Commit)
	if cw.Count != writes {
		t.Fatalf("store commit samples %d, want %d", cw.Count, writes)
	}
	if cw.Sum < rw.Sum || rw.Quantile(0.5) <= 0 {
		t.Fatalf("store commit time %v below its frames' Raft commit time %v (p50 %v)", cw.Sum, rw.Sum, rw.Quantile(0.5))
	}
	// A follower applies the frames too (eventually: it may lag).
	for {
		if got := ns[1].n.DB().Metrics().Apply.Count - apply0; got >= writes {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("follower recorded fewer apply samples than the frames it must apply")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
