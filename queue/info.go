package queue

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/flowdb/flowdb/db"
	"github.com/flowdb/flowdb/internal/keys"
	"github.com/flowdb/flowdb/wal"
)

// tableSpecs lets db.Check verify every queue table.
func tableSpecs() []db.TableSpec {
	corrupt := func(what string) error { return fmt.Errorf("%w: %s", wal.ErrCorrupt, what) }
	nameOf := func(k []byte) ([]byte, bool) {
		if len(k) < 1 || len(k) < 1+int(k[0]) || k[0] == 0 {
			return nil, false
		}
		return k[1+k[0]:], true
	}
	idSuffix := func(n int) func(k, v []byte) error {
		return func(k, v []byte) error {
			rest, ok := nameOf(k)
			if !ok || len(rest) != n || len(v) != 0 {
				return corrupt("queue index entry")
			}
			return nil
		}
	}
	return []db.TableSpec{
		{Table: keys.TableQueueDef, Name: "queue.def", Check: func(k, v []byte) error {
			if _, ok := decodeConfig(v); !ok {
				return corrupt("queue definition")
			}
			return nil
		}},
		{Table: keys.TableQueueTask, Name: "queue.task", Check: func(k, v []byte) error {
			if rest, ok := nameOf(k); !ok || len(rest) != 8 {
				return corrupt("task key")
			}
			var t task
			if !t.decodeBody(v) {
				return corrupt("task body")
			}
			return nil
		}},
		{Table: keys.TableQueueState, Name: "queue.state", Check: func(k, v []byte) error {
			if rest, ok := nameOf(k); !ok || len(rest) != 8 {
				return corrupt("task state key")
			}
			if _, ok := decodeState(v); !ok {
				return corrupt("task state")
			}
			return nil
		}},
		{Table: keys.TableQueueReady, Name: "queue.ready", Check: func(k, v []byte) error {
			if rest, ok := nameOf(k); !ok || len(rest) != 9 || rest[0] < 255-MaxPriority {
				return corrupt("ready key")
			}
			if _, ok := decodeReadyValue(v); !ok {
				return corrupt("ready value")
			}
			return nil
		}},
		{Table: keys.TableQueueDelayed, Name: "queue.delayed", Check: idSuffix(16)},
		{Table: keys.TableQueueLease, Name: "queue.lease", Check: idSuffix(16)},
		{Table: keys.TableQueueDead, Name: "queue.dead", Check: idSuffix(16)},
		{Table: keys.TableQueueDone, Name: "queue.done", Check: idSuffix(16)},
		{Table: keys.TableQueueIdem, Name: "queue.idem", Check: func(k, v []byte) error {
			if _, ok := nameOf(k); !ok || len(v) != 16 {
				return corrupt("idempotency entry")
			}
			return nil
		}},
		{Table: keys.TableQueueIdemAt, Name: "queue.idem_at", Check: func(k, v []byte) error {
			if rest, ok := nameOf(k); !ok || len(rest) < 8 || len(v) != 0 {
				return corrupt("idempotency time entry")
			}
			return nil
		}},
		{Table: keys.TableQueueHeld, Name: "queue.held", Check: func(k, v []byte) error {
			rest, ok := nameOf(k)
			if _, aok := heldAgent(rest); !ok || !aok || len(v) != 0 {
				return corrupt("held entry")
			}
			return nil
		}},
		{Table: keys.TableQueueMeta, Name: "queue.meta", Check: func(k, v []byte) error {
			if _, ok := decodeMeta(v); !ok {
				return corrupt("queue counters")
			}
			return nil
		}},
	}
}

// Stats describes a queue.
type Stats struct {
	Name string `json:"name"`
	// Hot: ready tasks held in memory; Overflow: ready tasks only in Pebble.
	Hot      int64 `json:"hot"`
	Overflow int64 `json:"overflow"`
	Delayed  int64 `json:"delayed"`
	Leased   int64 `json:"leased"`
	Dead     int64 `json:"dead"`
	Done     int64 `json:"done"`
	// Bytes: payload bytes of outstanding (ready, delayed, leased) tasks.
	Bytes    int64 `json:"bytes"`
	Capacity int64 `json:"capacity"`
	// Totals since the queue was created.
	Enqueued uint64 `json:"enqueued"`
	Acked    uint64 `json:"acked"`
	Retried  uint64 `json:"retried"`
	DeadSum  uint64 `json:"dead_total"`
	// Rates per second over the last RateWindow (measured by the ticker).
	EnqueueRate float64 `json:"enqueue_rate"`
	AckRate     float64 `json:"ack_rate"`
	RetryRate   float64 `json:"retry_rate"`
	// OldestAge is the age of the oldest ready task (0 if none).
	OldestAge time.Duration `json:"oldest_age_ns"`
}

// Stats returns a queue's depths, totals, rates and oldest task age.
func (m *Manager) Stats(queue string) (Stats, error) {
	m.mu.Lock()
	q := m.queues[queue]
	if q == nil {
		m.mu.Unlock()
		return Stats{}, fmt.Errorf("%w: queue %q", ErrNotFound, queue)
	}
	s := Stats{Name: queue, Hot: int64(len(q.hot)), Overflow: q.overflow(), Delayed: q.m.delayed,
		Leased: q.m.leased, Dead: q.m.dead, Done: q.m.done, Bytes: q.m.bytes, Capacity: q.cfg.capacity(),
		Enqueued: q.m.enqueued, Acked: q.m.acked, Retried: q.m.retried, DeadSum: q.m.deadSum}
	s.EnqueueRate, s.AckRate, s.RetryRate = q.rates.rates()
	shard, ready := q.shard, q.m.ready
	m.mu.Unlock()
	if ready > 0 {
		// The oldest ready task is the first of some priority (FIFO within
		// each): one seek per priority.
		oldest := int64(0)
		p := m.d.Pebble()
		for pr := 0; pr <= MaxPriority; pr++ {
			prefix := keys.NameKey(shard, keys.TableQueueReady, queue, []byte{byte(255 - pr)})
			it, err := p.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: keys.PrefixEnd(prefix)})
			if err != nil {
				return s, err
			}
			if it.First() {
				if re, ok := decodeReadyValue(it.Value()); ok {
					if t, ok, _ := m.readTask(shard, queue, re.id); ok && (oldest == 0 || t.enq < oldest) {
						oldest = t.enq
					}
				}
			}
			it.Close()
		}
		if oldest != 0 {
			s.OldestAge = m.d.Now().Sub(time.Unix(0, oldest))
		}
	}
	return s, nil
}

// readTask reads a task's state and body from one snapshot.
func (m *Manager) readTask(shard uint32, queue string, id uint64) (task, bool, error) {
	snap := m.d.Pebble().NewSnapshot()
	defer snap.Close()
	get := func(table byte) ([]byte, error) {
		v, c, err := snap.Get(keys.NameKey(shard, table, queue, be64(id)))
		if err != nil {
			return nil, err
		}
		defer c.Close()
		return append([]byte(nil), v...), nil // fields alias the copy, not Pebble's buffer
	}
	sv, err := get(keys.TableQueueState)
	if errors.Is(err, pebble.ErrNotFound) {
		// Enqueued ready and unchanged since: the body says it all.
		bv, err := get(keys.TableQueueTask)
		if errors.Is(err, pebble.ErrNotFound) {
			return task{}, false, nil
		}
		if err != nil {
			return task{}, false, err
		}
		t, ok := freshTask(id, bv)
		if !ok {
			return task{}, false, fmt.Errorf("%w: task %d body", wal.ErrCorrupt, id)
		}
		return t, true, nil
	}
	if err != nil {
		return task{}, false, err
	}
	t, ok := decodeState(sv)
	if !ok {
		return task{}, false, fmt.Errorf("%w: task %d state", wal.ErrCorrupt, id)
	}
	bv, err := get(keys.TableQueueTask)
	if errors.Is(err, pebble.ErrNotFound) && t.state == stateDone {
		return t, true, nil // Ack deleted the body
	}
	if err != nil {
		if errors.Is(err, pebble.ErrNotFound) {
			err = fmt.Errorf("%w: task %d has no body", wal.ErrCorrupt, id)
		}
		return task{}, false, err
	}
	if !t.decodeBody(bv) {
		return task{}, false, fmt.Errorf("%w: task %d body", wal.ErrCorrupt, id)
	}
	return t, true, nil
}

// TaskInfo describes a stored task. A done task has no body (Ack deletes
// it): its Enqueued, Requires, Tags and Payload are empty.
type TaskInfo struct {
	ID        uint64    `json:"id"`
	State     string    `json:"state"`
	Priority  int       `json:"priority"`
	Attempts  int       `json:"attempts"`
	Enqueued  time.Time `json:"enqueued,omitzero"`
	NotBefore time.Time `json:"not_before,omitzero"`
	LeaseExp  time.Time `json:"lease_expires,omitzero"`
	Agent     string    `json:"agent,omitempty"`
	Requires  []string  `json:"requires,omitempty"`
	Tags      []string  `json:"tags,omitempty"`
	Payload   []byte    `json:"payload,omitempty"`
	Result    []byte    `json:"result,omitempty"`
	LastError string    `json:"last_error,omitempty"`
	Finished  time.Time `json:"finished,omitzero"`
}

var stateNames = map[byte]string{stateReady: "ready", stateDelayed: "delayed", stateLeased: "leased",
	stateDone: "done", stateDead: "dead", stateCanceled: "canceled"}

func info(id uint64, t task) TaskInfo {
	ti := TaskInfo{ID: id, State: stateNames[t.state], Priority: int(t.prio), Attempts: int(t.attempts),
		Agent: string(t.agent), Requires: toStrings(t.requires),
		Tags: toStrings(t.tags), Payload: t.payload, Result: t.result, LastError: string(t.lastErr)}
	if t.hasBody {
		ti.Enqueued = time.Unix(0, t.enq)
	}
	if t.state == stateDelayed {
		ti.NotBefore = time.Unix(0, t.notBefore)
	}
	if t.state == stateLeased || t.state == stateCanceled {
		ti.LeaseExp = time.Unix(0, t.leaseExp)
	}
	if t.doneAt != 0 {
		ti.Finished = time.Unix(0, t.doneAt)
	}
	return ti
}

// Get returns a task (pending, leased, done within retention, or dead).
func (m *Manager) Get(ctx context.Context, queue string, id uint64) (TaskInfo, error) {
	if err := m.d.ReadBarrier(ctx, m.d.Placement().ShardFor(queue)); err != nil {
		return TaskInfo{}, err
	}
	if err := m.exists(ctx, queue); err != nil {
		return TaskInfo{}, err
	}
	t, ok, err := m.readTask(m.d.Placement().ShardFor(queue), queue, id)
	if err != nil {
		return TaskInfo{}, err
	}
	if !ok {
		return TaskInfo{}, fmt.Errorf("%w: task %d in %q", ErrNotFound, id, queue)
	}
	return info(id, t), nil
}

// Dead lists up to limit dead letters, oldest first.
func (m *Manager) Dead(ctx context.Context, queue string, limit int) ([]TaskInfo, error) {
	if err := m.d.ReadBarrier(ctx, m.d.Placement().ShardFor(queue)); err != nil {
		return nil, err
	}
	if err := m.exists(ctx, queue); err != nil {
		return nil, err
	}
	shard := m.d.Placement().ShardFor(queue)
	prefix := keys.NameKey(shard, keys.TableQueueDead, queue)
	it, err := m.d.Pebble().NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: keys.PrefixEnd(prefix)})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var out []TaskInfo
	for ok := it.First(); ok && (limit <= 0 || len(out) < limit); ok = it.Next() {
		k := it.Key()
		id := binary.BigEndian.Uint64(k[len(k)-8:])
		t, ok, err := m.readTask(shard, queue, id)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, info(id, t))
		}
	}
	return out, it.Error()
}

// ---- ticker and rates -----------------------------------------------------

// RateWindow is the window over which Stats reports rates.
const RateWindow = 10 * time.Second

type rateSample struct {
	at                       time.Time
	enqueued, acked, retried uint64
}

// rateRing keeps per-second samples of a queue's totals. Protected by
// Manager.mu.
type rateRing struct{ s []rateSample }

func (r *rateRing) add(s rateSample) {
	r.s = append(r.s, s)
	for len(r.s) > 2 && s.at.Sub(r.s[0].at) > RateWindow {
		r.s = r.s[1:]
	}
}

func (r *rateRing) rates() (enq, ack, retry float64) {
	if len(r.s) < 2 {
		return 0, 0, 0
	}
	a, b := r.s[0], r.s[len(r.s)-1]
	sec := b.at.Sub(a.at).Seconds()
	if sec <= 0 {
		return 0, 0, 0
	}
	return float64(b.enqueued-a.enqueued) / sec, float64(b.acked-a.acked) / sec, float64(b.retried-a.retried) / sec
}

func (m *Manager) tickLoop() {
	defer close(m.done)
	t := time.NewTicker(m.opts.TickInterval)
	defer t.Stop()
	lastSample := time.Time{}
	for {
		select {
		case <-m.stop:
			return
		case <-t.C:
		}
		now := m.d.Now()
		sample := now.Sub(lastSample) >= time.Second
		if sample {
			lastSample = now
		}
		for _, name := range m.Queues() {
			m.mu.Lock()
			q := m.queues[name]
			if sample {
				q.rates.add(rateSample{at: now, enqueued: q.m.enqueued, acked: q.m.acked, retried: q.m.retried})
			}
			shard, cfg, mm := q.shard, q.cfg, q.m
			m.mu.Unlock()
			// On a replica only the shard's leader proposes ticks.
			if m.d.Leads(shard) && m.due(shard, cfg, mm, now.UnixNano()) {
				if err := m.Tick(context.Background(), name); err != nil && !errors.Is(err, db.ErrClosed) {
					m.d.Logger().Warn("queue: tick", "queue", name, "err", err)
				}
			}
		}
	}
}

// due peeks at the timer indexes: is anything due at now?
func (m *Manager) due(shard uint32, cfg Config, mm meta, now int64) bool {
	check := func(table byte, count int64, until int64) bool {
		if count <= 0 {
			return false
		}
		lo := keys.NameKey(shard, table, cfg.Name)
		it, err := m.d.Pebble().NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: keys.NameKey(shard, table, cfg.Name, ts(until+1))})
		if err != nil {
			return false
		}
		defer it.Close()
		return it.First()
	}
	return check(keys.TableQueueDelayed, mm.delayed, now) || check(keys.TableQueueLease, mm.leased, now) ||
		check(keys.TableQueueIdemAt, 1, now-int64(cfg.IdempotencyWindow)) ||
		check(keys.TableQueueDone, mm.done, now-int64(cfg.ResultRetention)) ||
		check(keys.TableQueueDead, mm.dead, now-int64(cfg.DeadRetention))
}
