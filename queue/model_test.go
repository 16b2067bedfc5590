package queue

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/flowdb/flowdb/db"
	"github.com/flowdb/flowdb/internal/testutil"
)

// The model is a small, obviously-correct reference for one queue: a map of
// tasks scanned in sorted order. The engine must agree with it after every
// operation of every seeded sequence.

type mTask struct {
	id, seq, attempts, token uint64
	prio                     int
	state                    byte
	notBefore, leaseExp      int64
	doneAt                   int64
	requires                 []string
	agent                    string
}

type mIdem struct {
	id uint64
	at int64
}

type model struct {
	cfg                               Config
	next                              uint64
	tasks                             map[uint64]*mTask
	idem                              map[string]mIdem
	enqueued, acked, retried, deadSum uint64
}

func (m *model) sorted(pred func(*mTask) bool, less func(a, b *mTask) int) []*mTask {
	var out []*mTask
	for _, t := range m.tasks {
		if pred(t) {
			out = append(out, t)
		}
	}
	slices.SortFunc(out, less)
	return out
}

func rankCmp(a, b *mTask) int {
	if a.prio != b.prio {
		return b.prio - a.prio
	}
	return cmpU(a.seq, b.seq)
}

func cmpU(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func byTime(f func(*mTask) int64) func(a, b *mTask) int {
	return func(a, b *mTask) int {
		if f(a) != f(b) {
			if f(a) < f(b) {
				return -1
			}
			return 1
		}
		return cmpU(a.id, b.id)
	}
}

func (m *model) ready() []*mTask {
	return m.sorted(func(t *mTask) bool { return t.state == stateReady }, rankCmp)
}

func (m *model) count(states ...byte) int64 {
	n := int64(0)
	for _, t := range m.tasks {
		if slices.Contains(states, t.state) {
			n++
		}
	}
	return n
}

func (m *model) makeReady(t *mTask) {
	m.next++
	t.state, t.seq, t.notBefore = stateReady, m.next, 0
}

func (m *model) retry(t *mTask, now int64) {
	if t.state == stateCanceled {
		delete(m.tasks, t.id)
		return
	}
	if t.attempts >= uint64(m.cfg.MaxAttempts) {
		t.state, t.doneAt = stateDead, now
		m.deadSum++
		return
	}
	m.retried++
	t.state, t.notBefore = stateDelayed, now+int64(m.cfg.backoff(t.attempts, 0, t.id))
}

func (m *model) due(now int64) {
	for _, t := range m.sorted(func(t *mTask) bool { return t.state == stateDelayed && t.notBefore <= now },
		byTime(func(t *mTask) int64 { return t.notBefore })) {
		m.makeReady(t)
	}
	for _, t := range m.sorted(func(t *mTask) bool {
		return (t.state == stateLeased || t.state == stateCanceled) && t.leaseExp <= now
	}, byTime(func(t *mTask) int64 { return t.leaseExp })) {
		m.retry(t, now)
	}
}

type mEnq struct {
	prio      int
	notBefore int64
	idem      string
	requires  []string
}

func (m *model) enqueue(now int64, ts []mEnq) ([]uint64, error) {
	ids := make([]uint64, len(ts))
	fresh := make([]bool, len(ts))
	out := m.count(stateReady, stateDelayed, stateLeased, stateCanceled)
	capacity := m.cfg.capacity()
	reserveStart := capacity - int64(float64(capacity)*m.cfg.ReserveFraction)
	seen := map[string]int{}
	for i, t := range ts {
		if t.idem != "" {
			if j, ok := seen[t.idem]; ok {
				ids[i] = ids[j]
				continue
			}
			if e, ok := m.idem[t.idem]; ok && now-e.at < int64(m.cfg.IdempotencyWindow) {
				ids[i] = e.id
				continue
			}
			seen[t.idem] = i
		}
		if out >= capacity || (out >= reserveStart && t.prio < m.cfg.HighPriority) {
			return nil, ErrFull
		}
		out++
		fresh[i] = true
	}
	m.due(now)
	for i, t := range ts {
		if !fresh[i] {
			continue
		}
		m.next++
		mt := &mTask{id: m.next, prio: t.prio, requires: t.requires}
		ids[i] = mt.id
		m.tasks[mt.id] = mt
		if t.notBefore > now {
			mt.state, mt.notBefore = stateDelayed, t.notBefore
		} else {
			m.makeReady(mt)
		}
		if t.idem != "" {
			m.idem[t.idem] = mIdem{mt.id, now}
		}
		m.enqueued++
	}
	for i := range ids { // in-batch duplicates point at the first occurrence
		if !fresh[i] && ts[i].idem != "" {
			if j, ok := seen[ts[i].idem]; ok && j != i {
				ids[i] = ids[j]
			}
		}
	}
	return ids, nil
}

func (m *model) lease(now int64, agent string, n int, caps []string, ld time.Duration) []*mTask {
	m.due(now)
	if ld == 0 {
		ld = m.cfg.LeaseDuration
	}
	var picked []*mTask
	for _, t := range m.ready() {
		if len(picked) == n {
			break
		}
		ok := true
		for _, r := range t.requires {
			ok = ok && slices.Contains(caps, r)
		}
		if ok {
			picked = append(picked, t)
		}
	}
	for _, t := range picked {
		t.attempts++
		t.state, t.leaseExp, t.agent = stateLeased, now+int64(ld), agent
	}
	return picked
}

// held counts the tasks leased to agent.
func (m *model) held(agent string) int {
	n := 0
	for _, t := range m.tasks {
		if (t.state == stateLeased || t.state == stateCanceled) && t.agent == agent {
			n++
		}
	}
	return n
}

// assign applies one assign record: each item leases its task if the task is
// still ready at the candidate's rank and the agent holds fewer than cap.
func (m *model) assign(now int64, as []Assignment) []error {
	m.due(now)
	errs := make([]error, len(as))
	for i, a := range as {
		t := m.tasks[a.Task.ID]
		switch {
		case t == nil || t.state != stateReady || t.seq != a.Task.seq || t.prio != a.Task.Priority:
			errs[i] = ErrNotReady
		case m.held(a.Agent) >= a.Capacity:
			errs[i] = ErrAtCapacity
		default:
			t.attempts++
			t.state, t.leaseExp, t.agent = stateLeased, now+int64(m.cfg.LeaseDuration), a.Agent
		}
	}
	return errs
}

// release returns agent's tasks (by id) to the ready set at once. No record
// is proposed for an agent that holds nothing (so no timers run).
func (m *model) release(now int64, agent string) int {
	if m.held(agent) == 0 {
		return 0
	}
	m.due(now)
	n := 0
	for _, t := range m.sorted(func(t *mTask) bool {
		return (t.state == stateLeased || t.state == stateCanceled) && t.agent == agent
	}, byTime(func(t *mTask) int64 { return int64(t.id) })) {
		n++
		switch {
		case t.state == stateCanceled:
			delete(m.tasks, t.id)
		case t.attempts >= uint64(m.cfg.MaxAttempts):
			t.state, t.doneAt = stateDead, now
			m.deadSum++
		default:
			m.retried++
			m.makeReady(t)
		}
	}
	return n
}

func (m *model) leased(now int64, id, token uint64) (*mTask, error) {
	t := m.tasks[id]
	switch {
	case t == nil:
		return nil, ErrNotFound
	case t.state == stateCanceled && t.token == token:
		return nil, ErrCanceled
	case t.state != stateLeased || t.token != token || t.leaseExp <= now:
		return nil, ErrLeaseLost
	}
	return t, nil
}

func (m *model) tick(now int64) {
	m.due(now)
	for _, t := range m.sorted(func(*mTask) bool { return true }, byTime(func(t *mTask) int64 { return int64(t.id) })) {
		if t.state == stateDone && t.doneAt <= now-int64(m.cfg.ResultRetention) ||
			t.state == stateDead && t.doneAt <= now-int64(m.cfg.DeadRetention) {
			delete(m.tasks, t.id)
		}
	}
}

// ---- the test -------------------------------------------------------------

var agents = []string{"a1", "a2", "a3"}

var modelCfg = Config{Name: "m", HotCapacity: 3, OverflowCapacity: 5, ReserveFraction: 0.25, HighPriority: 7,
	MaxAttempts: 2, LeaseDuration: 10 * time.Second, BackoffBase: time.Second, BackoffMax: 4 * time.Second,
	JitterFraction: -1, ResultRetention: 30 * time.Second, DeadRetention: 60 * time.Second,
	IdempotencyWindow: 20 * time.Second}

type seqRunner struct {
	*testutil.Seq
	d     *db.DB
	qm    *Manager
	model *model
	stale []Candidate // candidates of an earlier assign step, to assign again
}

func (r *seqRunner) open() {
	d := r.Open("/m")
	qm, err := Attach(d, &Options{TickInterval: -1})
	if err != nil {
		r.Fail("attach: %v", err)
	}
	r.d, r.qm = d, qm
}

func wantErr(got, want error) bool {
	if want == nil {
		return got == nil
	}
	return errors.Is(got, want)
}

func (r *seqRunner) step() {
	ctx := context.Background()
	m, rng, now := r.model, r.Rng, r.Clock.Now().UnixNano()
	pickID := func(states ...byte) (uint64, bool) {
		var ids []uint64
		for id, t := range m.tasks {
			if len(states) == 0 || slices.Contains(states, t.state) {
				ids = append(ids, id)
			}
		}
		if len(ids) == 0 || rng.IntN(10) == 0 {
			return m.next + 1 + uint64(rng.IntN(3)), false // unknown id
		}
		slices.Sort(ids)
		return ids[rng.IntN(len(ids))], true
	}
	capsets := [][]string{nil, {"gpu"}, {"py"}, {"gpu", "py"}}
	switch op := rng.IntN(100); {
	case op < 30:
		var ts []Task
		var ms []mEnq
		for i := 0; i < 1+rng.IntN(3); i++ {
			t := Task{Priority: rng.IntN(MaxPriority + 1), Payload: []byte("p"), Requires: capsets[rng.IntN(4)]}
			if rng.IntN(4) == 0 {
				t.IdempotencyKey = "k" + strconv.Itoa(rng.IntN(4))
			}
			if rng.IntN(5) == 0 {
				t.NotBefore = r.Clock.Now().Add(time.Duration(rng.IntN(5)) * time.Second)
			}
			ts = append(ts, t)
			nb := int64(0)
			if !t.NotBefore.IsZero() {
				nb = t.NotBefore.UnixNano()
			}
			ms = append(ms, mEnq{t.Priority, nb, t.IdempotencyKey, t.Requires})
		}
		r.Step("enqueue%v", ms)
		wantIDs, wantE := m.enqueue(now, ms)
		ids, err := r.qm.EnqueueBatch(ctx, "m", ts)
		if !wantErr(err, wantE) || (err == nil && !slices.Equal(ids, wantIDs)) {
			r.Fail("got %v %v, model %v %v", ids, err, wantIDs, wantE)
		}
	case op < 50:
		n, caps := 1+rng.IntN(3), capsets[rng.IntN(4)]
		ld := time.Duration(0)
		if rng.IntN(3) == 0 {
			ld = time.Duration(1+rng.IntN(20)) * time.Second
		}
		agent := agents[rng.IntN(len(agents))]
		r.Step("lease(%s,%d,%v,%v)", agent, n, caps, ld)
		want := m.lease(now, agent, n, caps, ld)
		ls, err := r.qm.Lease(ctx, "m", agent, n, caps, ld)
		if err != nil || len(ls) != len(want) {
			r.Fail("got %d leases (%v), model %d", len(ls), err, len(want))
		}
		for i, l := range ls {
			if l.ID != want[i].id || l.Attempt != int(want[i].attempts) || l.Priority != want[i].prio {
				r.Fail("lease %d: got id %d attempt %d, model id %d attempt %d", i, l.ID, l.Attempt, want[i].id, want[i].attempts)
			}
			want[i].token = l.Token
		}
	case op < 72:
		id, _ := pickID(stateLeased, stateCanceled)
		token := uint64(0)
		if t := m.tasks[id]; t != nil {
			token = t.token
			if rng.IntN(6) == 0 {
				token++ // a stale or forged token
			}
		}
		kind := []string{"ack", "nack", "extend"}[rng.IntN(3)]
		r.Step("%s(%d)", kind, id)
		t, wantE := m.leased(now, id, token)
		var err error
		batch := false
		switch kind {
		case "ack":
			if rng.IntN(2) == 0 {
				err = r.qm.Ack(ctx, "m", id, token, []byte("r"))
			} else {
				batch = true // per-item failure: the record still applies (timers due run)
				var errs []error
				if errs, err = r.qm.AckBatch(ctx, "m", []AckItem{{ID: id, Token: token}}); err == nil {
					err = errs[0]
				}
			}
			if wantE == nil {
				t.state, t.doneAt = stateDone, now
				m.acked++
			}
		case "nack":
			err = r.qm.Nack(ctx, "m", id, token, "no")
			if wantE == nil {
				m.retry(t, now)
			}
		case "extend":
			err = r.qm.Extend(ctx, "m", id, token, 0)
			if wantE == nil {
				t.leaseExp = now + int64(m.cfg.LeaseDuration)
			}
		}
		if wantE == nil || batch {
			m.due(now)
		}
		if !wantErr(err, wantE) {
			r.Fail("got %v, model %v", err, wantE)
		}
	case op < 78:
		id, _ := pickID()
		r.Step("cancel(%d)", id)
		t := m.tasks[id]
		var wantE error
		if t == nil || (t.state != stateReady && t.state != stateDelayed && t.state != stateLeased) {
			wantE = ErrNotFound
		} else if t.state == stateLeased {
			t.state = stateCanceled
		} else {
			delete(m.tasks, id)
		}
		if wantE == nil {
			m.due(now)
		}
		if err := r.qm.Cancel(ctx, "m", id); !wantErr(err, wantE) {
			r.Fail("got %v, model %v", err, wantE)
		}
	case op < 84:
		r.Step("tick")
		m.tick(now)
		if err := r.qm.Tick(ctx, "m"); err != nil {
			r.Fail("%v", err)
		}
	case op < 88:
		id, ok := pickID(stateDead)
		purge := rng.IntN(2) == 0
		r.Step("dead(purge=%v,%d)", purge, id)
		var wantE error
		t := m.tasks[id]
		switch {
		case !ok || t == nil || t.state != stateDead:
			wantE = ErrNotFound
		case purge:
			delete(m.tasks, id)
		case m.count(stateReady, stateDelayed, stateLeased, stateCanceled)+1 > m.cfg.capacity():
			wantE = ErrFull
		default:
			t.attempts, t.doneAt = 0, 0
			m.makeReady(t)
		}
		var err error
		if purge {
			err = r.qm.Purge(ctx, "m", []uint64{id})
		} else {
			err = r.qm.Replay(ctx, "m", []uint64{id})
		}
		if !wantErr(err, wantE) {
			r.Fail("got %v, model %v", err, wantE)
		}
	case op < 93:
		// Push dispatch: assign fresh (and sometimes stale or repeated)
		// candidates to random agents with small capacities.
		cands, err := r.qm.Ready("m", 1+rng.IntN(4), nil)
		if err != nil {
			r.Fail("ready: %v", err)
		}
		if len(r.stale) > 0 && rng.IntN(3) == 0 {
			cands = append(cands, r.stale[rng.IntN(len(r.stale))])
		}
		if len(cands) > 0 && rng.IntN(4) == 0 {
			cands = append(cands, cands[0])
		}
		r.stale = cands
		if len(cands) == 0 {
			r.Step("assign(none ready)")
			break
		}
		var as []Assignment
		var desc []string
		for _, c := range cands {
			a := Assignment{Task: c, Agent: agents[rng.IntN(len(agents))], Capacity: 1 + rng.IntN(3)}
			as = append(as, a)
			desc = append(desc, fmt.Sprintf("%d->%s/%d", c.ID, a.Agent, a.Capacity))
		}
		r.Step("assign%v", desc)
		want := m.assign(now, as)
		ls, errs, err := r.qm.Assign(ctx, "m", 0, as)
		if err != nil {
			r.Fail("assign: %v", err)
		}
		j := 0
		for i := range as {
			if !wantErr(errs[i], want[i]) {
				r.Fail("assignment %d: got %v, model %v", i, errs[i], want[i])
			}
			if want[i] == nil {
				t := m.tasks[as[i].Task.ID]
				if l := ls[j]; l.ID != t.id || l.Agent != as[i].Agent || l.Attempt != int(t.attempts) {
					r.Fail("assignment %d: lease %+v, model task %d attempt %d", i, l, t.id, t.attempts)
				}
				t.token = ls[j].Token
				j++
			}
		}
		if j != len(ls) {
			r.Fail("%d leases for %d successful assignments", len(ls), j)
		}
	case op < 95:
		agent := agents[rng.IntN(len(agents))]
		r.Step("release(%s)", agent)
		want := m.release(now, agent)
		n, err := r.qm.Release(ctx, agent, "gone")
		if err != nil || n != want {
			r.Fail("released %d (%v), model %d", n, err, want)
		}
	case op < 98:
		adv := time.Duration(rng.IntN(12000)) * time.Millisecond
		r.Advance(adv)
	default:
		r.Crash(func() {
			r.qm.Close()
			r.d.Close()
		})
		r.open()
	}
	r.compare(len(r.Steps)%5 == 0)
}

// compare checks the engine against the model: depths, totals, the hot set
// as the exact prefix of the ready order, and every task's state.
func (r *seqRunner) compare(full bool) {
	m := r.model
	st, err := r.qm.Stats("m")
	if err != nil {
		r.Fail("stats: %v", err)
	}
	ready := m.ready()
	hot := min(len(ready), m.cfg.HotCapacity)
	want := Stats{Hot: int64(hot), Overflow: int64(len(ready) - hot), Delayed: m.count(stateDelayed),
		Leased: m.count(stateLeased, stateCanceled), Dead: m.count(stateDead), Done: m.count(stateDone),
		Enqueued: m.enqueued, Acked: m.acked, Retried: m.retried, DeadSum: m.deadSum}
	got := Stats{Hot: st.Hot, Overflow: st.Overflow, Delayed: st.Delayed, Leased: st.Leased, Dead: st.Dead,
		Done: st.Done, Enqueued: st.Enqueued, Acked: st.Acked, Retried: st.Retried, DeadSum: st.DeadSum}
	if got != want {
		r.Fail("stats %+v, model %+v", got, want)
	}
	r.qm.mu.Lock()
	q := r.qm.queues["m"]
	var hotIDs []uint64
	for _, e := range q.hot {
		hotIDs = append(hotIDs, e.id)
	}
	r.qm.mu.Unlock()
	var wantHot []uint64
	for _, t := range ready[:hot] {
		wantHot = append(wantHot, t.id)
	}
	if !slices.Equal(hotIDs, wantHot) {
		r.Fail("hot set %v, model %v", hotIDs, wantHot)
	}
	for _, a := range agents {
		if got, want := r.qm.Held(a), m.held(a); got != want {
			r.Fail("agent %s holds %d tasks, model %d", a, got, want)
		}
	}
	if !full {
		return
	}
	for id, t := range m.tasks {
		info, err := r.qm.Get(context.Background(), "m", id)
		if err != nil || info.State != stateNames[t.state] || info.Attempts != int(t.attempts) || info.Priority != t.prio {
			r.Fail("task %d: got %+v %v, model state %s attempts %d", id, info, err, stateNames[t.state], t.attempts)
		}
	}
	if rep, err := r.d.Check(context.Background(), nil); err != nil || !rep.OK() {
		r.Fail("check: %v %+v", err, rep.Problems)
	}
}

// TestModel runs seeded random sequences of every queue operation, with
// clock advances and crash-and-reopen steps, against the reference model.
// FLOWDB_MODEL_SEQS sets the number of sequences (default 10,000);
// FLOWDB_MODEL_SEED runs one sequence. The sequences run in two parallel
// shards of consecutive seeds, beside the crash sweep and the SIGKILL test.
func TestModel(t *testing.T) {
	t.Parallel()
	// 2,500 sequences by default, 10,000 under FLOWDB_FULL (testutil.Scale).
	testutil.RunModelParallel(t, testutil.Scale("", 2_500, 10_000), 1, 2, func(s *testutil.Seq) int {
		r := &seqRunner{Seq: s, model: &model{cfg: modelCfg.withDefaults(), tasks: map[uint64]*mTask{}, idem: map[string]mIdem{}}}
		r.open()
		if err := r.qm.Create(context.Background(), modelCfg); err != nil {
			s.Fail("create: %v", err)
		}
		n := r.TakeSteps(10, 30, r.step)
		r.qm.Close()
		r.d.Close()
		return n
	})
}
