package sched

import (
	"context"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/flowdb/flowdb/internal/testutil"
	"github.com/flowdb/flowdb/queue"
	"github.com/flowdb/flowdb/registry"
)

// The model test drives the registry, the queues and the scheduler together
// through seeded sequences of register, heartbeat, clock advance, expiry,
// deregistration, enqueue, dispatch, ack and crash-and-reopen steps, and
// checks after every step:
//
//   - no acknowledged task is lost: every enqueued task not yet acked is
//     ready, delayed or leased, and every acked one is done;
//   - a dispatch never leaves an agent above its capacity;
//   - once the release triggered by expiry or deregistration has run, no
//     unhealthy or deregistered agent holds a task;
//   - the per-agent counts the engine keeps equal the task records, also
//     after a crash and reopen;
//   - db.Check finds every table and cross-table invariant intact.

type schedRunner struct {
	*testutil.Seq
	e *env

	capacity map[string]int    // registered agents
	open     map[uint64]bool   // enqueued, not acked
	acked    map[uint64]bool   // acked
	leases   map[uint64]uint64 // task -> token of its current dispatch
}

func (x *schedRunner) start() {
	e := &env{clock: x.Clock, d: x.Open("/m")}
	var err error
	if e.q, err = queue.Attach(e.d, &queue.Options{TickInterval: -1}); err != nil {
		x.Fail("queue: %v", err)
	}
	if e.r, err = registry.Attach(e.d, &registry.Options{CheckInterval: -1}); err != nil {
		x.Fail("registry: %v", err)
	}
	// Each sequence runs under one of the policies, by its seed.
	pol := policies[x.Seed%uint64(len(policies))]
	if e.s, err = New(e.q, e.r, &Options{Policy: pol, ReconcileInterval: -1, Seed: x.Seed + 1, Logger: testutil.Quiet()}); err != nil {
		x.Fail("sched: %v", err)
	}
	x.e = e
}

func (x *schedRunner) stop() {
	x.e.s.Close()
	x.e.r.Close()
	x.e.q.Close()
	x.e.d.Close()
}

// settle waits for releases triggered by the registry's notifications.
func (x *schedRunner) settle(agent string) {
	deadline := time.Now().Add(10 * time.Second)
	for x.e.q.Held(agent) != 0 {
		if time.Now().After(deadline) {
			x.Fail("agent %s still holds %d tasks", agent, x.e.q.Held(agent))
		}
		time.Sleep(100 * time.Microsecond)
	}
}

func (x *schedRunner) step() {
	ctx := context.Background()
	rng, e := x.Rng, x.e
	agents := []string{"a1", "a2", "a3", "a4"}
	switch op := rng.IntN(100); {
	case op < 12:
		id, c := agents[rng.IntN(len(agents))], 1+rng.IntN(4)
		x.Step("register(%s,%d)", id, c)
		if err := e.r.Register(ctx, registry.AgentSpec{ID: id, Capacity: c}); err != nil {
			x.Fail("%v", err)
		}
		x.capacity[id] = c
	case op < 25:
		id := agents[rng.IntN(len(agents))]
		x.Step("heartbeat(%s)", id)
		err := e.r.Heartbeat(ctx, id, e.q.Held(id), "")
		if _, reg := x.capacity[id]; reg != (err == nil) {
			x.Fail("heartbeat: %v (registered %v)", err, reg)
		}
	case op < 33:
		adv := time.Duration(rng.IntN(2500)) * time.Millisecond
		x.Advance(adv)
	case op < 40:
		x.Step("expire")
		gone, err := e.r.Expire(ctx)
		if err != nil {
			x.Fail("%v", err)
		}
		for _, id := range gone {
			x.settle(id)
		}
	case op < 45:
		id := agents[rng.IntN(len(agents))]
		x.Step("deregister(%s)", id)
		err := e.r.Deregister(ctx, id)
		if _, reg := x.capacity[id]; reg != (err == nil) {
			x.Fail("deregister: %v (registered %v)", err, reg)
		}
		if err == nil {
			delete(x.capacity, id)
			x.settle(id)
		}
	case op < 62:
		n := 1 + rng.IntN(4)
		x.Step("enqueue(%d)", n)
		ts := make([]queue.Task, n)
		for i := range ts {
			ts[i] = queue.Task{Payload: []byte("p")}
			if rng.IntN(3) == 0 {
				ts[i].Affinity = "k" + strconv.Itoa(rng.IntN(3))
			}
		}
		ids, err := e.q.EnqueueBatch(ctx, "q", ts)
		if err != nil {
			x.Fail("%v", err)
		}
		for _, id := range ids {
			x.open[id] = true
		}
	case op < 80:
		x.Step("dispatch")
		ls, err := e.s.Dispatch(ctx, "q", 1+rng.IntN(6))
		if err != nil {
			x.Fail("%v", err)
		}
		for _, l := range ls {
			if _, reg := x.capacity[l.Agent]; !reg {
				x.Fail("task %d dispatched to unregistered agent %s", l.ID, l.Agent)
			}
			x.leases[l.ID] = l.Token
			// Re-registration may lower a capacity below what an agent
			// holds; a dispatch never adds beyond it.
			if h := e.q.Held(l.Agent); h > x.capacity[l.Agent] {
				x.Fail("dispatch left agent %s with %d tasks, capacity %d", l.Agent, h, x.capacity[l.Agent])
			}
		}
	case op < 95:
		ids := make([]uint64, 0, len(x.leases))
		for id := range x.leases {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		if len(ids) == 0 {
			x.Step("ack(none)")
			break
		}
		id := ids[rng.IntN(len(ids))]
		x.Step("ack(%d)", id)
		err := e.q.Ack(ctx, "q", id, x.leases[id], nil)
		delete(x.leases, id)
		if err == nil {
			delete(x.open, id)
			x.acked[id] = true
		}
	default:
		before := e.q.HeldAll()
		x.Crash(x.stop)
		x.start()
		// Everything was acknowledged, so everything survived: the held
		// counts rebuilt from the index equal those before the crash
		// (New's reconcile may only have released unhealthy agents).
		after := x.e.q.HeldAll()
		for a, n := range before {
			if ag, err := x.e.r.Get(a); err == nil && ag.Healthy && after[a] != n {
				x.Fail("agent %s held %d before the crash, %d after", a, n, after[a])
			}
		}
	}
	x.check()
}

func (x *schedRunner) check() {
	ctx := context.Background()
	e := x.e
	for id := range x.open {
		info, err := e.q.Get(ctx, "q", id)
		if err != nil || (info.State != "ready" && info.State != "delayed" && info.State != "leased") {
			x.Fail("open task %d: %+v %v", id, info, err)
		}
	}
	for id := range x.acked {
		if info, err := e.q.Get(ctx, "q", id); err != nil || info.State != "done" {
			x.Fail("acked task %d: %+v %v", id, info, err)
		}
	}
	for a, n := range e.q.HeldAll() {
		ag, err := e.r.Get(a)
		switch {
		case err != nil:
			// A deregistered agent holds nothing once its release ran;
			// only a crash between the two leaves tasks, until their
			// leases expire.
			if x.Steps[len(x.Steps)-1] != "crash+reopen" && !x.crashedSinceGone(a) {
				x.Fail("deregistered agent %s holds %d tasks", a, n)
			}
		case !ag.Healthy:
			x.Fail("unhealthy agent %s holds %d tasks", a, n)
		}
	}
	if len(x.Steps)%4 == 0 {
		if rep, err := e.d.Check(ctx, nil); err != nil || !rep.OK() {
			x.Fail("check: %v %+v", err, rep.Problems)
		}
	}
}

// crashedSinceGone reports whether a crash came after agent's last
// deregistration (its release may then have been lost with the process).
func (x *schedRunner) crashedSinceGone(agent string) bool {
	for i := len(x.Steps) - 1; i >= 0; i-- {
		switch x.Steps[i] {
		case "crash+reopen":
			return true
		case "deregister(" + agent + ")":
			return false
		}
	}
	return false
}

// TestModel: FLOWDB_MODEL_SEQS sets the number of sequences (default 300),
// FLOWDB_MODEL_SEED runs one.
func TestModel(t *testing.T) {
	run := testutil.RunModel(t, 300, 2, func(s *testutil.Seq) int {
		x := &schedRunner{Seq: s, capacity: map[string]int{}, open: map[uint64]bool{},
			acked: map[uint64]bool{}, leases: map[uint64]uint64{}}
		x.start()
		if err := x.e.q.Create(context.Background(), queue.Config{Name: "q", HotCapacity: 4, MaxAttempts: 1000}); err != nil {
			t.Fatal(err)
		}
		n := x.TakeSteps(20, 40, x.step)
		x.stop()
		return n
	})
	t.Logf("%v: no task lost, no capacity exceeded, no unhealthy holder", run)
}
