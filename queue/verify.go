package queue

import (
	"context"
	"encoding/binary"
	"fmt"
	"maps"
	"slices"

	"github.com/cockroachdb/pebble/v2"
	"github.com/flowdb/flowdb/internal/keys"
)

// maxVerifyErrors caps what one verification reports.
const maxVerifyErrors = 100

// check is the cross-table invariant check db.Check runs
// (db.Machine.Check): for every queue, every task but a done one has its
// body, the ready, delayed, lease, dead and done indexes hold exactly one
// entry per task in the matching state (at the matching time or rank), and
// the counters equal what the task records add up to.
func (m *Manager) check(ctx context.Context, r pebble.Reader) []error {
	var errs []error
	report := func(format string, a ...any) {
		if len(errs) < maxVerifyErrors {
			errs = append(errs, fmt.Errorf(format, a...))
		}
	}
	for shard := range m.d.Placement().Data() {
		lo, hi := keys.TableRange(shard, keys.TableQueueDef)
		defs, err := r.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
		if err != nil {
			return append(errs, err)
		}
		for ok := defs.First(); ok; ok = defs.Next() {
			cfg, ok := decodeConfig(defs.Value())
			if !ok {
				continue // reported by the table check
			}
			verifyQueue(r, shard, cfg.Name, report)
			if err := ctx.Err(); err != nil {
				defs.Close()
				return append(errs, err)
			}
		}
		defs.Close()
	}
	return errs
}

func verifyQueue(r pebble.Reader, shard uint32, name string, report func(string, ...any)) {
	scan := func(table byte, fn func(suffix, value []byte)) {
		prefix := keys.NameKey(shard, table, name)
		it, err := r.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: keys.PrefixEnd(prefix)})
		if err != nil {
			report("queue %q: %v", name, err)
			return
		}
		for ok := it.First(); ok; ok = it.Next() {
			fn(it.Key()[len(prefix):], it.Value())
		}
		if err := it.Close(); err != nil {
			report("queue %q: %v", name, err)
		}
	}
	// What the indexes must hold, from the task records.
	want := map[byte]map[string]uint64{
		keys.TableQueueReady: {}, keys.TableQueueDelayed: {}, keys.TableQueueLease: {},
		keys.TableQueueDead: {}, keys.TableQueueDone: {},
	}
	var got meta
	var maxID uint64
	states := map[uint64]task{}
	scan(keys.TableQueueState, func(k, v []byte) {
		if len(k) != 8 {
			return
		}
		id := binary.BigEndian.Uint64(k)
		t, ok := decodeState(v)
		if !ok {
			return // reported by the table check
		}
		t.agent, t.result, t.lastErr = nil, nil, nil // v is the iterator's
		states[id] = t
	})
	// Every state but a done task's has its body; they agree on priority and
	// payload size. A body without a state is a task enqueued ready and
	// unchanged since (freshTask). A done task's body was deleted by its Ack
	// (stores written before that keep it).
	hasBody := map[uint64]bool{}
	scan(keys.TableQueueTask, func(k, v []byte) {
		if len(k) != 8 {
			return
		}
		id := binary.BigEndian.Uint64(k)
		hasBody[id] = true
		st, ok := states[id]
		if !ok {
			t, ok := freshTask(id, v)
			if !ok {
				report("queue %q: task %d has a body that does not decode and no state", name, id)
				return
			}
			t.requires, t.tags, t.idem, t.affinity, t.payload = nil, nil, nil, nil, nil // v is the iterator's
			states[id] = t
			return
		}
		if !st.decodeBody(v) {
			report("queue %q: task %d: body disagrees with its state (priority %d, size %d)", name, id, st.prio, st.size)
		}
	})
	for _, id := range slices.Sorted(maps.Keys(states)) {
		t := states[id]
		if !hasBody[id] && t.state != stateDone {
			report("queue %q: task %d has a state but no body", name, id)
		}
		maxID = max(maxID, id)
		switch t.state {
		case stateReady:
			got.ready++
			want[keys.TableQueueReady][string(rank{t.prio, t.seq}.suffix())] = id
		case stateDelayed:
			got.delayed++
			want[keys.TableQueueDelayed][string(append(ts(t.notBefore), be64(id)...))] = id
		case stateLeased, stateCanceled:
			got.leased++
			want[keys.TableQueueLease][string(append(ts(t.leaseExp), be64(id)...))] = id
		case stateDead:
			got.dead++
			want[keys.TableQueueDead][string(append(ts(t.doneAt), be64(id)...))] = id
		case stateDone:
			got.done++
			want[keys.TableQueueDone][string(append(ts(t.doneAt), be64(id)...))] = id
		}
		if t.state == stateReady || t.state == stateDelayed || t.state == stateLeased || t.state == stateCanceled {
			got.bytes += t.size
		}
	}
	names := map[byte]string{keys.TableQueueReady: "ready", keys.TableQueueDelayed: "delayed",
		keys.TableQueueLease: "lease", keys.TableQueueDead: "dead", keys.TableQueueDone: "done"}
	for _, table := range []byte{keys.TableQueueReady, keys.TableQueueDelayed, keys.TableQueueLease, keys.TableQueueDead, keys.TableQueueDone} {
		exp := want[table]
		scan(table, func(k, v []byte) {
			id, ok := exp[string(k)]
			switch {
			case !ok:
				report("queue %q: %s index entry %x has no task in that state", name, names[table], k)
			case table == keys.TableQueueReady:
				if re, vok := decodeReadyValue(v); !vok || re.id != id {
					report("queue %q: ready entry %x names task %d, the task is %d", name, k, re.id, id)
				} else if st, ok := states[id]; ok && st.attempts != re.attempts {
					report("queue %q: ready entry of task %d says %d attempts, its state %d", name, id, re.attempts, st.attempts)
				}
			}
			delete(exp, string(k))
		})
		for k, id := range exp {
			report("queue %q: task %d has no %s index entry (%x)", name, id, names[table], k)
		}
	}
	// Idempotency keys and their time index match one to one.
	idemAt := map[string]bool{}
	scan(keys.TableQueueIdemAt, func(k, _ []byte) {
		if len(k) >= 8 {
			idemAt[string(k)] = true
		}
	})
	scan(keys.TableQueueIdem, func(k, v []byte) {
		d := newDec(v)
		_, at := d.U64(), int64(d.U64())
		if !d.OK {
			return // reported by the table check
		}
		tk := string(append(ts(at), k...))
		if !idemAt[tk] {
			report("queue %q: idempotency key %q has no time entry", name, k)
		}
		delete(idemAt, tk)
	})
	for k := range idemAt {
		report("queue %q: idempotency time entry %x has no key", name, k)
	}
	v, c, err := r.Get(keys.NameKey(shard, keys.TableQueueMeta, name))
	if err != nil {
		report("queue %q: counters: %v", name, err)
		return
	}
	m, ok := decodeMeta(v)
	c.Close()
	if !ok {
		return // reported by the table check
	}
	if m.ready != got.ready || m.delayed != got.delayed || m.leased != got.leased || m.dead != got.dead ||
		m.done != got.done || m.bytes != got.bytes {
		report("queue %q: counters ready/delayed/leased/dead/done/bytes %d/%d/%d/%d/%d/%d, tasks add up to %d/%d/%d/%d/%d/%d",
			name, m.ready, m.delayed, m.leased, m.dead, m.done, m.bytes,
			got.ready, got.delayed, got.leased, got.dead, got.done, got.bytes)
	}
	if maxID > m.nextSeq {
		report("queue %q: task id %d beyond the id counter %d", name, maxID, m.nextSeq)
	}
}
