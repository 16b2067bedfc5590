package txntest

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/flowdb/flowdb/db"
	"github.com/flowdb/flowdb/index/hnsw"
	"github.com/flowdb/flowdb/internal/keys"
	"github.com/flowdb/flowdb/internal/testutil"
	"github.com/flowdb/flowdb/quant"
	"github.com/flowdb/flowdb/queue"
	"github.com/flowdb/flowdb/registry"
	"github.com/flowdb/flowdb/wal"
)

// TestTxnApplyIsDeterministic records the frames of a concurrent seeded
// workload of transactions over every subsystem (committed and refused)
// and single operations, applies the same frames to two fresh stores
// through the replicated engine's applier, and requires the two stores to
// be byte-identical.
func TestTxnApplyIsDeterministic(t *testing.T) {
	for seed := uint64(1); seed <= 3; seed++ {
		frames := recordFrames(t, seed)
		a, na := replay(t, frames)
		b, _ := replay(t, frames)
		if !bytes.Equal(a, b) {
			t.Fatalf("seed %d: two stores applying the same %d frames differ", seed, len(frames))
		}
		if na < 3 {
			t.Fatalf("seed %d: only %d transactions applied", seed, na)
		}
	}
}

// recordFrames runs the workload on a store that keeps its command log and
// returns the frames, in log order.
func recordFrames(t *testing.T, seed uint64) []*wal.Frame {
	ctx := context.Background()
	o := testutil.StoreOptions(vfs.NewMem(), testutil.NewClock())
	o.LogRetention = 1 << 20
	o.CacheSize = 8 << 20
	d, err := db.Open("/rec", o)
	if err != nil {
		t.Fatal(err)
	}
	st := attach(t, d)
	defer st.close()
	if err := st.qm.Create(ctx, queue.Config{Name: "q", HotCapacity: 4, OverflowCapacity: 20, MaxAttempts: 3,
		BackoffBase: time.Microsecond, BackoffMax: time.Microsecond, JitterFraction: 0.5}); err != nil {
		t.Fatal(err)
	}
	if err := st.vm.Create(ctx, hnsw.Config{Name: "v", Dim: 4, Metric: quant.Cosine, Float: true, M: 4, EfConstruction: 16}); err != nil {
		t.Fatal(err)
	}
	for a := range 3 {
		if err := st.r.Register(ctx, registry.AgentSpec{ID: fmt.Sprint("a", a), Capacity: 8}); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, uint64(w)))
			for i := range 60 {
				switch rng.IntN(4) {
				case 0:
					_, _ = st.qm.Enqueue(ctx, "q", queue.Task{Payload: []byte{byte(i)}, Priority: rng.IntN(3)})
				case 1:
					_ = st.r.Heartbeat(ctx, fmt.Sprint("a", w%3), rng.IntN(4), "ok")
				default:
					ls, _ := st.qm.Lease(ctx, "q", fmt.Sprint("a", w%3), 1+rng.IntN(2), nil, time.Minute)
					tx := st.d.NewTxn()
					for _, l := range ls {
						tok := l.Token
						if rng.IntN(5) == 0 {
							tok++ // refused: lease lost
						}
						if rng.IntN(3) == 0 {
							st.qm.TxNack(tx, "q", l.ID, tok, "again")
						} else {
							st.qm.TxAck(tx, "q", l.ID, tok, []byte("r"))
						}
						st.vm.TxUpsert(tx, "v", hnsw.Vector{ID: l.ID, Values: []float32{1, float32(i), float32(w), 1}, Tags: []string{"t"}})
					}
					tx.Set(fmt.Sprint("w", w), []byte(fmt.Sprint(i%5)), []byte{byte(i)})
					if rng.IntN(3) == 0 {
						st.qm.TxEnqueue(tx, "q", queue.Task{Payload: []byte("next")})
					}
					if rng.IntN(4) == 0 {
						st.vm.TxDelete(tx, "v", uint64(rng.IntN(30)))
					}
					if rng.IntN(6) == 0 {
						tx.RequireAbsent(fmt.Sprint("w", w), []byte("0"))
					}
					if rng.IntN(5) == 0 {
						tx.SetIdempotencyKey(fmt.Sprint("k", rng.IntN(4)))
					}
					_ = st.d.CommitTxn(ctx, tx)
				}
			}
		}()
	}
	wg.Wait()
	var frames []*wal.Frame
	lo, hi := keys.TableRange(keys.LocalShard, keys.TableLog)
	it, err := d.Pebble().NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	for ok := it.First(); ok; ok = it.Next() {
		f, err := wal.DecodeFrame(bytes.Clone(it.Value()))
		if err != nil {
			t.Fatal(err)
		}
		frames = append(frames, f)
	}
	if len(frames) < 50 {
		t.Fatalf("only %d frames recorded", len(frames))
	}
	return frames
}

// replay applies frames to a fresh store through the catalog's and the
// data shard's appliers (each applies the records it owns) and returns a
// dump of the store and how many transactions committed.
func replay(t *testing.T, frames []*wal.Frame) ([]byte, int) {
	o := testutil.StoreOptions(vfs.NewMem(), testutil.NewClock())
	o.CacheSize = 8 << 20
	d, err := db.Open("/replay", o)
	if err != nil {
		t.Fatal(err)
	}
	st := attach(t, d)
	defer st.close()
	var appliers []*db.ShardApplier
	for _, shard := range []uint32{keys.CatalogShard, keys.FirstData} {
		sa, err := d.ShardApplier(shard)
		if err != nil {
			t.Fatal(err)
		}
		appliers = append(appliers, sa)
	}
	committed := 0
	for i, f := range frames {
		for _, sa := range appliers {
			b := sa.NewBatch(f)
			rs, _, hooks, err := sa.Apply(b, uint64(i+1), f)
			if err != nil {
				t.Fatal(err)
			}
			if err := sa.Commit(b); err != nil {
				t.Fatal(err)
			}
			for _, h := range hooks {
				h()
			}
			for j, r := range rs {
				if f.Records[j].Kind == db.KindTxn && r.Err == nil {
					committed++
				}
			}
		}
	}
	var dump bytes.Buffer
	it, err := d.Pebble().NewIter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	for ok := it.First(); ok; ok = it.Next() {
		fmt.Fprintf(&dump, "%x=%x\n", it.Key(), it.Value())
	}
	return dump.Bytes(), committed
}
