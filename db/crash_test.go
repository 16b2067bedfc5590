package db_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"testing"

	"github.com/flowdb/flowdb/db"
	"github.com/flowdb/flowdb/internal/crashtest"
	"github.com/flowdb/flowdb/internal/testutil"
)

// crashWrite is one acknowledged batch: fresh keys plus the writer's counter.
type crashWrite struct {
	writer  int
	counter int
	keys    []string
}

const crashWriters = 2

func crashValue(key string) []byte { return []byte("value-of-" + key) }

// TestCrashSweep crashes the engine at the k-th file write for k = 1, 2, ...
// (internal/crashtest) and checks every crash image: each acknowledged batch
// is present and whole, nothing never written appears, counters never go
// back, and Check is clean. Even k run the default configuration; odd k keep
// frames in the command log (so Check verifies them after the crash) and keep
// half of the unsynced data in the image.
//
// To see it fail, break durability: FLOWDB_CRASHTEST_BREAK=nosync
// acknowledges writes before fsync, and acknowledged writes are then lost.
// FLOWDB_CRASHTEST_POINTS caps the sweep (CI's race-detector pass uses it).
func TestCrashSweep(t *testing.T) {
	t.Parallel()
	durability := db.SyncEachCommit
	if os.Getenv("FLOWDB_CRASHTEST_BREAK") == "nosync" {
		durability = db.NoSync
	}
	lost, checked := 0, 0
	workload := func(r *crashtest.Run[crashWrite]) {
		ctx := context.Background()
		retention := 0
		if r.Variant == 1 {
			retention = 64
		}
		d, err := db.Open("/crash", &db.Options{FS: r.FS, Logger: testutil.Quiet(), Durability: durability,
			TTLReapInterval: -1, LogRetention: retention})
		if err != nil {
			t.Fatalf("k=%d: open: %v", r.K, err)
		}
		var wg sync.WaitGroup
		for w := 0; w < crashWriters; w++ {
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				for i := 1; !r.Done(); i++ {
					cw := crashWrite{writer: w, counter: i}
					b := d.NewBatch()
					for j := 0; j <= i%3; j++ {
						k := fmt.Sprintf("w%d/%03d/%d", w, i, j)
						cw.keys = append(cw.keys, k)
						b.Set("crash", []byte(k), crashValue(k))
					}
					b.Set("counter", []byte(strconv.Itoa(w)), []byte(strconv.Itoa(i)))
					if err := d.Commit(ctx, b); err != nil {
						t.Errorf("k=%d: commit: %v", r.K, err)
						return
					}
					r.Ack(cw)
				}
			}(w)
		}
		wg.Wait()
		if err := d.Close(); err != nil {
			t.Fatalf("k=%d: close: %v", r.K, err)
		}
	}
	verify := func(r *crashtest.Run[crashWrite]) {
		ctx := context.Background()
		d, err := db.Open("/crash", testutil.StoreOptions(r.Clone(), nil))
		if err != nil {
			t.Fatalf("k=%d: reopen after crash: %v", r.K, err)
		}
		defer d.Close()
		lastAcked := map[int]int{}
		for _, w := range r.Acked() {
			checked++
			for _, k := range w.keys {
				v, err := d.Get(ctx, "crash", []byte(k))
				if err != nil || string(v) != string(crashValue(k)) {
					t.Errorf("k=%d: acknowledged key %s lost: %q %v", r.K, k, v, err)
					lost++
				}
			}
			lastAcked[w.writer] = max(lastAcked[w.writer], w.counter)
		}
		// Nothing never written appears, and batches are all-or-nothing.
		present := map[string]bool{}
		for e, err := range d.Scan(ctx, "crash", db.ScanOptions{}) {
			if err != nil {
				t.Fatalf("k=%d: scan: %v", r.K, err)
			}
			k := string(e.Key)
			var w, i, j int
			if _, err := fmt.Sscanf(k, "w%d/%d/%d", &w, &i, &j); err != nil || string(e.Value) != string(crashValue(k)) ||
				w >= crashWriters || i < 1 || j > i%3 {
				t.Errorf("k=%d: key never written appeared: %q=%q", r.K, k, e.Value)
				continue
			}
			present[k] = true
		}
		for k := range present {
			var w, i, j int
			fmt.Sscanf(k, "w%d/%d/%d", &w, &i, &j)
			for jj := 0; jj <= i%3; jj++ {
				if kk := fmt.Sprintf("w%d/%03d/%d", w, i, jj); !present[kk] {
					t.Errorf("k=%d: torn batch: %s present without %s", r.K, k, kk)
				}
			}
		}
		for w, want := range lastAcked {
			v, err := d.Get(ctx, "counter", []byte(strconv.Itoa(w)))
			got, _ := strconv.Atoi(string(v))
			if err != nil || got < want {
				t.Errorf("k=%d: writer %d counter %q (%v), acknowledged %d", r.K, w, v, err, want)
			}
		}
		rep, err := d.Check(ctx, nil)
		if err != nil || !rep.OK() {
			t.Errorf("k=%d: check after crash: %v %+v", r.K, err, rep)
		}
	}
	points := crashtest.Sweep(t, crashtest.Config{Variants: 2, LimitEnv: "FLOWDB_CRASHTEST_POINTS"}, workload, verify)
	t.Logf("crash points: %d, acknowledged batches checked: %d, lost: %d", points, checked, lost)
	if lost != 0 {
		t.Fatalf("%d acknowledged writes lost", lost)
	}
}
