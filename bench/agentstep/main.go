// Command agentstep measures an agent's step, the unit of work of issue 26's
// transactions: each agent leases a batch of tasks from a shared queue,
// then for each task
//
//  1. acks the task,
//  2. upserts one memory vector (384 float32 dimensions) into a collection,
//  3. sets one key (the agent's last task) in the key-value space, and
//  4. enqueues one follow-up task (so the queue never runs dry),
//
// either (a) as one transaction per task (db.DB.CommitTxn: one record, one
// durable commit) or (b) as four separate calls per task (Ack, Upsert, Set,
// Enqueue: four records, four durable commits). Both modes run in the same
// process, on the same disk, alternating, each run on a fresh store
// prepared the same way (a trained collection of -preload vectors, so that
// upserts insert into a built HNSW graph, and a queue of ready tasks).
//
// A step's latency is from its first write call to the return of its last
// (the lease is not part of it); steps/s counts the steps completed in the
// timed window, leases included. Each configuration repeats -runs times;
// the median run by steps/s is reported whole (its p50 and p99). Each run's
// line also gives the process's CPU time per step (user and system, leases
// and the store's background work included), which other load on the
// machine disturbs less than a rate.
//
//	cd bench && go run ./agentstep [-runs 3] [-agents 1,64] [-duration 3s] [-batch 16] [-dir /tmp]
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/flowdb/flowdb/bench/internal/prof"
	"github.com/flowdb/flowdb/bench/internal/stats"
	"github.com/flowdb/flowdb/db"
	"github.com/flowdb/flowdb/index/hnsw"
	"github.com/flowdb/flowdb/quant"
	"github.com/flowdb/flowdb/queue"
)

const (
	dim        = 384
	queueName  = "{agents}jobs"
	collection = "{agents}memory"
	namespace  = "{agents}"
)

var (
	batch    = flag.Int("batch", 16, "tasks each agent leases per call")
	preload  = flag.Int("preload", 2000, "vectors in the collection before a run (it trains and builds its graph at 1,000)")
	floatCol = flag.Bool("float", false, "a float32 collection (no quantization) instead of the default int8 one")
	train    = flag.Int("train", 0, "the collection's TrainSize (0: the default, 1,000); above -preload plus the steps, upserts only store vectors and no graph is built")
	efC      = flag.Int("ef-construction", 0, "the collection's EfConstruction (0: the default, 200)")

	cpuprofile   = flag.String("cpuprofile", "", "write a CPU profile of the first run's timed window (no store preparation) here; with -only and one -agents count, that is one mode's steps")
	blockprofile = flag.String("blockprofile", "", "write a block profile (where goroutines waited) of the same window here; slows the run")
	mutexprofile = flag.String("mutexprofile", "", "write a mutex contention profile of the same window here; slows the run")
)

// profiled is set once the first run's window was profiled (run is called
// from the main goroutine only).
var profiled bool

type result struct {
	Steps     int
	StepsPerS float64
	P50, P99  time.Duration
	CPU       time.Duration // the process's CPU time (user and system) per step in the timed window
}

// fixture is a fresh store with a trained collection and a full queue.
type fixture struct {
	d    *db.DB
	qm   *queue.Manager
	vm   *hnsw.Manager
	vecs [][]float32 // a pool of random unit vectors, reused with new ids
}

func newFixture(dir string, agents int) (*fixture, error) {
	d, err := db.Open(dir, &db.Options{Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))})
	if err != nil {
		return nil, err
	}
	qm, err := queue.Attach(d, nil)
	if err != nil {
		d.Close()
		return nil, err
	}
	vm, err := hnsw.Attach(d)
	if err != nil {
		qm.Close()
		d.Close()
		return nil, err
	}
	f := &fixture{d: d, qm: qm, vm: vm}
	ctx := context.Background()
	hot := max(4*agents**batch, 1000)
	if err := qm.Create(ctx, queue.Config{Name: queueName, HotCapacity: hot, LeaseDuration: time.Minute}); err != nil {
		return nil, f.fail(err)
	}
	if err := vm.Create(ctx, hnsw.Config{Name: collection, Dim: dim, Metric: quant.Cosine, Float: *floatCol,
		TrainSize: *train, EfConstruction: *efC}); err != nil {
		return nil, f.fail(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	f.vecs = make([][]float32, 4096)
	for i := range f.vecs {
		v := make([]float32, dim)
		for j := range v {
			v[j] = float32(rng.NormFloat64())
		}
		f.vecs[i] = v
	}
	for lo := 0; lo < *preload; lo += 250 {
		var vs []hnsw.Vector
		for id := lo; id < min(lo+250, *preload); id++ {
			vs = append(vs, hnsw.Vector{ID: uint64(id), Values: f.vecs[id%len(f.vecs)]})
		}
		if err := vm.Upsert(ctx, collection, vs); err != nil {
			return nil, f.fail(err)
		}
	}
	// Two batches per agent ready: a lease never finds the queue empty
	// (each step enqueues its follow-up).
	tasks := make([]queue.Task, 0, 256)
	for n := 2 * agents * *batch; n > 0; n -= len(tasks) {
		tasks = tasks[:0]
		for i := 0; i < min(n, 256); i++ {
			tasks = append(tasks, queue.Task{Payload: []byte("task: summarise the thread and file the result")})
		}
		if _, err := qm.EnqueueBatch(ctx, queueName, tasks); err != nil {
			return nil, f.fail(err)
		}
	}
	return f, nil
}

func (f *fixture) fail(err error) error {
	f.close()
	return err
}

func (f *fixture) close() error {
	f.qm.Close()
	return f.d.Close()
}

// step runs one task's writes in mode txn or separate.
func (f *fixture) step(ctx context.Context, txn bool, agent string, l queue.Lease, vid uint64, vec []float32) error {
	key := []byte(agent + "/last")
	val := strconv.AppendUint(nil, l.ID, 10)
	follow := queue.Task{Payload: []byte("follow-up of " + string(val))}
	mem := hnsw.Vector{ID: vid, Values: vec}
	if txn {
		tx := f.d.NewTxn()
		f.qm.TxAck(tx, queueName, l.ID, l.Token, []byte("done"))
		f.vm.TxUpsert(tx, collection, mem)
		tx.Set(namespace, key, val)
		f.qm.TxEnqueue(tx, queueName, follow)
		return f.d.CommitTxn(ctx, tx)
	}
	if err := f.qm.Ack(ctx, queueName, l.ID, l.Token, []byte("done")); err != nil {
		return err
	}
	if err := f.vm.Upsert(ctx, collection, []hnsw.Vector{mem}); err != nil {
		return err
	}
	if err := f.d.Set(ctx, namespace, key, val); err != nil {
		return err
	}
	_, err := f.qm.Enqueue(ctx, queueName, follow)
	return err
}

// run drives agents for d and returns the steps done in that window.
func run(dir string, txn bool, agents int, d time.Duration) (result, error) {
	f, err := newFixture(dir, agents)
	if err != nil {
		return result{}, err
	}
	defer f.close()
	ctx := context.Background()
	var nextVec, done atomic.Uint64
	nextVec.Store(1 << 32)
	var stop atomic.Bool
	lat := make([][]time.Duration, agents)
	errs := make(chan error, agents)
	var wg sync.WaitGroup
	stopProf := func() {}
	if !profiled {
		profiled = true
		stopCPU, stopCont := prof.CPU(*cpuprofile), prof.Contention(*blockprofile, *mutexprofile)
		stopProf = func() { stopCPU(); stopCont() }
	}
	cpu0 := cpuTime()
	start := time.Now()
	for a := 0; a < agents; a++ {
		wg.Add(1)
		go func(a int) {
			defer wg.Done()
			name := fmt.Sprintf("agent-%d", a)
			for !stop.Load() {
				ls, err := f.qm.Lease(ctx, queueName, name, *batch, nil, time.Minute)
				if err != nil {
					errs <- err
					return
				}
				if len(ls) == 0 {
					errs <- fmt.Errorf("%s: queue empty", name)
					return
				}
				for _, l := range ls {
					// Finish the batch even past the deadline: an unacked
					// lease is not a step, and leaving it would only
					// shrink the next run's queue, which starts fresh.
					vid := nextVec.Add(1)
					t0 := time.Now()
					if err := f.step(ctx, txn, name, l, vid, f.vecs[vid%uint64(len(f.vecs))]); err != nil {
						errs <- fmt.Errorf("%s: step: %w", name, err)
						return
					}
					done.Add(1)
					if !stop.Load() {
						lat[a] = append(lat[a], time.Since(t0))
					}
				}
			}
		}(a)
	}
	time.Sleep(d)
	stop.Store(true)
	elapsed := time.Since(start)
	wg.Wait()
	cpu := cpuTime() - cpu0
	stopProf()
	close(errs)
	if err := <-errs; err != nil {
		return result{}, err
	}
	all := stats.Sorted(lat...)
	// Steps finished after the window (each agent completes its leased
	// batch) used CPU too: count them in the CPU per step.
	return result{Steps: len(all), StepsPerS: float64(len(all)) / elapsed.Seconds(),
		P50: stats.Pct(all, 50), P99: stats.Pct(all, 99), CPU: cpu / time.Duration(max(int(done.Load()), 1))}, nil
}

// cpuTime is the process's CPU time so far, user and system.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func main() {
	runs := flag.Int("runs", 3, "repetitions (median reported)")
	dur := flag.Duration("duration", 3*time.Second, "timed window of each run")
	agentList := flag.String("agents", "1,64", "concurrent agent counts, comma-separated")
	dir := flag.String("dir", os.TempDir(), "directory for the stores")
	only := flag.String("only", "", "txn or separate: run one mode only (profiling)")
	flag.Parse()

	var agents []int
	for _, s := range strings.Split(*agentList, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			fmt.Fprintf(os.Stderr, "bad -agents %q\n", *agentList)
			os.Exit(2)
		}
		agents = append(agents, n)
	}
	modes := []string{"txn", "separate"}
	if *only != "" {
		modes = []string{*only}
	}
	fmt.Printf("agentstep: %d-dim vectors (%s, train %d, efC %d, preload %d), leases of %d, %v per run, %d runs, GOMAXPROCS %d\n",
		dim, map[bool]string{true: "float32", false: "int8"}[*floatCol], *train, *efC, *preload, *batch, *dur, *runs, runtime.GOMAXPROCS(0))
	res := map[string][]result{}
	k := func(mode string, n int) string { return mode + "/" + strconv.Itoa(n) }
	for r := 0; r < *runs; r++ {
		for _, n := range agents {
			for _, mode := range modes {
				sd, err := os.MkdirTemp(*dir, "agentstep-")
				if err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(1)
				}
				out, err := run(sd, mode == "txn", n, *dur)
				os.RemoveAll(sd)
				if err != nil {
					fmt.Fprintf(os.Stderr, "%s, %d agents: %v\n", mode, n, err)
					os.Exit(1)
				}
				fmt.Fprintf(os.Stderr, "run %d: %-8s %3d agents: %8.0f steps/s  p50 %v  p99 %v  CPU %v/step\n", r+1, mode, n, out.StepsPerS, out.P50, out.P99, round(out.CPU))
				res[k(mode, n)] = append(res[k(mode, n)], out)
			}
		}
	}
	fmt.Printf("\n| agents | mode | steps/s | step p50 / p99 | CPU per step | runs (steps/s) |\n|---:|---|---:|---|---:|---|\n")
	for _, n := range agents {
		for _, mode := range modes {
			rs := res[k(mode, n)]
			m := stats.MedianBy(rs, func(r result) float64 { return r.StepsPerS })
			var each []string
			for _, r := range rs {
				each = append(each, fmt.Sprintf("%.0f", r.StepsPerS))
			}
			label := map[string]string{"txn": "(a) one transaction", "separate": "(b) four calls"}[mode]
			cpu := stats.MedianOf(rs, func(r result) time.Duration { return r.CPU })
			fmt.Printf("| %d | %s | %.0f | %v / %v | %v | %s |\n", n, label, m.StepsPerS, round(m.P50), round(m.P99), round(cpu), strings.Join(each, ", "))
		}
		if len(modes) == 2 {
			a := stats.MedianBy(res[k("txn", n)], func(r result) float64 { return r.StepsPerS })
			b := stats.MedianBy(res[k("separate", n)], func(r result) float64 { return r.StepsPerS })
			fmt.Printf("| %d | (a)/(b) | %.2fx | p99 %.2fx | | |\n", n, a.StepsPerS/b.StepsPerS, float64(a.P99)/float64(b.P99))
		}
	}
}

func round(d time.Duration) time.Duration {
	switch {
	case d >= 10*time.Millisecond:
		return d.Round(100 * time.Microsecond)
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond)
	default:
		return d.Round(time.Microsecond)
	}
}
