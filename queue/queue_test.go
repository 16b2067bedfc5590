package queue

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/flowdb/flowdb/db"
	"github.com/flowdb/flowdb/internal/keys"
	"github.com/flowdb/flowdb/internal/testutil"
	"github.com/flowdb/flowdb/wal"
)

func openQ(t testing.TB, fs vfs.FS, c *testutil.Clock) (*db.DB, *Manager) {
	t.Helper()
	d := testutil.Open(t, "/q", testutil.StoreOptions(fs, c))
	m, err := Attach(d, &Options{TickInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	return d, m
}

func TestLifecycle(t *testing.T) {
	ctx := context.Background()
	c := testutil.NewClock()
	d, m := openQ(t, vfs.NewMem(), c)
	defer d.Close()
	if err := m.Create(ctx, Config{Name: "jobs", HotCapacity: 2, MaxAttempts: 2, JitterFraction: -1}); err != nil {
		t.Fatal(err)
	}
	var ids []uint64
	for i, p := range []int{1, 5, 9, 5} {
		id, err := m.Enqueue(ctx, "jobs", Task{Payload: []byte{byte(i)}, Priority: p})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	st, _ := m.Stats("jobs")
	if st.Hot != 2 || st.Overflow != 2 {
		t.Fatalf("hot %d overflow %d", st.Hot, st.Overflow)
	}
	ls, err := m.Lease(ctx, "jobs", "agent-1", 3, nil, 0)
	if err != nil || len(ls) != 3 {
		t.Fatalf("lease: %v %v", ls, err)
	}
	// priority 9, then the two 5s in FIFO order
	if ls[0].ID != ids[2] || ls[1].ID != ids[1] || ls[2].ID != ids[3] {
		t.Fatalf("lease order %d %d %d, want %d %d %d", ls[0].ID, ls[1].ID, ls[2].ID, ids[2], ids[1], ids[3])
	}
	if err := m.Ack(ctx, "jobs", ls[0].ID, ls[0].Token, []byte("ok")); err != nil {
		t.Fatal(err)
	}
	if err := m.Ack(ctx, "jobs", ls[0].ID, ls[0].Token, nil); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("second ack: %v", err)
	}
	if err := m.Ack(ctx, "jobs", ls[1].ID, ls[1].Token+1, nil); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("wrong token: %v", err)
	}
	if err := m.Nack(ctx, "jobs", ls[1].ID, ls[1].Token, "boom"); err != nil {
		t.Fatal(err)
	}
	c.Advance(31 * time.Second) // ls[2]'s lease expires; ls[1]'s backoff (1s) passes
	if err := m.Tick(ctx, "jobs"); err != nil {
		t.Fatal(err)
	}
	st, _ = m.Stats("jobs")
	if st.Leased != 0 || st.Hot != 2 || st.Overflow != 0 || st.Delayed != 1 || st.Retried != 2 {
		t.Fatalf("after expiry: %+v", st)
	}
	info, err := m.Get(ctx, "jobs", ls[0].ID)
	if err != nil || info.State != "done" || string(info.Result) != "ok" {
		t.Fatalf("done task: %+v %v", info, err)
	}
	rep, err := d.Check(ctx, nil)
	if err != nil || !rep.OK() {
		t.Fatalf("check: %+v %v", rep.Problems, err)
	}
}

// liveQueue opens a store on disk with a Manager whose ticker runs, and
// creates queue name with one-hour leases; both close when the test ends.
func liveQueue(t *testing.T, name string) *Manager {
	t.Helper()
	d := testutil.Open(t, t.TempDir(), testutil.StoreOptions(nil, nil))
	t.Cleanup(func() { d.Close() })
	m, err := Attach(d, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	if err := m.Create(context.Background(), Config{Name: name, LeaseDuration: time.Hour}); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestLeaseWaitNeverStrands drains a queue with consumers whose LeaseWait
// deadlines keep expiring while leases are being proposed. A lease proposed
// under an expiring deadline must still reach its caller: with a one-hour
// lease, a stranded task would never be acknowledged.
func TestLeaseWaitNeverStrands(t *testing.T) {
	ctx := context.Background()
	m := liveQueue(t, "b")
	const n = 1500
	var done atomic.Int64
	var wg sync.WaitGroup
	deadline := time.Now().Add(60 * time.Second)
	for c := 0; c < 8; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			for done.Load() < n && time.Now().Before(deadline) {
				lctx, cancel := context.WithTimeout(ctx, time.Duration(1+c)*time.Millisecond)
				ls, err := m.LeaseWait(lctx, "b", fmt.Sprint(c), 32, nil, 0)
				cancel()
				if err != nil && !errors.Is(err, context.DeadlineExceeded) {
					t.Error(err)
					return
				}
				for _, l := range ls {
					if err := m.Ack(ctx, "b", l.ID, l.Token, nil); err != nil {
						t.Error(err)
						return
					}
					done.Add(1)
				}
			}
		}(c)
	}
	for i := 0; i < n; i++ {
		if _, err := m.Enqueue(ctx, "b", Task{Payload: []byte("x")}); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	if st, _ := m.Stats("b"); done.Load() != n || st.Leased != 0 {
		t.Fatalf("acked %d of %d; %d tasks stranded in leases nobody received", done.Load(), n, st.Leased)
	}
}

// TestLeaseWaitNoHerd: consumers blocked in LeaseWait do not each write
// a lease record when one task arrives: only those that may find a task
// propose. 8 consumers, 200 tasks enqueued one at a time, each acked: at
// most a few records per task beyond its enqueue, lease and ack (before,
// every waiting consumer proposed a lease for every task: about 10).
func TestLeaseWaitNoHerd(t *testing.T) {
	ctx := context.Background()
	m := liveQueue(t, "h")
	const n, consumers = 200, 8
	var done atomic.Int64
	var wg sync.WaitGroup
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for c := range consumers {
		wg.Go(func() {
			for cctx.Err() == nil {
				ls, err := m.LeaseWait(cctx, "h", fmt.Sprint(c), 32, nil, 0)
				if err != nil {
					return
				}
				for _, l := range ls {
					if err := m.Ack(ctx, "h", l.ID, l.Token, nil); err != nil {
						t.Error(err)
					}
					done.Add(1)
				}
			}
		})
	}
	time.Sleep(50 * time.Millisecond) // every consumer waits
	before := m.d.Metrics().Records
	for i := range n {
		if _, err := m.Enqueue(ctx, "h", Task{Payload: []byte("x")}); err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(10 * time.Second); done.Load() < int64(i+1); { // one task at a time
			if time.Now().After(deadline) {
				t.Fatalf("task %d not acked after 10s: stranded", i)
			}
			time.Sleep(100 * time.Microsecond)
		}
	}
	records := m.d.Metrics().Records - before
	cancel()
	wg.Wait()
	if st, _ := m.Stats("h"); done.Load() != n || st.Leased != 0 || st.Hot+st.Overflow != 0 {
		t.Fatalf("acked %d of %d, stats %+v", done.Load(), n, st)
	}
	if perTask := float64(records) / n; perTask > 4 {
		t.Fatalf("%d records for %d tasks (%.1f per task), want at most 4: waiting consumers propose leases that cannot find a task", records, n, perTask)
	}
	t.Logf("%d records for %d tasks", records, n)
}

// TestIdempotencyKeysReclaimed: keys are honoured within the window, then
// reclaimed by a tick; a key re-used after its window keeps its new entry.
func TestIdempotencyKeysReclaimed(t *testing.T) {
	ctx := context.Background()
	c := testutil.NewClock()
	d, m := openQ(t, vfs.NewMem(), c)
	defer d.Close()
	if err := m.Create(ctx, Config{Name: "q", IdempotencyWindow: time.Minute}); err != nil {
		t.Fatal(err)
	}
	a, _ := m.Enqueue(ctx, "q", Task{IdempotencyKey: "a"})
	b, _ := m.Enqueue(ctx, "q", Task{IdempotencyKey: "b"})
	if again, _ := m.Enqueue(ctx, "q", Task{IdempotencyKey: "a"}); again != a {
		t.Fatalf("within the window: id %d, want %d", again, a)
	}
	c.Advance(2 * time.Minute)
	a2, _ := m.Enqueue(ctx, "q", Task{IdempotencyKey: "a"}) // after the window: a new task
	if a2 == a {
		t.Fatal("key honoured after its window")
	}
	if err := m.Tick(ctx, "q"); err != nil {
		t.Fatal(err)
	}
	rep, err := d.Check(ctx, nil)
	if err != nil || !rep.OK() {
		t.Fatalf("check: %v %+v", err, rep.Problems)
	}
	if rep.ByTable["queue.idem"] != 1 || rep.ByTable["queue.idem_at"] != 1 { // only the re-used "a"
		t.Fatalf("idempotency entries after reclaim: %d keys, %d time entries", rep.ByTable["queue.idem"], rep.ByTable["queue.idem_at"])
	}
	if again, _ := m.Enqueue(ctx, "q", Task{IdempotencyKey: "a"}); again != a2 {
		t.Fatalf("re-used key lost: %d, want %d", again, a2)
	}
	if nb, _ := m.Enqueue(ctx, "q", Task{IdempotencyKey: "b"}); nb == b {
		t.Fatal("reclaimed key still honoured")
	}
}

// TestAckDeletesBody checks that an acked task keeps its state and result
// but not its body, that Check accepts a done task with or without a body
// (stores written before Ack deleted it keep theirs) and still reports any
// other task whose body is missing.
func TestAckDeletesBody(t *testing.T) {
	ctx := context.Background()
	c := testutil.NewClock()
	d, m := openQ(t, vfs.NewMem(), c)
	defer d.Close()
	defer m.Close()
	if err := m.Create(ctx, Config{Name: "jobs"}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"first", "second"} {
		if _, err := m.Enqueue(ctx, "jobs", Task{Payload: []byte(p), Tags: []string{"t"}}); err != nil {
			t.Fatal(err)
		}
	}
	ls, err := m.Lease(ctx, "jobs", "a", 2, nil, 0)
	if err != nil || len(ls) != 2 {
		t.Fatalf("lease: %v %v", ls, err)
	}
	done, leased := ls[0], ls[1]
	if err := m.Ack(ctx, "jobs", done.ID, done.Token, []byte("result")); err != nil {
		t.Fatal(err)
	}
	info, err := m.Get(ctx, "jobs", done.ID)
	if err != nil || info.State != "done" || string(info.Result) != "result" || info.Agent != "a" || info.Finished.IsZero() {
		t.Fatalf("done task: %+v %v", info, err)
	}
	if info.Payload != nil || info.Tags != nil || !info.Enqueued.IsZero() {
		t.Fatalf("done task kept its body: %+v", info)
	}
	shard := d.Placement().ShardFor("jobs")
	bodyKey := func(id uint64) []byte { return keys.NameKey(shard, keys.TableQueueTask, "jobs", be64(id)) }
	if _, _, err := d.Pebble().Get(bodyKey(done.ID)); !errors.Is(err, pebble.ErrNotFound) {
		t.Fatalf("body of the acked task: %v, want ErrNotFound", err)
	}
	if info, err := m.Get(ctx, "jobs", leased.ID); err != nil || string(info.Payload) != "second" || len(info.Tags) != 1 {
		t.Fatalf("leased task: %+v %v", info, err)
	}
	check := func(want string) {
		t.Helper()
		rep, err := d.Check(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case want == "" && !rep.OK():
			t.Fatalf("check: %+v", rep.Problems)
		case want != "" && (len(rep.Problems) != 1 || !strings.Contains(rep.Problems[0].Err, want)):
			t.Fatalf("check: %+v, want one problem with %q", rep.Problems, want)
		}
	}
	check("")
	// A done task written by an older version, body and all.
	old := (&task{prio: 0, enq: 1, payload: []byte("first"), tags: [][]byte{[]byte("t")}}).encodeBody(nil)
	if err := d.Pebble().Set(bodyKey(done.ID), old, pebble.Sync); err != nil {
		t.Fatal(err)
	}
	check("")
	if info, err := m.Get(ctx, "jobs", done.ID); err != nil || info.State != "done" || string(info.Payload) != "first" {
		t.Fatalf("done task with an old body: %+v %v", info, err)
	}
	// A leased task without its body is damage.
	if err := d.Pebble().Delete(bodyKey(leased.ID), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	check(fmt.Sprintf("task %d has a state but no body", leased.ID))
	if _, err := m.Get(ctx, "jobs", leased.ID); !errors.Is(err, wal.ErrCorrupt) {
		t.Fatalf("leased task without a body: %v, want ErrCorrupt", err)
	}
}
