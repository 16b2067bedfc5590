package mcp

import (
	"context"

	"github.com/flowdb/flowdb/queue"
)

type stepIn struct {
	Ack            *ackIn      `json:"ack,omitempty" jsonschema:"the leased task to acknowledge (queue, id, token, result)"`
	Memories       []memoryIn  `json:"memories,omitempty" jsonschema:"memories to store, as memory_remember takes them"`
	KV             []kvSetIn   `json:"kv,omitempty" jsonschema:"keys to write, as kv_set takes them"`
	Enqueue        []enqueueIn `json:"enqueue,omitempty" jsonschema:"follow-up tasks to add, as task_enqueue takes them"`
	IdempotencyKey string      `json:"idempotency_key,omitempty" jsonschema:"if set, a retried step with the same key and content commits once"`
}

type stepOut struct {
	MemoryIDs []uint64 `json:"memory_ids" jsonschema:"ids of the stored memories, in order"`
	TaskIDs   []uint64 `json:"task_ids" jsonschema:"ids of the follow-up tasks, in order"`
}

func (s *server) addStepTool() {
	addTool(s, "step", "Finish a unit of work atomically: acknowledge a leased task, store memories, write keys and enqueue follow-up tasks in ONE commit. Either all of it happens or none does (lease_lost, queue_full, ... refuse the whole step and nothing is written). Prefer it to separate calls when work produces several results.", false,
		func(ctx context.Context, in stepIn) (stepOut, error) {
			n := len(in.Memories) + len(in.KV) + len(in.Enqueue)
			if n == 0 && in.Ack == nil {
				return stepOut{}, invalid("an empty step: give ack, memories, kv or enqueue")
			}
			if n > MaxStepOps {
				return stepOut{}, invalid("%d operations, at most %d", n, MaxStepOps)
			}
			tx := s.st.DB.NewTxn()
			if in.IdempotencyKey != "" {
				tx.SetIdempotencyKey(in.IdempotencyKey)
			}
			if a := in.Ack; a != nil {
				if err := s.checkQueue(ctx, a.Queue, true); err != nil {
					return stepOut{}, err
				}
				if len(a.Result) > MaxPayloadSize {
					return stepOut{}, invalid("result of %d bytes, at most %d", len(a.Result), MaxPayloadSize)
				}
				tok, err := a.token()
				if err != nil {
					return stepOut{}, err
				}
				s.st.Queues.TxAck(tx, a.Queue, a.ID, tok, []byte(a.Result))
			}
			var ms []preparedMemory
			if len(in.Memories) > 0 {
				var err error
				if ms, err = s.prepare(ctx, in.Memories); err != nil {
					return stepOut{}, err
				}
				s.txRemember(tx, ms)
			}
			for _, kv := range in.KV {
				if err := s.checkNamespace(ctx, kv.Namespace, true); err != nil {
					return stepOut{}, err
				}
				ttl, err := kvSet(kv)
				if err != nil {
					return stepOut{}, err
				}
				if ttl > 0 {
					tx.SetTTL(kv.Namespace, []byte(kv.Key), []byte(kv.Value), ttl)
				} else {
					tx.Set(kv.Namespace, []byte(kv.Key), []byte(kv.Value))
				}
			}
			var enq []*queue.Enqueued
			for _, e := range in.Enqueue {
				if err := s.checkQueue(ctx, e.Queue, true); err != nil {
					return stepOut{}, err
				}
				t, err := task(e)
				if err != nil {
					return stepOut{}, err
				}
				enq = append(enq, s.st.Queues.TxEnqueue(tx, e.Queue, t))
			}
			if err := s.st.DB.CommitTxn(ctx, tx); err != nil {
				return stepOut{}, err
			}
			out := stepOut{MemoryIDs: []uint64{}, TaskIDs: []uint64{}}
			for _, m := range ms {
				out.MemoryIDs = append(out.MemoryIDs, m.vec.ID)
			}
			for _, e := range enq {
				out.TaskIDs = append(out.TaskIDs, e.IDs...)
			}
			return out, nil
		})
}
