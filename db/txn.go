package db

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/cockroachdb/pebble/v2"
	"github.com/flowdb/flowdb/internal/codec"
	"github.com/flowdb/flowdb/internal/keys"
	"github.com/flowdb/flowdb/wal"
)

// Record kinds of transactions (wal kinds 1-99 belong to db).
const (
	// KindTxn is a transaction: a list of records of other kinds (each of a
	// kind registered with KindSpec.Txn) that apply together or not at all.
	KindTxn wal.Kind = 3
	// KindKVRequire is a condition on one key (Txn.Require,
	// Txn.RequireAbsent, Txn.RequirePresent): it changes nothing and is
	// rejected with ErrConditionFailed when the key does not hold what it
	// asks. Inside a transaction it rejects the whole transaction.
	KindKVRequire wal.Kind = 4
)

// Limits of a transaction, enforced when it is built (Txn's methods and
// CommitTxn return the typed errors) and again in apply.
const (
	// MaxTxnOps is the most operations (conditions included) in one
	// transaction.
	MaxTxnOps = 1024
	// MaxTxnBytes is the largest encoded transaction (the sum of its
	// operations' encoded sizes, 32 MiB).
	MaxTxnBytes = 32 << 20
	// MaxIdempotencyKeySize is the longest idempotency key in bytes.
	MaxIdempotencyKeySize = 256
	// TxnIdempotencyWindow is how long the outcome of a transaction that
	// carried an idempotency key is kept: a retry with the same key within
	// the window gets the first outcome (by the applying frame's time); after
	// it, the key is free again.
	TxnIdempotencyWindow = 24 * time.Hour
)

// Errors of transactions. A refused transaction's error is a *TxnError that
// matches ErrTxnRejected and the refused operation's own error.
var (
	// ErrTxnRejected: a transaction was refused and nothing of it applied.
	ErrTxnRejected = errors.New("db: transaction rejected")
	// ErrConditionFailed: a condition (Txn.Require and friends) did not hold.
	ErrConditionFailed = errors.New("db: transaction condition failed")
	// ErrTxnTooLarge: more than MaxTxnOps operations or MaxTxnBytes bytes.
	ErrTxnTooLarge = errors.New("db: transaction too large")
	// ErrEmptyTxn: a transaction with no operations.
	ErrEmptyTxn = errors.New("db: empty transaction")
	// ErrNotTransactional: a record of a kind that cannot be part of a
	// transaction (KindSpec.Txn unset: queue creation, leases, collection
	// training, another transaction, ...).
	ErrNotTransactional = errors.New("db: record kind not allowed in a transaction")
	// ErrIdempotencyKeyReused: an idempotency key seen within
	// TxnIdempotencyWindow with a transaction of other operations.
	ErrIdempotencyKeyReused = errors.New("db: idempotency key reused by a different transaction")
)

// TxnError is the error of a refused transaction: which operation was
// refused (its index in the order added, -1 for the transaction as a whole)
// and why. It matches ErrTxnRejected and Err with errors.Is.
type TxnError struct {
	Op   int
	Kind string // the refused operation's record kind name ("queue.ack")
	Err  error
}

func (e *TxnError) Error() string {
	if e.Op < 0 {
		return fmt.Sprintf("db: transaction rejected: %v", e.Err)
	}
	return fmt.Sprintf("db: transaction rejected at operation %d (%s): %v", e.Op, e.Kind, e.Err)
}

// Unwrap returns ErrTxnRejected and the cause.
func (e *TxnError) Unwrap() []error { return []error{ErrTxnRejected, e.Err} }

// Txn is a transaction being built: key-value operations and conditions
// added here, and subsystems' operations added by their own packages
// (queue.Manager.TxAck, hnsw.Manager.TxUpsert, registry.Registry.TxHeartbeat,
// ...). DB.CommitTxn commits it as one record. A Txn is not safe for
// concurrent use. The first invalid operation makes the whole transaction
// fail (Err, CommitTxn) without anything being proposed.
type Txn struct {
	ops     []txnOp
	size    int
	key     string // idempotency key
	err     error
	results []wal.Result
	index   uint64
}

type txnOp struct {
	rec  wal.Record
	done func(context.Context, wal.Result) error
}

// NewTxn returns an empty transaction.
func (d *DB) NewTxn() *Txn { return &Txn{} }

// Len returns the number of operations added.
func (t *Txn) Len() int { return len(t.ops) }

// Err returns the first error met while building the transaction (a
// *TxnError naming the operation).
func (t *Txn) Err() error { return t.err }

// SetIdempotencyKey makes the transaction exactly-once: a transaction
// committed with the same key within TxnIdempotencyWindow is not applied
// again; its commit returns the first one's outcome (results, or the
// refusal). The key is scoped to the shard the transaction applies on.
func (t *Txn) SetIdempotencyKey(key string) {
	if t.err == nil && len(key) > MaxIdempotencyKeySize {
		t.err = &TxnError{Op: -1, Err: fmt.Errorf("%w: idempotency key of %d bytes > %d", ErrTxnTooLarge, len(key), MaxIdempotencyKeySize)}
		return
	}
	t.key = key
}

// Add appends one operation: a record of a kind registered with
// KindSpec.Txn. done, if not nil, receives the operation's result once the
// transaction committed (or was answered from its idempotency key); an
// error it returns becomes CommitTxn's (ctx is CommitTxn's). Subsystem packages call Add from
// their Tx* functions; most callers never do.
func (t *Txn) Add(rec wal.Record, done func(context.Context, wal.Result) error) {
	if t.err != nil {
		return
	}
	switch {
	case len(t.ops) >= MaxTxnOps:
		t.Fail(fmt.Errorf("%w: more than %d operations", ErrTxnTooLarge, MaxTxnOps))
		return
	case t.size+len(rec.Body)+16 > MaxTxnBytes:
		t.Fail(fmt.Errorf("%w: more than %d bytes", ErrTxnTooLarge, MaxTxnBytes))
		return
	}
	t.size += len(rec.Body) + 16
	t.ops = append(t.ops, txnOp{rec: rec, done: done})
}

// Fail records err as the error of the operation being added (the next
// index): subsystems' Tx* functions call it for input that fails
// validation, so that CommitTxn refuses the transaction before proposing
// it. Only the first failure is kept.
func (t *Txn) Fail(err error) {
	if t.err == nil {
		t.err = &TxnError{Op: len(t.ops), Kind: "", Err: err}
	}
}

func (t *Txn) kv(op byte, ns string, key, value []byte, ttl time.Duration) {
	if t.err != nil {
		return
	}
	var b Batch
	b.add(op, ns, key, value, ttl)
	if b.err != nil {
		t.Fail(errors.Unwrap(b.err))
		return
	}
	t.Add(b.record(), nil)
}

// Set adds ns/key = value.
func (t *Txn) Set(ns string, key, value []byte) { t.kv(opSet, ns, key, value, 0) }

// SetTTL adds ns/key = value expiring ttl after the transaction applies.
func (t *Txn) SetTTL(ns string, key, value []byte, ttl time.Duration) {
	t.kv(opSet, ns, key, value, ttl)
}

// Delete adds the deletion of ns/key.
func (t *Txn) Delete(ns string, key []byte) { t.kv(opDelete, ns, key, nil, 0) }

// DeletePrefix adds the deletion of every key of ns beginning with prefix.
func (t *Txn) DeletePrefix(ns string, prefix []byte) { t.kv(opDeletePrefix, ns, prefix, nil, 0) }

// Condition modes of a KindKVRequire record.
const (
	requireEqual   byte = 1
	requireAbsent  byte = 2
	requirePresent byte = 3
)

func (t *Txn) require(mode byte, ns string, key, value []byte) {
	if t.err != nil {
		return
	}
	err := checkNS(ns)
	if err == nil {
		err = checkKey(key)
	}
	if err == nil {
		err = checkValue(value)
	}
	if err != nil {
		t.Fail(err)
		return
	}
	t.Add(requireRecord(mode, ns, key, value), nil)
}

func requireRecord(mode byte, ns string, key, value []byte) wal.Record {
	e := codec.Enc(make([]byte, 0, 8+len(ns)+len(key)+len(value))).U(uint64(mode)).S(ns).B(key)
	if mode == requireEqual {
		e = e.B(value)
	}
	return wal.Record{Kind: KindKVRequire, Body: e}
}

// Require adds a condition: ns/key holds exactly value (compare-and-set,
// as etcd's compare). A condition sees the state as of its place in the
// transaction: the writes of the operations added before it included.
func (t *Txn) Require(ns string, key, value []byte) { t.require(requireEqual, ns, key, value) }

// RequireAbsent adds a condition: ns/key holds no live value.
func (t *Txn) RequireAbsent(ns string, key []byte) { t.require(requireAbsent, ns, key, nil) }

// RequirePresent adds a condition: ns/key holds a live value.
func (t *Txn) RequirePresent(ns string, key []byte) { t.require(requirePresent, ns, key, nil) }

// Results returns each operation's result after a successful CommitTxn, in
// the order the operations were added.
func (t *Txn) Results() []wal.Result { return t.results }

// Index returns the log index the transaction applied at (after CommitTxn
// on a standalone store; a replica's results do not carry it: 0).
func (t *Txn) Index() uint64 { return t.index }

// Record encodes the transaction as one KindTxn record (for proposing it
// through another log, or inspecting it). It fails with the build error.
func (t *Txn) Record() (wal.Record, error) {
	if t.err != nil {
		return wal.Record{}, t.err
	}
	if len(t.ops) == 0 {
		return wal.Record{}, &TxnError{Op: -1, Err: ErrEmptyTxn}
	}
	e := codec.Enc(make([]byte, 0, t.size+len(t.key)+16))
	e = e.S(t.key).U(uint64(len(t.ops)))
	for _, o := range t.ops {
		e = e.U(uint64(o.rec.Kind)).B(o.rec.Body)
	}
	return wal.Record{Kind: KindTxn, Body: e}, nil
}

// CommitTxn commits t as one record in one frame: every operation applies,
// in order, or none does. It returns nil once the transaction is durable
// (standalone: fsynced; replicated: committed and applied), or a *TxnError
// (matching ErrTxnRejected and the refused operation's error, such as
// queue.ErrLeaseLost or ErrConditionFailed) when an operation was refused:
// then nothing of the transaction is in the store or in any in-memory view.
// Errors of the call itself (ErrOutcomeUnknown, ErrClosed, ErrCrossShard
// on a replicated store, ...) are returned as they are. t must not be
// changed while CommitTxn runs; a Txn commits at most once.
func (d *DB) CommitTxn(ctx context.Context, t *Txn) error {
	rec, err := t.Record()
	if err != nil {
		return err
	}
	res, err := d.Propose(ctx, rec)
	if res.Err != nil {
		return txnError(d.reg.load(), t, res)
	}
	if err != nil {
		return err
	}
	return t.finish(ctx, res)
}

// txnError builds the *TxnError of a refused transaction's result.
func txnError(reg *registry, t *Txn, res wal.Result) error {
	op := -1
	if n, _, ok := codec.Uvarint(res.Data); ok && n > 0 && n <= uint64(len(t.ops)) {
		op = int(n - 1)
	}
	te := &TxnError{Op: op, Err: res.Err}
	if op >= 0 {
		te.Kind = kindName(reg, t.ops[op].rec.Kind)
	}
	return te
}

func kindName(reg *registry, k wal.Kind) string {
	if s := reg.kinds[k]; s != nil {
		return s.Name
	}
	return fmt.Sprintf("kind %d", k)
}

// finish decodes a committed transaction's per-operation results and hands
// them to the operations' done functions.
func (t *Txn) finish(ctx context.Context, res wal.Result) error {
	rs, err := decodeOpResults(res.Data, len(t.ops))
	if err != nil {
		return err
	}
	t.results, t.index = rs, res.Index
	for i, o := range t.ops {
		if o.done == nil {
			continue
		}
		if err := o.done(ctx, rs[i]); err != nil {
			return err
		}
	}
	return nil
}

// encodeOpResults encodes a committed transaction's per-operation results
// (its Result.Data): for each operation, N and Data.
func encodeOpResults(rs []wal.Result) []byte {
	e := codec.Enc(nil).U(uint64(len(rs)))
	for _, r := range rs {
		e = e.U(r.N).B(r.Data)
	}
	return e
}

func decodeOpResults(b []byte, n int) ([]wal.Result, error) {
	d := codec.NewDec(b)
	if c := d.U(); !d.OK || c != uint64(n) {
		return nil, fmt.Errorf("%w: transaction results", wal.ErrCorrupt)
	}
	out := make([]wal.Result, n)
	for i := range out {
		out[i].N = d.U()
		if data := d.B(wal.MaxRecordBody); len(data) > 0 {
			out[i].Data = slices.Clone(data)
		}
	}
	if !d.Done() {
		return nil, fmt.Errorf("%w: transaction results", wal.ErrCorrupt)
	}
	return out, nil
}

// parsedTxn is a decoded KindTxn body.
type parsedTxn struct {
	key string
	ops []wal.Record
}

// DecodeTxn decodes a KindTxn body. It never panics: a body that does not
// decode gives an error matching ErrBadRecord (too many operations or bytes:
// ErrTxnTooLarge too). The records alias body.
func DecodeTxn(body []byte) (key string, ops []wal.Record, err error) {
	p, err := parseTxn(body)
	return p.key, p.ops, err
}

func parseTxn(body []byte) (parsedTxn, error) {
	bad := func(what string) (parsedTxn, error) {
		return parsedTxn{}, fmt.Errorf("%w: transaction %s", ErrBadRecord, what)
	}
	if len(body) > MaxTxnBytes+MaxIdempotencyKeySize+64 {
		return parsedTxn{}, fmt.Errorf("%w: %w: %d bytes", ErrBadRecord, ErrTxnTooLarge, len(body))
	}
	d := codec.NewDec(body)
	key := d.S(MaxIdempotencyKeySize)
	n := d.U()
	if !d.OK {
		return bad("header")
	}
	if n == 0 {
		return parsedTxn{}, fmt.Errorf("%w: %w", ErrBadRecord, ErrEmptyTxn)
	}
	if n > MaxTxnOps {
		return parsedTxn{}, fmt.Errorf("%w: %w: %d operations", ErrBadRecord, ErrTxnTooLarge, n)
	}
	p := parsedTxn{key: key, ops: make([]wal.Record, 0, n)}
	for i := uint64(0); i < n; i++ {
		k := d.U()
		b := d.B(MaxTxnBytes)
		if !d.OK || k == 0 || k > 0xFFFF {
			return bad(fmt.Sprintf("operation %d", i))
		}
		p.ops = append(p.ops, wal.Record{Kind: wal.Kind(k), Body: b})
	}
	if !d.Done() {
		return bad("trailing bytes")
	}
	return p, nil
}

// txnState is the state of the transaction being applied (Tx.txn).
type txnState struct {
	touched map[any]struct{}
	undo    []func() error
	later   []deferredOp
	op      int // index of the operation being applied
}

type deferredOp struct {
	op int
	fn func() (wal.Result, error)
}

// InTxn reports whether the record being applied is an operation of a
// transaction. The engine then holds the Machine.TxnLock of every machine
// the transaction touches: an ApplyFunc of a KindSpec.Txn kind must not
// take that lock itself when InTxn is true.
func (tx *Tx) InTxn() bool { return tx.txn != nil }

// FirstTouch reports whether key is seen for the first time in the
// transaction being applied (always false outside one). Machines use it to
// register one OnAbort per piece of in-memory state the transaction
// touches (a queue, an agent).
func (tx *Tx) FirstTouch(key any) bool {
	if tx.txn == nil {
		return false
	}
	if _, ok := tx.txn.touched[key]; ok {
		return false
	}
	if tx.txn.touched == nil {
		tx.txn.touched = map[any]struct{}{}
	}
	tx.txn.touched[key] = struct{}{}
	return true
}

// OnAbort registers fn to restore in-memory state if the transaction being
// applied is refused by a later operation (outside a transaction it does
// nothing). The engine first takes every write of the transaction back out
// of the frame's batch, then runs the registered functions in reverse
// order; they read the state as it was before the transaction through tx
// (Get, NewIter) and must be deterministic. An error is fatal.
func (tx *Tx) OnAbort(fn func() error) {
	if tx.txn != nil {
		tx.txn.undo = append(tx.txn.undo, fn)
	}
}

// Defer runs fn now outside a transaction. Inside one it keeps fn and
// runs it, in order with the transaction's other deferred functions, once
// every operation of the transaction was applied without being refused;
// fn's result then becomes the operation's. A machine whose in-memory view
// cannot be restored cheaply (an HNSW graph) validates the operation in its
// ApplyFunc and defers the changes: fn must not refuse (a refusal from fn
// is fatal) and must not take the machine's TxnLock (the engine holds it).
// Deferred changes come after the transaction's other operations, so no
// other operation of the transaction may read what fn writes.
func (tx *Tx) Defer(fn func() (wal.Result, error)) (wal.Result, error) {
	if tx.txn == nil {
		return fn()
	}
	tx.txn.later = append(tx.txn.later, deferredOp{op: tx.txn.op, fn: fn})
	return wal.Result{}, nil
}

// txnMachine applies transactions and conditions.
type txnMachine struct {
	reg *applierRegistry
}

func (d *DB) registerTxn() error {
	m := &txnMachine{reg: &d.reg}
	return d.Attach(Machine{
		Name: "txn",
		Kinds: []KindSpec{
			{Kind: KindTxn, Name: "txn", Reads: true, Apply: m.apply, Route: m.route},
			{Kind: KindKVRequire, Name: "kv.require", Reads: true, Txn: true, Apply: applyRequire, Route: routeRequire},
		},
		Tables: []TableSpec{
			{Table: keys.TableTxnIdem, Name: "txn.idem", Check: checkIdemEntry},
			{Table: keys.TableTxnIdemAt, Name: "txn.idem-at"},
		},
	})
}

// route routes a transaction to the shard of its operations; operations on
// different shards make it ErrCrossShard on a replicated store.
func (m *txnMachine) route(p Placement, body []byte) (uint32, error) {
	t, err := parseTxn(body)
	if err != nil {
		return 0, err
	}
	reg := m.reg.load()
	var shard uint32
	for i, op := range t.ops {
		spec := reg.kinds[op.Kind]
		if spec == nil || !spec.Txn {
			return 0, fmt.Errorf("%w: %w: operation %d (kind %d)", ErrBadRecord, ErrNotTransactional, i, op.Kind)
		}
		s := keys.CatalogShard
		if spec.Route != nil {
			if s, err = spec.Route(p, op.Body); err != nil {
				return 0, fmt.Errorf("operation %d (%s): %w", i, spec.Name, err)
			}
		}
		if i > 0 && s != shard {
			return 0, fmt.Errorf("%w: transaction operations %d (%s) and 0 (%s) live on shards %d and %d: "+
				"give the names a transaction writes together the same placement group, {group} in each "+
				"queue, collection and namespace name (see Placement)", ErrCrossShard, i, spec.Name,
				kindName(reg, t.ops[0].Kind), s, shard)
		}
		shard = s
	}
	return shard, nil
}

// apply applies a transaction: its operations in order inside the frame's
// batch; the first refusal takes every write of the transaction back out of
// the batch, drops its AfterCommit hooks and runs its OnAbort functions.
//
// The outcome of a transaction with an idempotency key is kept (whatever
// it is) under the key, and expired keys are reclaimed a few per keyed
// transaction: that bookkeeping is written even when the transaction is
// refused.
func (m *txnMachine) apply(tx *Tx, rec wal.Record) (wal.Result, error) {
	t, err := parseTxn(rec.Body)
	if err != nil {
		return Reject(err)
	}
	reg := m.reg.load()
	specs := make([]*KindSpec, len(t.ops))
	for i, op := range t.ops {
		spec := reg.kinds[op.Kind]
		if spec == nil || !spec.Txn {
			return rejectOp(i, fmt.Errorf("%w: %w: kind %d", ErrBadRecord, ErrNotTransactional, op.Kind))
		}
		specs[i] = spec
	}
	if tx.txn != nil {
		return Reject(fmt.Errorf("%w: %w: nested transaction", ErrBadRecord, ErrNotTransactional))
	}
	// Make the batch indexed (and earlier frames visible) before marking
	// it: the mark must be taken on the batch the operations write into.
	if err := tx.beforeRead(); err != nil {
		return wal.Result{}, err
	}
	var sum uint64
	if t.key != "" {
		// Only keyed transactions keep outcomes, so only they reclaim
		// expired ones (an unkeyed transaction opens no iterator).
		if err := reapIdem(tx); err != nil {
			return wal.Result{}, err
		}
		sum = xxhash.Sum64(rec.Body)
		kept, ok, err := lookupIdem(tx, t.key)
		if err != nil {
			return wal.Result{}, err
		}
		if ok {
			if kept.sum != sum {
				return Reject(fmt.Errorf("%w: %q", ErrIdempotencyKeyReused, t.key))
			}
			rs, derr := decodeResults(reg, kept.results)
			if derr != nil || len(rs) != 1 {
				return wal.Result{}, fmt.Errorf("db: kept outcome of transaction %q: %w", t.key, wal.ErrCorrupt)
			}
			return rs[0], nil
		}
	}

	unlock := lockMachines(reg, specs)
	res, err := m.applyOps(tx, t, specs)
	unlock()
	if err != nil {
		return wal.Result{}, err
	}
	if t.key != "" {
		if err := keepIdem(tx, t.key, sum, encodeResults(reg, []wal.Result{res})); err != nil {
			return wal.Result{}, err
		}
	}
	return res, nil
}

func rejectOp(i int, err error) (wal.Result, error) {
	return wal.Result{Err: err, Data: binary.AppendUvarint(nil, uint64(i)+1)}, nil
}

// applyOps applies t's operations (with the machines' TxnLocks held).
func (m *txnMachine) applyOps(tx *Tx, t parsedTxn, specs []*KindSpec) (wal.Result, error) {
	b := tx.batch
	markLen, markCount, markAfter := len(b.Repr()), b.Count(), len(tx.after)
	st := &txnState{}
	tx.txn = st
	results := make([]wal.Result, len(t.ops))
	failed, why := -1, error(nil)
	for i, op := range t.ops {
		st.op = i
		r, err := specs[i].Apply(tx, op)
		if err != nil {
			tx.txn = nil
			return wal.Result{}, fmt.Errorf("transaction operation %d (%s): %w", i, specs[i].Name, err)
		}
		if r.Err != nil {
			failed, why = i, r.Err
			break
		}
		results[i] = r
	}
	if failed < 0 {
		for _, dop := range st.later {
			r, err := dop.fn()
			if err == nil && r.Err != nil {
				err = fmt.Errorf("deferred part refused after validation: %w", r.Err)
			}
			if err != nil {
				tx.txn = nil
				return wal.Result{}, fmt.Errorf("transaction operation %d (%s): %w", dop.op, specs[dop.op].Name, err)
			}
			results[dop.op] = r
		}
		tx.txn = nil
		return wal.Result{N: uint64(len(results)), Data: encodeOpResults(results)}, nil
	}
	// Refused: take the transaction's writes out of the batch, then let the
	// machines restore their views from what the batch now reads.
	tx.txn = nil
	if err := truncateBatch(tx.batch, markLen, markCount); err != nil {
		return wal.Result{}, err
	}
	clear(tx.after[markAfter:])
	tx.after = tx.after[:markAfter]
	for i := len(st.undo) - 1; i >= 0; i-- {
		if err := st.undo[i](); err != nil {
			return wal.Result{}, fmt.Errorf("undoing transaction operation %d: %w", failed, err)
		}
	}
	return rejectOp(failed, why)
}

// lockMachines takes the TxnLock of every machine that owns one of specs'
// kinds, in attach order (so that two shards applying transactions at once
// cannot deadlock), and returns the function that releases them.
func lockMachines(reg *registry, specs []*KindSpec) func() {
	var held []sync.Locker
	for _, mc := range reg.machines {
		if mc.TxnLock == nil {
			continue
		}
		for _, s := range specs {
			if s.owner == mc {
				mc.TxnLock.Lock()
				held = append(held, mc.TxnLock)
				break
			}
		}
	}
	return func() {
		for i := len(held) - 1; i >= 0; i-- {
			held[i].Unlock()
		}
	}
}

// truncateBatch cuts b back to its first n bytes holding count entries (a
// mark taken earlier) and rebuilds its index.
func truncateBatch(b *pebble.Batch, n int, count uint32) error {
	repr := b.Repr()
	if n > len(repr) || n < batchHeaderLen {
		return fmt.Errorf("db: transaction mark %d outside batch of %d bytes", n, len(repr))
	}
	kept := make([]byte, n)
	copy(kept, repr[:n])
	binary.LittleEndian.PutUint32(kept[8:12], count)
	var src pebble.Batch
	if err := src.SetRepr(kept); err != nil {
		return err
	}
	b.Reset()
	return b.Apply(&src, nil)
}

// batchHeaderLen is the size of a Pebble batch's header (sequence number
// and count).
const batchHeaderLen = 12

// applyRequire checks a condition.
func applyRequire(tx *Tx, rec wal.Record) (wal.Result, error) {
	mode, ns, key, want, ok := decodeRequire(rec.Body)
	if !ok {
		return Reject(fmt.Errorf("%w: condition", ErrBadRecord))
	}
	v, c, err := tx.Get(kvKey(tx.Scratch(64), tx.Placement.ShardForBytes(ns), ns, key))
	present := false
	var val []byte
	switch {
	case errors.Is(err, pebble.ErrNotFound):
	case err != nil:
		return wal.Result{}, err
	default:
		exp, v2, derr := decodeValue(v)
		if derr != nil {
			c.Close()
			return wal.Result{}, derr
		}
		if exp == 0 || exp > tx.Time {
			present, val = true, slices.Clone(v2)
		}
		c.Close()
	}
	switch {
	case mode == requireAbsent && present:
		return Reject(fmt.Errorf("%w: %q in namespace %q is present", ErrConditionFailed, key, ns))
	case mode == requirePresent && !present:
		return Reject(fmt.Errorf("%w: %q in namespace %q is absent", ErrConditionFailed, key, ns))
	case mode == requireEqual && !present:
		return Reject(fmt.Errorf("%w: %q in namespace %q is absent", ErrConditionFailed, key, ns))
	case mode == requireEqual && string(val) != string(want):
		return Reject(fmt.Errorf("%w: %q in namespace %q holds another value", ErrConditionFailed, key, ns))
	}
	return wal.Result{}, nil
}

func decodeRequire(body []byte) (mode byte, ns, key, value []byte, ok bool) {
	d := codec.NewDec(body)
	m := d.U()
	ns = d.B(MaxNamespaceSize)
	key = d.B(MaxKeySize)
	if m == uint64(requireEqual) {
		value = d.B(MaxValueSize)
	}
	if !d.Done() || m < 1 || m > 3 || len(key) == 0 {
		return 0, nil, nil, nil, false
	}
	return byte(m), ns, key, value, true
}

func routeRequire(p Placement, body []byte) (uint32, error) {
	_, ns, _, _, ok := decodeRequire(body)
	if !ok {
		return 0, fmt.Errorf("%w: condition", ErrBadRecord)
	}
	return p.ShardForBytes(ns), nil
}

// Idempotency keys of transactions, on the shard that applies them:
//
//	TableTxnIdem   | key                  -> time (8 B BE) | sum (8 B BE) | encoded result
//	TableTxnIdemAt | time (8 B) | key     -> (empty)  reclaim index
type keptTxn struct {
	sum     uint64
	results []byte
}

func idemKey(tx *Tx, key string) []byte {
	return append(keys.Prefix(tx.Shard, keys.TableTxnIdem), key...)
}

func idemAtKey(shard uint32, t int64, key string) []byte {
	return append(keys.AppendInt64(keys.Prefix(shard, keys.TableTxnIdemAt), t), key...)
}

func lookupIdem(tx *Tx, key string) (keptTxn, bool, error) {
	v, c, err := tx.Get(idemKey(tx, key))
	if errors.Is(err, pebble.ErrNotFound) {
		return keptTxn{}, false, nil
	}
	if err != nil {
		return keptTxn{}, false, err
	}
	defer c.Close()
	if len(v) < 16 {
		return keptTxn{}, false, fmt.Errorf("db: kept transaction %q: %w", key, wal.ErrCorrupt)
	}
	at := int64(binary.BigEndian.Uint64(v))
	if tx.Time-at >= int64(TxnIdempotencyWindow) {
		return keptTxn{}, false, nil // expired; reclaimed or overwritten
	}
	return keptTxn{sum: binary.BigEndian.Uint64(v[8:]), results: slices.Clone(v[16:])}, true, nil
}

func keepIdem(tx *Tx, key string, sum uint64, results []byte) error {
	ik := idemKey(tx, key)
	// An expired entry of the same key may still be indexed under its old
	// time: drop that index entry so reclaiming it cannot delete this one.
	if v, c, err := tx.Get(ik); err == nil {
		var old int64
		if len(v) >= 8 {
			old = int64(binary.BigEndian.Uint64(v))
		}
		c.Close()
		if err := tx.Delete(idemAtKey(tx.Shard, old, key)); err != nil {
			return err
		}
	} else if !errors.Is(err, pebble.ErrNotFound) {
		return err
	}
	v := binary.BigEndian.AppendUint64(make([]byte, 0, 16+len(results)), uint64(tx.Time))
	v = binary.BigEndian.AppendUint64(v, sum)
	if err := tx.Set(ik, append(v, results...)); err != nil {
		return err
	}
	return tx.Set(idemAtKey(tx.Shard, tx.Time, key), nil)
}

// idemReclaimPerTxn bounds the expired keys one transaction reclaims.
const idemReclaimPerTxn = 16

// reapIdem deletes up to idemReclaimPerTxn kept outcomes older than the
// window (deterministic housekeeping at tx.Time).
func reapIdem(tx *Tx) error {
	lo := keys.Prefix(tx.Shard, keys.TableTxnIdemAt)
	hi := keys.AppendInt64(slices.Clone(lo), tx.Time-int64(TxnIdempotencyWindow)+1)
	it, err := tx.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return err
	}
	var dead [][]byte
	for ok := it.First(); ok && len(dead) < idemReclaimPerTxn; ok = it.Next() {
		dead = append(dead, slices.Clone(it.Key()))
	}
	if err := it.Close(); err != nil {
		return err
	}
	for _, k := range dead {
		if len(k) < len(lo)+8 {
			return fmt.Errorf("db: transaction key index entry %x: %w", k, wal.ErrCorrupt)
		}
		if err := tx.Delete(k); err != nil {
			return err
		}
		if err := tx.Delete(append(keys.Prefix(tx.Shard, keys.TableTxnIdem), k[len(lo)+8:]...)); err != nil {
			return err
		}
	}
	return nil
}

func checkIdemEntry(_, value []byte) error {
	if len(value) < 16 {
		return fmt.Errorf("%w: kept transaction of %d bytes", wal.ErrCorrupt, len(value))
	}
	return nil
}
