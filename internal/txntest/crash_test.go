package txntest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"

	"github.com/flowdb/flowdb/db"
	"github.com/flowdb/flowdb/index/hnsw"
	"github.com/flowdb/flowdb/internal/crashtest"
	"github.com/flowdb/flowdb/internal/testutil"
	"github.com/flowdb/flowdb/quant"
	"github.com/flowdb/flowdb/queue"
)

// crashStep is one agent step: acknowledged as a whole.
type crashStep struct {
	writer, i int
	task      uint64 // the follow-up task it enqueued
}

const crashWriters = 2

func crashKey(w, i int) string { return fmt.Sprintf("w%d/%04d", w, i) }
func crashVec(w, i int) uint64 { return uint64(w)<<32 | uint64(i) }

// TestTxnCrashSweep cuts the power at every write operation of a workload
// of concurrent agent steps (a key, a memory vector and a follow-up task in
// one transaction, every fourth one refused by a failed condition at its
// end) and checks the crash image: each acknowledged step is whole, no
// step is partly present, and no refused step left anything.
// FLOWDB_CRASHTEST_POINTS caps the sweep; FLOWDB_CRASHTEST_BREAK=torn
// commits each step's parts as separate records, and the sweep then finds
// torn steps. The crash points are split between two parallel shards
// (crashtest.Config.Shards), which together cover every write.
func TestTxnCrashSweep(t *testing.T) {
	t.Parallel()
	const shards = 2
	for shard := range shards {
		t.Run(fmt.Sprintf("shard-%d-of-%d", shard, shards), func(t *testing.T) {
			t.Parallel()
			txnCrashSweep(t, shards, shard)
		})
	}
}

func txnCrashSweep(t *testing.T, shards, shard int) {
	torn := os.Getenv("FLOWDB_CRASHTEST_BREAK") == "torn"
	var checked, bad int
	workload := func(r *crashtest.Run[crashStep]) {
		ctx := context.Background()
		o := testutil.StoreOptions(r.FS, nil)
		o.CacheSize = 8 << 20
		d, err := db.Open("/crash", o)
		if err != nil {
			t.Fatalf("k=%d: open: %v", r.K, err)
		}
		st := attach(t, d)
		defer st.close()
		if err := st.qm.Create(ctx, queue.Config{Name: "q", HotCapacity: 1 << 20, OverflowCapacity: 0}); err != nil && !errors.Is(err, queue.ErrExists) {
			t.Fatalf("k=%d: create: %v", r.K, err)
		}
		if err := st.vm.Create(ctx, hnsw.Config{Name: "v", Dim: 4, Metric: quant.L2, TrainSize: 1_000_000}); err != nil {
			t.Fatalf("k=%d: create collection: %v", r.K, err)
		}
		var wg sync.WaitGroup
		for w := range crashWriters {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 1; !r.Done(); i++ {
					k := crashKey(w, i)
					refuse := i%4 == 0
					if torn { // the same step as three separate records
						if refuse {
							continue
						}
						err := st.d.Set(ctx, "steps", []byte(k), []byte("v"))
						if err == nil {
							err = st.vm.Upsert(ctx, "v", []hnsw.Vector{{ID: crashVec(w, i), Values: []float32{float32(w), float32(i), 1, 1}}})
						}
						var id uint64
						if err == nil {
							id, err = st.qm.Enqueue(ctx, "q", queue.Task{Payload: []byte(k)})
						}
						if err != nil {
							return
						}
						r.Ack(crashStep{writer: w, i: i, task: id})
						continue
					}
					tx := st.d.NewTxn()
					tx.Set("steps", []byte(k), []byte("v"))
					st.vm.TxUpsert(tx, "v", hnsw.Vector{ID: crashVec(w, i), Values: []float32{float32(w), float32(i), 1, 1}})
					enq := st.qm.TxEnqueue(tx, "q", queue.Task{Payload: []byte(k)})
					if refuse {
						tx.RequirePresent("steps", []byte("never"))
					}
					err := st.d.CommitTxn(ctx, tx)
					switch {
					case refuse && errors.Is(err, db.ErrConditionFailed):
					case refuse || err != nil:
						if !errors.Is(err, db.ErrClosed) && !errors.Is(err, db.ErrFatal) {
							t.Errorf("k=%d: step %s: %v", r.K, k, err)
						}
						return
					default:
						r.Ack(crashStep{writer: w, i: i, task: enq.IDs[0]})
					}
				}
			}()
		}
		wg.Wait()
	}
	verify := func(r *crashtest.Run[crashStep]) {
		ctx := context.Background()
		o := testutil.StoreOptions(r.Clone(), nil)
		o.CacheSize = 8 << 20
		d, err := db.Open("/crash", o)
		if err != nil {
			t.Fatalf("k=%d: reopen after crash: %v", r.K, err)
		}
		st := attach(t, d)
		defer st.close()
		acked := map[string]bool{}
		taskOf := map[uint64]string{}
		for _, s := range r.Acked() {
			checked++
			acked[crashKey(s.writer, s.i)] = true
			taskOf[s.task] = crashKey(s.writer, s.i)
		}
		// One pass over each space: the keys, the ready tasks (the hot set
		// holds every one: HotCapacity is above the workload's), the vectors
		// of the steps whose key is present, and the collection's size.
		keys := map[string]bool{}
		for e, err := range st.d.Scan(ctx, "steps", db.ScanOptions{}) {
			if err != nil {
				t.Fatalf("k=%d: scan: %v", r.K, err)
			}
			keys[string(e.Key)] = true
		}
		tasks := map[string]bool{}
		if _, err := st.qm.Stats("q"); err == nil {
			ready, err := st.qm.Ready("q", 1<<20, nil)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range ready {
				k, ok := taskOf[c.ID]
				if !ok {
					info, err := st.qm.Get(ctx, "q", c.ID)
					if err != nil {
						t.Fatal(err)
					}
					k = string(info.Payload)
				}
				tasks[k] = true
			}
		}
		vectors := 0
		if vs, err := st.vm.Stats("v"); err == nil {
			vectors = vs.Vectors
		}
		for k := range acked {
			if !keys[k] || !tasks[k] {
				t.Errorf("k=%d: acknowledged step %s lost: key %v task %v", r.K, k, keys[k], tasks[k])
				bad++
			}
		}
		for k := range keys {
			var w, i int
			if _, err := fmt.Sscanf(k, "w%d/%d", &w, &i); err != nil {
				t.Fatalf("k=%d: key %q", r.K, k)
			}
			if _, err := st.vm.Get("v", crashVec(w, i)); err != nil || !tasks[k] {
				t.Errorf("k=%d: torn step %s: vector %v task %v", r.K, k, err, tasks[k])
				bad++
			}
			if i%4 == 0 {
				t.Errorf("k=%d: refused step %s present", r.K, k)
				bad++
			}
		}
		if len(tasks) != len(keys) || vectors != len(keys) {
			t.Errorf("k=%d: %d keys, %d tasks, %d vectors: torn steps", r.K, len(keys), len(tasks), vectors)
			bad++
		}
	}
	points := crashtest.Sweep(t, crashtest.Config{LimitEnv: "FLOWDB_CRASHTEST_POINTS", EveryWrite: true, Shards: shards, Shard: shard}, workload, verify)
	t.Logf("crash points: %d, acknowledged steps checked: %d, bad: %d", points, checked, bad)
}
