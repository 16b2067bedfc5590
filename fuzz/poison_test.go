package fuzz

import (
	"context"
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/flowdb/flowdb/db"
	"github.com/flowdb/flowdb/index/hnsw"
	"github.com/flowdb/flowdb/quant"
	"github.com/flowdb/flowdb/queue"
	"github.com/flowdb/flowdb/registry"
	"github.com/flowdb/flowdb/wal"
)

// TestPoisonRecords proposes malformed bodies of every record kind the
// engine knows (and of kinds it does not) to a store that holds state of
// every subsystem. A body that cannot decode must be rejected with a typed
// error (db.ErrBadRecord; db.ErrUnknownKind for an unknown kind); a random
// body is applied or rejected with a typed error; and after every one the
// engine keeps accepting writes and the store passes Check (env.apply).
// One store takes them all in turn, so a poison record that stopped the
// engine would fail every check after it.
func TestPoisonRecords(t *testing.T) {
	h := newHarness(t, func(ctx context.Context, e *env) error {
		if err := e.d.Set(ctx, "ns", []byte("k"), []byte("v")); err != nil {
			return err
		}
		if err := e.q.Create(ctx, queue.Config{Name: "q", HotCapacity: 2}); err != nil {
			return err
		}
		if _, err := e.q.Enqueue(ctx, "q", queue.Task{Payload: []byte("t")}); err != nil {
			return err
		}
		if err := e.r.Register(ctx, registry.AgentSpec{ID: "a", Capacity: 1}); err != nil {
			return err
		}
		if err := e.v.Create(ctx, hnsw.Config{Name: "v", Dim: 2, Metric: quant.L2, TrainSize: 2}); err != nil {
			return err
		}
		return e.v.Upsert(ctx, "v", []hnsw.Vector{{ID: 1, Values: []float32{1, 2}}, {ID: 2, Values: []float32{2, 1}}})
	})
	e := h.fresh(t)
	var kinds []wal.Kind
	kinds = append(kinds, db.KindKVBatch, db.KindKVExpire, db.KindTxn, db.KindKVRequire)
	for k := queue.KindCreate; k <= queue.KindRelease; k++ {
		kinds = append(kinds, k)
	}
	for k := registry.KindRegister; k <= registry.KindPoolDelete; k++ {
		kinds = append(kinds, k)
	}
	for k := hnsw.KindCreate; k <= hnsw.KindDrop; k++ {
		kinds = append(kinds, k)
	}
	typed := []error{queue.ErrNotFound, queue.ErrFull, queue.ErrLeaseLost, queue.ErrCanceled, queue.ErrExists,
		registry.ErrNotFound, hnsw.ErrNoCollection, hnsw.ErrExists, hnsw.ErrInvalid, hnsw.ErrDimension,
		hnsw.ErrNotFinite, hnsw.ErrZeroVector, db.ErrConditionFailed, db.ErrTxnTooLarge, db.ErrIdempotencyKeyReused}
	undecodable := [][]byte{nil, {0xff}, {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}}
	rng := rand.New(rand.NewPCG(32, 4))
	applied, rejected := 0, 0
	for _, k := range kinds {
		for _, body := range undecodable {
			if err := e.apply(t, k, body); !errors.Is(err, db.ErrBadRecord) {
				t.Fatalf("kind %d body %x: want db.ErrBadRecord, got %v", k, body, err)
			}
			rejected++
		}
		for range 20 {
			body := make([]byte, rng.IntN(48))
			for i := range body {
				body[i] = byte(rng.IntN(256))
			}
			if err := e.apply(t, k, body, typed...); err != nil {
				rejected++
			} else {
				applied++
			}
		}
	}
	for _, k := range []wal.Kind{5, 99, 113, 206, 305, 400, 0xffff} {
		if err := e.apply(t, k, []byte{1, 2, 3}, db.ErrUnknownKind); !errors.Is(err, db.ErrUnknownKind) {
			t.Fatalf("unknown kind %d: want db.ErrUnknownKind, got %v", k, err)
		}
	}
	// The subsystems' own calls still work.
	ctx := context.Background()
	if _, err := e.q.Enqueue(ctx, "q", queue.Task{Payload: []byte("after")}); err != nil && !errors.Is(err, queue.ErrNotFound) {
		t.Fatalf("enqueue after the poison records: %v", err)
	}
	t.Logf("%d kinds: %d bodies rejected with typed errors, %d random bodies applied", len(kinds), rejected, applied)
}
