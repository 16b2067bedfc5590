package fuzz

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/cockroachdb/pebble/v2"
	"github.com/flowdb/flowdb/db"
	"github.com/flowdb/flowdb/index/hnsw"
	"github.com/flowdb/flowdb/internal/keys"
	"github.com/flowdb/flowdb/quant"
	"github.com/flowdb/flowdb/queue"
	"github.com/flowdb/flowdb/registry"
	"github.com/flowdb/flowdb/wal"
)

// FuzzTxnRecord feeds an arbitrary body to the transaction record decoder
// (db.DecodeTxn) and applies it as a KindTxn record to a fresh copy of a
// store holding a little of every subsystem (harness): a queue with a
// leased and a ready task, a collection, an agent and a key.
//
//   - DecodeTxn never panics; a body it refuses matches db.ErrBadRecord;
//     one it accepts re-encodes (db.Txn.Record) to a body that decodes to
//     the same key and operations (decode-reencode-decode).
//   - Applied, the record is committed or refused with a typed error, never
//     a panic; the applied index advances; the engine still accepts a
//     write; the store passes Check (env.apply's rules).
//   - A refused transaction changes nothing: every shard's state (the
//     command log, the applied index and the idempotency keys' bookkeeping
//     aside) and the in-memory views (the queue's counters, the registry,
//     the collection's size and search results) are as before.
func FuzzTxnRecord(f *testing.F) {
	var lease queue.Lease
	h := newHarness(f, func(ctx context.Context, e *env) error {
		if err := e.q.Create(ctx, queue.Config{Name: "q", HotCapacity: 4, OverflowCapacity: 2}); err != nil {
			return err
		}
		if _, err := e.q.EnqueueBatch(ctx, "q", []queue.Task{{Payload: []byte("a"), Priority: 3}, {Payload: []byte("b")}}); err != nil {
			return err
		}
		ls, err := e.q.Lease(ctx, "q", "a1", 1, nil, time.Hour)
		if err != nil || len(ls) != 1 {
			return fmt.Errorf("lease: %v %v", ls, err)
		}
		lease = ls[0]
		if err := e.v.Create(ctx, hnsw.Config{Name: "m", Dim: 2, Metric: quant.L2, Float: true}); err != nil {
			return err
		}
		if err := e.v.Upsert(ctx, "m", []hnsw.Vector{{ID: 1, Values: []float32{1, 0}}}); err != nil {
			return err
		}
		if err := e.r.Register(ctx, registry.AgentSpec{ID: "a1", Capacity: 2}); err != nil {
			return err
		}
		return e.d.Set(ctx, "ns", []byte("k"), []byte("v"))
	})
	// Seeds: real transactions, built against a copy of the base state.
	{
		e := h.fresh(f)
		seed := func(key string, build func(tx *db.Txn)) {
			tx := e.d.NewTxn()
			tx.SetIdempotencyKey(key)
			build(tx)
			rec, err := tx.Record()
			if err != nil {
				f.Fatalf("seed: %v", err)
			}
			f.Add(rec.Body)
		}
		step := func(tx *db.Txn) {
			e.q.TxAck(tx, "q", lease.ID, lease.Token, []byte("done"))
			e.v.TxUpsert(tx, "m", hnsw.Vector{ID: 2, Values: []float32{0, 1}, Tags: []string{"t"}})
			tx.Set("ns", []byte("last"), []byte("a"))
			e.q.TxEnqueue(tx, "q", queue.Task{Payload: []byte("c")})
			e.r.TxHeartbeat(tx, "a1", 1, "busy")
		}
		seed("", step)
		seed("step-1", step)
		seed("", func(tx *db.Txn) { // refused at a stale token, after writes
			tx.Set("ns", []byte("k"), []byte("w"))
			e.q.TxEnqueue(tx, "q", queue.Task{Payload: []byte("d")})
			e.v.TxUpsert(tx, "m", hnsw.Vector{ID: 3, Values: []float32{1, 1}})
			e.q.TxAck(tx, "q", lease.ID, lease.Token+1, nil)
		})
		seed("", func(tx *db.Txn) { // refused at a condition
			tx.Delete("ns", []byte("k"))
			tx.Require("ns", []byte("k"), []byte("v"))
		})
		seed("", func(tx *db.Txn) {
			tx.RequireAbsent("ns", []byte("nope"))
			tx.RequirePresent("ns", []byte("k"))
			tx.SetTTL("ns", []byte("t"), []byte("x"), time.Minute)
			tx.DeletePrefix("ns", []byte("l"))
			e.q.TxNack(tx, "q", lease.ID, lease.Token, "again")
			e.q.TxCancel(tx, "q", lease.ID+1)
			e.v.TxDelete(tx, "m", 1, 9)
			e.r.TxRegister(tx, registry.AgentSpec{ID: "a2", Capacity: 1, Capabilities: []string{"go"}})
		})
		seed("", func(tx *db.Txn) { // a full queue, after an extend
			e.q.TxExtend(tx, "q", lease.ID, lease.Token, time.Minute)
			for range 8 {
				e.q.TxEnqueue(tx, "q", queue.Task{Payload: []byte("x")})
			}
		})
	}
	f.Add([]byte{})
	f.Add([]byte("\x00\x01\x03\x02\x00\x00")) // a transaction inside a transaction
	f.Add([]byte("\x00\x01\x63\x00"))         // an unknown kind

	f.Fuzz(func(t *testing.T, body []byte) {
		key, ops, derr := db.DecodeTxn(body)
		if derr != nil {
			if !errors.Is(derr, db.ErrBadRecord) {
				t.Fatalf("DecodeTxn(%x): untyped error %v", body, derr)
			}
		} else {
			reencodeTxn(t, body, key, ops)
		}

		e := h.fresh(t)
		before := e.state(t)
		err := e.apply(t, db.KindTxn, body, db.ErrConditionFailed, db.ErrTxnTooLarge, db.ErrEmptyTxn,
			db.ErrNotTransactional, db.ErrIdempotencyKeyReused, db.ErrKeyTooLarge, db.ErrValueTooLarge,
			db.ErrInvalidRange, queue.ErrNotFound, queue.ErrFull, queue.ErrLeaseLost, queue.ErrCanceled,
			queue.ErrExists, queue.ErrInvalid, registry.ErrNotFound, registry.ErrInvalid, hnsw.ErrNoCollection,
			hnsw.ErrInvalid, hnsw.ErrZeroVector, quant.ErrDimension, quant.ErrNotFinite)
		if err != nil {
			if after := e.state(t); after != before {
				t.Fatalf("body %x: refused (%v) yet the store changed:\nbefore %s\nafter  %s", body, err, before, after)
			}
		}
	})
}

// reencodeTxn checks decode-reencode-decode: the operations DecodeTxn
// gave, built again into a transaction, encode to a body that decodes to
// the same key and operations.
func reencodeTxn(t *testing.T, body []byte, key string, ops []wal.Record) {
	t.Helper()
	var tx db.Txn
	tx.SetIdempotencyKey(key)
	for _, op := range ops {
		tx.Add(op, nil)
	}
	rec, err := tx.Record()
	if errors.Is(err, db.ErrTxnTooLarge) {
		return // the builder counts a few bytes per operation more
	}
	if err != nil {
		t.Fatalf("DecodeTxn(%x) accepted what the builder refuses: %v", body, err)
	}
	key2, ops2, err := db.DecodeTxn(rec.Body)
	if err != nil || key2 != key || !slices.EqualFunc(ops, ops2, func(a, b wal.Record) bool {
		return a.Kind == b.Kind && string(a.Body) == string(b.Body)
	}) {
		t.Fatalf("DecodeTxn(%x) -> %q %v; re-encoded %x -> %q %v %v", body, key, ops, rec.Body, key2, ops2, err)
	}
}

// state summarises what a refused transaction must leave alone: a hash of
// every key and value in the store but the command log, the meta tables,
// the idempotency keys' bookkeeping (written whatever the outcome) and
// env.apply's probe keys, and the in-memory views.
func (e *env) state(t *testing.T) string {
	t.Helper()
	it, err := e.d.Pebble().NewIter(&pebble.IterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	h := xxhash.New()
	n := 0
	for ok := it.First(); ok; ok = it.Next() {
		_, table, _, ok := keys.Split(it.Key())
		if !ok || table == keys.TableMeta || table == keys.TableLog || table == keys.TableTxnIdem || table == keys.TableTxnIdemAt ||
			(table == keys.TableKV && bytes.Contains(it.Key(), []byte("probe-"))) {
			continue
		}
		h.Write(it.Key())
		h.Write(it.Value())
		n++
	}
	if err := it.Close(); err != nil {
		t.Fatal(err)
	}
	s := fmt.Sprintf("%d keys %x", n, h.Sum64())
	if qs, err := e.q.Stats("q"); err == nil {
		s += fmt.Sprintf(" | queue hot %d overflow %d delayed %d leased %d dead %d done %d bytes %d enqueued %d acked %d retried %d",
			qs.Hot, qs.Overflow, qs.Delayed, qs.Leased, qs.Dead, qs.Done, qs.Bytes, qs.Enqueued, qs.Acked, qs.Retried)
	} else {
		s += " | queue " + err.Error()
	}
	for _, a := range e.r.List(registry.Filter{}) {
		s += fmt.Sprintf(" | agent %s load %d status %q cap %d caps %v", a.ID, a.Load, a.Status, a.Capacity, a.Capabilities)
	}
	if vs, err := e.v.Stats("m"); err == nil {
		s += " | vectors " + strconv.FormatInt(int64(vs.Vectors), 10)
	}
	if hits, err := e.v.Search(context.Background(), "m", []float32{1, 0.5}, 10, hnsw.SearchOptions{}); err == nil {
		for _, hit := range hits {
			s += " " + strconv.FormatUint(hit.ID, 10)
		}
	} else {
		s += " search " + err.Error()
	}
	return s
}
