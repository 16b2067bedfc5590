package client

import (
	"context"
	"sync"
)

// Coalescing.
//
// Many goroutines that each enqueue (or ack) one task would each pay a
// round trip and a commit. The client gathers such calls per queue into
// one batch request: a call joins the pending list; while fewer than
// CoalesceFlights batches are in flight for its queue, a new flight leaves
// at once with everything pending (up to CoalesceMax). Calls that arrive
// while every flight is out wait for the next one, which carries them all.
// Nothing waits on a timer: one caller alone gets one request, the same
// latency as without coalescing, and load builds batches by itself.
//
// A batch request's outcome is each call's outcome: AckBatch answers per
// item; EnqueueBatch is all-or-none, so when the server rejects the batch
// (a full queue, an invalid task) each of its tasks is sent again alone and
// gets its own answer; when the batch's outcome is unknown, so is each
// call's. A caller whose context ends while it waits gets ErrOutcomeUnknown
// if its task may already have left, its context's error otherwise.

// pending is one coalesced call.
type pending[T, R any] struct {
	item T
	res  R
	err  error
	sent bool // REQUIRES: coalescer.mu held (read by an abandoning caller)
	done chan struct{}
}

// coalescer batches the calls of one queue.
type coalescer[T, R any] struct {
	key  string
	max  int
	fl   int
	send func(ctx context.Context, key string, items []T) ([]R, []error)

	mu struct {
		sync.Mutex
		queue    []*pending[T, R]
		inflight int
	}
}

// coalescers holds one coalescer per queue.
type coalescers[T, R any] struct {
	max, flights int
	send         func(ctx context.Context, key string, items []T) ([]R, []error)
	m            sync.Map // key -> *coalescer
}

func newCoalescers[T, R any](max, flights int, send func(ctx context.Context, key string, items []T) ([]R, []error)) *coalescers[T, R] {
	return &coalescers[T, R]{max: max, flights: flights, send: send}
}

func (cs *coalescers[T, R]) get(key string) *coalescer[T, R] {
	if c, ok := cs.m.Load(key); ok {
		return c.(*coalescer[T, R])
	}
	c, _ := cs.m.LoadOrStore(key, &coalescer[T, R]{key: key, max: cs.max, fl: cs.flights, send: cs.send})
	return c.(*coalescer[T, R])
}

// do submits item and waits for its outcome.
func (c *coalescer[T, R]) do(ctx context.Context, item T) (R, error) {
	p := &pending[T, R]{item: item, done: make(chan struct{})}
	c.mu.Lock()
	c.mu.queue = append(c.mu.queue, p)
	if c.mu.inflight < c.fl {
		c.mu.inflight++
		go c.flush()
	}
	c.mu.Unlock()
	select {
	case <-p.done:
		return p.res, p.err
	case <-ctx.Done():
		c.mu.Lock()
		sent := p.sent
		if !sent {
			for i, q := range c.mu.queue {
				if q == p {
					c.mu.queue = append(c.mu.queue[:i], c.mu.queue[i+1:]...)
					break
				}
			}
		}
		c.mu.Unlock()
		var zero R
		if sent {
			return zero, outcomeUnknown(ctx.Err())
		}
		return zero, ctx.Err()
	}
}

// flush sends batches until nothing is pending, then gives its flight back.
func (c *coalescer[T, R]) flush() {
	for {
		c.mu.Lock()
		n := min(len(c.mu.queue), c.max)
		if n == 0 {
			c.mu.inflight--
			c.mu.Unlock()
			return
		}
		batch := make([]*pending[T, R], n)
		copy(batch, c.mu.queue)
		c.mu.queue = append(c.mu.queue[:0], c.mu.queue[n:]...)
		for _, p := range batch {
			p.sent = true
		}
		c.mu.Unlock()
		items := make([]T, n)
		for i, p := range batch {
			items[i] = p.item
		}
		res, errs := c.send(context.Background(), c.key, items)
		for i, p := range batch {
			p.res, p.err = res[i], errs[i]
			close(p.done)
		}
	}
}
