package queue

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"

	"github.com/flowdb/flowdb/db"
	"github.com/flowdb/flowdb/internal/crashtest"
	"github.com/flowdb/flowdb/internal/testutil"
)

// qAck is one acknowledged queue operation.
type qAck struct {
	acked   bool // an Ack (else an Enqueue)
	id      uint64
	payload string
}

const qcProducers = 2

// content is what a stored task carries of its enqueue: its payload, or,
// once done (Ack deletes the body), its result, which the crash and kill
// workloads set to the payload.
func content(info TaskInfo) string {
	if info.State == "done" {
		if len(info.Payload) != 0 {
			return "done task kept its payload: " + string(info.Payload)
		}
		return string(info.Result)
	}
	return string(info.Payload)
}

// TestQueueCrashSweep crashes the engine at every file write of an
// enqueue/lease/ack workload (internal/crashtest) and checks each crash
// image: every acknowledged enqueue is present exactly once (pending, leased
// or done) with its payload (a done task's result, which the consumer sets
// to the payload), every acknowledged Ack is still done (no
// acknowledged task comes back), nothing never enqueued appears, and Check
// is clean.
//
// To see it fail: FLOWDB_CRASHTEST_BREAK=nosync acknowledges before fsync.
func TestQueueCrashSweep(t *testing.T) {
	t.Parallel()
	durability := db.SyncEachCommit
	if os.Getenv("FLOWDB_CRASHTEST_BREAK") == "nosync" {
		durability = db.NoSync
	}
	var checkedEnq, checkedAck, lost int
	workload := func(r *crashtest.Run[qAck]) {
		ctx := context.Background()
		d, err := db.Open("/qc", &db.Options{FS: r.FS, Logger: testutil.Quiet(), Durability: durability, TTLReapInterval: -1})
		if err != nil {
			t.Fatalf("k=%d: open: %v", r.K, err)
		}
		m, err := Attach(d, &Options{TickInterval: -1})
		if err != nil {
			t.Fatalf("k=%d: attach: %v", r.K, err)
		}
		if err := m.Create(ctx, Config{Name: "cq", HotCapacity: 8}); err != nil {
			if !r.Crashed() {
				t.Fatalf("k=%d: create: %v", r.K, err)
			}
		}
		var wg sync.WaitGroup
		var prodDone sync.WaitGroup
		for p := 0; p < qcProducers; p++ {
			wg.Add(1)
			prodDone.Add(1)
			go func(p int) {
				defer wg.Done()
				defer prodDone.Done()
				for i := 0; !r.Done(); i++ {
					payload := fmt.Sprintf("p%d-%d", p, i)
					id, err := m.Enqueue(ctx, "cq", Task{Payload: []byte(payload), Priority: i % 3})
					if err != nil {
						t.Errorf("k=%d: enqueue: %v", r.K, err)
						return
					}
					r.Ack(qAck{id: id, payload: payload})
				}
			}(p)
		}
		stop := make(chan struct{})
		go func() { prodDone.Wait(); close(stop) }()
		wg.Add(1)
		go func() { // consumer
			defer wg.Done()
			for !r.Done() {
				ls, err := m.Lease(ctx, "cq", "c1", 2, nil, 0)
				if err != nil {
					t.Errorf("k=%d: lease: %v", r.K, err)
					return
				}
				if len(ls) == 0 {
					select {
					case <-stop:
						return
					default:
						continue
					}
				}
				for _, l := range ls {
					// The result repeats the payload: Ack deletes a done
					// task's body, and verify checks identity through it.
					if err := m.Ack(ctx, "cq", l.ID, l.Token, l.Payload); err != nil {
						t.Errorf("k=%d: ack: %v", r.K, err)
						return
					}
					r.Ack(qAck{acked: true, id: l.ID, payload: string(l.Payload)})
				}
			}
		}()
		wg.Wait()
		m.Close()
		if err := d.Close(); err != nil {
			t.Fatalf("k=%d: close: %v", r.K, err)
		}
	}
	verify := func(r *crashtest.Run[qAck]) {
		ctx := context.Background()
		d, err := db.Open("/qc", testutil.StoreOptions(r.Clone(), nil))
		if err != nil {
			t.Fatalf("k=%d: reopen: %v", r.K, err)
		}
		defer d.Close()
		m, err := Attach(d, &Options{TickInterval: -1})
		if err != nil {
			t.Fatalf("k=%d: attach after crash: %v", r.K, err)
		}
		defer m.Close()
		if len(m.Queues()) == 0 {
			if len(r.Acked()) > 0 {
				t.Fatalf("k=%d: queue lost with %d acknowledged operations", r.K, len(r.Acked()))
			}
			return
		}
		for _, a := range r.Acked() {
			info, err := m.Get(ctx, "cq", a.id)
			switch {
			case err != nil || content(info) != a.payload:
				t.Errorf("k=%d: acknowledged task %d (%s) lost: %+v %v", r.K, a.id, a.payload, info, err)
				lost++
			case a.acked && info.State != "done":
				t.Errorf("k=%d: acknowledged Ack of task %d came back as %s", r.K, a.id, info.State)
				lost++
			}
			if a.acked {
				checkedAck++
			} else {
				checkedEnq++
			}
		}
		// Every stored task is one that was enqueued, once.
		st, _ := m.Stats("cq")
		seen := map[string]bool{}
		total := st.Hot + st.Overflow + st.Delayed + st.Leased + st.Done + st.Dead
		found := int64(0)
		for id := uint64(1); id <= 2*st.Enqueued+2; id++ {
			info, err := m.Get(ctx, "cq", id)
			if errors.Is(err, ErrNotFound) {
				continue
			}
			var p, i int
			c := content(info)
			if _, serr := fmt.Sscanf(c, "p%d-%d", &p, &i); err != nil || serr != nil || seen[c] {
				t.Errorf("k=%d: task %d never enqueued or duplicated: %q %v", r.K, id, c, err)
			}
			seen[c] = true
			found++
		}
		if found != total {
			t.Errorf("k=%d: %d tasks stored, counters say %d", r.K, found, total)
		}
		if rep, err := d.Check(ctx, nil); err != nil || !rep.OK() {
			t.Errorf("k=%d: check: %v %+v", r.K, err, rep.Problems)
		}
	}
	points := crashtest.Sweep(t, crashtest.Config{LimitEnv: "FLOWDB_CRASHTEST_POINTS"}, workload, verify)
	t.Logf("crash points: %d, acknowledged enqueues checked: %d, acknowledged acks checked: %d, lost or returned: %d",
		points, checkedEnq, checkedAck, lost)
}
