package client

import (
	"context"
	"errors"
	"time"

	"connectrpc.com/connect"
	v1 "github.com/flowdb/flowdb/api/flowdb/v1"
)

// QueueConfig describes a queue, as queue.Config does (zero fields take
// the server's defaults; durations travel in milliseconds).
type QueueConfig struct {
	Name                    string
	HotCapacity             int
	OverflowCapacity        int
	MaxBytes                int64
	ReserveFraction         float64
	HighPriority            int
	MaxAttempts             int
	LeaseDuration           time.Duration
	BackoffBase, BackoffMax time.Duration
	JitterFraction          float64
	ResultRetention         time.Duration
	DeadRetention           time.Duration
	IdempotencyWindow       time.Duration
}

// Task is a task to enqueue, as queue.Task.
type Task struct {
	Payload        []byte
	Priority       int
	IdempotencyKey string
	NotBefore      time.Time
	Requires       []string
	Tags           []string
	Affinity       string
}

func (t Task) wire() *v1.Task {
	return &v1.Task{Payload: t.Payload, Priority: int32(t.Priority), IdempotencyKey: t.IdempotencyKey,
		NotBeforeUnixNano: unixNano(t.NotBefore), Requires: t.Requires, Tags: t.Tags, Affinity: t.Affinity}
}

// Lease is a task handed to an agent, as queue.Lease.
type Lease struct {
	Queue    string
	Agent    string
	ID       uint64
	Token    uint64
	Expires  time.Time
	Attempt  int
	Priority int
	Payload  []byte
	Tags     []string
}

func fromLease(l *v1.Lease) Lease {
	return Lease{Queue: l.Queue, Agent: l.Agent, ID: l.Id, Token: l.Token, Expires: fromNano(l.ExpiresUnixNano),
		Attempt: int(l.Attempt), Priority: int(l.Priority), Payload: l.Payload, Tags: l.Tags}
}

// AckItem is one task of an AckBatch.
type AckItem struct {
	ID, Token uint64
	Result    []byte
}

// CreateQueue creates a queue, or does nothing if it exists with the same
// config (queue.ErrExists otherwise).
func (c *Client) CreateQueue(ctx context.Context, q QueueConfig) error {
	cfg := &v1.QueueConfig{Name: q.Name, HotCapacity: int64(q.HotCapacity), OverflowCapacity: int64(q.OverflowCapacity),
		MaxBytes: q.MaxBytes, ReserveFraction: q.ReserveFraction, HighPriority: int32(q.HighPriority), MaxAttempts: int32(q.MaxAttempts),
		LeaseMs: ms(q.LeaseDuration), BackoffBaseMs: ms(q.BackoffBase), BackoffMaxMs: ms(q.BackoffMax), JitterFraction: q.JitterFraction,
		ResultRetentionMs: ms(q.ResultRetention), DeadRetentionMs: ms(q.DeadRetention), IdempotencyWindowMs: ms(q.IdempotencyWindow)}
	_, err := call(ctx, c, idempotent, func(ctx context.Context) (*connect.Response[v1.CreateQueueResponse], error) {
		return c.q.Create(ctx, connect.NewRequest(&v1.CreateQueueRequest{Config: cfg}))
	})
	return err
}

// Queues lists the queues the caller may read.
func (c *Client) Queues(ctx context.Context) ([]string, error) {
	m, err := call(ctx, c, idempotent, func(ctx context.Context) (*connect.Response[v1.ListQueuesResponse], error) {
		return c.q.List(ctx, connect.NewRequest(&v1.ListQueuesRequest{}))
	})
	if err != nil {
		return nil, err
	}
	return m.Names, nil
}

// Enqueue adds one task and returns its id once it is durable. Concurrent
// Enqueue calls on one queue are coalesced into EnqueueBatch requests
// (see Options.NoCoalesce). A task with an IdempotencyKey is sent on its
// own and retried after a connection failure (the key makes the repetition
// harmless); one without is never sent twice and gets ErrOutcomeUnknown
// when its connection fails after sending.
func (c *Client) Enqueue(ctx context.Context, queue string, t Task) (uint64, error) {
	if c.o.NoCoalesce || t.IdempotencyKey != "" {
		return c.enqueue1(ctx, queue, t)
	}
	return c.enq.get(queue).do(ctx, enqItem{t})
}

func (c *Client) enqueue1(ctx context.Context, queue string, t Task) (uint64, error) {
	s := once
	if t.IdempotencyKey != "" {
		s = idempotent
	}
	m, err := call(ctx, c, s, func(ctx context.Context) (*connect.Response[v1.EnqueueResponse], error) {
		return c.q.Enqueue(ctx, connect.NewRequest(&v1.EnqueueRequest{Queue: queue, Task: t.wire()}))
	})
	if err != nil {
		return 0, err
	}
	return m.Id, nil
}

// EnqueueBatch adds tasks atomically (all or none) and returns their ids.
func (c *Client) EnqueueBatch(ctx context.Context, queue string, tasks []Task) ([]uint64, error) {
	ts := make([]*v1.Task, len(tasks))
	keyed := len(tasks) > 0
	for i, t := range tasks {
		ts[i] = t.wire()
		keyed = keyed && t.IdempotencyKey != ""
	}
	s := once
	if keyed {
		s = idempotent
	}
	m, err := call(ctx, c, s, func(ctx context.Context) (*connect.Response[v1.EnqueueBatchResponse], error) {
		return c.q.EnqueueBatch(ctx, connect.NewRequest(&v1.EnqueueBatchRequest{Queue: queue, Tasks: ts}))
	})
	if err != nil {
		return nil, err
	}
	return m.Ids, nil
}

type enqItem struct{ t Task }

// sendEnqueues sends one coalesced batch; on a rejection of the whole
// batch, each task again alone.
func (c *Client) sendEnqueues(ctx context.Context, queue string, items []enqItem) ([]uint64, []error) {
	ctx, cancel := context.WithTimeout(ctx, c.o.CallTimeout)
	defer cancel()
	ids := make([]uint64, len(items))
	errs := make([]error, len(items))
	tasks := make([]Task, len(items))
	for i, it := range items {
		tasks[i] = it.t
	}
	var got []uint64
	var err error
	if len(items) == 1 {
		var id uint64
		id, err = c.enqueue1(ctx, queue, tasks[0])
		got = []uint64{id}
	} else {
		got, err = c.EnqueueBatch(ctx, queue, tasks)
	}
	switch {
	case err == nil:
		copy(ids, got)
	case len(items) == 1 || errors.Is(err, ErrOutcomeUnknown) || transport(err):
		for i := range errs {
			errs[i] = err
		}
	default: // the batch was refused as a whole: nothing of it applied
		for i, t := range tasks {
			ids[i], errs[i] = c.enqueue1(ctx, queue, t)
		}
	}
	return ids, errs
}

// Lease hands up to n ready tasks to agent at once (none if nothing is
// ready). leaseFor 0 takes the queue's lease duration.
func (c *Client) Lease(ctx context.Context, queue, agent string, n int, caps []string, leaseFor time.Duration) ([]Lease, error) {
	return c.lease(ctx, queue, agent, n, caps, leaseFor, 0)
}

// LeaseWait is Lease that waits up to wait for a task (bounded by ctx's
// deadline and the server's maximum wait); it returns no lease and no error
// when the wait ends with nothing ready.
func (c *Client) LeaseWait(ctx context.Context, queue, agent string, n int, caps []string, leaseFor, wait time.Duration) ([]Lease, error) {
	return c.lease(ctx, queue, agent, n, caps, leaseFor, max(wait, time.Millisecond))
}

// lease is sent once: a lease granted to a call whose answer was lost
// expires back to ready, and a retry would lease another task meanwhile.
func (c *Client) lease(ctx context.Context, queue, agent string, n int, caps []string, leaseFor, wait time.Duration) ([]Lease, error) {
	m, err := call(ctx, c, once, func(ctx context.Context) (*connect.Response[v1.LeaseResponse], error) {
		return c.q.Lease(ctx, connect.NewRequest(&v1.LeaseRequest{Queue: queue, Agent: agent, N: int32(n), Capabilities: caps,
			LeaseMs: ms(leaseFor), WaitMs: ms(wait)}))
	})
	if err != nil {
		return nil, err
	}
	out := make([]Lease, len(m.Leases))
	for i, l := range m.Leases {
		out[i] = fromLease(l)
	}
	return out, nil
}

// Extend renews a lease.
func (c *Client) Extend(ctx context.Context, queue string, id, token uint64, leaseFor time.Duration) error {
	_, err := call(ctx, c, idempotent, func(ctx context.Context) (*connect.Response[v1.ExtendResponse], error) {
		return c.q.Extend(ctx, connect.NewRequest(&v1.ExtendRequest{Queue: queue, Id: id, Token: token, LeaseMs: ms(leaseFor)}))
	})
	return err
}

// Ack completes a leased task. Concurrent Ack calls on one queue are
// coalesced into AckBatch requests (each still gets its own outcome).
func (c *Client) Ack(ctx context.Context, queue string, id, token uint64, result []byte) error {
	if c.o.NoCoalesce {
		_, err := call(ctx, c, once, func(ctx context.Context) (*connect.Response[v1.AckResponse], error) {
			return c.q.Ack(ctx, connect.NewRequest(&v1.AckRequest{Queue: queue, Id: id, Token: token, Result: result}))
		})
		return err
	}
	_, err := c.ack.get(queue).do(ctx, ackItem{AckItem{id, token, result}})
	return err
}

type ackItem struct{ AckItem }

func (c *Client) sendAcks(ctx context.Context, queue string, items []ackItem) ([]struct{}, []error) {
	ctx, cancel := context.WithTimeout(ctx, c.o.CallTimeout)
	defer cancel()
	as := make([]AckItem, len(items))
	for i, it := range items {
		as[i] = it.AckItem
	}
	errs, err := c.AckBatch(ctx, queue, as)
	if err != nil {
		errs = make([]error, len(items))
		for i := range errs {
			errs[i] = err
		}
	}
	return make([]struct{}, len(items)), errs
}

// AckBatch completes many tasks in one record; errs holds each item's
// outcome, err the call's.
func (c *Client) AckBatch(ctx context.Context, queue string, items []AckItem) (errs []error, err error) {
	req := &v1.AckBatchRequest{Queue: queue, Items: make([]*v1.AckItem, len(items))}
	for i, it := range items {
		req.Items[i] = &v1.AckItem{Id: it.ID, Token: it.Token, Result: it.Result}
	}
	m, err := call(ctx, c, once, func(ctx context.Context) (*connect.Response[v1.AckBatchResponse], error) {
		return c.q.AckBatch(ctx, connect.NewRequest(req))
	})
	if err != nil {
		return nil, err
	}
	errs = make([]error, len(items))
	for i, e := range m.Errors {
		if i < len(errs) && e.GetCode() != "" {
			var code connect.Code
			_ = code.UnmarshalText([]byte(e.Code))
			errs[i] = &Error{Code: code, Msg: e.Message, Classes: e.Classes}
		}
	}
	return errs, nil
}

// Nack returns a leased task for retry.
func (c *Client) Nack(ctx context.Context, queue string, id, token uint64, reason string) error {
	_, err := call(ctx, c, once, func(ctx context.Context) (*connect.Response[v1.NackResponse], error) {
		return c.q.Nack(ctx, connect.NewRequest(&v1.NackRequest{Queue: queue, Id: id, Token: token, Reason: reason}))
	})
	return err
}

// Cancel removes a pending task (or marks a leased one canceled).
func (c *Client) Cancel(ctx context.Context, queue string, id uint64) error {
	_, err := call(ctx, c, idempotent, func(ctx context.Context) (*connect.Response[v1.CancelResponse], error) {
		return c.q.Cancel(ctx, connect.NewRequest(&v1.CancelRequest{Queue: queue, Id: id}))
	})
	return err
}

// GetTask returns a stored task.
func (c *Client) GetTask(ctx context.Context, queue string, id uint64) (*v1.TaskInfo, error) {
	m, err := call(ctx, c, idempotent, func(ctx context.Context) (*connect.Response[v1.GetTaskResponse], error) {
		return c.q.GetTask(ctx, connect.NewRequest(&v1.GetTaskRequest{Queue: queue, Id: id}))
	})
	if err != nil {
		return nil, err
	}
	return m.Task, nil
}

// QueueStats returns a queue's depths, totals and rates.
func (c *Client) QueueStats(ctx context.Context, queue string) (*v1.QueueStatsResponse, error) {
	return call(ctx, c, idempotent, func(ctx context.Context) (*connect.Response[v1.QueueStatsResponse], error) {
		return c.q.Stats(ctx, connect.NewRequest(&v1.QueueStatsRequest{Queue: queue}))
	})
}

// Dead lists up to limit dead letters, oldest first.
func (c *Client) Dead(ctx context.Context, queue string, limit int) ([]*v1.TaskInfo, error) {
	m, err := call(ctx, c, idempotent, func(ctx context.Context) (*connect.Response[v1.DeadResponse], error) {
		return c.q.Dead(ctx, connect.NewRequest(&v1.DeadRequest{Queue: queue, Limit: int32(limit)}))
	})
	if err != nil {
		return nil, err
	}
	return m.Tasks, nil
}

// Replay re-enqueues dead letters.
func (c *Client) Replay(ctx context.Context, queue string, ids []uint64) error {
	_, err := call(ctx, c, once, func(ctx context.Context) (*connect.Response[v1.ReplayResponse], error) {
		return c.q.Replay(ctx, connect.NewRequest(&v1.ReplayRequest{Queue: queue, Ids: ids}))
	})
	return err
}

// Purge deletes dead letters.
func (c *Client) Purge(ctx context.Context, queue string, ids []uint64) error {
	_, err := call(ctx, c, idempotent, func(ctx context.Context) (*connect.Response[v1.PurgeResponse], error) {
		return c.q.Purge(ctx, connect.NewRequest(&v1.PurgeRequest{Queue: queue, Ids: ids}))
	})
	return err
}
