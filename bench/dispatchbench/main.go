// Command dispatchbench measures push dispatch (package sched) with 6,000
// registered agents and 100,000 tasks, for the power-of-two-choices policy
// for exact least-loaded, and for round-robin assignment in the same run.
//
// Throughput: 100,000 ready tasks (a quarter require one capability, a
// tenth carry an affinity key) are dispatched until every one is assigned;
// every assignment is durable (fsync) before Dispatch returns. Reported:
// durable assignments per second, with 1 and 2 dispatching goroutines, and
// the mean records per commit.
//
// Balance at steady state: the same agents (capacities 8, 16, 24 and 32)
// take tasks that each run for a fixed number of rounds; every round new
// tasks arrive (enough to keep the agents about 60% busy), finished tasks
// are acked (AckBatch) and the scheduler dispatches. Each agent's
// utilization is its held/capacity averaged over the measured rounds;
// balance = min/max over the agents. Also printed: the 1st and 99th
// percentiles of that utilization, and the instantaneous balance at the
// last round, and tasks/s through the whole round (enqueue, ack and
// dispatch, all durable).
//
//	cd bench && go run ./dispatchbench [-agents 6000] [-tasks 100000] [-runs 3] [-rounds 100] [-warm 20] [-service 4] [-only throughput|steady]
package main

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"maps"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/flowdb/flowdb/bench/internal/prof"
	"github.com/flowdb/flowdb/bench/internal/stats"
	"github.com/flowdb/flowdb/db"
	"github.com/flowdb/flowdb/queue"
	"github.com/flowdb/flowdb/registry"
	"github.com/flowdb/flowdb/sched"
)

var (
	nAgents = flag.Int("agents", 6000, "registered agents")
	nTasks  = flag.Int("tasks", 100_000, "tasks to dispatch (throughput)")
	runs    = flag.Int("runs", 3, "repetitions of the throughput measurement (median)")
	rounds  = flag.Int("rounds", 100, "measured rounds of the steady state")
	warm    = flag.Int("warm", 20, "warm-up rounds of the steady state")
	service = flag.Int("service", 4, "rounds each task runs in the steady state")
	hot     = flag.Int("hot", 4096, "queue HotCapacity (Dispatch picks from the hot set)")
	reqFrac = flag.Float64("requires", 0.25, "fraction of tasks that require one capability")
	batch   = flag.Int("batch", 512, "assignments per Dispatch (one assign record)")
	only    = flag.String("only", "", "throughput or steady (default both)")
	cpuprof = flag.String("cpuprofile", "", "write a CPU profile of the throughput measurement")
)

var caps = []string{"gpu", "py", "browser", "sql"}

var policies = []sched.Policy{sched.PowerOfTwo, sched.LeastLoaded, sched.RoundRobin}

type store struct {
	dir string
	d   *db.DB
	q   *queue.Manager
	r   *registry.Registry
	s   *sched.Scheduler
}

func open(policy sched.Policy) *store {
	dir, err := os.MkdirTemp("", "dispatchbench-")
	if err != nil {
		log.Fatal(err)
	}
	st := &store{dir: dir}
	quiet := slog.New(slog.DiscardHandler)
	if st.d, err = db.Open(dir, &db.Options{Logger: quiet}); err != nil {
		log.Fatal(err)
	}
	if st.q, err = queue.Attach(st.d, nil); err != nil {
		log.Fatal(err)
	}
	if st.r, err = registry.Attach(st.d, &registry.Options{CheckInterval: -1}); err != nil {
		log.Fatal(err)
	}
	if st.s, err = sched.New(st.q, st.r, &sched.Options{Policy: policy, Logger: quiet, BatchSize: *batch}); err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	if err := st.q.Create(ctx, queue.Config{Name: "work", HotCapacity: *hot, OverflowCapacity: 10 * *nTasks}); err != nil {
		log.Fatal(err)
	}
	// Agents: capacity 8/16/24/32, two capabilities each; 64 registering at
	// a time.
	var wg sync.WaitGroup
	for w := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < *nAgents; i += 64 {
				spec := registry.AgentSpec{ID: fmt.Sprintf("agent-%05d", i), Capacity: 8 * (1 + i%4),
					Capabilities:      slices.Sorted(slices.Values([]string{caps[i%4], caps[(i/4+1+i%4)%4]})),
					HeartbeatInterval: time.Hour}
				spec.Capabilities = slices.Compact(spec.Capabilities)
				if err := st.r.Register(ctx, spec); err != nil {
					log.Fatal(err)
				}
			}
		}()
	}
	wg.Wait()
	return st
}

func (st *store) close() {
	st.s.Close()
	st.r.Close()
	st.q.Close()
	st.d.Close()
	os.RemoveAll(st.dir)
}

func (st *store) enqueue(n int, rng *rand.Rand) {
	ctx := context.Background()
	batch := make([]queue.Task, 0, 1000)
	flush := func() {
		if len(batch) == 0 {
			return
		}
		if _, err := st.q.EnqueueBatch(ctx, "work", batch); err != nil {
			log.Fatal(err)
		}
		batch = batch[:0]
	}
	for range n {
		t := queue.Task{Payload: make([]byte, 128)}
		if rng.Float64() < *reqFrac {
			t.Requires = []string{caps[rng.IntN(len(caps))]}
		}
		if rng.IntN(10) == 0 {
			t.Affinity = fmt.Sprint("conv-", rng.IntN(5000))
		}
		if batch = append(batch, t); len(batch) == cap(batch) {
			flush()
		}
	}
	flush()
}

// dispatchAll runs g goroutines calling Dispatch until none assigns
// anything; it returns the leases.
func (st *store) dispatchAll(g int) []queue.Lease {
	var mu sync.Mutex
	var all []queue.Lease
	var wg sync.WaitGroup
	for range g {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				ls, err := st.s.Dispatch(context.Background(), "work", *batch)
				if err != nil {
					log.Fatal(err)
				}
				if len(ls) == 0 {
					return
				}
				mu.Lock()
				all = append(all, ls...)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return all
}

type tput struct {
	perS, recsPerFrame float64
	assigned           int
}

func throughput(policy sched.Policy, g int, seed uint64) tput {
	st := open(policy)
	defer st.close()
	st.enqueue(*nTasks, rand.New(rand.NewPCG(seed, 1)))
	m0 := st.d.Metrics()
	defer prof.CPU(*cpuprof)()
	t0 := time.Now()
	ls := st.dispatchAll(g)
	el := time.Since(t0)
	m1 := st.d.Metrics()
	return tput{perS: float64(len(ls)) / el.Seconds(), assigned: len(ls),
		recsPerFrame: float64(m1.Records-m0.Records) / float64(max(m1.Frames-m0.Frames, 1))}
}

type balance struct {
	minMax, p1, p99, mean, inst float64
	perS                        float64
	byCap                       map[int][2]float64 // capacity → min, max utilization
	affHit                      float64            // affinity hits / (hits + misses)
}

func steady(policy sched.Policy) balance {
	st := open(policy)
	defer st.close()
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(9, 9))
	agents := st.r.List(registry.Filter{})
	capTotal := 0
	for _, a := range agents {
		capTotal += a.Capacity
	}
	arrive := int(0.6 * float64(capTotal) / float64(*service))
	type held struct {
		l  queue.Lease
		at int
	}
	running := map[uint64]held{}
	util := make([]float64, len(agents))
	assigned := 0
	var measured time.Duration
	var inst float64
	for round := range *warm + *rounds {
		t0 := time.Now()
		st.enqueue(arrive, rng)
		var acks []queue.AckItem
		for id, h := range running {
			if round-h.at >= *service {
				acks = append(acks, queue.AckItem{ID: id, Token: h.l.Token})
				delete(running, id)
			}
		}
		slices.SortFunc(acks, func(a, b queue.AckItem) int { return int(a.ID) - int(b.ID) })
		for len(acks) > 0 {
			n := min(len(acks), 1000)
			if _, err := st.q.AckBatch(ctx, "work", acks[:n]); err != nil {
				log.Fatal(err)
			}
			acks = acks[n:]
		}
		ls := st.dispatchAll(2)
		for _, l := range ls {
			running[l.ID] = held{l, round}
		}
		if round >= *warm {
			measured += time.Since(t0)
			assigned += len(ls)
			for i, a := range agents {
				util[i] += float64(st.q.Held(a.ID)) / float64(a.Capacity) / float64(*rounds)
			}
		}
		inst = st.s.Stats().Balance
	}
	sorted := slices.Sorted(slices.Values(util))
	mean := 0.0
	for _, u := range util {
		mean += u / float64(len(util))
	}
	byCap := map[int][2]float64{}
	for i, a := range agents {
		mm, ok := byCap[a.Capacity]
		if !ok {
			mm = [2]float64{util[i], util[i]}
		}
		byCap[a.Capacity] = [2]float64{min(mm[0], util[i]), max(mm[1], util[i])}
	}
	ss := st.s.Stats()
	return balance{affHit: float64(ss.AffinityHits) / float64(max(ss.AffinityHits+ss.AffinityMisses, 1)), minMax: sorted[0] / sorted[len(sorted)-1], p1: stats.Pct(sorted, 1), p99: stats.Pct(sorted, 99),
		mean: mean, inst: inst, perS: float64(assigned) / measured.Seconds(), byCap: byCap}
}

func main() {
	flag.Parse()
	fmt.Printf("machine: %d CPUs, Go %s; %d agents (capacity 8/16/24/32), durable (fsync) assignments, %d runs, medians\n\n",
		runtime.NumCPU(), runtime.Version(), *nAgents, *runs)
	if *only != "steady" {
		measureThroughput()
	}
	if *only != "throughput" {
		measureSteady()
	}
}

func measureThroughput() {
	fmt.Printf("throughput: %d ready tasks dispatched until all are assigned (%d per assign record)\n", *nTasks, *batch)
	fmt.Printf("  %-14s %11s %16s %14s\n", "policy", "dispatchers", "assignments/s", "records/commit")
	for _, g := range []int{1, 2, 4} {
		perS := map[sched.Policy][]float64{}
		rpf := map[sched.Policy]float64{}
		for i := range *runs {
			// Rotate which policy goes first.
			for j := range policies {
				p := policies[(i+j)%len(policies)]
				r := throughput(p, g, uint64(i+1))
				if r.assigned < *nTasks*99/100 {
					log.Fatalf("%v assigned only %d of %d", p, r.assigned, *nTasks)
				}
				perS[p] = append(perS[p], r.perS)
				rpf[p] = r.recsPerFrame
			}
		}
		for _, p := range policies {
			fmt.Printf("  %-14s %11d %16.0f %14.1f\n", p, g, stats.Median(perS[p]), rpf[p])
		}
	}
}

func measureSteady() {
	fmt.Printf("\nsteady state: %d agents ~60%% busy, tasks run %d rounds, %d warm-up + %d measured rounds; %d runs, the run with the median balance\n", *nAgents, *service, *warm, *rounds, *runs)
	fmt.Printf("  %-14s %8s %8s %8s %8s %10s %14s %13s\n", "policy", "balance", "util p1", "p99", "mean", "last round", "tasks/s", "affinity hits")
	bs := map[sched.Policy][]balance{}
	for i := range *runs {
		for j := range policies {
			p := policies[(i+j)%len(policies)]
			bs[p] = append(bs[p], steady(p))
		}
	}
	for _, p := range policies {
		rs := bs[p]
		slices.SortFunc(rs, func(a, b balance) int { return cmp.Compare(a.minMax, b.minMax) })
		b := rs[len(rs)/2]
		all := make([]string, len(rs))
		for i, r := range rs {
			all[i] = fmt.Sprintf("%.3f", r.minMax)
		}
		fmt.Printf("  %-14s %8.3f %8.3f %8.3f %8.3f %10.3f %14.0f %13.3f   (balances %s)\n", p, b.minMax, b.p1, b.p99, b.mean, b.inst, b.perS, b.affHit, strings.Join(all, " "))
		for _, c := range slices.Sorted(maps.Keys(b.byCap)) {
			fmt.Printf("  %14s capacity %2d: utilization %.3f-%.3f\n", "", c, b.byCap[c][0], b.byCap[c][1])
		}
	}
}
