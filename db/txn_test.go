package db_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/flowdb/flowdb/db"
	"github.com/flowdb/flowdb/internal/testutil"
	"github.com/flowdb/flowdb/wal"
)

func TestTxnKVCommitAndConditions(t *testing.T) {
	ctx := context.Background()
	d := testutil.OpenMem(t, testutil.NewClock())

	tx := d.NewTxn()
	tx.RequireAbsent("ns", []byte("a"))
	tx.Set("ns", []byte("a"), []byte("1"))
	tx.Set("other", []byte("b"), []byte("2"))
	tx.Require("ns", []byte("a"), []byte("1")) // sees the write before it
	if err := d.CommitTxn(ctx, tx); err != nil {
		t.Fatal(err)
	}
	if len(tx.Results()) != 4 || tx.Index() == 0 {
		t.Fatalf("results %v index %d", tx.Results(), tx.Index())
	}
	for _, kv := range [][3]string{{"ns", "a", "1"}, {"other", "b", "2"}} {
		if v, err := d.Get(ctx, kv[0], []byte(kv[1])); err != nil || string(v) != kv[2] {
			t.Fatalf("%v: %q %v", kv, v, err)
		}
	}

	// A condition that fails at the end takes back every write before it.
	tx = d.NewTxn()
	tx.Set("ns", []byte("c"), []byte("3"))
	tx.Delete("other", []byte("b"))
	tx.Require("ns", []byte("a"), []byte("wrong"))
	err := d.CommitTxn(ctx, tx)
	var te *db.TxnError
	if !errors.Is(err, db.ErrConditionFailed) || !errors.Is(err, db.ErrTxnRejected) || !errors.As(err, &te) || te.Op != 2 || te.Kind != "kv.require" {
		t.Fatalf("want condition failure at op 2, got %v (%+v)", err, te)
	}
	if _, err := d.Get(ctx, "ns", []byte("c")); !errors.Is(err, db.ErrNotFound) {
		t.Fatalf("refused transaction's set is visible: %v", err)
	}
	if v, err := d.Get(ctx, "other", []byte("b")); err != nil || string(v) != "2" {
		t.Fatalf("refused transaction's delete applied: %q %v", v, err)
	}
	tx = d.NewTxn()
	tx.RequirePresent("ns", []byte("zz"))
	if err := d.CommitTxn(ctx, tx); !errors.Is(err, db.ErrConditionFailed) {
		t.Fatal(err)
	}
}

func TestTxnBuildErrors(t *testing.T) {
	ctx := context.Background()
	d := testutil.OpenMem(t, testutil.NewClock())
	var te *db.TxnError
	tx := d.NewTxn()
	tx.Set("ns", []byte("k"), []byte("v"))
	tx.Set("ns", nil, []byte("v"))
	tx.Set("ns", []byte("k2"), []byte("v")) // ignored after the first error
	if err := d.CommitTxn(ctx, tx); !errors.Is(err, db.ErrEmptyKey) || !errors.As(err, &te) || te.Op != 1 {
		t.Fatalf("got %v", err)
	}
	if _, err := d.Get(ctx, "ns", []byte("k")); !errors.Is(err, db.ErrNotFound) {
		t.Fatalf("a transaction with a bad operation applied: %v", err)
	}
	if err := d.CommitTxn(ctx, d.NewTxn()); !errors.Is(err, db.ErrEmptyTxn) {
		t.Fatalf("empty: %v", err)
	}
	tx = d.NewTxn()
	for i := 0; i <= db.MaxTxnOps; i++ {
		tx.Set("ns", []byte(fmt.Sprint(i)), nil)
	}
	if err := d.CommitTxn(ctx, tx); !errors.Is(err, db.ErrTxnTooLarge) || !errors.As(err, &te) || te.Op != db.MaxTxnOps {
		t.Fatalf("too many ops: %v", err)
	}
	tx = d.NewTxn()
	big := make([]byte, db.MaxValueSize)
	for i := 0; i < 3; i++ {
		tx.Set("ns", []byte(fmt.Sprint(i)), big)
	}
	if err := d.CommitTxn(ctx, tx); !errors.Is(err, db.ErrTxnTooLarge) {
		t.Fatalf("too many bytes: %v", err)
	}
	tx = d.NewTxn()
	tx.SetIdempotencyKey(string(make([]byte, db.MaxIdempotencyKeySize+1)))
	tx.Set("ns", []byte("k"), nil)
	if err := d.CommitTxn(ctx, tx); !errors.Is(err, db.ErrTxnTooLarge) {
		t.Fatalf("long idempotency key: %v", err)
	}
}

// A raw transaction record holding a kind that may not be part of one, or
// bytes that do not decode, is refused whole with a typed error.
func TestTxnRejectsBadRecords(t *testing.T) {
	ctx := context.Background()
	d := testutil.OpenMem(t, testutil.NewClock())
	good := d.NewTxn()
	good.Set("ns", []byte("k"), []byte("v"))
	rec, err := good.Record()
	if err != nil {
		t.Fatal(err)
	}
	_, ops, err := db.DecodeTxn(rec.Body)
	if err != nil || len(ops) != 1 || ops[0].Kind != db.KindKVBatch {
		t.Fatalf("decode: %v %v", ops, err)
	}
	nested := append([]byte{0, 2}, 0)
	nested = append(nested, encodeOp(db.KindKVBatch, ops[0].Body)...)
	nested = append(nested, encodeOp(db.KindTxn, rec.Body)...)
	for name, body := range map[string][]byte{
		"nested":    nested,
		"expire":    append([]byte{0, 1}, encodeOp(db.KindKVExpire, []byte{0})...),
		"unknown":   append([]byte{0, 1}, encodeOp(999, nil)...),
		"truncated": rec.Body[:len(rec.Body)-1],
		"empty":     {0, 0},
	} {
		_, err := d.Propose(ctx, wal.Record{Kind: db.KindTxn, Body: body})
		if !errors.Is(err, db.ErrBadRecord) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := d.Get(ctx, "ns", []byte("k")); !errors.Is(err, db.ErrNotFound) {
		t.Fatalf("a refused record applied: %v", err)
	}
}

func encodeOp(k wal.Kind, body []byte) []byte {
	b := []byte{byte(k)}
	if k >= 128 {
		b = []byte{byte(k) | 0x80, byte(k >> 7)}
	}
	b = append(b, byte(len(body)))
	return append(b, body...)
}

func TestTxnIdempotencyKey(t *testing.T) {
	ctx := context.Background()
	clock := testutil.NewClock()
	d := testutil.OpenMem(t, clock)
	mk := func(key string) *db.Txn {
		tx := d.NewTxn()
		tx.SetIdempotencyKey(key)
		tx.RequireAbsent("ns", []byte("once"))
		tx.Set("ns", []byte("once"), []byte("1"))
		return tx
	}
	if err := d.CommitTxn(ctx, mk("step-1")); err != nil {
		t.Fatal(err)
	}
	// A retry gets the first outcome (success), although applying it again
	// would fail its condition.
	retry := mk("step-1")
	if err := d.CommitTxn(ctx, retry); err != nil {
		t.Fatalf("retry: %v", err)
	}
	if len(retry.Results()) != 2 {
		t.Fatalf("retry results %v", retry.Results())
	}
	// Another key applies (and fails its condition); its retry fails alike.
	for range 2 {
		if err := d.CommitTxn(ctx, mk("step-2")); !errors.Is(err, db.ErrConditionFailed) {
			t.Fatalf("step-2: %v", err)
		}
	}
	// The same key with other operations is refused.
	other := d.NewTxn()
	other.SetIdempotencyKey("step-1")
	other.Set("ns", []byte("x"), nil)
	if err := d.CommitTxn(ctx, other); !errors.Is(err, db.ErrIdempotencyKeyReused) {
		t.Fatalf("reuse: %v", err)
	}
	// After the window the key is free again: the transaction applies anew.
	clock.Advance(db.TxnIdempotencyWindow + 1)
	if err := d.Delete(ctx, "ns", []byte("once")); err != nil {
		t.Fatal(err)
	}
	if err := d.CommitTxn(ctx, mk("step-1")); err != nil {
		t.Fatal(err)
	}
	if v, err := d.Get(ctx, "ns", []byte("once")); err != nil || string(v) != "1" {
		t.Fatalf("after the window: %q %v", v, err)
	}
}

// Refused transactions in the same frames as other records take back only
// their own writes.
func TestTxnRefusalKeepsFrameNeighbours(t *testing.T) {
	ctx := context.Background()
	d := testutil.OpenMem(t, testutil.NewClock())
	var wg sync.WaitGroup
	const n = 400
	errs := make(chan error, 2*n)
	for i := range n {
		wg.Add(2)
		go func() {
			defer wg.Done()
			errs <- d.Set(ctx, "plain", []byte(fmt.Sprint(i)), []byte("v"))
		}()
		go func() {
			defer wg.Done()
			tx := d.NewTxn()
			tx.Set("txn", []byte(fmt.Sprint(i)), []byte("v"))
			tx.DeletePrefix("plain", nil)
			if i%2 == 0 {
				tx.RequirePresent("none", []byte("x"))
			}
			err := d.CommitTxn(ctx, tx)
			if i%2 == 0 && !errors.Is(err, db.ErrConditionFailed) {
				errs <- fmt.Errorf("txn %d: %v", i, err)
			} else if i%2 == 1 && err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < n; i += 2 {
		if _, err := d.Get(ctx, "txn", []byte(fmt.Sprint(i))); !errors.Is(err, db.ErrNotFound) {
			t.Fatalf("refused txn %d visible: %v", i, err)
		}
		if _, err := d.Get(ctx, "txn", []byte(fmt.Sprint(i+1))); err != nil {
			t.Fatalf("committed txn %d: %v", i+1, err)
		}
	}
}
