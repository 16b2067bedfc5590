package fuzz

import (
	"context"
	"errors"
	"log/slog"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/flowdb/flowdb/db"
	"github.com/flowdb/flowdb/queue"
	"github.com/flowdb/flowdb/wal"
)

// FuzzQueueRecord applies arbitrary bodies of every queue record kind through
// a live store: each is applied or rejected with a typed error, never a
// panic; the applied index advances; and the store stays consistent (Check).
func FuzzQueueRecord(f *testing.F) {
	d, err := db.Open("/fq", &db.Options{FS: vfs.NewMem(), Logger: slog.New(slog.DiscardHandler),
		TTLReapInterval: -1, Durability: db.NoSync})
	if err != nil {
		f.Fatal(err)
	}
	defer d.Close()
	m, err := queue.Attach(d, &queue.Options{TickInterval: -1})
	if err != nil {
		f.Fatal(err)
	}
	defer m.Close()
	ctx := context.Background()
	if err := m.Create(ctx, queue.Config{Name: "q", HotCapacity: 2}); err != nil {
		f.Fatal(err)
	}
	if _, err := m.EnqueueBatch(ctx, "q", []queue.Task{{Payload: []byte("a"), Priority: 3}, {Payload: []byte("b")}}); err != nil {
		f.Fatal(err)
	}
	// Seeds: real bodies of each kind, captured from the log encodings.
	f.Add(uint8(1), []byte("\x01q\x01\x03\x00\x00\x00\x00\x01x"))        // enqueue
	f.Add(uint8(2), []byte("\x01q\x02a1\x02\x00\x00"))                   // lease
	f.Add(uint8(4), []byte("\x01q\x01\x05\x00"))                         // ack
	f.Add(uint8(6), []byte("\x01q\x01"))                                 // cancel
	f.Add(uint8(7), []byte("\x01q\x07"))                                 // tick
	f.Add(uint8(8), []byte("\x01q\x01\x02"))                             // replay
	f.Add(uint8(0), []byte("\x01x\x04\x08\x00\x00\x00\x00\x00\x00\x00")) // create
	f.Add(uint8(11), []byte("\x01q\x00\x01\x01\x03\x02\x02a1\x04"))      // assign
	f.Add(uint8(12), []byte("\x01q\x02a1\x04gone\x07"))                  // release
	f.Fuzz(func(t *testing.T, kind uint8, body []byte) {
		k := queue.KindCreate + wal.Kind(kind%13)
		before := d.AppliedIndex()
		_, err := d.Propose(ctx, wal.Record{Kind: k, Body: body})
		if err != nil && !errors.Is(err, db.ErrBadRecord) && !errors.Is(err, queue.ErrNotFound) &&
			!errors.Is(err, queue.ErrFull) && !errors.Is(err, queue.ErrLeaseLost) &&
			!errors.Is(err, queue.ErrCanceled) && !errors.Is(err, queue.ErrExists) {
			t.Fatalf("kind %d body %x: untyped error %v", k, body, err)
		}
		if d.AppliedIndex() != before+1 {
			t.Fatalf("applied index %d -> %d", before, d.AppliedIndex())
		}
		// The store grows with every input: walk it every 64th.
		if d.AppliedIndex()%64 != 0 {
			return
		}
		if rep, err := d.Check(ctx, nil); err != nil || !rep.OK() {
			t.Fatalf("kind %d body %x left the store damaged: %v %+v", k, body, err, rep.Problems)
		}
	})
}
