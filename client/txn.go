package client

import (
	"context"
	"errors"
	"fmt"
	"time"

	"connectrpc.com/connect"
	v1 "github.com/flowdb/flowdb/api/flowdb/v1"
)

// Txn is a transaction being built, as db.Txn with the subsystems' Tx*
// operations: key-value writes and conditions, queue, vector and registry
// operations, committed whole or not at all by Client.CommitTxn. The
// server checks the operations (the client checks nothing). A Txn is not
// safe for concurrent use and commits once.
type Txn struct {
	ops     []*v1.TxnOp
	enq     []*Enqueued // per operation; nil but for enqueues
	key     string
	index   uint64
	settled bool
}

// Enqueued receives the ids of the tasks an enqueue of a transaction
// added, in order, once Client.CommitTxn returned nil (as queue.Enqueued).
type Enqueued struct {
	IDs []uint64
}

// TxnError is the error of a refused transaction, as db.TxnError: which
// operation was refused (Op, its index in the order added; -1 for the
// transaction as a whole) and why (Err, an *Error). errors.Is matches
// db.ErrTxnRejected and the operation's own sentinel
// (errors.Is(err, queue.ErrLeaseLost)); nothing of the transaction applied.
type TxnError struct {
	Op   int
	Kind string // the refused operation's record kind ("queue.ack"), when the engine named it
	// Code is the Connect code of the operation's own error.
	Code connect.Code
	// Err is the call's error: its classes hold the operation's sentinels
	// and db.ErrTxnRejected.
	Err error
}

func (e *TxnError) Error() string { return e.Err.Error() }

// Unwrap returns the call's error.
func (e *TxnError) Unwrap() error { return e.Err }

// NewTxn returns an empty transaction.
func (c *Client) NewTxn() *Txn { return &Txn{} }

// Len returns the number of operations added.
func (t *Txn) Len() int { return len(t.ops) }

// Index returns the log index the transaction applied at, after a
// successful commit on a standalone server (0 on a replicated node).
func (t *Txn) Index() uint64 { return t.index }

// SetIdempotencyKey makes the transaction exactly once (as
// db.Txn.SetIdempotencyKey): a commit with the same key within the server's
// window gets the first outcome and applies nothing. Only a transaction
// with a key is retried by CommitTxn after a connection failure.
func (t *Txn) SetIdempotencyKey(key string) { t.key = key }

func (t *Txn) add(op *v1.TxnOp) { t.ops, t.enq = append(t.ops, op), append(t.enq, nil) }

// Set adds ns/key = value.
func (t *Txn) Set(ns string, key, value []byte) { t.SetTTL(ns, key, value, 0) }

// SetTTL adds ns/key = value expiring ttl after the transaction applies.
func (t *Txn) SetTTL(ns string, key, value []byte, ttl time.Duration) {
	t.add(&v1.TxnOp{Op: &v1.TxnOp_Set{Set: &v1.SetRequest{Namespace: ns, Key: key, Value: value, TtlMs: ms(ttl)}}})
}

// Delete adds the deletion of ns/key.
func (t *Txn) Delete(ns string, key []byte) {
	t.add(&v1.TxnOp{Op: &v1.TxnOp_Delete{Delete: &v1.DeleteRequest{Namespace: ns, Key: key}}})
}

// DeletePrefix adds the deletion of every key of ns beginning with prefix.
func (t *Txn) DeletePrefix(ns string, prefix []byte) {
	t.add(&v1.TxnOp{Op: &v1.TxnOp_Delete{Delete: &v1.DeleteRequest{Namespace: ns, Key: prefix, Prefix: true}}})
}

func (t *Txn) require(mode v1.TxnCondition_Mode, ns string, key, value []byte) {
	t.add(&v1.TxnOp{Op: &v1.TxnOp_Require{Require: &v1.TxnCondition{Mode: mode, Namespace: ns, Key: key, Value: value}}})
}

// Require adds a condition: ns/key holds exactly value, as of its place in
// the transaction (db.ErrConditionFailed otherwise).
func (t *Txn) Require(ns string, key, value []byte) {
	t.require(v1.TxnCondition_MODE_EQUAL, ns, key, value)
}

// RequireAbsent adds a condition: ns/key holds no live value.
func (t *Txn) RequireAbsent(ns string, key []byte) {
	t.require(v1.TxnCondition_MODE_ABSENT, ns, key, nil)
}

// RequirePresent adds a condition: ns/key holds a live value.
func (t *Txn) RequirePresent(ns string, key []byte) {
	t.require(v1.TxnCondition_MODE_PRESENT, ns, key, nil)
}

// Enqueue adds the enqueue of tasks to queue (as queue.Manager.TxEnqueue:
// one operation, however many tasks). The returned Enqueued holds their
// ids once CommitTxn returned nil.
func (t *Txn) Enqueue(queue string, tasks ...Task) *Enqueued {
	var op *v1.TxnOp
	if len(tasks) == 1 {
		op = &v1.TxnOp{Op: &v1.TxnOp_Enqueue{Enqueue: &v1.EnqueueRequest{Queue: queue, Task: tasks[0].wire()}}}
	} else {
		ws := make([]*v1.Task, len(tasks))
		for i, tk := range tasks {
			ws[i] = tk.wire()
		}
		op = &v1.TxnOp{Op: &v1.TxnOp_EnqueueBatch{EnqueueBatch: &v1.EnqueueBatchRequest{Queue: queue, Tasks: ws}}}
	}
	e := &Enqueued{}
	t.add(op)
	t.enq[len(t.enq)-1] = e
	return e
}

// Ack adds the acknowledgement of a leased task (a stale token refuses the
// transaction with queue.ErrLeaseLost).
func (t *Txn) Ack(queue string, id, token uint64, result []byte) {
	t.add(&v1.TxnOp{Op: &v1.TxnOp_Ack{Ack: &v1.AckRequest{Queue: queue, Id: id, Token: token, Result: result}}})
}

// Nack adds the return of a leased task for retry.
func (t *Txn) Nack(queue string, id, token uint64, reason string) {
	t.add(&v1.TxnOp{Op: &v1.TxnOp_Nack{Nack: &v1.NackRequest{Queue: queue, Id: id, Token: token, Reason: reason}}})
}

// Extend adds the renewal of a lease for leaseFor from the transaction's
// time.
func (t *Txn) Extend(queue string, id, token uint64, leaseFor time.Duration) {
	t.add(&v1.TxnOp{Op: &v1.TxnOp_Extend{Extend: &v1.ExtendRequest{Queue: queue, Id: id, Token: token, LeaseMs: ms(leaseFor)}}})
}

// Cancel adds the cancellation of a pending task.
func (t *Txn) Cancel(queue string, id uint64) {
	t.add(&v1.TxnOp{Op: &v1.TxnOp_Cancel{Cancel: &v1.CancelRequest{Queue: queue, Id: id}}})
}

// Upsert adds the insertion or replacement of vectors in collection (as
// hnsw.Manager.TxUpsert).
func (t *Txn) Upsert(collection string, vs ...Vector) {
	ws := make([]*v1.Vector, len(vs))
	for i, v := range vs {
		ws[i] = &v1.Vector{Id: v.ID, Values: v.Values, Tags: v.Tags}
	}
	t.add(&v1.TxnOp{Op: &v1.TxnOp_Upsert{Upsert: &v1.UpsertRequest{Collection: collection, Vectors: ws}}})
}

// DeleteVectors adds the deletion of vectors by id (absent ids are
// skipped).
func (t *Txn) DeleteVectors(collection string, ids ...uint64) {
	t.add(&v1.TxnOp{Op: &v1.TxnOp_DeleteVectors{DeleteVectors: &v1.DeleteVectorsRequest{Collection: collection, Ids: ids}}})
}

// Register adds the registration of an agent. On a replicated node the
// registry lives on the catalog shard: a transaction that registers or
// heartbeats holds only registry operations (db.ErrCrossShard otherwise).
func (t *Txn) Register(a AgentSpec) {
	spec := &v1.AgentSpec{Id: a.ID, Pool: a.Pool, Capabilities: a.Capabilities, Capacity: int32(a.Capacity), Labels: a.Labels,
		HeartbeatIntervalMs: ms(a.HeartbeatInterval)}
	t.add(&v1.TxnOp{Op: &v1.TxnOp_Register{Register: &v1.RegisterRequest{Agent: spec}}})
}

// Heartbeat adds a heartbeat of agent id.
func (t *Txn) Heartbeat(id string, load int, status string) {
	t.add(&v1.TxnOp{Op: &v1.TxnOp_Heartbeat{Heartbeat: &v1.HeartbeatRequest{Id: id, Load: int32(load), Status: status}}})
}

// ErrTxnCommitted: CommitTxn called again with a transaction that already
// committed.
var ErrTxnCommitted = errors.New("client: transaction already committed")

// CommitTxn commits t as one transaction (db.DB.CommitTxn over the wire):
// nil once every operation applied (the Enqueued values then hold their
// ids), or an error. A refused transaction's error is a *TxnError that
// matches db.ErrTxnRejected and the refused operation's sentinel; nothing
// of it applied. A transaction with an idempotency key is retried after a
// connection failure (a retry gets the first outcome); one without is sent
// once, and a failure after sending is ErrOutcomeUnknown. When ctx ends
// first, a keyed transaction returns ctx's error and may have applied:
// commit it again with the same key to learn its outcome.
func (c *Client) CommitTxn(ctx context.Context, t *Txn) error {
	if t.settled {
		return ErrTxnCommitted
	}
	s := once
	if t.key != "" {
		s = idempotent
	}
	req := &v1.CommitTxnRequest{Ops: t.ops, IdempotencyKey: t.key}
	m, err := call(ctx, c, s, func(ctx context.Context) (*connect.Response[v1.CommitTxnResponse], error) {
		return c.txn.Commit(ctx, connect.NewRequest(req))
	})
	if err != nil {
		return txnError(err)
	}
	if len(m.Results) != len(t.ops) {
		return fmt.Errorf("client: transaction answered %d results for %d operations", len(m.Results), len(t.ops))
	}
	for i, e := range t.enq {
		if e != nil && m.Results[i] != nil {
			e.IDs = m.Results[i].Ids
		}
	}
	t.index, t.settled = m.Index, true
	return nil
}

// txnError wraps the error of a refused transaction (one whose answer
// carried a TxnErrorDetail) in a *TxnError.
func txnError(err error) error {
	e, ok := err.(*Error)
	if !ok || e.txn == nil {
		return err
	}
	te := &TxnError{Op: int(e.txn.Op), Kind: e.txn.Kind, Err: err}
	var code connect.Code
	if e.txn.Code != "" && code.UnmarshalText([]byte(e.txn.Code)) == nil {
		te.Code = code
	}
	return te
}
