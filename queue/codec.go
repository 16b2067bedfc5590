package queue

import (
	"encoding/binary"
	"fmt"

	"github.com/flowdb/flowdb/db"
	"github.com/flowdb/flowdb/internal/codec"
)

// enc appends fields; dec reads them and goes !ok at the first malformed one
// (and stays so), never panicking. Together they are every record body and
// stored value of this package.
type enc []byte

func (e enc) u(v uint64) enc   { return binary.AppendUvarint(e, v) }
func (e enc) i(v int64) enc    { return binary.AppendVarint(e, v) }
func (e enc) b(v []byte) enc   { return codec.AppendLenBytes(e, v) }
func (e enc) s(v string) enc   { return codec.AppendLenBytes(e, []byte(v)) }
func (e enc) u64(v uint64) enc { return binary.BigEndian.AppendUint64(e, v) }
func (e enc) list(v [][]byte) enc {
	e = e.u(uint64(len(v)))
	for _, x := range v {
		e = e.b(x)
	}
	return e
}

type dec struct {
	p  []byte
	ok bool
}

func newDec(p []byte) *dec { return &dec{p: p, ok: true} }

func (d *dec) u() uint64 {
	if !d.ok {
		return 0
	}
	v, p, ok := codec.Uvarint(d.p)
	d.p, d.ok = p, ok
	return v
}

func (d *dec) i() int64 {
	if !d.ok {
		return 0
	}
	v, p, ok := codec.Varint(d.p)
	d.p, d.ok = p, ok
	return v
}

func (d *dec) b(max int) []byte {
	if !d.ok {
		return nil
	}
	v, p, ok := codec.LenBytes(d.p, max)
	d.p, d.ok = p, ok
	return v
}

func (d *dec) u64() uint64 {
	if !d.ok || len(d.p) < 8 {
		d.ok = false
		return 0
	}
	v := binary.BigEndian.Uint64(d.p)
	d.p = d.p[8:]
	return v
}

func (d *dec) list(maxItems, maxLen int) [][]byte {
	n := d.u()
	if !d.ok || n > uint64(maxItems) || n > uint64(len(d.p)) {
		d.ok = false
		return nil
	}
	var out [][]byte
	for i := uint64(0); i < n && d.ok; i++ {
		out = append(out, d.b(maxLen))
	}
	return out
}

// done reports whether decoding consumed everything without error.
func (d *dec) done() bool { return d.ok && len(d.p) == 0 }

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
//	      priority | enqueued | requires | tags | idem key | payload
//	state (0x2A, rewritten on every change):
//	      state | priority | attempts | seq | not-before | lease expiry |
//	      token | done-at | payload size | agent | result | last error
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
	payload     []byte
	result      []byte
	lastErr     []byte
	hasBody     bool
}

func (t *task) encodeBody(dst []byte) []byte {
	e := enc(append(dst, t.prio))
	return e.i(t.enq).list(t.requires).list(t.tags).b(t.idem).b(t.payload)
}

func (t *task) encodeState(dst []byte) []byte {
	e := enc(append(dst, t.state, t.prio))
	e = e.u(t.attempts).u(t.seq).i(t.notBefore).i(t.leaseExp).u(t.token).i(t.doneAt).i(t.size)
	return e.b(t.agent).b(t.result).b(t.lastErr)
}

// decodeBody fills t's body fields from v (aliasing v).
func (t *task) decodeBody(v []byte) bool {
	if len(v) < 1 {
		return false
	}
	prio := v[0]
	d := newDec(v[1:])
	t.enq = d.i()
	t.requires = d.list(MaxCapabilities, MaxLabelSize)
	t.tags = d.list(MaxTags, MaxLabelSize)
	t.idem = d.b(MaxIdemKeySize)
	t.payload = d.b(MaxPayloadSize)
	t.hasBody = true
	return d.done() && prio <= MaxPriority && (t.state == 0 || prio == t.prio) &&
		(t.state == 0 || int64(len(t.payload)) == t.size)
}

// decodeState decodes a task's state record (aliasing v).
func decodeState(v []byte) (task, bool) {
	var t task
	if len(v) < 2 {
		return t, false
	}
	t.state, t.prio = v[0], v[1]
	d := newDec(v[2:])
	t.attempts, t.seq = d.u(), d.u()
	t.notBefore, t.leaseExp = d.i(), d.i()
	t.token, t.doneAt, t.size = d.u(), d.i(), d.i()
	t.agent = d.b(MaxLabelSize)
	t.result = d.b(MaxResultSize)
	t.lastErr = d.b(1 << 16)
	ok := d.done() && t.state >= stateReady && t.state <= stateCanceled && t.prio <= MaxPriority &&
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

func (m *meta) encode() []byte {
	var e enc
	e = e.u(m.nextSeq).i(m.ready).i(m.delayed).i(m.leased).i(m.dead).i(m.done).i(m.bytes)
	return e.u(m.enqueued).u(m.acked).u(m.retried).u(m.deadSum)
}

func decodeMeta(v []byte) (meta, bool) {
	d := newDec(v)
	m := meta{nextSeq: d.u(), ready: d.i(), delayed: d.i(), leased: d.i(), dead: d.i(), done: d.i(), bytes: d.i()}
	m.enqueued, m.acked, m.retried, m.deadSum = d.u(), d.u(), d.u(), d.u()
	return m, d.done()
}

func encodeConfig(c Config) []byte {
	var e enc
	e = e.s(c.Name).i(int64(c.HotCapacity)).i(int64(c.OverflowCapacity)).i(c.MaxBytes)
	e = e.u(uint64(c.ReserveFraction * 1e6)).u(uint64(c.HighPriority)).u(uint64(c.MaxAttempts))
	e = e.i(int64(c.LeaseDuration)).i(int64(c.BackoffBase)).i(int64(c.BackoffMax)).i(int64(c.JitterFraction * 1e6))
	return e.i(int64(c.ResultRetention)).i(int64(c.DeadRetention)).i(int64(c.IdempotencyWindow))
}

func decodeConfig(v []byte) (Config, bool) {
	d := newDec(v)
	c := Config{Name: string(d.b(MaxNameSize))}
	c.HotCapacity, c.OverflowCapacity, c.MaxBytes = int(d.i()), int(d.i()), d.i()
	c.ReserveFraction = float64(d.u()) / 1e6
	c.HighPriority, c.MaxAttempts = int(d.u()), int(d.u())
	c.LeaseDuration, c.BackoffBase, c.BackoffMax = dur(d.i()), dur(d.i()), dur(d.i())
	c.JitterFraction = float64(d.i()) / 1e6
	c.ResultRetention, c.DeadRetention, c.IdempotencyWindow = dur(d.i()), dur(d.i()), dur(d.i())
	return c, d.done() && c.validate() == nil
}
