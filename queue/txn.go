package queue

import (
	"context"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/flowdb/flowdb/db"
	"github.com/flowdb/flowdb/wal"
)

// Enqueued receives the ids of tasks enqueued in a transaction
// (TxEnqueue), in order, once the transaction commits.
type Enqueued struct {
	IDs []uint64
}

// TxEnqueue adds the enqueue of tasks to queue to tx: accepted whole with
// the rest of the transaction (ErrFull, ErrInvalid and ErrNotFound for an
// unknown queue refuse the transaction). The returned Enqueued holds the
// tasks' ids once db.DB.CommitTxn returned nil.
func (m *Manager) TxEnqueue(tx *db.Txn, queue string, tasks ...Task) *Enqueued {
	out := &Enqueued{}
	rec, err := enqueueRecord(queue, tasks)
	if err == nil {
		err = checkName(queue)
	}
	if err != nil {
		tx.Fail(err)
		return out
	}
	tx.Add(rec, func(_ context.Context, r wal.Result) error {
		ids, err := decodeIDs(r, len(tasks))
		out.IDs = ids
		return err
	})
	return out
}

// TxAck adds the acknowledgement of a leased task to tx (as Ack; a stale
// token refuses the transaction with ErrLeaseLost).
func (m *Manager) TxAck(tx *db.Txn, queue string, id, token uint64, result []byte) {
	m.txAdd(tx, queue, func() (wal.Record, error) { return ackRecord(queue, id, token, result) })
}

// TxNack adds the return of a leased task for retry to tx (as Nack).
func (m *Manager) TxNack(tx *db.Txn, queue string, id, token uint64, reason string) {
	m.txAdd(tx, queue, func() (wal.Record, error) { return nackRecord(queue, id, token, reason) })
}

// TxExtend adds the renewal of a lease to tx (as Extend).
func (m *Manager) TxExtend(tx *db.Txn, queue string, id, token uint64, leaseFor time.Duration) {
	m.txAdd(tx, queue, func() (wal.Record, error) { return extendRecord(queue, id, token, leaseFor) })
}

// TxCancel adds the cancellation of a pending task to tx (as Cancel).
func (m *Manager) TxCancel(tx *db.Txn, queue string, id uint64) {
	m.txAdd(tx, queue, func() (wal.Record, error) {
		return wal.Record{Kind: KindCancel, Body: enc(nil).S(queue).U(id)}, nil
	})
}

func (m *Manager) txAdd(tx *db.Txn, queue string, build func() (wal.Record, error)) {
	if err := checkName(queue); err != nil {
		tx.Fail(err)
		return
	}
	rec, err := build()
	if err != nil {
		tx.Fail(err)
		return
	}
	tx.Add(rec, nil)
}

// lock takes m.mu for an apply function, unless the record is an operation
// of a transaction: the engine then holds it (db.Machine.TxnLock). The
// returned function releases what was taken.
func (m *Manager) lock(tx *db.Tx) func() {
	if tx.InTxn() {
		return func() {}
	}
	m.mu.Lock()
	return m.mu.Unlock
}

// txnTouch registers, the first time a transaction touches q, how to
// restore q's in-memory state if the transaction is refused: the counters
// as they were, the hot set and held counts read again from the store (the
// engine has by then taken the transaction's writes back out of the
// frame), the leased-state cache emptied and the due hint unknown, as after
// a reopen.
// REQUIRES: m.mu held.
func (m *Manager) txnTouch(tx *db.Tx, q *qstate) {
	if !tx.FirstTouch(q) {
		return
	}
	saved := q.m
	tx.OnAbort(func() error {
		q.m = saved
		q.dueHint = math.MinInt64
		q.leasedState = nil
		agents := make([]string, 0, len(q.held))
		for a := range q.held {
			agents = append(agents, a)
		}
		slices.Sort(agents)
		for _, a := range agents {
			m.held.add(q, a, -q.held[a])
		}
		if err := m.loadHeld(tx, q); err != nil {
			return fmt.Errorf("queue %q: %w", q.cfg.Name, err)
		}
		return loadHot(tx, q)
	})
}
