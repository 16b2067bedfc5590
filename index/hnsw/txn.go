package hnsw

import (
	"context"

	"github.com/flowdb/flowdb/db"
	"github.com/flowdb/flowdb/wal"
)

// TxUpsert adds the insertion or replacement of vectors in collection name
// to tx (as Upsert: validated whole; an unknown collection, a wrong
// dimension or a vector that is not finite refuses the transaction).
// Inside a transaction the vectors enter the graph only once every other
// operation of the transaction passed, so a refused transaction leaves the
// graph untouched. Training, when the collection reaches its training
// size, follows the commit as it follows Upsert.
func (m *Manager) TxUpsert(tx *db.Txn, name string, vs ...Vector) {
	c, err := m.get(name)
	if err != nil {
		tx.Fail(err)
		return
	}
	rec, err := insertRecord(c.cfg, name, vs)
	if err != nil {
		tx.Fail(err)
		return
	}
	tx.Add(rec, func(ctx context.Context, _ wal.Result) error { return m.maybeTrain(ctx, name) })
}

// TxDelete adds the deletion of vectors by id to tx (as Delete; absent ids
// are skipped).
func (m *Manager) TxDelete(tx *db.Txn, name string, ids ...uint64) {
	if _, err := m.get(name); err != nil {
		tx.Fail(err)
		return
	}
	rec, err := deleteRecord(name, ids)
	if err != nil {
		tx.Fail(err)
		return
	}
	tx.Add(rec, nil)
}

// lock takes m.mu for writing for an apply function, unless the record is
// an operation of a transaction (the engine then holds it:
// db.Machine.TxnLock).
func (m *Manager) lock(tx *db.Tx) func() {
	if tx.InTxn() {
		return func() {}
	}
	m.mu.Lock()
	return m.mu.Unlock
}
