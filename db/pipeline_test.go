package db

import (
	"context"
	"encoding/binary"
	"errors"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/flowdb/flowdb/wal"
)

// TestApplyReadsEarlierFrames checks that a record which reads state sees
// every frame before it, although stage A applies a frame while stage B is
// still writing the previous one: 64 goroutines increment one counter
// through a kind that reads it, with stage B slowed down, and every
// increment must return a distinct value, the last one equal to their
// count.
func TestApplyReadsEarlierFrames(t *testing.T) {
	testWriteHook = func() { time.Sleep(300 * time.Microsecond) }
	defer func() { testWriteHook = nil }()
	d := openTestStore(t, t.TempDir(), nil)
	defer d.Close()
	const kindIncr, kindNote wal.Kind = 200, 201
	ctr := []byte("\x00\x00\x00\x00\xf0counter")
	note := []byte("\x00\x00\x00\x00\xf0note")
	incr := func(tx *Tx, rec wal.Record) (wal.Result, error) {
		var n uint64
		v, c, err := tx.Get(ctr)
		switch {
		case err == nil:
			n = binary.BigEndian.Uint64(v)
			c.Close()
		case !errors.Is(err, pebble.ErrNotFound):
			return wal.Result{}, err
		}
		n++
		return wal.Result{N: n}, tx.Set(ctr, binary.BigEndian.AppendUint64(nil, n))
	}
	// A kind that reads nothing: frames of it alone are not indexed, and
	// frames mixing it with increments read only when the increment does.
	write := func(tx *Tx, rec wal.Record) (wal.Result, error) {
		return wal.Result{N: 1}, tx.Set(note, rec.Body)
	}
	if err := d.Attach(Machine{Name: "test", Kinds: []KindSpec{
		{Kind: kindIncr, Name: "test.incr", Reads: true, Apply: incr},
		{Kind: kindNote, Name: "test.note", Apply: write},
	}}); err != nil {
		t.Fatal(err)
	}
	const workers, each = 64, 40
	var (
		mu  sync.Mutex
		got []uint64
		wg  sync.WaitGroup
	)
	errc := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if w%4 == 0 {
					if _, err := d.Propose(context.Background(), wal.Record{Kind: kindNote, Body: []byte{byte(i)}}); err != nil {
						errc <- err
						return
					}
				}
				r, err := d.Propose(context.Background(), wal.Record{Kind: kindIncr})
				if err != nil {
					errc <- err
					return
				}
				mu.Lock()
				got = append(got, r.N)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	slices.Sort(got)
	for i, n := range got {
		if n != uint64(i+1) {
			t.Fatalf("increment results, sorted, hold %d at position %d (want %d): a read missed an earlier frame", n, i, i+1)
		}
	}
	m := d.Metrics()
	t.Logf("%d increments in %d frames (%.1f records/frame)", len(got), m.Frames, m.RecordsPerFrame)
}

// TestFrameReadsOwnWrites checks the lazily indexed batch: a frame starts
// without an index, and a record that reads must see what earlier records of
// the same frame wrote (through Get and through an iterator), while the
// records after that read still land in the batch that is committed.
func TestFrameReadsOwnWrites(t *testing.T) {
	d := openTestStore(t, t.TempDir(), nil)
	defer d.Close()
	const kindPut, kindRead wal.Kind = 202, 203
	prefix := []byte("\x00\x00\x00\x00\xf0own/")
	// put writes prefix+body[0] = body.
	put := func(tx *Tx, rec wal.Record) (wal.Result, error) {
		return wal.Result{N: 1}, tx.Set(append(slices.Clone(prefix), rec.Body[0]), rec.Body)
	}
	// read returns the value of prefix+body[0] and, in N, how many keys
	// the prefix holds.
	read := func(tx *Tx, rec wal.Record) (wal.Result, error) {
		var r wal.Result
		v, c, err := tx.Get(append(slices.Clone(prefix), rec.Body[0]))
		switch {
		case err == nil:
			r.Data = slices.Clone(v)
			c.Close()
		case !errors.Is(err, pebble.ErrNotFound):
			return r, err
		}
		it, err := tx.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: append(slices.Clone(prefix), 0xff)})
		if err != nil {
			return r, err
		}
		for it.First(); it.Valid(); it.Next() {
			r.N++
		}
		return r, it.Close()
	}
	if err := d.Attach(Machine{Name: "test", Kinds: []KindSpec{
		{Kind: kindPut, Name: "test.put", Apply: put},
		{Kind: kindRead, Name: "test.read", Reads: true, Apply: read},
	}}); err != nil {
		t.Fatal(err)
	}
	// A private applier over the store, as in applyAll: one frame, its
	// records in a fixed order.
	a := applier{reg: &d.reg, placement: d.placement}
	f := &wal.Frame{Time: 1, Records: []wal.Record{
		{Kind: kindPut, Body: []byte("a1")},
		{Kind: kindPut, Body: []byte("b1")},
		{Kind: kindRead, Body: []byte("a")},
		{Kind: kindPut, Body: []byte("a2")}, // after the first read
		{Kind: kindPut, Body: []byte("c1")},
		{Kind: kindRead, Body: []byte("a")},
	}}
	results := make([]wal.Result, len(f.Records))
	b, _, err := a.applyFrame(d.pdb.NewBatch(), d.pdb, 1, f, nil, results)
	if err != nil {
		t.Fatal(err)
	}
	if !b.Indexed() {
		t.Error("a frame that read is committed from a batch without an index")
	}
	for i, want := range map[int]wal.Result{2: {N: 2, Data: []byte("a1")}, 5: {N: 3, Data: []byte("a2")}} {
		if got := results[i]; got.N != want.N || string(got.Data) != string(want.Data) {
			t.Errorf("read %d: got %d keys, value %q; want %d, %q", i, got.N, got.Data, want.N, want.Data)
		}
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		t.Fatal(err)
	}
	a.committed()
	// The applied index, written after the records, went into the same
	// batch.
	if index, _, err := readApplied(d.pdb, 0); err != nil || index != 1 {
		t.Errorf("applied index after commit = %d, %v; want 1", index, err)
	}
	for k, want := range map[byte]string{'a': "a2", 'b': "b1", 'c': "c1"} {
		v, c, err := d.pdb.Get(append(slices.Clone(prefix), k))
		if err != nil {
			t.Fatalf("key %c after commit: %v", k, err)
		}
		if string(v) != want {
			t.Errorf("key %c after commit = %q, want %q", k, v, want)
		}
		c.Close()
	}

	// A frame that never reads stays on its batch, unindexed.
	f = &wal.Frame{Time: 2, Records: []wal.Record{{Kind: kindPut, Body: []byte("d1")}}}
	nb := d.pdb.NewBatch()
	b, _, err = a.applyFrame(nb, d.pdb, 2, f, nil, results[:1])
	if err != nil {
		t.Fatal(err)
	}
	if b != nb || b.Indexed() {
		t.Error("a frame that read nothing was moved to another batch")
	}
	b.Close()
}

// TestHooksMayTakeApplyLocks checks that the pipeline cannot deadlock when
// an AfterCommit hook takes a lock that Apply holds while it reads (the
// queue's hooks wake waiters under the Manager's lock). Apply waits at its
// first read for stage B; B must then never wait for the acker, which may
// be inside such a hook, waiting for Apply to let go of the lock. The
// stages are made one frame deep and the acker slow, so that B runs ahead
// of it as far as it can.
func TestHooksMayTakeApplyLocks(t *testing.T) {
	depth := pipeDepth
	pipeDepth = 1
	testSyncHook = func() { time.Sleep(time.Millisecond) }
	defer func() { pipeDepth, testSyncHook = depth, nil }()
	d := openTestStore(t, t.TempDir(), nil)
	// Closed only if the test gets through: Close would wait for a
	// deadlocked pipeline.
	const kindLocked wal.Kind = 202
	var mu sync.Mutex // stands for a state machine's lock
	key := []byte("\x00\x00\x00\x00\xf0locked")
	apply := func(tx *Tx, rec wal.Record) (wal.Result, error) {
		mu.Lock()
		defer mu.Unlock()
		if _, c, err := tx.Get(key); err == nil {
			c.Close()
		} else if !errors.Is(err, pebble.ErrNotFound) {
			return wal.Result{}, err
		}
		tx.AfterCommit(func() {
			// Taking the lock is the test: it deadlocks if AfterCommit
			// runs while apply still holds it.
			mu.Lock()
			//lint:ignore SA2001 taking the lock is what the test checks
			mu.Unlock()
		})
		return wal.Result{N: 1}, tx.Set(key, rec.Body)
	}
	if err := d.Attach(Machine{Name: "test", Kinds: []KindSpec{{Kind: kindLocked, Name: "test.locked", Reads: true, Apply: apply}}}); err != nil {
		t.Fatal(err)
	}
	const workers, each = 16, 100
	var wg sync.WaitGroup
	errc := make(chan error, workers)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if _, err := d.Propose(context.Background(), wal.Record{Kind: kindLocked, Body: []byte{byte(i)}}); err != nil {
					errc <- err
					return
				}
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		buf := make([]byte, 1<<20)
		t.Fatalf("%d proposals not answered after 30 s: the pipeline is deadlocked\n%s", workers*each, buf[:runtime.Stack(buf, true)])
	}
	close(errc)
	for err := range errc {
		t.Error(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestAckQueue checks the acker's queue: frames come out in the order they
// went in, pop waits for a push and ends after close once drained, and a
// queue that is never drained (B always a few frames ahead) stays as long
// as what it holds.
func TestAckQueue(t *testing.T) {
	a := newAckQueue()
	var in, out uint64
	for range 100_000 {
		for range 3 {
			in++
			a.push(&inflight{index: in})
		}
		for range 2 {
			fl, ok := a.pop()
			out++
			if !ok || fl.index != out {
				t.Fatalf("pop: got %v %v, want index %d", fl, ok, out)
			}
		}
		// hold back a growing number of frames, then drain to a few
		if in-out > 1000 {
			for in-out > 5 {
				fl, _ := a.pop()
				out++
				if fl.index != out {
					t.Fatalf("pop: index %d, want %d", fl.index, out)
				}
			}
		}
	}
	if n := len(a.q); n > 4*int(in-out)+512 {
		t.Fatalf("queue holds %d frames and its slice is %d long", in-out, n)
	}
	got := make(chan uint64)
	go func() {
		for {
			fl, ok := a.pop()
			if !ok {
				close(got)
				return
			}
			got <- fl.index
		}
	}()
	in++
	a.push(&inflight{index: in})
	a.close()
	for idx := range got {
		out++
		if idx != out {
			t.Fatalf("after close: index %d, want %d", idx, out)
		}
	}
	if out != in {
		t.Fatalf("after close: %d of %d frames came out", out, in)
	}
}
