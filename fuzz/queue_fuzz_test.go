package fuzz

import (
	"context"
	"testing"

	"github.com/flowdb/flowdb/queue"
	"github.com/flowdb/flowdb/wal"
)

// FuzzQueueRecord applies an arbitrary body of a queue record kind to a
// fresh copy of a store holding one queue with two tasks (harness): it is
// applied or rejected with a typed error, never a panic, the engine keeps
// working and the store passes Check.
func FuzzQueueRecord(f *testing.F) {
	h := newHarness(f, func(ctx context.Context, e *env) error {
		if err := e.q.Create(ctx, queue.Config{Name: "q", HotCapacity: 2}); err != nil {
			return err
		}
		_, err := e.q.EnqueueBatch(ctx, "q", []queue.Task{{Payload: []byte("a"), Priority: 3}, {Payload: []byte("b")}})
		return err
	})
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
		e := h.fresh(t)
		e.apply(t, queue.KindCreate+wal.Kind(kind%13), body, queue.ErrNotFound, queue.ErrFull,
			queue.ErrLeaseLost, queue.ErrCanceled, queue.ErrExists)
	})
}
