package db

import (
	"context"
	"iter"
	"sync"

	"github.com/cockroachdb/pebble/v2"
	"github.com/flowdb/flowdb/internal/keys"
	"github.com/flowdb/flowdb/wal"
)

// Machine declares a state machine that keeps its state in the store. A
// subsystem (queue, registry, hnsw; the key-value space is one too) hands
// the engine one Machine when it attaches to a DB (DB.Attach): its record
// kinds, the sentinel errors they reject records with, its key tables, its
// cross-table check, and how it builds and rebuilds its in-memory view.
// That declaration is the whole extension API; nothing else of the engine
// needs to be reached.
//
// Transactions (KindTxn) use the same declaration: a kind with
// KindSpec.Txn may be an operation of a transaction, applied by the same
// ApplyFunc with tx.InTxn() true. Since a refused operation must leave no
// trace of the transaction's earlier ones, the engine takes their Pebble
// writes back out of the frame's batch, and each machine either restores
// the in-memory changes it made (Tx.OnAbort, once per piece of state:
// Tx.FirstTouch) or holds them back until every operation passed
// (Tx.Defer). TxnLock keeps readers of the machine's view from seeing a
// transaction half applied.
type Machine struct {
	// Name names the machine in Check's output (its Check's problems).
	Name string
	// Catalog is true when the machine's state lives on the catalog shard
	// (the registry); otherwise it lives on the data shards, each name on
	// the shard Placement gives it. It selects the shards Load and Reload
	// run for.
	Catalog bool
	// Kinds are the record kinds the machine applies.
	Kinds []KindSpec
	// Errors are the sentinel errors the machine's Apply functions reject
	// records with (a wal.Result's Err wraps one of them, see Reject), so
	// that a rejection travelling from a replica's state machine back to
	// its proposer still matches them with errors.Is. Their order is part
	// of the encoded results a replica keeps (DecodeResults): append, never
	// reorder.
	Errors []error
	// Tables are the key tables the machine owns.
	Tables []TableSpec
	// Check, if set, verifies invariants that span the machine's tables
	// (counters against indexes, indexes against records) on the snapshot
	// DB.Check walks, and returns one error per problem found (nil or empty
	// when sound).
	Check func(ctx context.Context, r pebble.Reader) []error
	// Load, if set, builds the machine's in-memory view of one shard from
	// the store. Attach calls it for each of the machine's shards, in
	// order, after registering its kinds.
	Load func(shard uint32) error
	// Reload, if set, replaces the machine's in-memory view of one of its
	// shards after a Raft snapshot replaced the shard's keys
	// (ShardApplier.RecoverSnapshot). It runs with every shard's apply
	// stopped. nil: the machine keeps no view to rebuild.
	Reload func(shard uint32) error
	// Stop, if set, stops the machine's background goroutines (tickers,
	// sweepers) and waits for them. DB.Close calls it first, while the
	// store still serves, so that no such goroutine reads a closed store
	// whichever of the machine's Close and DB.Close the caller runs first;
	// it must therefore be idempotent and safe to call with the machine's
	// own Close.
	Stop func()
	// TxnLock, if set, is the lock that guards the machine's in-memory view
	// (the one its ApplyFuncs take). The engine holds it across the whole
	// apply of a transaction that has operations of the machine's kinds, so
	// that no reader of the view sees a transaction half applied or being
	// undone; the ApplyFuncs of KindSpec.Txn kinds must therefore not take
	// it when tx.InTxn(). A machine without an in-memory view (the
	// key-value space) leaves it nil.
	TxnLock sync.Locker
}

// Attach registers m with the engine: its kinds, errors, tables and check,
// all or none (a kind or table already registered gives ErrKindRegistered
// and registers nothing). It then calls m.Load for each of m's shards and
// keeps m.Reload for snapshots. A Load error is returned as is; the store
// should then be closed. Subsystem packages call Attach from their own
// Attach, once per DB, before any record of m's kinds is proposed (on a
// replica, before any shard applies).
func (d *DB) Attach(m Machine) error {
	if err := d.reg.attach(&m); err != nil {
		return err
	}
	if m.Load == nil {
		return nil
	}
	for shard := range d.machineShards(&m) {
		if err := m.Load(shard); err != nil {
			return err
		}
	}
	return nil
}

// machineShards yields the shards m's state lives on.
func (d *DB) machineShards(m *Machine) iter.Seq[uint32] {
	if m.Catalog {
		return func(yield func(uint32) bool) { yield(keys.CatalogShard) }
	}
	return d.placement.Data()
}

// ownsShard reports whether m's state lives on shard.
func (m *Machine) ownsShard(shard uint32) bool {
	if m.Catalog {
		return shard == keys.CatalogShard
	}
	return shard >= keys.FirstData
}

// Reject is an ApplyFunc's answer for a record it refuses: the record's
// result carries err (which should wrap one of the machine's Errors) and
// nothing of the record is written.
func Reject(err error) (wal.Result, error) { return wal.Result{Err: err}, nil }
