// Package demo is the workload `flowctl demo` runs: a short, realistic
// multi-agent session on an embedded store (sessions, memories, TTL locks,
// task queues, an agent registry with warm pools, the scheduler, vector
// memory, and agent steps committed as transactions, one of them refused
// whole), each stage measured, ending with a full check of the store.
package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flowdb/flowdb/db"
	"github.com/flowdb/flowdb/index/hnsw"
	"github.com/flowdb/flowdb/quant"
	"github.com/flowdb/flowdb/queue"
	"github.com/flowdb/flowdb/registry"
	"github.com/flowdb/flowdb/sched"
	"github.com/flowdb/flowdb/tools/flowctl/internal/humanize"
)

// Step is one measured stage of the demo.
type Step struct {
	Name     string  `json:"name"`
	What     string  `json:"what"`
	Ops      int     `json:"ops"`
	Seconds  float64 `json:"seconds"`
	OpsPerS  float64 `json:"ops_per_s"`
	P50Micro float64 `json:"p50_us,omitempty"`
	P99Micro float64 `json:"p99_us,omitempty"`
}

// Report is what a run measured.
type Report struct {
	Dir             string  `json:"dir"`
	Steps           []Step  `json:"steps"`
	GroupCommitGain float64 `json:"group_commit_gain"`
	RecordsPerFrame float64 `json:"records_per_frame"`
	Frames          uint64  `json:"frames"`
	Records         uint64  `json:"records"`
	CheckedKeys     int     `json:"checked_keys"`
	CheckOK         bool    `json:"check_ok"`
	DiskBytes       uint64  `json:"disk_bytes"`
	// Txn is what the transactions part showed: agent steps committed
	// whole, and a conflicting one refused with nothing of it applied.
	Txn *TxnReport `json:"txn,omitempty"`
}

func pct(lat []time.Duration, p float64) float64 {
	if len(lat) == 0 {
		return 0
	}
	slices.Sort(lat)
	i := int(float64(len(lat)-1) * p)
	return float64(lat[i]) / 1e3
}

// timed runs fn(worker, i) for n operations over `workers` goroutines and
// returns the measured step.
func timed(name, what string, workers, n int, fn func(w, i int) error) (Step, error) {
	lat := make([][]time.Duration, workers)
	var wg sync.WaitGroup
	var firstErr error
	var mu sync.Mutex
	start := time.Now()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < n; i += workers {
				t0 := time.Now()
				if err := fn(w, i); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					return
				}
				lat[w] = append(lat[w], time.Since(t0))
			}
		}(w)
	}
	wg.Wait()
	el := time.Since(start)
	all := slices.Concat(lat...)
	return Step{Name: name, What: what, Ops: n, Seconds: el.Seconds(), OpsPerS: float64(n) / el.Seconds(),
		P50Micro: pct(all, 0.50), P99Micro: pct(all, 0.99)}, firstErr
}

// Options configure Run.
type Options struct {
	// Logger receives the store's events (nil: db.Options' default).
	Logger *slog.Logger
	// Out receives the progress and each step's figures as text (nil:
	// the run is silent and only the Report tells).
	Out io.Writer
}

// Run runs the demo on a store it opens (creating it) in dir, and closes
// it. It fails if any stage goes wrong or the final check finds damage
// (then the Report so far comes with the error).
func Run(ctx context.Context, dir string, o Options) (*Report, error) {
	say := func(format string, args ...any) {
		if o.Out != nil {
			fmt.Fprintf(o.Out, format, args...)
		}
	}
	d, err := db.Open(dir, &db.Options{Logger: o.Logger})
	if err != nil {
		return nil, err
	}
	defer d.Close()
	rep := &Report{Dir: dir}
	say("flowdb demo: embedded store in %s (durability: fsync before every acknowledgement)\n\n", dir)
	show := func(s Step) {
		rep.Steps = append(rep.Steps, s)
		lat := "          -            -"
		if s.P50Micro > 0 {
			lat = fmt.Sprintf("p50 %9s  p99 %9s", humanize.Latency(s.P50Micro), humanize.Latency(s.P99Micro))
		}
		say("  %-20s %7d ops %9.0f ops/s  %s   %s\n", s.Name, s.Ops, s.OpsPerS, lat, s.What)
	}

	// 1. One agent writing its session alone: every write pays its own fsync.
	s1, err := timed("session, 1 writer", "agent session upserts, one durable write at a time", 1, 300,
		func(w, i int) error {
			return d.SetTTL(ctx, "sessions", fmt.Appendf(nil, "solo/%d", i), []byte(`{"state":"active"}`), time.Hour)
		})
	if err != nil {
		return nil, err
	}
	show(s1)
	// 2. 64 agents at once: group commit shares each fsync.
	s2, err := timed("session, 64 writers", "the same from 64 agents at once (group commit)", 64, 6400,
		func(w, i int) error {
			return d.SetTTL(ctx, "sessions", fmt.Appendf(nil, "agent-%02d/%d", w, i), []byte(`{"state":"active"}`), time.Hour)
		})
	if err != nil {
		return nil, err
	}
	show(s2)
	rep.GroupCommitGain = s2.OpsPerS / s1.OpsPerS
	// 3. Bulk memory import in atomic batches of 100.
	const agents, perAgent = 50, 400
	s3, err := timed("memory import", "agent memories, atomic batches of 100 keys, 4 writers", 4, agents*perAgent/100,
		func(w, i int) error {
			b := d.NewBatch()
			for j := 0; j < 100; j++ {
				n := i*100 + j
				b.Set("memory", fmt.Appendf(nil, "agent-%02d/mem-%04d", n%agents, n/agents),
					fmt.Appendf(nil, "observation %d: the user prefers concise answers", n))
			}
			return d.Commit(ctx, b)
		})
	if err != nil {
		return nil, err
	}
	s3.Ops *= 100
	s3.OpsPerS *= 100
	s3.P50Micro, s3.P99Micro = 0, 0
	show(s3)
	// 4. Point reads.
	s4, err := timed("point reads", "random Get of agent memories, 2 readers", 2, 200_000,
		func(w, i int) error {
			n := rand.IntN(agents * perAgent)
			_, err := d.Get(ctx, "memory", fmt.Appendf(nil, "agent-%02d/mem-%04d", n%agents, n/agents))
			return err
		})
	if err != nil {
		return nil, err
	}
	show(s4)
	// 5. Prefix scans: one agent's memories.
	s5, err := timed("prefix scans", "all memories of one agent (400 keys each)", 1, 200,
		func(w, i int) error {
			n := 0
			for _, err := range d.Scan(ctx, "memory", db.ScanOptions{Prefix: fmt.Appendf(nil, "agent-%02d/", i%agents)}) {
				if err != nil {
					return err
				}
				n++
			}
			if n != perAgent {
				return fmt.Errorf("scan found %d memories, want %d", n, perAgent)
			}
			return nil
		})
	if err != nil {
		return nil, err
	}
	show(s5)
	// 6. Expiry: short-lived locks vanish at once and are reclaimed.
	expiredBefore := d.Metrics().TTLExpired
	b := d.NewBatch()
	for i := 0; i < 500; i++ {
		b.SetTTL("locks", fmt.Appendf(nil, "task-%d", i), []byte("held"), 200*time.Millisecond)
	}
	if err := d.Commit(ctx, b); err != nil {
		return nil, err
	}
	time.Sleep(250 * time.Millisecond)
	visible := 0
	for _, err := range d.Scan(ctx, "locks", db.ScanOptions{}) {
		if err != nil {
			return nil, err
		}
		visible++
	}
	// The background reaper may already have run: count what both reclaimed.
	t0 := time.Now()
	if _, err := d.ReapExpired(ctx); err != nil {
		return nil, err
	}
	reaped := int(d.Metrics().TTLExpired - expiredBefore)
	show(Step{Name: "ttl reclaim", What: fmt.Sprintf("500 locks with 200ms TTL: %d visible after 250ms, %d reclaimed", visible, reaped),
		Ops: reaped, Seconds: time.Since(t0).Seconds(), OpsPerS: float64(reaped) / time.Since(t0).Seconds()})
	if visible != 0 {
		return nil, errors.New("expired keys were visible")
	}
	// 7. Forget an agent: one atomic range deletion.
	t0 = time.Now()
	if err := d.DeletePrefix(ctx, "memory", []byte("agent-07/")); err != nil {
		return nil, err
	}
	if _, err := d.Get(ctx, "memory", []byte("agent-07/mem-0001")); !errors.Is(err, db.ErrNotFound) {
		return nil, fmt.Errorf("DeletePrefix left a key: %v", err)
	}
	show(Step{Name: "forget agent", What: "DeletePrefix of agent-07's 400 memories, durable", Ops: 1,
		Seconds: time.Since(t0).Seconds(), OpsPerS: 1 / time.Since(t0).Seconds()})

	qm, err := queue.Attach(d, nil)
	if err != nil {
		return nil, err
	}
	defer qm.Close()
	if err := demoQueues(ctx, qm, show, say); err != nil {
		return nil, err
	}
	if err := demoAgents(ctx, d, qm, show, say); err != nil {
		return nil, err
	}
	vm, err := hnsw.Attach(d)
	if err != nil {
		return nil, err
	}
	if err := demoVectors(ctx, vm, show, say); err != nil {
		return nil, err
	}
	if rep.Txn, err = demoTxn(ctx, d, qm, vm, say); err != nil {
		return rep, err
	}

	m := d.Metrics()
	rep.Frames, rep.Records, rep.RecordsPerFrame, rep.DiskBytes = m.Frames, m.Records, m.RecordsPerFrame, m.DiskBytes
	chk, err := d.Check(ctx, nil)
	if err != nil {
		return nil, err
	}
	rep.CheckedKeys, rep.CheckOK = chk.Keys, chk.OK()
	say("\n  group commit: 64 writers ran %.1fx the single writer's rate (frames share fsyncs); %d records in %d frames\n",
		rep.GroupCommitGain, m.Records, m.Frames)
	say("  check: %d keys walked, block checksums and invariants verified, damage: %v; disk %s\n",
		chk.Keys, !chk.OK(), humanize.IBytes(m.DiskBytes))
	if !chk.OK() {
		return rep, fmt.Errorf("check found damage: %s", chk.Problems[0].Err)
	}
	return rep, nil
}

// demoQueues runs the task-queue part of the demo: producers, agents that
// lease and ack, failures that retry into the dead-letter queue.
func demoQueues(ctx context.Context, qm *queue.Manager, show func(Step), say func(string, ...any)) error {
	cfg := queue.Config{Name: "agent-tasks", HotCapacity: 1000, OverflowCapacity: 100_000,
		MaxAttempts: 2, BackoffBase: time.Millisecond, BackoffMax: 5 * time.Millisecond}
	if err := qm.Create(ctx, cfg); err != nil {
		return err
	}
	payload := make([]byte, 256)
	for i := range payload {
		payload[i] = byte('a' + i%26)
	}
	// Enqueue: 64 producers, one durable task per call.
	s, err := timed("enqueue, 64 producers", "one durable task per call, 256 B payloads", 64, 6400,
		func(w, i int) error {
			_, err := qm.Enqueue(ctx, "agent-tasks", queue.Task{Payload: payload, Priority: i % 10})
			return err
		})
	if err != nil {
		return err
	}
	show(s)
	// Batches: 100 tasks per record.
	s, err = timed("enqueue, batches", "100 tasks per durable record, 4 producers", 4, 136,
		func(w, i int) error {
			ts := make([]queue.Task, 100)
			for j := range ts {
				ts[j] = queue.Task{Payload: payload, Priority: j % 10}
			}
			_, err := qm.EnqueueBatch(ctx, "agent-tasks", ts)
			return err
		})
	if err != nil {
		return err
	}
	s.Ops *= 100
	s.OpsPerS *= 100
	s.P50Micro, s.P99Micro = 0, 0
	show(s)
	st, _ := qm.Stats("agent-tasks")
	say("  %-20s hot %d in memory, overflow %d on disk only\n", "queue depth", st.Hot, st.Overflow)
	total := int(st.Hot + st.Overflow)
	// Drain: 8 agents lease 32 at a time and ack each task; 1 in 500 fails.
	var mu sync.Mutex
	failed := 0
	start := time.Now()
	var wg sync.WaitGroup
	var drainErr error
	var processed int64
	for a := 0; a < 8; a++ {
		wg.Add(1)
		go func(a int) {
			defer wg.Done()
			agent := fmt.Sprintf("agent-%d", a)
			for {
				lctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
				ls, err := qm.LeaseWait(lctx, "agent-tasks", agent, 32, nil, 0)
				cancel()
				if err != nil || len(ls) == 0 {
					return // drained
				}
				for _, l := range ls {
					if (l.ID/2)%500 == 0 { // ids advance by 2 (they share a counter with seq)
						mu.Lock()
						failed++
						mu.Unlock()
						err = qm.Nack(ctx, "agent-tasks", l.ID, l.Token, "tool call failed")
					} else {
						err = qm.Ack(ctx, "agent-tasks", l.ID, l.Token, nil)
					}
					if err != nil {
						mu.Lock()
						drainErr = err
						mu.Unlock()
						return
					}
					mu.Lock()
					processed++
					mu.Unlock()
				}
			}
		}(a)
	}
	wg.Wait()
	if drainErr != nil {
		return drainErr
	}
	el := time.Since(start)
	show(Step{Name: "lease + ack, 8 agents", What: fmt.Sprintf("%d tasks drained; each Lease (32 tasks) and each Ack is one durable record", total),
		Ops: int(processed), Seconds: el.Seconds(), OpsPerS: float64(processed) / el.Seconds()})
	st, _ = qm.Stats("agent-tasks")
	say("  %-20s acked %d, %d failures retried, %d dead letters (failed both attempts), left %d\n", "queue result",
		st.Acked, st.Retried, st.Dead, st.Hot+st.Overflow+st.Delayed+st.Leased)
	if st.Hot+st.Overflow+st.Delayed+st.Leased != 0 {
		return fmt.Errorf("queue not drained: %+v", st)
	}
	return nil
}

// demoAgents runs the registry part of the demo: a warm pool filled by a
// spawner, 1,000 agents registering and heartbeating, lookups by id and by
// capabilities, and agents that stop heartbeating turning unhealthy.
func demoAgents(ctx context.Context, d *db.DB, qm *queue.Manager, show func(Step), say func(string, ...any)) error {
	var r *registry.Registry
	var spawned atomic.Int64
	// Spawned agents promise an hourly heartbeat, as the workers below do:
	// nothing in the demo heartbeats them, and with the default 1s
	// interval a slow run (CI's race pass) reached the unhealthy count
	// below after they too had missed three.
	spawner := func(ctx context.Context, pool string) error {
		n := spawned.Add(1)
		return r.Register(ctx, registry.AgentSpec{ID: fmt.Sprintf("%s-warm-%d", pool, n), Pool: pool,
			Capabilities: []string{"python"}, Capacity: 4, HeartbeatInterval: time.Hour})
	}
	r, err := registry.Attach(d, &registry.Options{Spawner: spawner, CheckInterval: 20 * time.Millisecond})
	if err != nil {
		return err
	}
	defer r.Close()
	// "browsers" starts empty: the spawner fills it to MinWarm in the
	// background while the rest of the demo runs.
	for _, p := range []registry.Pool{{Name: "workers", MinWarm: 8, MaxSize: 2000, RetireAfter: time.Minute},
		{Name: "browsers", MinWarm: 4, MaxSize: 16, RetireAfter: time.Minute}} {
		if err := r.DefinePool(ctx, p); err != nil {
			return err
		}
	}
	caps := []string{"python", "gpu", "browser", "sql", "vision"}
	s, err := timed("register agents", "1,000 agents, 64 at a time, each one durable record", 64, 1000, func(w, i int) error {
		c := []string{caps[i%len(caps)], caps[(i/5)%len(caps)]}
		return r.Register(ctx, registry.AgentSpec{ID: fmt.Sprintf("agent-%04d", i), Pool: "workers",
			Capabilities: c, Capacity: 4, HeartbeatInterval: time.Hour})
	})
	if err != nil {
		return err
	}
	show(s)
	s, err = timed("heartbeats", "1,000 heartbeats with load, 64 agents at a time", 64, 1000, func(w, i int) error {
		return r.Heartbeat(ctx, fmt.Sprintf("agent-%04d", i), i%5, "ok")
	})
	if err != nil {
		return err
	}
	show(s)
	s, err = timed("lookup by id", "200,000 lookups from the cached view, 2 readers", 2, 200_000, func(w, i int) error {
		_, err := r.Get(fmt.Sprintf("agent-%04d", (i*7919)%1000))
		return err
	})
	if err != nil {
		return err
	}
	show(s)
	gpu := r.ByCapabilities([]string{"gpu", "python"})
	// Ten agents with a short heartbeat interval stop heartbeating: the
	// background loop proposes an expire record once they are 3 intervals late.
	for i := range 10 {
		if err := r.Register(ctx, registry.AgentSpec{ID: fmt.Sprintf("flaky-%d", i), Capacity: 1, HeartbeatInterval: 20 * time.Millisecond}); err != nil {
			return err
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(r.Unhealthy()) < 10 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	for r.PoolStats()[0].Warm < 4 && time.Now().Before(deadline) { // pools sort by name: browsers first
		time.Sleep(10 * time.Millisecond)
	}
	ps, ws := r.PoolStats()[0], r.PoolStats()[1]
	say("  %-20s %d agents offer gpu+python; %d agents missed their heartbeats and are unhealthy; cache hit rate %.3f\n",
		"registry", len(gpu), len(r.Unhealthy()), r.CacheStats().HitRatio)
	say("  %-20s warm %d, busy %d\n", "pool workers", ws.Warm, ws.Busy)
	say("  %-20s warm %d: %d agents started by the spawner to keep %d warm\n", "pool browsers", ps.Warm, ps.Spawned, ps.MinWarm)
	if len(r.Unhealthy()) != 10 {
		return fmt.Errorf("expected 10 unhealthy agents, have %v", r.Unhealthy())
	}
	if ps.Warm < ps.MinWarm {
		return fmt.Errorf("pool not kept warm: %+v", ps)
	}
	return demoDispatch(ctx, qm, r, show, say)
}

// demoDispatch pushes tasks to the registered agents with the scheduler:
// capability match, affinity, least loaded by power-of-two-choices, never
// beyond capacity; then an agent leaves and its tasks go to others.
func demoDispatch(ctx context.Context, qm *queue.Manager, r *registry.Registry, show func(Step), say func(string, ...any)) error {
	s, err := sched.New(qm, r, nil)
	if err != nil {
		return err
	}
	defer s.Close()
	if err := qm.Create(ctx, queue.Config{Name: "dispatch", HotCapacity: 2000, OverflowCapacity: 100_000}); err != nil {
		return err
	}
	caps := []string{"python", "gpu", "browser", "sql", "vision"}
	const total = 20_000
	batch := make([]queue.Task, 0, 1000)
	for i := range total {
		t := queue.Task{Payload: []byte(fmt.Sprintf("job-%d", i)), Requires: []string{caps[i%len(caps)]}}
		if i%4 == 0 {
			t.Affinity = fmt.Sprintf("conversation-%d", i%500)
		}
		if batch = append(batch, t); len(batch) == cap(batch) {
			if _, err := qm.EnqueueBatch(ctx, "dispatch", batch); err != nil {
				return err
			}
			batch = batch[:0]
		}
	}
	// Rounds: dispatch until every agent is full (or nothing is ready),
	// then the agents finish their tasks (one AckBatch per 1,000).
	t0 := time.Now()
	assigned, rounds := 0, 0
	var fullBalance float64
	var fullHeld, fullCap int
	for assigned < total {
		var held []queue.Lease
		for {
			ls, err := s.Dispatch(ctx, "dispatch", 512)
			if err != nil {
				return err
			}
			if len(ls) == 0 {
				break
			}
			held = append(held, ls...)
		}
		if len(held) == 0 {
			return fmt.Errorf("dispatch stalled with %d of %d tasks assigned", assigned, total)
		}
		if rounds == 0 {
			st := s.Stats()
			fullBalance, fullHeld, fullCap = st.Balance, st.Held, st.Capacity
		}
		assigned += len(held)
		rounds++
		for len(held) > 0 {
			n := min(len(held), 1000)
			items := make([]queue.AckItem, n)
			for i, l := range held[:n] {
				items[i] = queue.AckItem{ID: l.ID, Token: l.Token}
			}
			if _, err := qm.AckBatch(ctx, "dispatch", items); err != nil {
				return err
			}
			held = held[n:]
		}
	}
	el := time.Since(t0)
	st := s.Stats()
	show(Step{Name: "dispatch + ack", What: fmt.Sprintf("%d tasks pushed to %d agents by capability, affinity and load in %d rounds; one assign record per 512",
		total, st.Agents, rounds), Ops: total, Seconds: el.Seconds(), OpsPerS: float64(total) / el.Seconds()})
	say("  %-20s first round: %d tasks held of %d capacity, balance (min/max utilization) %.2f; affinity kept %d of %d keyed tasks on their agent\n",
		"scheduler", fullHeld, fullCap, fullBalance, st.AffinityHits, st.AffinityHits+st.AffinityMisses)
	// An agent leaves holding work: its tasks return through release
	// records and are dispatched to others.
	if _, err := qm.EnqueueBatch(ctx, "dispatch", []queue.Task{{Payload: []byte("a")}, {Payload: []byte("b")}, {Payload: []byte("c")}}); err != nil {
		return err
	}
	ls, err := s.Dispatch(ctx, "dispatch", 3)
	if err != nil || len(ls) == 0 {
		return fmt.Errorf("dispatch: %v %v", ls, err)
	}
	leaving := ls[0].Agent
	var its []uint64 // the tasks it was just given
	for _, l := range ls {
		if l.Agent == leaving {
			its = append(its, l.ID)
		}
	}
	if err := r.Deregister(ctx, leaving); err != nil {
		return err
	}
	deadline := time.Now().Add(5 * time.Second)
	for qm.Held(leaving) > 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	// Everything ready goes out again (a slow run may also have lease
	// expiries coming back): the leaving agent's tasks must be among it,
	// on other agents.
	again, err := s.Dispatch(ctx, "dispatch", 512)
	if err != nil {
		return err
	}
	moved := 0
	for _, l := range again {
		if slices.Contains(its, l.ID) && l.Agent != leaving {
			moved++
		}
	}
	say("  %-20s %s deregistered holding %d task(s): released to the queue and dispatched to %d other agent(s)\n",
		"agent leaves", leaving, len(its), moved)
	if qm.Held(leaving) != 0 || moved != len(its) {
		return fmt.Errorf("the tasks of %s were not released and re-dispatched (%d held, %d of %d moved)", leaving, qm.Held(leaving), moved, len(its))
	}
	return nil
}

// demoVectors runs the vector-memory part of the demo: agents remember
// 64-dimension embeddings (clustered, as real ones are), then recall the
// nearest, with and without a filter on the agent's tag.
func demoVectors(ctx context.Context, vm *hnsw.Manager, show func(Step), say func(string, ...any)) error {
	const dim, n, agents = 64, 5000, 10
	if err := vm.Create(ctx, hnsw.Config{Name: "memories", Dim: dim, Metric: quant.Cosine, TrainSize: 1000}); err != nil {
		return err
	}
	rng := rand.New(rand.NewPCG(42, 7))
	centers := make([][]float32, 25)
	for i := range centers {
		centers[i] = make([]float32, dim)
		for j := range centers[i] {
			centers[i][j] = float32(rng.NormFloat64())
		}
	}
	embed := func() []float32 {
		c := centers[rng.IntN(len(centers))]
		v := make([]float32, dim)
		for j := range v {
			v[j] = c[j] + 0.3*float32(rng.NormFloat64())
		}
		return v
	}
	vs := make([]hnsw.Vector, n)
	for i := range vs {
		vs[i] = hnsw.Vector{ID: uint64(i), Values: embed(), Tags: []string{fmt.Sprintf("agent-%02d", i%agents)}}
	}
	s, err := timed("remember", "5,000 64-dim memories in batches of 250, each batch one durable record; graph built at 1,000", 1, n/250,
		func(w, i int) error { return vm.Upsert(ctx, "memories", vs[i*250:(i+1)*250]) })
	if err != nil {
		return err
	}
	s.Ops, s.OpsPerS = n, float64(n)/s.Seconds
	show(s)
	queries := make([][]float32, 1000)
	for i := range queries {
		queries[i] = embed()
	}
	s, err = timed("recall", "1,000 top-10 searches (int8 graph, float32 re-rank), 2 readers", 2, len(queries), func(w, i int) error {
		_, err := vm.Search(ctx, "memories", queries[i], 10, hnsw.SearchOptions{})
		return err
	})
	if err != nil {
		return err
	}
	show(s)
	self, err := vm.Search(ctx, "memories", vs[1234].Values, 1, hnsw.SearchOptions{})
	if err != nil {
		return err
	}
	mine, err := vm.Search(ctx, "memories", queries[0], 5, hnsw.SearchOptions{Tags: []string{"agent-03"}})
	if err != nil {
		return err
	}
	say("  %-20s memory 1234 recalls itself first: %v; agent-03's 5 nearest memories: %d, all its own: %v\n",
		"vector memory", len(self) == 1 && self[0].ID == 1234, len(mine), allTagged(mine, "agent-03"))
	if len(self) != 1 || self[0].ID != 1234 || len(mine) != 5 || !allTagged(mine, "agent-03") {
		return fmt.Errorf("vector recall went wrong: %v %v", self, mine)
	}
	return nil
}

func allTagged(hs []hnsw.Hit, tag string) bool {
	for _, h := range hs {
		if !slices.Contains(h.Tags, tag) {
			return false
		}
	}
	return true
}
