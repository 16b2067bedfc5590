package queue

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/flowdb/flowdb/db"
	"github.com/flowdb/flowdb/internal/keys"
	"github.com/flowdb/flowdb/wal"
)

// Record kinds of push dispatch (see Assign and Release).
const (
	// KindAssign leases chosen ready tasks to chosen agents: the outcome of
	// a scheduling decision made by the proposer.
	KindAssign wal.Kind = 111
	// KindRelease returns every task leased to an agent to the ready set.
	KindRelease wal.Kind = 112
)

var (
	// ErrNotReady: an assigned task was no longer ready when the assignment
	// applied (another lease took it, or it was canceled).
	ErrNotReady = errors.New("queue: task no longer ready")
	// ErrAtCapacity: the agent already held as many tasks as the capacity
	// the assignment carried.
	ErrAtCapacity = errors.New("queue: agent at capacity")
)

// Per-item status codes of a KindAssign result.
const (
	assignOK byte = iota
	assignNotReady
	assignAtCapacity
)

// releaseLimit bounds the tasks one release record returns; Release
// proposes more records until the agent holds nothing in the queue.
const releaseLimit = 4096

// Candidate is a ready task offered to a scheduler by Ready.
type Candidate struct {
	ID       uint64
	Priority int
	Attempts int
	// Requires and Affinity are the task's; Requires is shared and must not
	// be modified.
	Requires []string
	Affinity string

	seq uint64
}

// Assignment gives the task Task to Agent, provided Agent then holds fewer
// than Capacity tasks across all queues of this DB.
type Assignment struct {
	Task     Candidate
	Agent    string
	Capacity int
}

// Ready returns up to max ready tasks from the hot set, in dispatch order
// (priority descending, then FIFO), skipping those for which skip returns
// true (nil skips nothing). It reads memory only.
func (m *Manager) Ready(queue string, max int, skip func(id uint64) bool) ([]Candidate, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	q := m.queues[queue]
	if q == nil {
		return nil, fmt.Errorf("%w: queue %q", ErrNotFound, queue)
	}
	out := make([]Candidate, 0, min(max, len(q.hot)))
	for _, e := range q.hot {
		if len(out) == max {
			break
		}
		if skip != nil && skip(e.id) {
			continue
		}
		out = append(out, Candidate{ID: e.id, Priority: int(e.rank.prio), Attempts: int(e.attempts),
			Requires: e.requires, Affinity: e.affinity, seq: e.rank.seq})
	}
	return out, nil
}

// Held returns the number of tasks leased to agent across all queues (by
// Lease or Assign), as of the last applied record. It takes no lock.
func (m *Manager) Held(agent string) int { return m.held.get(agent) }

// HeldAll returns the number of tasks leased to each agent that holds any.
func (m *Manager) HeldAll() map[string]int {
	out := map[string]int{}
	m.held.total.Range(func(k, v any) bool {
		// An entry whose count apply has just brought to zero is about
		// to be deleted: that agent holds nothing.
		if n := int(v.(*atomic.Int64).Load()); n != 0 {
			out[k.(string)] = n
		}
		return true
	})
	return out
}

// Assign leases each assignment's task to its agent for leaseFor (0: the
// queue's LeaseDuration), in one record. Each assignment succeeds or fails
// on its own: errs[i] is nil, ErrNotReady (the task was leased, canceled or
// assigned earlier in the batch) or ErrAtCapacity (the agent held Capacity
// tasks when the record applied). The leases of the successful ones are
// returned, in order, with their Agent set. Like Lease, once proposed the
// record is waited for whatever ctx does.
func (m *Manager) Assign(ctx context.Context, queue string, leaseFor time.Duration, as []Assignment) ([]Lease, []error, error) {
	if err := m.exists(ctx, queue); err != nil {
		return nil, nil, err
	}
	if len(as) == 0 || len(as) > MaxBatch || leaseFor < 0 {
		return nil, nil, fmt.Errorf("%w: %d assignments (want 1..%d)", ErrInvalid, len(as), MaxBatch)
	}
	e := enc(nil).S(queue).I(int64(leaseFor)).U(uint64(len(as)))
	for _, a := range as {
		if a.Agent == "" || len(a.Agent) > MaxLabelSize || a.Capacity < 1 || a.Task.Priority < 0 || a.Task.Priority > MaxPriority {
			return nil, nil, fmt.Errorf("%w: assignment of task %d to agent %q (capacity %d)", ErrInvalid, a.Task.ID, a.Agent, a.Capacity)
		}
		e = e.U(a.Task.ID).U(uint64(a.Task.Priority)).U(a.Task.seq).S(a.Agent).U(uint64(a.Capacity))
	}
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	res, err := m.propose(context.WithoutCancel(ctx), KindAssign, e)
	if err != nil {
		return nil, nil, err
	}
	d := newDec(res.Data)
	errs := make([]error, len(as))
	var out []Lease
	for i := range as {
		switch d.U() {
		case uint64(assignOK):
			l := decodeLease(d, queue)
			l.Agent = as[i].Agent
			out = append(out, l)
		case uint64(assignNotReady):
			errs[i] = fmt.Errorf("%w: task %d", ErrNotReady, as[i].Task.ID)
		default:
			errs[i] = fmt.Errorf("%w: agent %q", ErrAtCapacity, as[i].Agent)
		}
	}
	if !d.Done() {
		return nil, nil, fmt.Errorf("queue: %w: assign result", wal.ErrCorrupt)
	}
	return out, errs, nil
}

// Release returns every task leased to agent, in every queue, to the ready
// set at once (an agent that is gone failed, not its tasks; each lease still
// counts as an attempt, so a task that keeps killing agents ends as a dead
// letter). reason becomes the tasks' last error. It returns how many tasks
// it released. The scheduler calls it for agents that turn unhealthy or
// deregister.
func (m *Manager) Release(ctx context.Context, agent, reason string) (int, error) {
	if agent == "" || len(agent) > MaxLabelSize || len(reason) > 1<<10 {
		return 0, fmt.Errorf("%w: release of agent %q", ErrInvalid, agent)
	}
	m.mu.Lock()
	var names []string
	for name, q := range m.queues {
		if q.held[agent] > 0 {
			names = append(names, name)
		}
	}
	m.mu.Unlock()
	slices.Sort(names)
	total := 0
	for _, name := range names {
		for {
			res, err := m.propose(ctx, KindRelease, enc(nil).S(name).S(agent).S(reason).U(seed()))
			if err != nil {
				if errors.Is(err, ErrNotFound) { // the queue was dropped meanwhile
					break
				}
				return total, err
			}
			total += int(res.N)
			if res.N < releaseLimit {
				break
			}
		}
	}
	return total, nil
}

// leaseSize bounds the bytes appendLease adds for t.
func leaseSize(t *task) int {
	n := 8 + 6*binary.MaxVarintLen64 + len(t.payload)
	for _, tag := range t.tags {
		n += binary.MaxVarintLen64 + len(tag)
	}
	return n
}

func appendLease(e enc, id uint64, t *task) enc {
	return e.U64(id).U(t.token).I(t.leaseExp).U(t.attempts).U(uint64(t.prio)).B(t.payload).List(t.tags)
}

func decodeLease(d *dec, queue string) Lease {
	l := Lease{Queue: queue, ID: d.U64(), Token: d.U(), Expires: time.Unix(0, d.I()), Attempt: int(d.U()),
		Priority: int(d.U()), Payload: d.B(MaxPayloadSize)}
	l.Tags = toStrings(d.List(MaxTags, MaxLabelSize))
	return l
}

func (m *Manager) applyAssign(tx *db.Tx, rec wal.Record) (wal.Result, error) {
	d := newDec(rec.Body)
	name, ld, n := d.B(MaxNameSize), d.I(), d.U()
	if !d.OK || ld < 0 || n == 0 || n > MaxBatch || n > uint64(len(d.P)) {
		return db.Reject(errBadRecord)
	}
	type item struct {
		id, prio, seq, capacity uint64
		agent                   []byte
	}
	items := make([]item, n)
	for i := range items {
		items[i] = item{id: d.U(), prio: d.U(), seq: d.U(), agent: d.B(MaxLabelSize), capacity: d.U()}
		if items[i].prio > MaxPriority || len(items[i].agent) == 0 || items[i].capacity == 0 {
			return db.Reject(errBadRecord)
		}
	}
	if !d.Done() {
		return db.Reject(errBadRecord)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	o, err := m.begin(tx, name)
	if err != nil {
		return db.Reject(err)
	}
	if err := o.processDue(dueLimit, tx.Index); err != nil {
		return wal.Result{}, err
	}
	q := o.q
	if ld == 0 {
		ld = int64(q.cfg.LeaseDuration)
	}
	// Each item is judged against the state the items before it left: a
	// task assigned twice goes to the first agent only, and an agent's
	// count includes what this record gave it.
	taken := make(map[uint64]bool, n)
	var fromHot []hotEntry
	out := enc(nil)
	var done uint64
	for _, it := range items {
		r := rank{byte(it.prio), it.seq}
		var e hotEntry
		found, inHot := false, false
		if !taken[it.id] {
			if i, ok := q.hotIndex(r); ok && q.hot[i].id == it.id {
				e, found, inHot = q.hot[i], true, true
			} else {
				e, found, err = o.readyAt(r, it.id)
				if err != nil {
					return wal.Result{}, err
				}
			}
		}
		switch {
		case !found:
			out = out.U(uint64(assignNotReady))
			continue
		case uint64(m.held.get(string(it.agent))) >= it.capacity:
			out = out.U(uint64(assignAtCapacity))
			continue
		}
		taken[it.id] = true
		if inHot {
			fromHot = append(fromHot, e)
		}
		q.m.ready--
		t, err := o.lease(e, it.agent, ld)
		if err != nil {
			return wal.Result{}, err
		}
		out = appendLease(out.U(uint64(assignOK)), it.id, &t)
		done++
	}
	slices.SortFunc(fromHot, func(a, b hotEntry) int {
		if a.rank.less(b.rank) {
			return -1
		}
		return 1
	})
	q.hotRemoveIDs(fromHot)
	if err := o.refill(); err != nil {
		return wal.Result{}, err
	}
	return wal.Result{N: done, Data: out}, o.end()
}

// readyAt reads the ready entry at rank r outside the hot set; found only if
// it is task id's.
func (o *op) readyAt(r rank, id uint64) (hotEntry, bool, error) {
	v, c, err := o.tx.Get(keys.NameKey(o.q.shard, keys.TableQueueReady, o.name, r.suffix()))
	if errors.Is(err, pebble.ErrNotFound) {
		return hotEntry{}, false, nil
	}
	if err != nil {
		return hotEntry{}, false, err
	}
	defer c.Close()
	re, ok := decodeReadyValue(v)
	if !ok {
		return hotEntry{}, false, fmt.Errorf("%w: ready entry of %q", wal.ErrCorrupt, o.name)
	}
	if re.id != id {
		return hotEntry{}, false, nil
	}
	return hotEntry{rank: r, id: id, attempts: re.attempts, requires: re.requires, affinity: re.affinity}, true, nil
}

func (m *Manager) applyRelease(tx *db.Tx, rec wal.Record) (wal.Result, error) {
	d := newDec(rec.Body)
	name, agent, reason, sd := d.B(MaxNameSize), d.B(MaxLabelSize), d.B(1<<10), d.U()
	if !d.Done() || len(agent) == 0 {
		return db.Reject(errBadRecord)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	o, err := m.begin(tx, name)
	if err != nil {
		return db.Reject(err)
	}
	if err := o.processDue(dueLimit, sd); err != nil {
		return wal.Result{}, err
	}
	// The agent's tasks: the leased tasks (the lease index) whose state
	// names it, released in id order, at most releaseLimit per record.
	// This reads every leased task of the queue (most from the leased-state
	// cache); an agent's release is rare, a lease and an ack are not, and
	// they write no per-agent index.
	type held struct {
		id uint64
		t  task
	}
	var mine []held
	if o.q.held[string(agent)] > 0 {
		lo := keys.NameKey(o.q.shard, keys.TableQueueLease, o.name)
		leased, err := o.scanIDs(lo, keys.PrefixEnd(lo), math.MaxInt)
		if err != nil {
			return wal.Result{}, err
		}
		for _, e := range leased {
			t, ok, err := o.getTask(e.id)
			if err != nil {
				return wal.Result{}, err
			}
			if !ok || (t.state != stateLeased && t.state != stateCanceled) {
				return wal.Result{}, fmt.Errorf("%w: lease entry of task %d in %q has no leased task", wal.ErrCorrupt, e.id, o.name)
			}
			if bytes.Equal(t.agent, agent) {
				mine = append(mine, held{e.id, t})
			}
		}
		slices.SortFunc(mine, func(a, b held) int { return cmp.Compare(a.id, b.id) })
		mine = mine[:min(len(mine), releaseLimit)]
	}
	for i := range mine {
		if err := o.retry(mine[i].id, &mine[i].t, sd, string(reason), true); err != nil {
			return wal.Result{}, err
		}
	}
	if err := o.refill(); err != nil {
		return wal.Result{}, err
	}
	return wal.Result{N: uint64(len(mine))}, o.end()
}
