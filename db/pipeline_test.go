package db

import (
	"context"
	"encoding/binary"
	"errors"
	"log/slog"
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
	d, err := Open(t.TempDir(), &Options{Logger: slog.New(slog.DiscardHandler), TTLReapInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
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
	if err := d.Register(KindSpec{Kind: kindIncr, Name: "test.incr", Reads: true, Apply: incr}); err != nil {
		t.Fatal(err)
	}
	if err := d.Register(KindSpec{Kind: kindNote, Name: "test.note", Apply: write}); err != nil {
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
