package server

import (
	"context"
	"errors"
	"fmt"
	"time"

	"connectrpc.com/connect"
	v1 "github.com/flowdb/flowdb/api/flowdb/v1"
	"github.com/flowdb/flowdb/queue"
	"github.com/flowdb/flowdb/server/auth"
)

// queueService serves flowdb.v1.QueueService over the queue manager.
type queueService struct{ s *Server }

func (q *queueService) Create(ctx context.Context, req *connect.Request[v1.CreateQueueRequest]) (*connect.Response[v1.CreateQueueResponse], error) {
	c := req.Msg.Config
	if err := need("config", c != nil); err != nil {
		return nil, err
	}
	if err := q.s.allow(ctx, auth.Queue, c.Name, auth.Admin); err != nil {
		return nil, err
	}
	cfg := queue.Config{Name: c.Name, HotCapacity: int(c.HotCapacity), OverflowCapacity: int(c.OverflowCapacity),
		MaxBytes: c.MaxBytes, ReserveFraction: c.ReserveFraction, HighPriority: int(c.HighPriority),
		MaxAttempts: int(c.MaxAttempts), JitterFraction: c.JitterFraction}
	for _, d := range []struct {
		name string
		v    int64
		dst  *time.Duration
	}{
		{"lease_ms", c.LeaseMs, &cfg.LeaseDuration}, {"backoff_base_ms", c.BackoffBaseMs, &cfg.BackoffBase},
		{"backoff_max_ms", c.BackoffMaxMs, &cfg.BackoffMax}, {"result_retention_ms", c.ResultRetentionMs, &cfg.ResultRetention},
		{"dead_retention_ms", c.DeadRetentionMs, &cfg.DeadRetention}, {"idempotency_window_ms", c.IdempotencyWindowMs, &cfg.IdempotencyWindow},
	} {
		v, err := ms(d.name, d.v)
		if err != nil {
			return nil, err
		}
		*d.dst = v
	}
	if err := q.s.o.Queues.Create(ctx, cfg); err != nil {
		return nil, err
	}
	return connect.NewResponse(&v1.CreateQueueResponse{}), nil
}

func (q *queueService) List(ctx context.Context, req *connect.Request[v1.ListQueuesRequest]) (*connect.Response[v1.ListQueuesResponse], error) {
	tok := caller(ctx)
	resp := &v1.ListQueuesResponse{}
	for _, n := range q.s.o.Queues.Queues() {
		if tok.Allows(auth.Queue, n, auth.Read) {
			resp.Names = append(resp.Names, n)
		}
	}
	return connect.NewResponse(resp), nil
}

func toTask(t *v1.Task) queue.Task {
	if t == nil {
		return queue.Task{}
	}
	return queue.Task{Payload: t.Payload, Priority: int(t.Priority), IdempotencyKey: t.IdempotencyKey,
		NotBefore: unixNano(t.NotBeforeUnixNano), Requires: t.Requires, Tags: t.Tags, Affinity: t.Affinity}
}

func (q *queueService) Enqueue(ctx context.Context, req *connect.Request[v1.EnqueueRequest]) (*connect.Response[v1.EnqueueResponse], error) {
	m := req.Msg
	if err := q.s.allow(ctx, auth.Queue, m.Queue, auth.Write); err != nil {
		return nil, err
	}
	if err := need("task", m.Task != nil); err != nil {
		return nil, err
	}
	id, err := q.s.o.Queues.Enqueue(ctx, m.Queue, toTask(m.Task))
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&v1.EnqueueResponse{Id: id}), nil
}

func (q *queueService) EnqueueBatch(ctx context.Context, req *connect.Request[v1.EnqueueBatchRequest]) (*connect.Response[v1.EnqueueBatchResponse], error) {
	m := req.Msg
	if err := q.s.allow(ctx, auth.Queue, m.Queue, auth.Write); err != nil {
		return nil, err
	}
	tasks := make([]queue.Task, len(m.Tasks))
	for i, t := range m.Tasks {
		tasks[i] = toTask(t)
	}
	ids, err := q.s.o.Queues.EnqueueBatch(ctx, m.Queue, tasks)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&v1.EnqueueBatchResponse{Ids: ids}), nil
}

func toLease(l queue.Lease) *v1.Lease {
	return &v1.Lease{Queue: l.Queue, Agent: l.Agent, Id: l.ID, Token: l.Token, ExpiresUnixNano: toNano(l.Expires),
		Attempt: int32(l.Attempt), Priority: int32(l.Priority), Payload: l.Payload, Tags: l.Tags}
}

// Lease leases without waiting, or with wait_ms through LeaseWait, bounded
// by MaxLeaseWait and the caller's deadline (which Connect and gRPC carry
// in the request and put on ctx). A caller that goes away mid-wait cancels
// ctx: if no lease was proposed yet, none is granted; if one was, the
// queue still completes it (Lease never strands a proposed lease) and,
// undelivered, it expires back to ready after its lease time.
func (q *queueService) Lease(ctx context.Context, req *connect.Request[v1.LeaseRequest]) (*connect.Response[v1.LeaseResponse], error) {
	m := req.Msg
	if err := q.s.allow(ctx, auth.Queue, m.Queue, auth.Write); err != nil {
		return nil, err
	}
	leaseFor, err := ms("lease_ms", m.LeaseMs)
	if err != nil {
		return nil, err
	}
	wait, err := ms("wait_ms", m.WaitMs)
	if err != nil {
		return nil, err
	}
	n := int(m.N)
	if n == 0 {
		n = 1
	}
	var ls []queue.Lease
	if wait <= 0 {
		ls, err = q.s.o.Queues.Lease(ctx, m.Queue, m.Agent, n, m.Capabilities, leaseFor)
	} else {
		wait = min(wait, q.s.o.MaxLeaseWait)
		wctx, cancel := context.WithTimeout(ctx, wait)
		ls, err = q.s.o.Queues.LeaseWait(wctx, m.Queue, m.Agent, n, m.Capabilities, leaseFor)
		cancel()
		if err != nil && errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			err = nil // our wait ended, not the caller's: nothing was ready
		}
	}
	if err != nil {
		return nil, err
	}
	resp := &v1.LeaseResponse{Leases: make([]*v1.Lease, len(ls))}
	for i, l := range ls {
		resp.Leases[i] = toLease(l)
	}
	return connect.NewResponse(resp), nil
}

func (q *queueService) Extend(ctx context.Context, req *connect.Request[v1.ExtendRequest]) (*connect.Response[v1.ExtendResponse], error) {
	m := req.Msg
	if err := q.s.allow(ctx, auth.Queue, m.Queue, auth.Write); err != nil {
		return nil, err
	}
	d, err := ms("lease_ms", m.LeaseMs)
	if err != nil {
		return nil, err
	}
	if err := q.s.o.Queues.Extend(ctx, m.Queue, m.Id, m.Token, d); err != nil {
		return nil, err
	}
	return connect.NewResponse(&v1.ExtendResponse{}), nil
}

func (q *queueService) Ack(ctx context.Context, req *connect.Request[v1.AckRequest]) (*connect.Response[v1.AckResponse], error) {
	m := req.Msg
	if err := q.s.allow(ctx, auth.Queue, m.Queue, auth.Write); err != nil {
		return nil, err
	}
	if err := q.s.o.Queues.Ack(ctx, m.Queue, m.Id, m.Token, m.Result); err != nil {
		return nil, err
	}
	return connect.NewResponse(&v1.AckResponse{}), nil
}

func (q *queueService) AckBatch(ctx context.Context, req *connect.Request[v1.AckBatchRequest]) (*connect.Response[v1.AckBatchResponse], error) {
	m := req.Msg
	if err := q.s.allow(ctx, auth.Queue, m.Queue, auth.Write); err != nil {
		return nil, err
	}
	items := make([]queue.AckItem, len(m.Items))
	for i, it := range m.Items {
		if it == nil {
			return nil, fmt.Errorf("%w: item %d is empty", ErrBadRequest, i)
		}
		items[i] = queue.AckItem{ID: it.Id, Token: it.Token, Result: it.Result}
	}
	errs, err := q.s.o.Queues.AckBatch(ctx, m.Queue, items)
	if err != nil {
		return nil, err
	}
	resp := &v1.AckBatchResponse{Errors: make([]*v1.ItemError, len(errs))}
	for i, e := range errs {
		resp.Errors[i] = q.s.itemError(e)
	}
	return connect.NewResponse(resp), nil
}

func (q *queueService) Nack(ctx context.Context, req *connect.Request[v1.NackRequest]) (*connect.Response[v1.NackResponse], error) {
	m := req.Msg
	if err := q.s.allow(ctx, auth.Queue, m.Queue, auth.Write); err != nil {
		return nil, err
	}
	if err := q.s.o.Queues.Nack(ctx, m.Queue, m.Id, m.Token, m.Reason); err != nil {
		return nil, err
	}
	return connect.NewResponse(&v1.NackResponse{}), nil
}

func (q *queueService) Cancel(ctx context.Context, req *connect.Request[v1.CancelRequest]) (*connect.Response[v1.CancelResponse], error) {
	m := req.Msg
	if err := q.s.allow(ctx, auth.Queue, m.Queue, auth.Write); err != nil {
		return nil, err
	}
	if err := q.s.o.Queues.Cancel(ctx, m.Queue, m.Id); err != nil {
		return nil, err
	}
	return connect.NewResponse(&v1.CancelResponse{}), nil
}

func toTaskInfo(t queue.TaskInfo) *v1.TaskInfo {
	return &v1.TaskInfo{Id: t.ID, State: t.State, Priority: int32(t.Priority), Attempts: int32(t.Attempts),
		EnqueuedUnixNano: toNano(t.Enqueued), NotBeforeUnixNano: toNano(t.NotBefore), LeaseExpiresUnixNano: toNano(t.LeaseExp),
		Agent: t.Agent, Requires: t.Requires, Tags: t.Tags, Payload: t.Payload, Result: t.Result, LastError: t.LastError,
		FinishedUnixNano: toNano(t.Finished)}
}

func (q *queueService) GetTask(ctx context.Context, req *connect.Request[v1.GetTaskRequest]) (*connect.Response[v1.GetTaskResponse], error) {
	m := req.Msg
	if err := q.s.allow(ctx, auth.Queue, m.Queue, auth.Read); err != nil {
		return nil, err
	}
	t, err := q.s.o.Queues.Get(ctx, m.Queue, m.Id)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&v1.GetTaskResponse{Task: toTaskInfo(t)}), nil
}

func (q *queueService) Stats(ctx context.Context, req *connect.Request[v1.QueueStatsRequest]) (*connect.Response[v1.QueueStatsResponse], error) {
	m := req.Msg
	if err := q.s.allow(ctx, auth.Queue, m.Queue, auth.Read); err != nil {
		return nil, err
	}
	// The counts are the replica's in-memory view: wait for a read index
	// so that a member that lags still answers with every acknowledged
	// write counted.
	if err := q.s.nameBarrier(ctx, m.Queue); err != nil {
		return nil, err
	}
	st, err := q.s.o.Queues.Stats(m.Queue)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&v1.QueueStatsResponse{Name: st.Name, Hot: st.Hot, Overflow: st.Overflow, Delayed: st.Delayed,
		Leased: st.Leased, Dead: st.Dead, Done: st.Done, Bytes: st.Bytes, Capacity: st.Capacity, Enqueued: st.Enqueued,
		Acked: st.Acked, Retried: st.Retried, DeadTotal: st.DeadSum, EnqueueRate: st.EnqueueRate, AckRate: st.AckRate,
		RetryRate: st.RetryRate, OldestAgeMs: st.OldestAge.Milliseconds()}), nil
}

func (q *queueService) Dead(ctx context.Context, req *connect.Request[v1.DeadRequest]) (*connect.Response[v1.DeadResponse], error) {
	m := req.Msg
	if err := q.s.allow(ctx, auth.Queue, m.Queue, auth.Read); err != nil {
		return nil, err
	}
	limit := int(m.Limit)
	if limit <= 0 || limit > q.s.o.ScanPageSize {
		limit = q.s.o.ScanPageSize
	}
	ts, err := q.s.o.Queues.Dead(ctx, m.Queue, limit)
	if err != nil {
		return nil, err
	}
	resp := &v1.DeadResponse{Tasks: make([]*v1.TaskInfo, len(ts))}
	for i, t := range ts {
		resp.Tasks[i] = toTaskInfo(t)
	}
	return connect.NewResponse(resp), nil
}

func (q *queueService) Replay(ctx context.Context, req *connect.Request[v1.ReplayRequest]) (*connect.Response[v1.ReplayResponse], error) {
	m := req.Msg
	if err := q.s.allow(ctx, auth.Queue, m.Queue, auth.Admin); err != nil {
		return nil, err
	}
	if err := q.s.o.Queues.Replay(ctx, m.Queue, m.Ids); err != nil {
		return nil, err
	}
	return connect.NewResponse(&v1.ReplayResponse{}), nil
}

func (q *queueService) Purge(ctx context.Context, req *connect.Request[v1.PurgeRequest]) (*connect.Response[v1.PurgeResponse], error) {
	m := req.Msg
	if err := q.s.allow(ctx, auth.Queue, m.Queue, auth.Admin); err != nil {
		return nil, err
	}
	if err := q.s.o.Queues.Purge(ctx, m.Queue, m.Ids); err != nil {
		return nil, err
	}
	return connect.NewResponse(&v1.PurgeResponse{}), nil
}
