package queue

import (
	"encoding/binary"
	"fmt"

	"github.com/flowdb/flowdb/db"
	"github.com/flowdb/flowdb/internal/codec"
)

// enc and dec (internal/codec) encode every record body and stored value
// of this package; dec never panics.
type (
	enc = codec.Enc
	dec = codec.Dec
)

func newDec(p []byte) *dec { return codec.NewDec(p) }

var errBadRecord = fmt.Errorf("%w: queue record", db.ErrBadRecord)

// Task states.
const (
	stateReady    byte = 1
	stateDelayed  byte = 2
	stateLeased   byte = 3
	stateDone     byte = 4
	stateDead     byte = 5
	stateCanceled byte = 6 // canceled while leased: its Ack is refused
)

// task is a stored task, kept as two records so that a state change never
// rewrites the payload:
//
//	body  (0x21, written once at enqueue):
//	      priority | enqueued | requires | tags | idem key | affinity | payload
//	state (0x2A, rewritten on every change):
//	      state | priority | attempts | seq | not-before | lease expiry |
//	      token | done-at | payload size | agent | result | last error
//
// A task enqueued ready gets no state record until its first change (see
// freshTask): one key fewer per task on the enqueue path.
//
// In memory a task holds both; a task read by getTask holds only its state
// until loadBody fills the rest (hasBody).
type task struct {
	state, prio byte
	attempts    uint64
	seq         uint64
	enq         int64
	notBefore   int64
	leaseExp    int64
	token       uint64
	doneAt      int64
	size        int64 // len(payload), kept in the state for byte accounting
	agent       []byte
	requires    [][]byte
	tags        [][]byte
	idem        []byte
	affinity    []byte
	payload     []byte
	result      []byte
	lastErr     []byte
	hasBody     bool
}

func (t *task) encodeBody(dst []byte) []byte {
	e := enc(append(dst, t.prio))
	return e.I(t.enq).List(t.requires).List(t.tags).B(t.idem).B(t.affinity).B(t.payload)
}

// listSize bounds the encoded size of a List of l.
func listSize(l [][]byte) int {
	n := binary.MaxVarintLen64
	for _, b := range l {
		n += binary.MaxVarintLen64 + len(b)
	}
	return n
}

// bodySize bounds the size of t.encodeBody's output, stateSize that of
// t.encodeState (for sizing their destination once).
func (t *task) bodySize() int {
	return 1 + 4*binary.MaxVarintLen64 + listSize(t.requires) + listSize(t.tags) + len(t.idem) + len(t.affinity) + len(t.payload)
}

func (t *task) stateSize() int {
	return 2 + 11*binary.MaxVarintLen64 + len(t.agent) + len(t.result) + len(t.lastErr)
}

func (t *task) encodeState(dst []byte) []byte {
	e := enc(append(dst, t.state, t.prio))
	e = e.U(t.attempts).U(t.seq).I(t.notBefore).I(t.leaseExp).U(t.token).I(t.doneAt).I(t.size)
	return e.B(t.agent).B(t.result).B(t.lastErr)
}

// decodeBody fills t's body fields from v (aliasing v).
func (t *task) decodeBody(v []byte) bool {
	if len(v) < 1 {
		return false
	}
	prio := v[0]
	d := newDec(v[1:])
	t.enq = d.I()
	t.requires = d.List(MaxCapabilities, MaxLabelSize)
	t.tags = d.List(MaxTags, MaxLabelSize)
	t.idem = d.B(MaxIdemKeySize)
	t.affinity = d.B(MaxLabelSize)
	t.payload = d.B(MaxPayloadSize)
	t.hasBody = true
	return d.Done() && prio <= MaxPriority && (t.state == 0 || prio == t.prio) &&
		(t.state == 0 || int64(len(t.payload)) == t.size)
}

// freshTask decodes the body v of task id that has no state record: a task
// that has not changed since it was enqueued ready (applyEnqueue writes no
// state for it). Such a task is ready at rank (priority, id+1), never
// leased: its state follows from the body, and it equals what encodeState
// would have stored. The fields alias v.
func freshTask(id uint64, v []byte) (task, bool) {
	var t task
	if len(v) < 1 || !t.decodeBody(v) {
		return task{}, false
	}
	t.state, t.prio, t.seq, t.size = stateReady, v[0], id+1, int64(len(t.payload))
	return t, true
}

// decodeState decodes a task's state record (aliasing v).
func decodeState(v []byte) (task, bool) {
	var t task
	if len(v) < 2 {
		return t, false
	}
	t.state, t.prio = v[0], v[1]
	d := newDec(v[2:])
	t.attempts, t.seq = d.U(), d.U()
	t.notBefore, t.leaseExp = d.I(), d.I()
	t.token, t.doneAt, t.size = d.U(), d.I(), d.I()
	t.agent = d.B(MaxLabelSize)
	t.result = d.B(MaxResultSize)
	t.lastErr = d.B(1 << 16)
	ok := d.Done() && t.state >= stateReady && t.state <= stateCanceled && t.prio <= MaxPriority &&
		t.size >= 0 && t.size <= MaxPayloadSize
	return t, ok
}

// meta holds a queue's counters:
//
//	next seq | ready | delayed | leased | dead | done | bytes | enqueued | acked | retried | dead total
type meta struct {
	nextSeq                            uint64
	ready, delayed, leased, dead, done int64
	bytes                              int64
	enqueued, acked, retried, deadSum  uint64
}

// metaSize bounds the size of meta.encode's output.
const metaSize = 11 * binary.MaxVarintLen64

func (m *meta) encode(dst []byte) []byte {
	e := enc(dst)
	e = e.U(m.nextSeq).I(m.ready).I(m.delayed).I(m.leased).I(m.dead).I(m.done).I(m.bytes)
	return e.U(m.enqueued).U(m.acked).U(m.retried).U(m.deadSum)
}

func decodeMeta(v []byte) (meta, bool) {
	d := newDec(v)
	m := meta{nextSeq: d.U(), ready: d.I(), delayed: d.I(), leased: d.I(), dead: d.I(), done: d.I(), bytes: d.I()}
	m.enqueued, m.acked, m.retried, m.deadSum = d.U(), d.U(), d.U(), d.U()
	return m, d.Done()
}

func encodeConfig(c Config) []byte {
	var e enc
	e = e.S(c.Name).I(int64(c.HotCapacity)).I(int64(c.OverflowCapacity)).I(c.MaxBytes)
	e = e.U(uint64(c.ReserveFraction * 1e6)).U(uint64(c.HighPriority)).U(uint64(c.MaxAttempts))
	e = e.I(int64(c.LeaseDuration)).I(int64(c.BackoffBase)).I(int64(c.BackoffMax)).I(int64(c.JitterFraction * 1e6))
	return e.I(int64(c.ResultRetention)).I(int64(c.DeadRetention)).I(int64(c.IdempotencyWindow))
}

func decodeConfig(v []byte) (Config, bool) {
	d := newDec(v)
	c := Config{Name: string(d.B(MaxNameSize))}
	c.HotCapacity, c.OverflowCapacity, c.MaxBytes = int(d.I()), int(d.I()), d.I()
	c.ReserveFraction = float64(d.U()) / 1e6
	c.HighPriority, c.MaxAttempts = int(d.U()), int(d.U())
	c.LeaseDuration, c.BackoffBase, c.BackoffMax = dur(d.I()), dur(d.I()), dur(d.I())
	c.JitterFraction = float64(d.I()) / 1e6
	c.ResultRetention, c.DeadRetention, c.IdempotencyWindow = dur(d.I()), dur(d.I()), dur(d.I())
	return c, d.Done() && c.validate() == nil
}
