package mcp

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/flowdb/flowdb/queue"
)

// Task tool arguments and results. Their field tags are the JSON schemas a
// model reads: keep the descriptions plain.

type queueCreateIn struct {
	Queue        string  `json:"queue" jsonschema:"name of the queue to create (1-128 bytes)"`
	LeaseSeconds float64 `json:"lease_seconds,omitempty" jsonschema:"default lease length in seconds (default 30)"`
	MaxAttempts  int     `json:"max_attempts,omitempty" jsonschema:"attempts before a task goes to the dead letters (default 5)"`
}

type okOut struct {
	OK bool `json:"ok"`
}

type enqueueIn struct {
	Queue          string   `json:"queue" jsonschema:"queue name"`
	Payload        string   `json:"payload" jsonschema:"the task: text or JSON the worker will read (up to 1 MiB)"`
	Priority       int      `json:"priority,omitempty" jsonschema:"0 (default) to 9; higher is leased first"`
	IdempotencyKey string   `json:"idempotency_key,omitempty" jsonschema:"if set, enqueueing the same key again returns the first task's id and adds nothing"`
	DelaySeconds   float64  `json:"delay_seconds,omitempty" jsonschema:"hold the task back this many seconds before it can be leased"`
	Requires       []string `json:"requires,omitempty" jsonschema:"capabilities an agent must have to lease the task"`
	Tags           []string `json:"tags,omitempty" jsonschema:"labels stored with the task and returned with its lease"`
}

type enqueueOut struct {
	ID uint64 `json:"id" jsonschema:"the task's id"`
}

type leaseIn struct {
	Queue        string   `json:"queue" jsonschema:"queue name"`
	Agent        string   `json:"agent" jsonschema:"your agent id (the lease is held in its name)"`
	Max          int      `json:"max,omitempty" jsonschema:"most tasks to lease at once (default 1, at most 100)"`
	LeaseSeconds float64  `json:"lease_seconds,omitempty" jsonschema:"how long you may hold each task before it returns to the queue (default: the queue's, 30s)"`
	WaitSeconds  float64  `json:"wait_seconds,omitempty" jsonschema:"if no task is ready, wait up to this many seconds for one (default 0: answer at once; the server caps it)"`
	Capabilities []string `json:"capabilities,omitempty" jsonschema:"your capabilities: tasks requiring others are skipped"`
}

type leaseOut struct {
	Tasks []leaseItem `json:"tasks" jsonschema:"the leased tasks; empty when none was ready"`
}

type leaseItem struct {
	ID       uint64   `json:"id" jsonschema:"task id: pass it to task_ack, task_nack, task_extend or step"`
	Token    string   `json:"token" jsonschema:"lease token (a string of digits): pass it back unchanged with the id"`
	Payload  string   `json:"payload"`
	Attempt  int      `json:"attempt" jsonschema:"1 on the first lease, more on retries"`
	Priority int      `json:"priority"`
	Tags     []string `json:"tags,omitempty"`
	Expires  string   `json:"expires" jsonschema:"when the lease runs out (RFC 3339)"`
}

type leaseRef struct {
	Queue string `json:"queue" jsonschema:"queue name"`
	ID    uint64 `json:"id" jsonschema:"task id from task_lease"`
	Token string `json:"token" jsonschema:"lease token from task_lease, unchanged"`
}

type extendIn struct {
	leaseRef
	LeaseSeconds float64 `json:"lease_seconds" jsonschema:"new lease length from now, in seconds"`
}

type ackIn struct {
	leaseRef
	Result string `json:"result,omitempty" jsonschema:"the task's result, kept for an hour (up to 1 MiB)"`
}

type nackIn struct {
	leaseRef
	Reason string `json:"reason" jsonschema:"why the task failed; it is retried later, or dead-lettered after its last attempt"`
}

type queueIn struct {
	Queue string `json:"queue" jsonschema:"queue name"`
}

type deadIn struct {
	Queue string `json:"queue" jsonschema:"queue name"`
	Limit int    `json:"limit,omitempty" jsonschema:"most dead letters to list (default 20, at most 1000)"`
}

type taskGetIn struct {
	Queue string `json:"queue" jsonschema:"queue name"`
	ID    uint64 `json:"id" jsonschema:"task id"`
}

type taskOut struct {
	ID        uint64   `json:"id"`
	State     string   `json:"state" jsonschema:"ready, delayed, leased, done or dead"`
	Priority  int      `json:"priority"`
	Attempts  int      `json:"attempts"`
	Agent     string   `json:"agent,omitempty"`
	Tags      []string `json:"tags,omitempty"`
	Payload   string   `json:"payload,omitempty"`
	Result    string   `json:"result,omitempty"`
	LastError string   `json:"last_error,omitempty"`
}

type deadOut struct {
	Tasks []taskOut `json:"tasks"`
}

func taskInfo(t queue.TaskInfo) taskOut {
	return taskOut{ID: t.ID, State: t.State, Priority: t.Priority, Attempts: t.Attempts, Agent: t.Agent, Tags: t.Tags,
		Payload: string(t.Payload), Result: string(t.Result), LastError: t.LastError}
}

// checkQueue authorizes and refuses unknown queues with errUnknownQueue.
func (s *server) checkQueue(ctx context.Context, name string, write bool) error {
	if err := s.authorize(ctx, "queue", name, write); err != nil {
		return err
	}
	if name == "" || len(name) > queue.MaxNameSize {
		return invalid("queue name must be 1..%d bytes", queue.MaxNameSize)
	}
	_, err := s.st.Queues.Config(name)
	if errors.Is(err, queue.ErrNotFound) {
		// On a replica the queue may have been created on another member
		// and not yet applied here: look again after a read barrier.
		if err := s.barrier(ctx, name); err != nil {
			return err
		}
		_, err = s.st.Queues.Config(name)
	}
	if err != nil {
		if errors.Is(err, queue.ErrNotFound) {
			return &toolErr{code: "unknown_queue", err: errors.Join(errUnknownQueue, errors.New("no queue named "+name)),
				hint: "Check the queue name (resource flowdb://queues lists them) or create it with queue_create"}
		}
		return err
	}
	return nil
}

// token parses a lease token.
func (r leaseRef) token() (uint64, error) {
	t, err := strconv.ParseUint(r.Token, 10, 64)
	if err != nil {
		return 0, invalid("token %q is not the token task_lease returned", r.Token)
	}
	return t, nil
}

// task converts an enqueue argument.
func task(in enqueueIn) (queue.Task, error) {
	if len(in.Payload) > MaxPayloadSize {
		return queue.Task{}, invalid("payload of %d bytes, at most %d", len(in.Payload), MaxPayloadSize)
	}
	if err := checkTags(in.Tags); err != nil {
		return queue.Task{}, err
	}
	if err := checkTags(in.Requires); err != nil {
		return queue.Task{}, err
	}
	d, err := seconds("delay_seconds", in.DelaySeconds, 365*24*time.Hour)
	if err != nil {
		return queue.Task{}, err
	}
	t := queue.Task{Payload: []byte(in.Payload), Priority: in.Priority, IdempotencyKey: in.IdempotencyKey, Requires: in.Requires, Tags: in.Tags}
	if d > 0 {
		t.NotBefore = time.Now().Add(d)
	}
	return t, nil
}

func (s *server) addTaskTools() {
	addTool(s, "queue_create", "Create a task queue. Creating a queue that exists with the same settings does nothing.", false,
		func(ctx context.Context, in queueCreateIn) (okOut, error) {
			if err := s.authorizeAccess(ctx, Access{Kind: "queue", Name: in.Queue, Write: true, Create: true}); err != nil {
				return okOut{}, err
			}
			ls, err := seconds("lease_seconds", in.LeaseSeconds, 24*time.Hour)
			if err != nil {
				return okOut{}, err
			}
			if in.MaxAttempts < 0 || in.MaxAttempts > 1000 {
				return okOut{}, invalid("max_attempts %d outside 0..1000", in.MaxAttempts)
			}
			err = s.st.Queues.Create(ctx, queue.Config{Name: in.Queue, LeaseDuration: ls, MaxAttempts: in.MaxAttempts})
			return okOut{OK: err == nil}, err
		})

	addTool(s, "task_enqueue", "Add a task to a queue. It is durable when this returns: it will be leased by some agent, retried on failure, and dead-lettered only after its last attempt.", false,
		func(ctx context.Context, in enqueueIn) (enqueueOut, error) {
			if err := s.checkQueue(ctx, in.Queue, true); err != nil {
				return enqueueOut{}, err
			}
			t, err := task(in)
			if err != nil {
				return enqueueOut{}, err
			}
			id, err := s.st.Queues.Enqueue(ctx, in.Queue, t)
			return enqueueOut{ID: id}, err
		})

	addTool(s, "task_lease", "Lease ready tasks from a queue: they are yours until the lease expires. Keep each task's id and token, do the work, then call task_ack (done), task_nack (failed, retry later) or step. Returns an empty list when nothing is ready (after waiting up to wait_seconds).", false,
		func(ctx context.Context, in leaseIn) (leaseOut, error) {
			if err := s.checkQueue(ctx, in.Queue, true); err != nil {
				return leaseOut{}, err
			}
			n := in.Max
			if n == 0 {
				n = 1
			}
			if n < 0 || n > MaxLeaseBatch {
				return leaseOut{}, invalid("max %d outside 1..%d", in.Max, MaxLeaseBatch)
			}
			lf, err := seconds("lease_seconds", in.LeaseSeconds, 24*time.Hour)
			if err != nil {
				return leaseOut{}, err
			}
			wait, err := seconds("wait_seconds", in.WaitSeconds, 24*time.Hour)
			if err != nil {
				return leaseOut{}, err
			}
			wait = min(wait, s.o.MaxLeaseWait)
			var ls []queue.Lease
			if wait > 0 {
				wctx, cancel := context.WithTimeout(ctx, wait)
				ls, err = s.st.Queues.LeaseWait(wctx, in.Queue, in.Agent, n, in.Capabilities, lf)
				cancel()
				if err != nil && len(ls) == 0 && wctx.Err() != nil && ctx.Err() == nil {
					err = nil // waited in vain: no task, no error
				}
			} else {
				ls, err = s.st.Queues.Lease(ctx, in.Queue, in.Agent, n, in.Capabilities, lf)
			}
			out := leaseOut{Tasks: []leaseItem{}}
			for _, l := range ls {
				out.Tasks = append(out.Tasks, leaseItem{ID: l.ID, Token: strconv.FormatUint(l.Token, 10), Payload: string(l.Payload), Attempt: l.Attempt,
					Priority: l.Priority, Tags: l.Tags, Expires: l.Expires.UTC().Format(time.RFC3339Nano)})
			}
			return out, err
		})

	addTool(s, "task_extend", "Extend a lease you hold, so a long task is not handed to another agent. Fails with lease_lost if it already expired.", false,
		func(ctx context.Context, in extendIn) (okOut, error) {
			if err := s.checkQueue(ctx, in.Queue, true); err != nil {
				return okOut{}, err
			}
			d, err := seconds("lease_seconds", in.LeaseSeconds, 24*time.Hour)
			if err != nil {
				return okOut{}, err
			}
			if d == 0 {
				return okOut{}, invalid("lease_seconds must be positive")
			}
			tok, err := in.token()
			if err != nil {
				return okOut{}, err
			}
			err = s.st.Queues.Extend(ctx, in.Queue, in.ID, tok, d)
			return okOut{OK: err == nil}, err
		})

	addTool(s, "task_ack", "Mark a leased task done, with its result. Once this returns the task is finished for good, even across crashes.", false,
		func(ctx context.Context, in ackIn) (okOut, error) {
			if err := s.checkQueue(ctx, in.Queue, true); err != nil {
				return okOut{}, err
			}
			if len(in.Result) > MaxPayloadSize {
				return okOut{}, invalid("result of %d bytes, at most %d", len(in.Result), MaxPayloadSize)
			}
			tok, err := in.token()
			if err != nil {
				return okOut{}, err
			}
			err = s.st.Queues.Ack(ctx, in.Queue, in.ID, tok, []byte(in.Result))
			return okOut{OK: err == nil}, err
		})

	addTool(s, "task_nack", "Give a leased task back as failed, with the reason. It is retried after a backoff, or dead-lettered after its last attempt.", false,
		func(ctx context.Context, in nackIn) (okOut, error) {
			if err := s.checkQueue(ctx, in.Queue, true); err != nil {
				return okOut{}, err
			}
			if len(in.Reason) > MaxReasonSize {
				return okOut{}, invalid("reason of %d bytes, at most %d", len(in.Reason), MaxReasonSize)
			}
			tok, err := in.token()
			if err != nil {
				return okOut{}, err
			}
			err = s.st.Queues.Nack(ctx, in.Queue, in.ID, tok, in.Reason)
			return okOut{OK: err == nil}, err
		})

	addTool(s, "task_get", "Read one task's state (ready, delayed, leased, done, dead), attempts, and result once done.", true,
		func(ctx context.Context, in taskGetIn) (taskOut, error) {
			if err := s.checkQueue(ctx, in.Queue, false); err != nil {
				return taskOut{}, err
			}
			t, err := s.st.Queues.Get(ctx, in.Queue, in.ID)
			return taskInfo(t), err
		})

	addTool(s, "queue_stats", "Counts of a queue's tasks by state (ready, delayed, leased, done, dead) and its recent enqueue and ack rates.", true,
		func(ctx context.Context, in queueIn) (queue.Stats, error) {
			if err := s.checkQueue(ctx, in.Queue, false); err != nil {
				return queue.Stats{}, err
			}
			if err := s.barrier(ctx, in.Queue); err != nil { // counts are in memory: current on a replica
				return queue.Stats{}, err
			}
			return s.st.Queues.Stats(in.Queue)
		})

	addTool(s, "queue_dead_letters", "List a queue's dead letters: tasks that failed their last attempt, with their last error.", true,
		func(ctx context.Context, in deadIn) (deadOut, error) {
			if err := s.checkQueue(ctx, in.Queue, false); err != nil {
				return deadOut{}, err
			}
			lim := in.Limit
			if lim == 0 {
				lim = 20
			}
			if lim < 0 || lim > MaxScanLimit {
				return deadOut{}, invalid("limit %d outside 1..%d", in.Limit, MaxScanLimit)
			}
			ts, err := s.st.Queues.Dead(ctx, in.Queue, lim)
			out := deadOut{Tasks: []taskOut{}}
			for _, t := range ts {
				out.Tasks = append(out.Tasks, taskInfo(t))
			}
			return out, err
		})
}
