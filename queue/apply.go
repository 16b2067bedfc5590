package queue

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/cockroachdb/pebble/v2"
	"github.com/flowdb/flowdb/db"
	"github.com/flowdb/flowdb/internal/keys"
	"github.com/flowdb/flowdb/wal"
)

// Record kinds of this package (wal kinds 100-199). Their values are part of
// the log format.
const (
	KindCreate  wal.Kind = 100
	KindEnqueue wal.Kind = 101
	KindLease   wal.Kind = 102
	KindExtend  wal.Kind = 103
	KindAck     wal.Kind = 104
	KindNack    wal.Kind = 105
	KindCancel  wal.Kind = 106
	KindTick    wal.Kind = 107
	KindReplay  wal.Kind = 108
	KindPurge   wal.Kind = 109
	// KindAckBatch acknowledges many leased tasks; each item succeeds or
	// fails on its own (per-item status in the result).
	KindAckBatch wal.Kind = 110
)

// Per-item status codes of a KindAckBatch result.
const (
	ackOK byte = iota
	ackNotFound
	ackLeaseLost
	ackCanceled
)

func ackStatus(err error) byte {
	switch {
	case err == nil:
		return ackOK
	case errors.Is(err, ErrCanceled):
		return ackCanceled
	case errors.Is(err, ErrLeaseLost):
		return ackLeaseLost
	}
	return ackNotFound
}

// dueLimit bounds the timers one record processes; ticks continue the rest.
const (
	dueLimit      = 256
	tickDueLimit  = 4096
	overflowScan  = 4096 // ready entries past the hot set a Lease may examine
	reclaimPerRec = 1024
)

// op is the state of one record being applied to one queue.
type op struct {
	m    *Manager
	tx   *db.Tx
	q    *qstate
	name string
	now  int64
	wake bool // tasks became ready: wake LeaseWait callers after commit
}

// begin finds the queue named by a record and processes its due timers.
// REQUIRES: m.mu held.
func (m *Manager) begin(tx *db.Tx, name []byte) (op, error) {
	q := m.queues[string(name)]
	if q == nil {
		return op{}, fmt.Errorf("%w: queue %q", ErrNotFound, name)
	}
	m.txnTouch(tx, q)
	return op{m: m, tx: tx, q: q, name: q.cfg.Name, now: tx.Time}, nil
}

// end persists the counters and schedules wake-ups.
func (o *op) end() error {
	if err := o.tx.Set(o.key(keys.TableQueueMeta, 0), o.q.m.encode(o.tx.Scratch(metaSize))); err != nil {
		return err
	}
	if o.wake {
		q, m := o.q, o.m
		o.tx.AfterCommit(func() { m.signal(q) })
	}
	return nil
}

// key starts a key of table in o's queue in the frame's scratch memory
// (db.Tx.Scratch), with room for extra more bytes. Such keys go only to
// Set, Delete and Get, which copy them; nothing keeps them.
func (o *op) key(table byte, extra int) []byte {
	b := o.tx.Scratch(keys.PrefixLen + 1 + len(o.name) + extra)
	return keys.AppendName(b, o.q.shard, table, o.name)
}

// idKey is table's key for task id (task, state).
func (o *op) idKey(table byte, id uint64) []byte {
	return binary.BigEndian.AppendUint64(o.key(table, 8), id)
}

// timeKey is table's key for task id at time t (delayed, lease, dead, done).
func (o *op) timeKey(table byte, t int64, id uint64) []byte {
	return binary.BigEndian.AppendUint64(keys.AppendInt64(o.key(table, 16), t), id)
}

// readyKey is the ready-index key of rank r.
func (o *op) readyKey(r rank) []byte {
	return binary.BigEndian.AppendUint64(append(o.key(keys.TableQueueReady, 9), 255-r.prio), r.seq)
}

func (o *op) bodyKey(id uint64) []byte  { return o.idKey(keys.TableQueueTask, id) }
func (o *op) stateKey(id uint64) []byte { return o.idKey(keys.TableQueueState, id) }

// getTask reads a task's state (not its body: see loadBody); a task without
// a state record is read whole from its body (freshTask).
func (o *op) getTask(id uint64) (task, bool, error) {
	if v, ok := o.q.leasedState[id]; ok {
		t, ok := decodeState(v)
		if !ok {
			return task{}, false, fmt.Errorf("%w: cached state of task %d of %q", wal.ErrCorrupt, id, o.name)
		}
		return t, true, nil
	}
	v, c, err := o.tx.Get(o.stateKey(id))
	if errors.Is(err, pebble.ErrNotFound) {
		return o.freshTask(id)
	}
	if err != nil {
		return task{}, false, err
	}
	// Copy out once (the batch may reuse v's memory); the task's fields
	// alias the copy.
	t, ok := decodeState(append([]byte(nil), v...))
	c.Close()
	if !ok {
		return task{}, false, fmt.Errorf("%w: task %d of %q", wal.ErrCorrupt, id, o.name)
	}
	return t, true, nil
}

// freshTask reads task id that has no state record: a task unchanged since
// it was enqueued ready (freshTask in codec.go), or no task at all.
func (o *op) freshTask(id uint64) (task, bool, error) {
	v, c, err := o.tx.Get(o.bodyKey(id))
	if errors.Is(err, pebble.ErrNotFound) {
		return task{}, false, nil
	}
	if err != nil {
		return task{}, false, err
	}
	t, ok := freshTask(id, append([]byte(nil), v...))
	c.Close()
	if !ok {
		return task{}, false, fmt.Errorf("%w: body of task %d of %q", wal.ErrCorrupt, id, o.name)
	}
	return t, true, nil
}

// loadBody fills t's body fields (priority, enqueue time, requires, tags,
// idempotency key, payload) from its body record.
func (o *op) loadBody(id uint64, t *task) error {
	v, c, err := o.tx.Get(o.bodyKey(id))
	if err != nil {
		if errors.Is(err, pebble.ErrNotFound) {
			err = fmt.Errorf("%w: task %d of %q has no body", wal.ErrCorrupt, id, o.name)
		}
		return err
	}
	ok := t.decodeBody(append([]byte(nil), v...))
	c.Close()
	if !ok {
		return fmt.Errorf("%w: body of task %d of %q", wal.ErrCorrupt, id, o.name)
	}
	return nil
}

func (o *op) putState(id uint64, t *task) error {
	q := o.q
	if t.state != stateLeased || (len(q.leasedState) >= leasedCacheMax && q.leasedState[id] == nil) {
		delete(q.leasedState, id)
		return o.tx.Set(o.stateKey(id), t.encodeState(o.tx.Scratch(t.stateSize())))
	}
	v := t.encodeState(make([]byte, 0, t.stateSize()))
	if q.leasedState == nil {
		q.leasedState = make(map[uint64][]byte)
	}
	q.leasedState[id] = v
	return o.tx.Set(o.stateKey(id), v)
}

// deleteTask deletes both of a task's records (a done task's body is
// already gone, except in stores written before Ack deleted it).
func (o *op) deleteTask(id uint64) error {
	delete(o.q.leasedState, id)
	if err := o.tx.Delete(o.stateKey(id)); err != nil {
		return err
	}
	return o.tx.Delete(o.bodyKey(id))
}

// makeReady puts task id in the ready index with a fresh seq (FIFO among
// its priority) and the hot set if it ranks there. t must hold its body.
func (o *op) makeReady(id uint64, t *task) error {
	q := o.q
	q.m.nextSeq++
	t.state, t.seq, t.notBefore = stateReady, q.m.nextSeq, 0
	r := rank{t.prio, t.seq}
	if err := o.tx.Set(o.readyKey(r), appendReadyValue(o.tx.Scratch(32), id, t.attempts, t.requires, t.affinity)); err != nil {
		return err
	}
	e := hotEntry{rank: r, id: id, attempts: t.attempts, requires: toStrings(t.requires), affinity: string(t.affinity)}
	if t.hasBody && len(t.payload) <= hotBodyMax {
		e.body = &hotBody{payload: t.payload, tags: t.tags}
	}
	q.hotAdd(e, q.overflow())
	q.m.ready++
	o.wake = true
	return nil
}

// unready removes a ready task from the ready index and the hot set.
func (o *op) unready(t *task) error {
	r := rank{t.prio, t.seq}
	if err := o.tx.Delete(o.readyKey(r)); err != nil {
		return err
	}
	o.q.m.ready--
	o.q.hotRemove(r)
	return nil
}

func (o *op) delay(id uint64, t *task, notBefore int64) error {
	t.state, t.notBefore = stateDelayed, notBefore
	o.q.m.delayed++
	o.q.timerAdded(notBefore)
	return o.tx.Set(o.timeKey(keys.TableQueueDelayed, notBefore, id), nil)
}

// backoff is the delay before retry number attempts, with jitter derived
// from the proposer's seed (never drawn inside apply).
func (c Config) backoff(attempts uint64, seed, id uint64) time.Duration {
	b := c.BackoffBase
	for i := uint64(1); i < attempts && b < c.BackoffMax; i++ {
		b *= 2
	}
	b = min(b, c.BackoffMax)
	if span := uint64(float64(b) * max(c.JitterFraction, 0)); span > 0 {
		h := xxhash.Sum64(append(be64(seed), be64(id)...))
		b += time.Duration(h % span)
	}
	return b
}

// lease leases the ready task e (already out of the hot set and the ready
// counter) to agent for ld: its new state is written whole from the entry
// (rank, attempts) and its body, so leasing reads no state record. The last
// error of an earlier attempt is not carried into the lease.
func (o *op) lease(e hotEntry, agent []byte, ld int64) (task, error) {
	q, tx := o.q, o.tx
	t := task{prio: e.rank.prio, seq: e.rank.seq}
	if e.body != nil {
		t.payload, t.tags = e.body.payload, e.body.tags
	} else if err := o.loadBody(e.id, &t); err != nil {
		return t, err
	}
	t.state, t.attempts, t.agent, t.size = stateLeased, e.attempts+1, agent, int64(len(t.payload))
	if err := tx.Delete(o.readyKey(e.rank)); err != nil {
		return t, err
	}
	t.leaseExp = o.now + ld
	t.token = xxhash.Sum64(enc(be64(tx.Index)).U64(e.id).U(t.attempts))
	q.m.leased++
	q.timerAdded(t.leaseExp)
	if err := tx.Set(o.timeKey(keys.TableQueueLease, t.leaseExp, e.id), nil); err != nil {
		return t, err
	}
	o.m.held.add(q, string(agent), 1)
	return t, o.putState(e.id, &t)
}

// endLease takes a leased (or canceled-while-leased) task out of the lease
// index and its agent's held counts.
func (o *op) endLease(id uint64, t *task) error {
	o.q.m.leased--
	o.m.held.add(o.q, string(t.agent), -1)
	return o.tx.Delete(o.timeKey(keys.TableQueueLease, t.leaseExp, id))
}

// retry returns a task whose lease ended without an Ack: to the delayed set
// after backoff (or, when immediate, straight to the ready set), or to the
// dead letters after MaxAttempts. A task canceled while leased is dropped
// instead.
func (o *op) retry(id uint64, t *task, seed uint64, reason string, immediate bool) error {
	if err := o.endLease(id, t); err != nil {
		return err
	}
	t.lastErr = []byte(reason)
	t.agent = nil
	if t.state == stateCanceled {
		o.q.m.bytes -= t.size
		return o.deleteTask(id)
	}
	if t.attempts >= uint64(o.q.cfg.MaxAttempts) {
		t.state, t.doneAt = stateDead, o.now
		o.q.m.dead++
		o.q.m.deadSum++
		o.q.m.bytes -= t.size
		if err := o.tx.Set(o.timeKey(keys.TableQueueDead, o.now, id), nil); err != nil {
			return err
		}
		return o.putState(id, t)
	}
	o.q.m.retried++
	if immediate {
		if err := o.loadBody(id, t); err != nil {
			return err
		}
		if err := o.makeReady(id, t); err != nil {
			return err
		}
	} else if err := o.delay(id, t, o.now+int64(o.q.cfg.backoff(t.attempts, seed, id))); err != nil {
		return err
	}
	return o.putState(id, t)
}

// processDue wakes delayed tasks and expires leases due at o.now, up to limit
// of each.
func (o *op) processDue(limit int, seed uint64) error {
	q := o.q
	if o.now < q.dueHint {
		return nil
	}
	if q.m.delayed > 0 {
		lo := keys.NameKey(q.shard, keys.TableQueueDelayed, o.name)
		hi := keys.NameKey(q.shard, keys.TableQueueDelayed, o.name, ts(o.now+1))
		ids, err := o.scanIDs(lo, hi, limit)
		if err != nil {
			return err
		}
		for _, e := range ids {
			t, ok, err := o.getTask(e.id)
			if err != nil {
				return err
			}
			if err := o.tx.Delete(e.key); err != nil {
				return err
			}
			q.m.delayed--
			if !ok || t.state != stateDelayed {
				continue
			}
			if err := o.loadBody(e.id, &t); err != nil {
				return err
			}
			if err := o.makeReady(e.id, &t); err != nil {
				return err
			}
			if err := o.putState(e.id, &t); err != nil {
				return err
			}
		}
	}
	if q.m.leased > 0 {
		lo := keys.NameKey(q.shard, keys.TableQueueLease, o.name)
		hi := keys.NameKey(q.shard, keys.TableQueueLease, o.name, ts(o.now+1))
		ids, err := o.scanIDs(lo, hi, limit)
		if err != nil {
			return err
		}
		for _, e := range ids {
			t, ok, err := o.getTask(e.id)
			if err != nil {
				return err
			}
			if !ok || (t.state != stateLeased && t.state != stateCanceled) {
				if err := o.tx.Delete(e.key); err != nil {
					return err
				}
				continue
			}
			if err := o.retry(e.id, &t, seed, "lease expired", false); err != nil {
				return err
			}
		}
	}
	return o.recomputeHint()
}

// recomputeHint sets the due hint to the earliest remaining timer.
func (o *op) recomputeHint() error {
	q := o.q
	q.dueHint = math.MaxInt64
	for _, table := range []byte{keys.TableQueueDelayed, keys.TableQueueLease} {
		prefix := keys.NameKey(q.shard, table, o.name)
		it, err := o.tx.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: keys.PrefixEnd(prefix)})
		if err != nil {
			return err
		}
		if it.First() {
			if k := it.Key()[len(prefix):]; len(k) >= 8 {
				q.dueHint = min(q.dueHint, keys.Int64(k[:8]))
			}
		}
		if err := it.Close(); err != nil {
			return err
		}
	}
	return nil
}

type keyID struct {
	key []byte
	id  uint64
}

// scanIDs lists up to limit index entries in [lo, hi) whose key ends in a
// task id.
func (o *op) scanIDs(lo, hi []byte, limit int) ([]keyID, error) {
	it, err := o.tx.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return nil, err
	}
	var out []keyID
	for ok := it.First(); ok && len(out) < limit; ok = it.Next() {
		k := it.Key()
		if len(k) < 8 {
			continue
		}
		out = append(out, keyID{key: append([]byte(nil), k...), id: binary.BigEndian.Uint64(k[len(k)-8:])})
	}
	return out, it.Close()
}

// refill tops the hot set up from the overflow, in priority then FIFO order.
func (o *op) refill() error {
	q := o.q
	need := q.cfg.HotCapacity - len(q.hot)
	if need <= 0 || q.overflow() <= 0 {
		return nil
	}
	lo := keys.NameKey(q.shard, keys.TableQueueReady, o.name)
	if len(q.hot) > 0 {
		lo = keys.PrefixEnd(keys.NameKey(q.shard, keys.TableQueueReady, o.name, q.hot[len(q.hot)-1].rank.suffix()))
	}
	hi := keys.PrefixEnd(keys.NameKey(q.shard, keys.TableQueueReady, o.name))
	it, err := o.tx.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return err
	}
	base := len(keys.NameKey(q.shard, keys.TableQueueReady, o.name))
	start := len(q.hot)
	for ok := it.First(); ok && need > 0; ok = it.Next() {
		e, ok2 := hotFromReady(it.Key()[base:], it.Value())
		if !ok2 {
			it.Close()
			return fmt.Errorf("%w: ready entry of %q", wal.ErrCorrupt, o.name)
		}
		q.hot = append(q.hot, e)
		need--
	}
	if err := it.Close(); err != nil {
		return err
	}
	return o.cacheBodies(q.hot[start:])
}

// cacheBodies loads the bodies of hot entries taken from the overflow, with
// one iterator walking forward over the body table (their ids mostly
// ascend, so each seek is short), so that leasing them reads nothing.
// Bodies above hotBodyMax are left to be read by the Lease.
func (o *op) cacheBodies(es []hotEntry) error {
	if len(es) == 0 {
		return nil
	}
	prefix := keys.NameKey(o.q.shard, keys.TableQueueTask, o.name)
	it, err := o.tx.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: keys.PrefixEnd(prefix)})
	if err != nil {
		return err
	}
	key := slices.Clone(prefix)
	for i := range es {
		e := &es[i]
		key = binary.BigEndian.AppendUint64(key[:len(prefix)], e.id)
		if !it.SeekGE(key) || !bytes.Equal(it.Key(), key) {
			it.Close()
			return fmt.Errorf("%w: task %d of %q has no body", wal.ErrCorrupt, e.id, o.name)
		}
		var t task
		v := it.Value()
		if !t.decodeBody(v) {
			it.Close()
			return fmt.Errorf("%w: body of task %d of %q", wal.ErrCorrupt, e.id, o.name)
		}
		if len(t.payload) <= hotBodyMax {
			// One copy of the value; payload and tags alias it.
			t.decodeBody(slices.Clone(v))
			e.body = &hotBody{payload: t.payload, tags: t.tags}
		}
	}
	return it.Close()
}

// ---- apply functions -------------------------------------------------------

func (m *Manager) applyCreate(tx *db.Tx, rec wal.Record) (wal.Result, error) {
	cfg, ok := decodeConfig(rec.Body)
	if !ok {
		return db.Reject(errBadRecord)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if q := m.queues[cfg.Name]; q != nil {
		if q.cfg != cfg {
			return db.Reject(fmt.Errorf("%w: %q", ErrExists, cfg.Name))
		}
		return wal.Result{}, nil // same config: idempotent
	}
	shard := tx.Placement.ShardFor(cfg.Name)
	if err := tx.Set(keys.NameKey(shard, keys.TableQueueDef, cfg.Name), rec.Body); err != nil {
		return wal.Result{}, err
	}
	q := &qstate{cfg: cfg, shard: shard, wake: make(chan struct{}), dueHint: math.MaxInt64}
	if err := tx.Set(keys.NameKey(shard, keys.TableQueueMeta, cfg.Name), q.m.encode(nil)); err != nil {
		return wal.Result{}, err
	}
	m.queues[cfg.Name] = q
	m.names.Store(cfg.Name, struct{}{})
	return wal.Result{N: 1}, nil
}

type enqTask struct {
	prio      byte
	notBefore int64
	idem      []byte
	affinity  []byte
	requires  [][]byte
	tags      [][]byte
	payload   []byte
}

// decodeEnqueue decodes an enqueue record's body, appending its tasks to
// dst[:0]; tasks holds what was decoded even when ok is false.
func decodeEnqueue(body []byte, dst []enqTask) (name []byte, tasks []enqTask, ok bool) {
	tasks = dst[:0]
	d := newDec(body)
	name = d.B(MaxNameSize)
	n := d.U()
	if !d.OK || n == 0 || n > MaxBatch || n > uint64(len(d.P)) {
		return nil, tasks, false
	}
	for i := uint64(0); i < n && d.OK; i++ {
		p := d.U()
		t := enqTask{prio: byte(p), notBefore: d.I(), idem: d.B(MaxIdemKeySize),
			requires: d.List(MaxCapabilities, MaxLabelSize), tags: d.List(MaxTags, MaxLabelSize),
			affinity: d.B(MaxLabelSize), payload: d.B(MaxPayloadSize)}
		if p > MaxPriority {
			return nil, tasks, false
		}
		tasks = append(tasks, t)
	}
	return name, tasks, d.Done()
}

func (m *Manager) applyEnqueue(tx *db.Tx, rec wal.Record) (wal.Result, error) {
	defer m.lock(tx)()
	name, tasks, ok := decodeEnqueue(rec.Body, m.enqBuf)
	// The tasks' slices point into the record; the slice of them is reused
	// by the next enqueue record (apply keeps no pointer into it).
	defer func() { clear(tasks); m.enqBuf = tasks[:0] }()
	if !ok {
		return db.Reject(errBadRecord)
	}
	o, err := m.begin(tx, name)
	if err != nil {
		return db.Reject(err)
	}
	q := o.q
	// Resolve idempotency keys and check admission for the whole batch
	// before writing anything: a batch is accepted whole or not at all.
	ids := make([]uint64, len(tasks))
	fresh := make([]bool, len(tasks))
	outstanding := q.m.ready + q.m.delayed + q.m.leased
	bytes := q.m.bytes
	capacity := q.cfg.capacity()
	seen := map[string]int{}
	staleAt := make([]int64, len(tasks)) // time of an expired stored key, to drop its index entry
	for i, t := range tasks {
		if len(t.idem) > 0 {
			if j, dup := seen[string(t.idem)]; dup {
				ids[i] = ^uint64(j) // resolved below to task j's id
				continue
			}
			v, c, err := tx.Get(keys.NameKey(q.shard, keys.TableQueueIdem, o.name, t.idem))
			if err == nil {
				d := newDec(v)
				id, at := d.U64(), int64(d.U64())
				c.Close()
				if d.OK && o.now-at < int64(q.cfg.IdempotencyWindow) {
					ids[i] = id
					continue
				}
				if d.OK {
					staleAt[i] = at
				}
			} else if !errors.Is(err, pebble.ErrNotFound) {
				return wal.Result{}, err
			}
			seen[string(t.idem)] = i
		}
		if capacity >= 0 {
			reserveStart := capacity - int64(float64(capacity)*q.cfg.ReserveFraction)
			if outstanding >= capacity || (outstanding >= reserveStart && int(t.prio) < q.cfg.HighPriority) {
				return db.Reject(fmt.Errorf("%w: %q holds %d of %d tasks", ErrFull, o.name, outstanding, capacity))
			}
		}
		if q.cfg.MaxBytes > 0 && bytes+int64(len(t.payload)) > q.cfg.MaxBytes {
			return db.Reject(fmt.Errorf("%w: %q holds %d of %d payload bytes", ErrFull, o.name, bytes, q.cfg.MaxBytes))
		}
		outstanding++
		bytes += int64(len(t.payload))
		fresh[i] = true
	}
	// Housekeeping at this record's time, then the writes.
	if err := o.processDue(dueLimit, tx.Index); err != nil {
		return wal.Result{}, err
	}
	var added uint64
	for i, t := range tasks {
		if !fresh[i] {
			continue
		}
		q.m.nextSeq++
		id := q.m.nextSeq // task ids share the seq counter: unique, increasing
		ids[i] = id
		st := task{prio: t.prio, enq: o.now, requires: t.requires, tags: t.tags, idem: t.idem, affinity: t.affinity, payload: t.payload,
			size: int64(len(t.payload)), hasBody: true}
		if t.notBefore > o.now {
			if err := o.delay(id, &st, t.notBefore); err != nil {
				return wal.Result{}, err
			}
		} else if err := o.makeReady(id, &st); err != nil {
			return wal.Result{}, err
		}
		if err := tx.Set(o.bodyKey(id), st.encodeBody(tx.Scratch(st.bodySize()))); err != nil {
			return wal.Result{}, err
		}
		// A ready task's state follows from its body until it first
		// changes (freshTask): only a delayed one is written.
		if st.state == stateDelayed {
			if err := o.putState(id, &st); err != nil {
				return wal.Result{}, err
			}
		} else if st.seq != id+1 {
			return wal.Result{}, fmt.Errorf("queue: task %d of %q made ready at seq %d, not %d", id, o.name, st.seq, id+1)
		}
		if len(t.idem) > 0 {
			if staleAt[i] != 0 {
				if err := tx.Delete(keys.NameKey(q.shard, keys.TableQueueIdemAt, o.name, ts(staleAt[i]), t.idem)); err != nil {
					return wal.Result{}, err
				}
			}
			if err := tx.Set(keys.NameKey(q.shard, keys.TableQueueIdem, o.name, t.idem), enc(be64(id)).U64(uint64(o.now))); err != nil {
				return wal.Result{}, err
			}
			if err := tx.Set(keys.NameKey(q.shard, keys.TableQueueIdemAt, o.name, ts(o.now), t.idem), nil); err != nil {
				return wal.Result{}, err
			}
		}
		q.m.bytes += int64(len(t.payload))
		q.m.enqueued++
		added++
	}
	out := enc(nil)
	for i := range ids {
		if ids[i] > 1<<63 { // duplicate key inside this batch
			ids[i] = ids[^ids[i]]
		}
		out = out.U64(ids[i])
	}
	if err := o.refill(); err != nil {
		return wal.Result{}, err
	}
	return wal.Result{N: added, Data: out}, o.end()
}

func (m *Manager) applyLease(tx *db.Tx, rec wal.Record) (wal.Result, error) {
	d := newDec(rec.Body)
	name, agent, n := d.B(MaxNameSize), d.B(MaxLabelSize), d.U()
	caps := d.List(MaxCapabilities, MaxLabelSize)
	ld := d.I()
	if !d.Done() || n == 0 || n > MaxBatch || ld < 0 || len(agent) == 0 {
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
	// Pick: the hot set in order, then (if still short) the overflow.
	// picked and leased reuse the Manager's buffers (m.mu is held).
	picked := m.pickBuf[:0]
	defer func() { clear(picked); m.pickBuf = picked[:0] }()
	for _, e := range q.hot {
		if uint64(len(picked)) == n {
			break
		}
		if satisfies(caps, e.requires) {
			picked = append(picked, e)
		}
	}
	// The overflow begins after the hot set's last entry (picked or not).
	hasLast := len(q.hot) > 0
	var lastRank rank
	if hasLast {
		lastRank = q.hot[len(q.hot)-1].rank
	}
	q.hotRemoveIDs(picked)
	q.m.ready -= int64(len(picked))
	fromHot := len(picked)
	if uint64(len(picked)) < n && q.overflow() > 0 {
		lo := keys.NameKey(q.shard, keys.TableQueueReady, o.name)
		if hasLast {
			lo = keys.PrefixEnd(keys.NameKey(q.shard, keys.TableQueueReady, o.name, lastRank.suffix()))
		}
		hi := keys.PrefixEnd(keys.NameKey(q.shard, keys.TableQueueReady, o.name))
		it, err := tx.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
		if err != nil {
			return wal.Result{}, err
		}
		base := len(keys.NameKey(q.shard, keys.TableQueueReady, o.name))
		for ok, seen := it.First(), 0; ok && uint64(len(picked)) < n && seen < overflowScan; ok, seen = it.Next(), seen+1 {
			e, ok2 := hotFromReady(it.Key()[base:], it.Value())
			if !ok2 {
				it.Close()
				return wal.Result{}, fmt.Errorf("%w: ready entry of %q", wal.ErrCorrupt, o.name)
			}
			if satisfies(caps, e.requires) {
				picked = append(picked, e)
			}
		}
		if err := it.Close(); err != nil {
			return wal.Result{}, err
		}
		q.m.ready -= int64(len(picked) - fromHot)
	}
	// The result carries every payload: size it once rather than let
	// appends regrow it (the regrowth was a tenth of queuebench's
	// allocation).
	leased := slices.Grow(m.leaseBuf[:0], len(picked))[:len(picked)]
	defer func() { clear(leased); m.leaseBuf = leased[:0] }()
	size := binary.MaxVarintLen64
	for i, e := range picked {
		t, err := o.lease(e, agent, ld)
		if err != nil {
			return wal.Result{}, err
		}
		leased[i] = t
		size += leaseSize(&t)
	}
	out := enc(make([]byte, 0, size)).U(uint64(len(picked)))
	for i, e := range picked {
		out = appendLease(out, e.id, &leased[i])
	}
	if err := o.refill(); err != nil {
		return wal.Result{}, err
	}
	return wal.Result{N: uint64(len(picked)), Data: out}, o.end()
}

// leasedTask loads a task for Extend/Ack/Nack and checks the token.
func (o *op) leasedTask(id, token uint64) (task, error, error) {
	t, ok, err := o.getTask(id)
	if err != nil {
		return t, nil, err
	}
	switch {
	case !ok:
		return t, fmt.Errorf("%w: task %d", ErrNotFound, id), nil
	case t.state == stateCanceled && t.token == token:
		return t, fmt.Errorf("%w: task %d", ErrCanceled, id), nil
	case t.state != stateLeased || t.token != token || t.leaseExp <= o.now:
		return t, fmt.Errorf("%w: task %d", ErrLeaseLost, id), nil
	}
	return t, nil, nil
}

func (m *Manager) applyTaskOp(tx *db.Tx, rec wal.Record) (wal.Result, error) {
	d := newDec(rec.Body)
	name, id := d.B(MaxNameSize), d.U()
	var token, seed uint64
	var extra []byte
	var ld int64
	switch rec.Kind {
	case KindExtend:
		token, ld = d.U(), d.I()
	case KindAck:
		token, extra = d.U(), d.B(MaxResultSize)
	case KindNack:
		token, seed, extra = d.U(), d.U(), d.B(1<<16)
	}
	if !d.Done() || ld < 0 {
		return db.Reject(errBadRecord)
	}
	defer m.lock(tx)()
	o, err := m.begin(tx, name)
	if err != nil {
		return db.Reject(err)
	}
	// Validate before any write (timers due now count: an expired lease is
	// lost even if no tick has run yet).
	var t task
	var rej error
	if rec.Kind == KindCancel {
		var ok bool
		t, ok, err = o.getTask(id)
		if err != nil {
			return wal.Result{}, err
		}
		if !ok || (t.state != stateReady && t.state != stateDelayed && t.state != stateLeased) {
			rej = fmt.Errorf("%w: no pending task %d in %q", ErrNotFound, id, o.name)
		}
	} else {
		t, rej, err = o.leasedTask(id, token)
		if err != nil {
			return wal.Result{}, err
		}
	}
	if rej != nil {
		return db.Reject(rej)
	}
	q := o.q
	switch rec.Kind {
	case KindExtend:
		if ld == 0 {
			ld = int64(q.cfg.LeaseDuration)
		}
		if err := tx.Delete(o.timeKey(keys.TableQueueLease, t.leaseExp, id)); err != nil {
			return wal.Result{}, err
		}
		t.leaseExp = o.now + ld
		q.timerAdded(t.leaseExp)
		if err := tx.Set(o.timeKey(keys.TableQueueLease, t.leaseExp, id), nil); err != nil {
			return wal.Result{}, err
		}
		if err := o.putState(id, &t); err != nil {
			return wal.Result{}, err
		}
	case KindAck:
		if err := o.ack(id, &t, extra); err != nil {
			return wal.Result{}, err
		}
	case KindNack:
		if err := o.retry(id, &t, seed, string(extra), false); err != nil {
			return wal.Result{}, err
		}
	case KindCancel:
		switch t.state {
		case stateReady:
			if err := o.unready(&t); err != nil {
				return wal.Result{}, err
			}
		case stateDelayed:
			q.m.delayed--
			if err := tx.Delete(o.timeKey(keys.TableQueueDelayed, t.notBefore, id)); err != nil {
				return wal.Result{}, err
			}
		case stateLeased:
			t.state = stateCanceled // the lease ends by Nack or expiry; Ack is refused
			if err := o.putState(id, &t); err != nil {
				return wal.Result{}, err
			}
		}
		if t.state != stateCanceled {
			q.m.bytes -= t.size
			if err := o.deleteTask(id); err != nil {
				return wal.Result{}, err
			}
		}
	}
	if err := o.processDue(dueLimit, tx.Index); err != nil {
		return wal.Result{}, err
	}
	if err := o.refill(); err != nil {
		return wal.Result{}, err
	}
	return wal.Result{N: 1}, o.end()
}

// ack completes a validated leased task. The body goes with it: a done task
// keeps only its state (with the result) until ResultRetention, so the
// payload written at enqueue is usually dropped by the flush of the memtable
// it was written to, instead of being flushed and compacted down the tree
// for an hour (doc.go, Tables).
func (o *op) ack(id uint64, t *task, result []byte) error {
	q := o.q
	if err := o.endLease(id, t); err != nil {
		return err
	}
	t.state, t.doneAt, t.result = stateDone, o.now, result
	q.m.done++
	q.m.acked++
	q.m.bytes -= t.size
	if err := o.tx.Set(o.timeKey(keys.TableQueueDone, o.now, id), nil); err != nil {
		return err
	}
	if err := o.tx.Delete(o.bodyKey(id)); err != nil {
		return err
	}
	return o.putState(id, t)
}

func (m *Manager) applyAckBatch(tx *db.Tx, rec wal.Record) (wal.Result, error) {
	d := newDec(rec.Body)
	name, n := d.B(MaxNameSize), d.U()
	if !d.OK || n == 0 || n > MaxBatch || n > uint64(len(d.P)) {
		return db.Reject(errBadRecord)
	}
	type item struct {
		id, token uint64
		result    []byte
	}
	items := make([]item, n)
	for i := range items {
		items[i] = item{d.U(), d.U(), d.B(MaxResultSize)}
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
	status := make([]byte, n)
	var done uint64
	for i, it := range items {
		// Each item is validated against the state left by the items
		// before it (a duplicate id acks once).
		t, rej, err := o.leasedTask(it.id, it.token)
		if err != nil {
			return wal.Result{}, err
		}
		if status[i] = ackStatus(rej); rej != nil {
			continue
		}
		if err := o.ack(it.id, &t, it.result); err != nil {
			return wal.Result{}, err
		}
		done++
	}
	if err := o.processDue(dueLimit, tx.Index); err != nil {
		return wal.Result{}, err
	}
	if err := o.refill(); err != nil {
		return wal.Result{}, err
	}
	return wal.Result{N: done, Data: status}, o.end()
}

func (m *Manager) applyTick(tx *db.Tx, rec wal.Record) (wal.Result, error) {
	d := newDec(rec.Body)
	name, seed := d.B(MaxNameSize), d.U()
	if !d.Done() {
		return db.Reject(errBadRecord)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	o, err := m.begin(tx, name)
	if err != nil {
		return db.Reject(err)
	}
	if err := o.processDue(tickDueLimit, seed); err != nil {
		return wal.Result{}, err
	}
	q := o.q
	// Reclaim acked tasks past ResultRetention and dead letters past
	// DeadRetention.
	for _, r := range []struct {
		table byte
		keep  time.Duration
		count *int64
	}{{keys.TableQueueDone, q.cfg.ResultRetention, &q.m.done}, {keys.TableQueueDead, q.cfg.DeadRetention, &q.m.dead}} {
		if *r.count == 0 {
			continue
		}
		lo := keys.NameKey(q.shard, r.table, o.name)
		hi := keys.NameKey(q.shard, r.table, o.name, ts(o.now-int64(r.keep)+1))
		ids, err := o.scanIDs(lo, hi, reclaimPerRec)
		if err != nil {
			return wal.Result{}, err
		}
		for _, e := range ids {
			if err := tx.Delete(e.key); err != nil {
				return wal.Result{}, err
			}
			if err := o.deleteTask(e.id); err != nil {
				return wal.Result{}, err
			}
			*r.count--
		}
	}
	if err := o.reclaimIdem(); err != nil {
		return wal.Result{}, err
	}
	if err := o.refill(); err != nil {
		return wal.Result{}, err
	}
	return wal.Result{}, o.end()
}

// reclaimIdem drops idempotency keys older than the window (a key re-used
// since keeps its newer entry).
func (o *op) reclaimIdem() error {
	q := o.q
	prefix := keys.NameKey(q.shard, keys.TableQueueIdemAt, o.name)
	hi := keys.NameKey(q.shard, keys.TableQueueIdemAt, o.name, ts(o.now-int64(q.cfg.IdempotencyWindow)+1))
	it, err := o.tx.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: hi})
	if err != nil {
		return err
	}
	type entry struct {
		key, idem []byte
		at        int64
	}
	var es []entry
	for ok := it.First(); ok && len(es) < reclaimPerRec; ok = it.Next() {
		k := it.Key()
		if len(k) < len(prefix)+8 {
			continue
		}
		rest := k[len(prefix):]
		es = append(es, entry{append([]byte(nil), k...), append([]byte(nil), rest[8:]...), keys.Int64(rest[:8])})
	}
	if err := it.Close(); err != nil {
		return err
	}
	for _, e := range es {
		if err := o.tx.Delete(e.key); err != nil {
			return err
		}
		ik := keys.NameKey(q.shard, keys.TableQueueIdem, o.name, e.idem)
		v, c, err := o.tx.Get(ik)
		if errors.Is(err, pebble.ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		d := newDec(v)
		_, at := d.U64(), int64(d.U64())
		c.Close()
		if d.OK && at == e.at {
			if err := o.tx.Delete(ik); err != nil {
				return err
			}
		}
	}
	return nil
}

func (m *Manager) applyDead(tx *db.Tx, rec wal.Record) (wal.Result, error) {
	d := newDec(rec.Body)
	name := d.B(MaxNameSize)
	n := d.U()
	if !d.OK || n > MaxBatch || n > uint64(len(d.P)) {
		return db.Reject(errBadRecord)
	}
	ids := make([]uint64, n)
	for i := range ids {
		ids[i] = d.U()
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
	q := o.q
	tasks := make([]task, len(ids))
	for i, id := range ids {
		t, ok, err := o.getTask(id)
		if err != nil {
			return wal.Result{}, err
		}
		if !ok || t.state != stateDead {
			return db.Reject(fmt.Errorf("%w: no dead letter %d in %q", ErrNotFound, id, o.name))
		}
		tasks[i] = t
	}
	if rec.Kind == KindReplay {
		if c := q.cfg.capacity(); c >= 0 && q.m.ready+q.m.delayed+q.m.leased+int64(len(ids)) > c {
			return db.Reject(fmt.Errorf("%w: replaying %d into %q", ErrFull, len(ids), o.name))
		}
	}
	for i, id := range ids {
		t := &tasks[i]
		if err := tx.Delete(o.timeKey(keys.TableQueueDead, t.doneAt, id)); err != nil {
			return wal.Result{}, err
		}
		q.m.dead--
		if rec.Kind == KindPurge {
			if err := o.deleteTask(id); err != nil {
				return wal.Result{}, err
			}
			continue
		}
		t.attempts, t.doneAt, t.lastErr = 0, 0, nil
		q.m.bytes += t.size
		if err := o.loadBody(id, t); err != nil {
			return wal.Result{}, err
		}
		if err := o.makeReady(id, t); err != nil {
			return wal.Result{}, err
		}
		if err := o.putState(id, t); err != nil {
			return wal.Result{}, err
		}
	}
	if err := o.refill(); err != nil {
		return wal.Result{}, err
	}
	return wal.Result{N: uint64(len(ids))}, o.end()
}
