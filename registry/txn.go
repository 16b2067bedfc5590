package registry

import (
	"slices"

	"github.com/flowdb/flowdb/db"
	"github.com/flowdb/flowdb/internal/codec"
	"github.com/flowdb/flowdb/wal"
)

// TxRegister adds the registration of an agent to tx (as Register). On a
// replicated store the registry lives on the catalog shard, so a
// transaction that registers or heartbeats may hold only registry
// operations (others live on data shards: db.ErrCrossShard).
func (r *Registry) TxRegister(tx *db.Txn, s AgentSpec) {
	s.Capabilities = slices.Compact(slices.Sorted(slices.Values(s.Capabilities)))
	if err := s.validate(); err != nil {
		tx.Fail(err)
		return
	}
	if s.HeartbeatInterval == 0 {
		s.HeartbeatInterval = r.opts.HeartbeatInterval
	}
	tx.Add(wal.Record{Kind: KindRegister, Body: encodeSpec(nil, &s)}, nil)
}

// TxHeartbeat adds a heartbeat to tx (as Heartbeat; an unknown agent
// refuses the transaction with ErrNotFound).
func (r *Registry) TxHeartbeat(tx *db.Txn, id string, load int, status string) {
	if err := checkHeartbeat(id, load, status); err != nil {
		tx.Fail(err)
		return
	}
	tx.Add(wal.Record{Kind: KindHeartbeat, Body: codec.Enc(nil).S(id).U(uint64(load)).S(status)}, nil)
}

// lock takes r.mu for an apply function, unless the record is an
// operation of a transaction (the engine then holds it: db.Machine.TxnLock).
func (r *Registry) lock(tx *db.Tx) func() {
	if tx.InTxn() {
		return func() {}
	}
	r.mu.Lock()
	return r.mu.Unlock
}

// txnTouch registers, the first time a transaction touches agent id, how to
// put the agent back in the view as it was if the transaction is refused.
// REQUIRES: r.mu held.
func (r *Registry) txnTouch(tx *db.Tx, id string) {
	if !tx.FirstTouch(agentTouch(id)) {
		return
	}
	old := r.agents[id]
	tx.OnAbort(func() error {
		if old != nil {
			r.index(old)
		} else if cur := r.agents[id]; cur != nil {
			r.unindex(cur)
		}
		r.capCache.InvalidateAll()
		r.gen.Add(1)
		return nil
	})
}

// agentTouch keys an agent in db.Tx.FirstTouch.
type agentTouch string
