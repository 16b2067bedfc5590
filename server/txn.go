package server

import (
	"context"
	"errors"
	"fmt"

	"connectrpc.com/connect"
	v1 "github.com/flowdb/flowdb/api/flowdb/v1"
	"github.com/flowdb/flowdb/db"
	"github.com/flowdb/flowdb/index/hnsw"
	"github.com/flowdb/flowdb/queue"
	"github.com/flowdb/flowdb/registry"
	"github.com/flowdb/flowdb/server/auth"
)

// txnService serves flowdb.v1.TxnService: one transaction of key-value,
// queue, vector and registry operations (db.DB.CommitTxn).
type txnService struct{ s *Server }

// Commit authorizes every operation, then builds the transaction with the
// subsystems' Tx* functions and commits it.
//
// Every refusal is a *db.TxnError naming the operation (Op is its index in
// the request): one outside the caller's scopes (auth.ErrForbidden, before
// anything is built), one the server cannot read (ErrBadRequest: no
// operation set, a duration that overflows), one the engine refuses while
// building (its validation errors) or applying (queue.ErrLeaseLost,
// db.ErrConditionFailed, ...). toConnect sends its index and kind along in a
// TxnErrorDetail.
func (t *txnService) Commit(ctx context.Context, req *connect.Request[v1.CommitTxnRequest]) (*connect.Response[v1.CommitTxnResponse], error) {
	m := req.Msg
	if len(m.Ops) > db.MaxTxnOps {
		return nil, &db.TxnError{Op: -1, Err: fmt.Errorf("%w: %d operations (at most %d)", db.ErrTxnTooLarge, len(m.Ops), db.MaxTxnOps)}
	}
	// Authorize everything first: nothing is built for a caller who may
	// not do all of it.
	for i, op := range m.Ops {
		resource, name, level, err := txnScope(op)
		if err == nil {
			err = t.s.allow(ctx, resource, name, level)
		}
		if err != nil {
			return nil, &db.TxnError{Op: i, Err: err}
		}
	}
	// Vector operations check their collection against this member's view
	// while the transaction is built, without waiting: on a replica, catch
	// up first with collections created through another member (a read
	// index only for a collection this member does not know yet). An
	// unknown collection is left for the build to refuse with its index.
	for _, op := range m.Ops {
		name := op.GetUpsert().GetCollection()
		if d := op.GetDeleteVectors(); d != nil {
			name = d.Collection
		}
		if op.GetUpsert() == nil && op.GetDeleteVectors() == nil {
			continue
		}
		if err := t.s.o.Vectors.Await(ctx, name); err != nil && !errors.Is(err, hnsw.ErrNoCollection) {
			return nil, err
		}
	}
	tx := t.s.o.DB.NewTxn()
	if m.IdempotencyKey != "" {
		tx.SetIdempotencyKey(m.IdempotencyKey)
	}
	enq := make([]*queue.Enqueued, len(m.Ops))
	for i, op := range m.Ops {
		e, err := t.add(tx, op)
		if err != nil {
			if tx.Err() != nil {
				return nil, tx.Err() // an earlier operation failed first
			}
			return nil, &db.TxnError{Op: i, Err: err}
		}
		enq[i] = e
	}
	if err := t.s.o.DB.CommitTxn(ctx, tx); err != nil {
		return nil, err
	}
	resp := &v1.CommitTxnResponse{Results: make([]*v1.TxnOpResult, len(m.Ops)), Index: tx.Index()}
	for i := range resp.Results {
		r := &v1.TxnOpResult{}
		if enq[i] != nil {
			r.Ids = enq[i].IDs
		}
		resp.Results[i] = r
	}
	return connect.NewResponse(resp), nil
}

// txnScope returns the scope op needs: what its single call needs (a
// condition reads its key; every other operation writes).
func txnScope(op *v1.TxnOp) (resource, name string, level auth.Level, err error) {
	switch o := op.GetOp().(type) {
	case *v1.TxnOp_Set:
		return auth.KV, o.Set.GetNamespace(), auth.Write, nil
	case *v1.TxnOp_Delete:
		return auth.KV, o.Delete.GetNamespace(), auth.Write, nil
	case *v1.TxnOp_Require:
		return auth.KV, o.Require.GetNamespace(), auth.Read, nil
	case *v1.TxnOp_Enqueue:
		return auth.Queue, o.Enqueue.GetQueue(), auth.Write, nil
	case *v1.TxnOp_EnqueueBatch:
		return auth.Queue, o.EnqueueBatch.GetQueue(), auth.Write, nil
	case *v1.TxnOp_Ack:
		return auth.Queue, o.Ack.GetQueue(), auth.Write, nil
	case *v1.TxnOp_Nack:
		return auth.Queue, o.Nack.GetQueue(), auth.Write, nil
	case *v1.TxnOp_Extend:
		return auth.Queue, o.Extend.GetQueue(), auth.Write, nil
	case *v1.TxnOp_Cancel:
		return auth.Queue, o.Cancel.GetQueue(), auth.Write, nil
	case *v1.TxnOp_Upsert:
		return auth.Vec, o.Upsert.GetCollection(), auth.Write, nil
	case *v1.TxnOp_DeleteVectors:
		return auth.Vec, o.DeleteVectors.GetCollection(), auth.Write, nil
	case *v1.TxnOp_Register:
		return auth.Agent, o.Register.GetAgent().GetId(), auth.Write, nil
	case *v1.TxnOp_Heartbeat:
		return auth.Agent, o.Heartbeat.GetId(), auth.Write, nil
	}
	return "", "", 0, fmt.Errorf("%w: no operation set", ErrBadRequest)
}

// add adds op to tx with its subsystem's Tx* function; an enqueue returns
// where its ids arrive. Input the engine validates is left to it (its
// error lands in tx and refuses the commit); add fails only for what the
// server reads itself.
func (t *txnService) add(tx *db.Txn, op *v1.TxnOp) (*queue.Enqueued, error) {
	o := t.s.o
	switch x := op.GetOp().(type) {
	case *v1.TxnOp_Set:
		m := x.Set
		if err := need("set", m != nil); err != nil {
			return nil, err
		}
		ttl, err := ms("ttl_ms", m.TtlMs)
		if err != nil {
			return nil, err
		}
		tx.SetTTL(m.Namespace, m.Key, m.Value, ttl)
	case *v1.TxnOp_Delete:
		m := x.Delete
		if err := need("delete", m != nil); err != nil {
			return nil, err
		}
		if m.Prefix {
			tx.DeletePrefix(m.Namespace, m.Key)
		} else {
			tx.Delete(m.Namespace, m.Key)
		}
	case *v1.TxnOp_Require:
		m := x.Require
		if err := need("require", m != nil); err != nil {
			return nil, err
		}
		switch m.Mode {
		case v1.TxnCondition_MODE_EQUAL:
			tx.Require(m.Namespace, m.Key, m.Value)
		case v1.TxnCondition_MODE_ABSENT:
			tx.RequireAbsent(m.Namespace, m.Key)
		case v1.TxnCondition_MODE_PRESENT:
			tx.RequirePresent(m.Namespace, m.Key)
		default:
			return nil, fmt.Errorf("%w: condition mode %v", ErrBadRequest, m.Mode)
		}
	case *v1.TxnOp_Enqueue:
		m := x.Enqueue
		if err := need("enqueue.task", m != nil && m.Task != nil); err != nil {
			return nil, err
		}
		return o.Queues.TxEnqueue(tx, m.Queue, toTask(m.Task)), nil
	case *v1.TxnOp_EnqueueBatch:
		m := x.EnqueueBatch
		if err := need("enqueue_batch", m != nil); err != nil {
			return nil, err
		}
		tasks := make([]queue.Task, len(m.Tasks))
		for i, tk := range m.Tasks {
			tasks[i] = toTask(tk)
		}
		return o.Queues.TxEnqueue(tx, m.Queue, tasks...), nil
	case *v1.TxnOp_Ack:
		m := x.Ack
		if err := need("ack", m != nil); err != nil {
			return nil, err
		}
		o.Queues.TxAck(tx, m.Queue, m.Id, m.Token, m.Result)
	case *v1.TxnOp_Nack:
		m := x.Nack
		if err := need("nack", m != nil); err != nil {
			return nil, err
		}
		o.Queues.TxNack(tx, m.Queue, m.Id, m.Token, m.Reason)
	case *v1.TxnOp_Extend:
		m := x.Extend
		if err := need("extend", m != nil); err != nil {
			return nil, err
		}
		d, err := ms("lease_ms", m.LeaseMs)
		if err != nil {
			return nil, err
		}
		o.Queues.TxExtend(tx, m.Queue, m.Id, m.Token, d)
	case *v1.TxnOp_Cancel:
		m := x.Cancel
		if err := need("cancel", m != nil); err != nil {
			return nil, err
		}
		o.Queues.TxCancel(tx, m.Queue, m.Id)
	case *v1.TxnOp_Upsert:
		m := x.Upsert
		if err := need("upsert", m != nil); err != nil {
			return nil, err
		}
		vs := make([]hnsw.Vector, len(m.Vectors))
		for i, v := range m.Vectors {
			if v == nil {
				return nil, fmt.Errorf("%w: vector %d is empty", ErrBadRequest, i)
			}
			vs[i] = hnsw.Vector{ID: v.Id, Values: v.Values, Tags: v.Tags}
		}
		o.Vectors.TxUpsert(tx, m.Collection, vs...)
	case *v1.TxnOp_DeleteVectors:
		m := x.DeleteVectors
		if err := need("delete_vectors", m != nil); err != nil {
			return nil, err
		}
		o.Vectors.TxDelete(tx, m.Collection, m.Ids...)
	case *v1.TxnOp_Register:
		a := x.Register.GetAgent()
		if err := need("register.agent", a != nil); err != nil {
			return nil, err
		}
		hb, err := ms("heartbeat_interval_ms", a.HeartbeatIntervalMs)
		if err != nil {
			return nil, err
		}
		o.Registry.TxRegister(tx, registry.AgentSpec{ID: a.Id, Pool: a.Pool, Capabilities: a.Capabilities,
			Capacity: int(a.Capacity), Labels: a.Labels, HeartbeatInterval: hb})
	case *v1.TxnOp_Heartbeat:
		m := x.Heartbeat
		if err := need("heartbeat", m != nil); err != nil {
			return nil, err
		}
		o.Registry.TxHeartbeat(tx, m.Id, int(m.Load), m.Status)
	default:
		return nil, fmt.Errorf("%w: no operation set", ErrBadRequest)
	}
	return nil, nil
}
