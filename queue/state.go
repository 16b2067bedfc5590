package queue

import (
	"bytes"
	"encoding/binary"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flowdb/flowdb/internal/keys"
)

func dur(v int64) time.Duration { return time.Duration(v) }

func be64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }
func ts(v int64) []byte    { return keys.AppendInt64(nil, v) }

// rank orders ready tasks: priority descending, then seq ascending.
type rank struct {
	prio byte
	seq  uint64
}

// suffix is the ready-index key suffix of r: 255-priority | seq.
func (r rank) suffix() []byte {
	return binary.BigEndian.AppendUint64([]byte{255 - r.prio}, r.seq)
}

func (r rank) less(o rank) bool {
	if r.prio != o.prio {
		return r.prio > o.prio
	}
	return r.seq < o.seq
}

// hotEntry is one task in the in-memory hot set: about 80 bytes plus its
// required capabilities and, when it is at most hotBodyMax bytes and was at
// hand when the task became ready, its body (payload and tags), so that a
// Lease of it reads nothing from Pebble. body is only a cache: a Lease
// without it reads the same bytes from the task's body record.
type hotEntry struct {
	rank     rank
	id       uint64
	attempts uint64
	requires []string
	affinity string
	body     *hotBody
}

type hotBody struct {
	payload []byte
	tags    [][]byte
}

// hotBodyMax bounds the payload a hot entry caches.
const hotBodyMax = 4 << 10

// qstate is the in-memory mirror of one queue kept by apply. hot is exactly
// the first min(HotCapacity, ready) entries of the ready index, in order; it
// is a deterministic function of the applied state, rebuilt on open.
type qstate struct {
	cfg   Config
	shard uint32
	m     meta
	hot   []hotEntry
	// wake is closed (and replaced) when tasks may have become ready, to
	// wake blocked LeaseWait callers. Touched only in AfterCommit hooks and
	// under Manager.mu.
	wake chan struct{}
	// rates samples the totals for Stats (ticker only).
	rates rateRing
	// dueHint: no delayed task or lease is due before this time. Lowered
	// whenever a timer is added, recomputed from the indexes after each
	// scan; math.MinInt64 means unknown (scan). It only lets apply skip
	// scans that would find nothing, so it changes no outcome.
	dueHint int64
	// held counts the tasks of this queue leased to each agent (leased or
	// canceled-while-leased tasks whose state names the agent); it tells
	// Release which queues to visit.
	held map[string]int
	// leasedState holds the stored state of up to leasedCacheMax leased
	// tasks, written through by every state write of apply (putState,
	// deleteTask), so that Ack, Nack and Extend usually read no state from
	// Pebble. Its values are never modified in place. It is a copy of what
	// the frames applied so far wrote, so it changes no outcome; it starts
	// empty on open and after a snapshot reload, and a task missing from it
	// is read from Pebble.
	leasedState map[uint64][]byte
	// leasing is the number of tasks LeaseWait calls of this process have
	// asked for in lease records not yet applied, and settled is closed
	// (and cleared) when one of them is: LeaseWait proposes only while the
	// ready tasks outnumber what is being leased, so that one task does
	// not make every waiting consumer write a lease record. Under
	// Manager.mu; local to this process, never read by apply.
	leasing int64
	settled chan struct{}
}

// leasedCacheMax bounds qstate.leasedState (about 120 bytes per entry).
const leasedCacheMax = 16384

// heldCounts counts the tasks leased to each agent across all queues (the
// sum of every queue's qstate.held). Apply (the only writer, under
// Manager.mu) keeps it and uses it to enforce the capacity an assign record
// carries; the scheduler reads it without locks, so the counters are atomic
// and an agent's entry is dropped when it reaches zero.
type heldCounts struct{ total sync.Map } // agent -> *atomic.Int64

// add changes agent's count in q and in total by d.
// REQUIRES: Manager.mu held.
func (h *heldCounts) add(q *qstate, agent string, d int) {
	if q.held == nil {
		q.held = map[string]int{}
	}
	if q.held[agent] += d; q.held[agent] == 0 {
		delete(q.held, agent)
	}
	v, ok := h.total.Load(agent)
	if !ok {
		v, _ = h.total.LoadOrStore(agent, new(atomic.Int64))
	}
	if v.(*atomic.Int64).Add(int64(d)) == 0 {
		h.total.Delete(agent)
	}
}

// get returns the number of tasks leased to agent.
func (h *heldCounts) get(agent string) int {
	if v, ok := h.total.Load(agent); ok {
		return int(v.(*atomic.Int64).Load())
	}
	return 0
}

// timerAdded lowers the due hint for a timer at t.
func (q *qstate) timerAdded(t int64) { q.dueHint = min(q.dueHint, t) }

func (q *qstate) hotIndex(r rank) (int, bool) {
	return slices.BinarySearchFunc(q.hot, r, func(e hotEntry, r rank) int {
		switch {
		case e.rank == r:
			return 0
		case e.rank.less(r):
			return -1
		}
		return 1
	})
}

// hotAdd places a newly ready task. The hot set is a prefix of the ready
// order (possibly short of HotCapacity between a removal and the next
// refill), so the task joins it only if it ranks before the hot set's last
// entry, or if nothing waits in overflow (then it ranks after everything
// else anyway). overflow is the number of ready tasks outside the hot set,
// not counting this one.
func (q *qstate) hotAdd(e hotEntry, overflow int64) {
	i, _ := q.hotIndex(e.rank)
	if i < len(q.hot) || (overflow == 0 && len(q.hot) < q.cfg.HotCapacity) {
		q.hot = slices.Insert(q.hot, i, e)
		if len(q.hot) > q.cfg.HotCapacity {
			q.hot = q.hot[:q.cfg.HotCapacity] // the last one now waits in overflow
		}
	}
}

// hotRemoveIDs removes the entries picked by a Lease (in hot-set order) in
// one pass.
func (q *qstate) hotRemoveIDs(picked []hotEntry) {
	if len(picked) == 0 {
		return
	}
	j := 0
	q.hot = slices.DeleteFunc(q.hot, func(e hotEntry) bool {
		if j < len(picked) && picked[j].rank == e.rank {
			j++
			return true
		}
		return false
	})
}

func (q *qstate) hotRemove(r rank) {
	if i, ok := q.hotIndex(r); ok {
		q.hot = slices.Delete(q.hot, i, i+1)
	}
}

// overflow is the number of ready tasks held only in Pebble.
func (q *qstate) overflow() int64 { return q.m.ready - int64(len(q.hot)) }

// satisfies reports whether an agent with caps may run a task that requires req.
func satisfies(caps [][]byte, req []string) bool {
	for _, r := range req {
		found := false
		for _, c := range caps {
			if bytes.Equal(c, []byte(r)) {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

func toStrings(b [][]byte) []string {
	if len(b) == 0 {
		return nil
	}
	out := make([]string, len(b))
	for i, x := range b {
		out[i] = string(x)
	}
	return out
}

// appendReadyValue appends the ready-index value to dst: task id (8 B) |
// attempts | requires list | affinity key. It holds what a Lease needs
// besides the body, so that leasing a ready task never reads its state
// record.
func appendReadyValue(dst []byte, id, attempts uint64, requires [][]byte, affinity []byte) []byte {
	return enc(binary.BigEndian.AppendUint64(dst, id)).U(attempts).List(requires).B(affinity)
}

// readyEntry is a decoded ready-index value.
type readyEntry struct {
	id, attempts uint64
	requires     []string
	affinity     string
}

func decodeReadyValue(v []byte) (readyEntry, bool) {
	if len(v) < 8 {
		return readyEntry{}, false
	}
	d := newDec(v[8:])
	e := readyEntry{id: binary.BigEndian.Uint64(v), attempts: d.U()}
	e.requires = toStrings(d.List(MaxCapabilities, MaxLabelSize))
	e.affinity = string(d.B(MaxLabelSize))
	return e, d.Done()
}

// hotFromReady builds the hot entry of a ready-index entry (key suffix k
// after the queue prefix, value v); its body is not cached.
func hotFromReady(k, v []byte) (hotEntry, bool) {
	r, ok := decodeReadyValue(v)
	if len(k) != 9 || !ok {
		return hotEntry{}, false
	}
	return hotEntry{rank: rank{255 - k[0], binary.BigEndian.Uint64(k[1:])}, id: r.id, attempts: r.attempts,
		requires: r.requires, affinity: r.affinity}, true
}
