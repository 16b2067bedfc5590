package txntest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/flowdb/flowdb/db"
	"github.com/flowdb/flowdb/index/hnsw"
	"github.com/flowdb/flowdb/internal/testutil"
	"github.com/flowdb/flowdb/quant"
	"github.com/flowdb/flowdb/queue"
	"github.com/flowdb/flowdb/registry"
)

// The model: what the store must hold after every step.
type model struct {
	kv     map[string]string // key in namespace "ns"
	tasks  map[uint64]*mtask
	vecs   map[uint64]float32 // id -> first component (vectors are (x, 1, 1, 1))
	agents map[string]magent
}

type mtask struct {
	state string // ready, leased, retry (ready or delayed after a nack), done, canceled
	token uint64
}

type magent struct {
	load   int
	status string
}

func (m *model) clone() *model {
	c := &model{kv: maps.Clone(m.kv), tasks: map[uint64]*mtask{}, vecs: maps.Clone(m.vecs), agents: maps.Clone(m.agents)}
	for id, t := range m.tasks {
		tt := *t
		c.tasks[id] = &tt
	}
	return c
}

// outstanding counts the tasks that hold queue capacity.
func (m *model) outstanding() int {
	n := 0
	for _, t := range m.tasks {
		if t.state == "ready" || t.state == "leased" || t.state == "retry" {
			n++
		}
	}
	return n
}

const (
	modelQueue    = "q"
	modelCapacity = 5 // HotCapacity 2 + OverflowCapacity 3
	modelColl     = "v"
	modelNS       = "ns"
)

func modelConfig() queue.Config {
	return queue.Config{Name: modelQueue, HotCapacity: 2, OverflowCapacity: 3, ReserveFraction: 0.0001,
		MaxAttempts: 1000, LeaseDuration: time.Hour, BackoffBase: time.Millisecond, BackoffMax: time.Millisecond}
}

// TestTxnModel runs seeded sequences that mix transactions over every
// subsystem with single operations, transactions refused part-way (a stale
// lease token in the middle, a failed condition at the end, a full queue, a
// wrong vector dimension), and crash-and-reopen steps; after every step the
// store is checked against the model, and after every transaction, every
// crash and at the end of each sequence the running store's in-memory views
// against the views a store rebuilt from the same disk answers.
// FLOWDB_MODEL_SEQS runs more sequences, FLOWDB_MODEL_SEED one. The
// sequences run in three parallel shards of consecutive seeds, beside the
// crash sweep.
func TestTxnModel(t *testing.T) {
	t.Parallel()
	testutil.RunModelParallel(t, 5000, 26, 3, runTxnSeq)
}

func runTxnSeq(s *testutil.Seq) int {
	ctx := context.Background()
	t := s.T
	var st *stack
	open := func() {
		d, err := db.Open("/m", smallStore(s))
		if err != nil {
			s.Fail("open: %v", err)
		}
		st = attach(t, d)
	}
	open()
	defer func() { st.close() }()
	if err := st.qm.Create(ctx, modelConfig()); err != nil {
		s.Fail("create queue: %v", err)
	}
	if err := st.vm.Create(ctx, hnsw.Config{Name: modelColl, Dim: 4, Metric: quant.L2, Float: true, M: 4, EfConstruction: 16}); err != nil {
		s.Fail("create collection: %v", err)
	}
	m := &model{kv: map[string]string{}, tasks: map[uint64]*mtask{}, vecs: map[uint64]float32{}, agents: map[string]magent{}}
	for _, a := range []string{"a1", "a2"} {
		if err := st.r.Register(ctx, registry.AgentSpec{ID: a, Capacity: 10, HeartbeatInterval: time.Hour}); err != nil {
			s.Fail("register: %v", err)
		}
		m.agents[a] = magent{}
	}
	rng := s.Rng
	key := func() string { return fmt.Sprintf("k%d", rng.IntN(6)) }
	pick := func(state string) (uint64, *mtask) {
		ids := slices.Sorted(maps.Keys(m.tasks))
		rng.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
		for _, id := range ids {
			if m.tasks[id].state == state {
				return id, m.tasks[id]
			}
		}
		return 0, nil
	}
	steps := s.TakeSteps(2, 6, func() {
		rebuild := false
		switch r := rng.IntN(20); {
		case r < 3: // single enqueue
			s.Step("enqueue")
			ids, err := st.qm.EnqueueBatch(ctx, modelQueue, []queue.Task{{Payload: []byte("p")}})
			switch {
			case m.outstanding() >= modelCapacity:
				if !errors.Is(err, queue.ErrFull) {
					s.Fail("enqueue into a full queue: %v", err)
				}
			case err != nil:
				s.Fail("enqueue: %v", err)
			default:
				m.tasks[ids[0]] = &mtask{state: "ready"}
			}
		case r < 6: // lease
			s.Step("lease")
			ls, err := st.qm.Lease(ctx, modelQueue, "a1", 1, nil, time.Hour)
			if err != nil {
				s.Fail("lease: %v", err)
			}
			for _, l := range ls {
				mt := m.tasks[l.ID]
				if mt == nil || (mt.state != "ready" && mt.state != "retry") {
					s.Fail("leased task %d in model state %v", l.ID, mt)
				}
				mt.state, mt.token = "leased", l.Token
			}
			if len(ls) == 0 {
				if id, _ := pick("ready"); id != 0 {
					s.Fail("nothing leased while task %d is ready", id)
				}
			}
		case r < 7: // single set
			k, v := key(), fmt.Sprint(rng.IntN(100))
			s.Step("set %s=%s", k, v)
			if err := st.d.Set(ctx, modelNS, []byte(k), []byte(v)); err != nil {
				s.Fail("set: %v", err)
			}
			m.kv[k] = v
		case r < 8:
			s.Advance(time.Duration(rng.IntN(5)) * time.Millisecond)
		case r < 9:
			s.Crash(st.close)
			open()
			rebuild = true
		default:
			txnStep(s, st, m, key, pick)
			rebuild = true
		}
		check(s, st, m, rebuild)
	})
	check(s, st, m, true)
	return steps
}

// txnStep builds a transaction of 1-6 random operations, predicts whether
// it must be refused from the model, commits it and updates the model.
func txnStep(s *testutil.Seq, st *stack, m *model, key func() string, pick func(string) (uint64, *mtask)) {
	ctx := context.Background()
	rng := s.Rng
	tx := st.d.NewTxn()
	next := m.clone() // the model if the transaction commits
	var desc []string
	refuseAt, why := -1, error(nil)
	refuse := func(err error) {
		if refuseAt < 0 {
			refuseAt, why = tx.Len(), err
		}
	}
	// Input that fails validation refuses the transaction before it is
	// proposed, whatever apply would have said of the operations before it.
	buildAt, buildWhy := -1, error(nil)
	var enqs []*queue.Enqueued
	n := 1 + rng.IntN(6)
	for range n {
		switch rng.IntN(11) {
		case 0, 1: // ack, with a valid or a stale token
			id, mt := pick("leased")
			if id == 0 {
				continue
			}
			tok := next.tasks[id].token
			state := next.tasks[id].state
			if rng.IntN(4) == 0 {
				tok++ // stale
			}
			desc = append(desc, fmt.Sprintf("ack(%d,ok=%v)", id, tok == mt.token && state == "leased"))
			if tok != mt.token || state != "leased" {
				refuse(queue.ErrLeaseLost)
			}
			st.qm.TxAck(tx, modelQueue, id, tok, nil)
			next.tasks[id].state = "done"
		case 2: // nack
			id, mt := pick("leased")
			if id == 0 {
				continue
			}
			desc = append(desc, fmt.Sprintf("nack(%d)", id))
			if next.tasks[id].state != "leased" {
				refuse(queue.ErrLeaseLost)
			}
			st.qm.TxNack(tx, modelQueue, id, mt.token, "retry")
			next.tasks[id].state = "retry"
		case 3, 4: // enqueue, refused when the queue is full
			desc = append(desc, "enqueue")
			if next.outstanding()+len(enqs) >= modelCapacity {
				refuse(queue.ErrFull)
			}
			enqs = append(enqs, st.qm.TxEnqueue(tx, modelQueue, queue.Task{Payload: []byte("t")}))
		case 5, 6: // set or delete
			k := key()
			if rng.IntN(3) == 0 {
				desc = append(desc, "delete "+k)
				tx.Delete(modelNS, []byte(k))
				delete(next.kv, k)
			} else {
				v := fmt.Sprint(rng.IntN(100))
				desc = append(desc, fmt.Sprintf("set %s=%s", k, v))
				tx.Set(modelNS, []byte(k), []byte(v))
				next.kv[k] = v
			}
		case 7: // upsert, or a wrong dimension
			id := uint64(1 + rng.IntN(8))
			x := float32(rng.IntN(50))
			if rng.IntN(6) == 0 {
				desc = append(desc, fmt.Sprintf("upsert(%d,dim 3)", id))
				if buildAt < 0 {
					buildAt, buildWhy = tx.Len(), hnsw.ErrDimension
				}
				st.vm.TxUpsert(tx, modelColl, hnsw.Vector{ID: id, Values: []float32{x, 1, 1}})
				continue
			}
			desc = append(desc, fmt.Sprintf("upsert(%d,%v)", id, x))
			st.vm.TxUpsert(tx, modelColl, hnsw.Vector{ID: id, Values: []float32{x, 1, 1, 1}})
			next.vecs[id] = x
		case 8: // delete vectors
			id := uint64(1 + rng.IntN(8))
			desc = append(desc, fmt.Sprintf("forget(%d)", id))
			st.vm.TxDelete(tx, modelColl, id)
			delete(next.vecs, id)
		case 9: // heartbeat
			a := []string{"a1", "a2", "ghost"}[rng.IntN(3)]
			load := rng.IntN(5)
			desc = append(desc, fmt.Sprintf("heartbeat(%s,%d)", a, load))
			if a == "ghost" {
				refuse(registry.ErrNotFound)
			}
			st.r.TxHeartbeat(tx, a, load, fmt.Sprint("s", load))
			next.agents[a] = magent{load: load, status: fmt.Sprint("s", load)}
		case 10: // condition, true or false, as the model says
			k := key()
			v, ok := next.kv[k]
			switch rng.IntN(3) {
			case 0:
				desc = append(desc, fmt.Sprintf("require_absent %s(%v)", k, !ok))
				if ok {
					refuse(db.ErrConditionFailed)
				}
				tx.RequireAbsent(modelNS, []byte(k))
			case 1:
				want := v
				if rng.IntN(2) == 0 {
					want = "x"
				}
				desc = append(desc, fmt.Sprintf("require %s=%s(%v)", k, want, ok && want == v))
				if !ok || want != v {
					refuse(db.ErrConditionFailed)
				}
				tx.Require(modelNS, []byte(k), []byte(want))
			default:
				desc = append(desc, fmt.Sprintf("require_present %s(%v)", k, ok))
				if !ok {
					refuse(db.ErrConditionFailed)
				}
				tx.RequirePresent(modelNS, []byte(k))
			}
		}
	}
	if tx.Len() == 0 && tx.Err() == nil {
		return
	}
	s.Step("txn %v", desc)
	err := st.d.CommitTxn(ctx, tx)
	if buildAt >= 0 {
		refuseAt, why = buildAt, buildWhy
	}
	if refuseAt >= 0 {
		var te *db.TxnError
		if !errors.Is(err, why) || !errors.Is(err, db.ErrTxnRejected) || !errors.As(err, &te) || te.Op != refuseAt {
			s.Fail("want refusal at op %d (%v), got %v", refuseAt, why, err)
		}
		return // the model stays as it was
	}
	if err != nil {
		s.Fail("commit: %v", err)
	}
	for _, e := range enqs {
		if len(e.IDs) != 1 {
			s.Fail("enqueued ids %v", e.IDs)
		}
		next.tasks[e.IDs[0]] = &mtask{state: "ready"}
	}
	*m = *next
}

// smallStore returns the options of the sequence's store: its file system
// and clock, and small memtables (the sequences open thousands of stores).
func smallStore(s *testutil.Seq) *db.Options {
	o := testutil.StoreOptions(s.Mem, s.Clock)
	o.CacheSize = 8 << 20
	o.Pebble = func(po *pebble.Options) { po.MemTableSize = 1 << 20 }
	return o
}

// check compares the store with the model and, with rebuild, the running
// views with the views of a store rebuilt from the same disk. The model
// test rebuilds after every transaction and crash, and at the end of each
// sequence: views are compared whole, so a single operation that left them
// wrong is caught at the next of those.
func check(s *testutil.Seq, st *stack, m *model, rebuild bool) {
	ctx := context.Background()
	for i := range 6 {
		k := fmt.Sprintf("k%d", i)
		v, err := st.d.Get(ctx, modelNS, []byte(k))
		want, ok := m.kv[k]
		if ok != (err == nil) || (ok && string(v) != want) || (!ok && !errors.Is(err, db.ErrNotFound)) {
			s.Fail("kv %s: got %q %v, model %q %v", k, v, err, want, ok)
		}
	}
	for id, mt := range m.tasks {
		info, err := st.qm.Get(ctx, modelQueue, id)
		if err != nil {
			s.Fail("task %d: %v", id, err)
		}
		ok := info.State == mt.state || (mt.state == "retry" && (info.State == "ready" || info.State == "delayed"))
		if !ok {
			s.Fail("task %d: state %s, model %s", id, info.State, mt.state)
		}
		if mt.state == "retry" && info.State == "ready" {
			mt.state = "ready"
		}
	}
	stats, err := st.vm.Stats(modelColl)
	if err != nil || stats.Vectors != len(m.vecs) {
		s.Fail("collection: %+v %v, model %d vectors", stats, err, len(m.vecs))
	}
	for id := uint64(1); id <= 8; id++ {
		v, err := st.vm.Get(modelColl, id)
		x, ok := m.vecs[id]
		if ok != (err == nil) || (ok && v.Values[0] != x) {
			s.Fail("vector %d: %v %v, model %v %v", id, v, err, x, ok)
		}
		if ok {
			hits, err := st.vm.Search(ctx, modelColl, []float32{x, 1, 1, 1}, 8, hnsw.SearchOptions{})
			if err != nil || !slices.ContainsFunc(hits, func(h hnsw.Hit) bool { return h.ID == id }) {
				s.Fail("vector %d not found by search: %v %v", id, hits, err)
			}
		}
	}
	for _, a := range st.r.List(registry.Filter{}) {
		if ma, ok := m.agents[a.ID]; !ok || ma.load != a.Load || ma.status != a.Status {
			s.Fail("agent %s: load %d status %q, model %+v", a.ID, a.Load, a.Status, ma)
		}
	}
	if !rebuild {
		return
	}
	// The views a store rebuilt from this disk answers (everything
	// acknowledged is synced, so a crash clone without unsynced data holds it).
	// The store is opened read-only: it reads the same disk, and its open
	// skips what a writer's does (a new WAL, flushing the replayed one),
	// which the crash-and-reopen steps cover.
	running := st.views(s.T)
	clone := s.Mem.CrashClone(vfs.CrashCloneCfg{})
	o := smallStore(s)
	o.FS = clone
	o.ReadOnly = true
	d2, err := db.Open("/m", o)
	if err != nil {
		s.Fail("open rebuilt: %v", err)
	}
	rebuilt := attach(s.T, d2)
	defer rebuilt.close()
	if diff := running.sameAs(rebuilt.views(s.T)); diff != "" {
		s.Fail("running views differ from the views rebuilt from disk: %s", diff)
	}
}
