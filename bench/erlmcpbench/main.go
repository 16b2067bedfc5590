// Command erlmcpbench reproduces, in Go, the four in-memory micro-operations
// of the erlmcp v2.1 core-operations baseline (erlmcp_bench_core_ops,
// workload core_ops_100k: 100,000 operations per component, 100 workers),
// so that the two can be compared on one machine. Each component does what
// that benchmark does:
//
//   - registry: 100 workers, 1,000 operations each; an operation is put, get
//     and erase of the key {registry, worker, rand(1..1,000,000)} with value
//     {test_data, now} in the worker's own map (Erlang: the process
//     dictionary; Go: a map owned by the goroutine).
//   - queue: 100,000 operations in one process; an operation is one in and
//     one out on a local FIFO (Erlang: the queue module; Go: a slice ring).
//   - pool: 100,000 operations in one process on a 10-slot pool table
//     (Erlang: a public ETS set; Go: a mutex-guarded table); an operation
//     is checkout (find the first available slot, mark it busy), a yield
//     (timer:sleep(0); runtime.Gosched), and checkin.
//   - session: 100 workers, 1,000 operations each, on one shared table
//     (Erlang: ETS with read and write concurrency; Go: a lock-striped map);
//     an operation is insert of {session, rand(1..1,000)} with a small map
//     value, then lookup of it.
//
// Every operation is timed for real with the monotonic clock, in
// nanoseconds. (The published erlmcp baseline times in whole microseconds
// and its registry component reports generated latencies, not measured
// ones; core_ops.escript beside this file runs the same four operations on
// the BEAM with real nanosecond timings, and this program runs it too when
// escript is installed: apt-get install erlang-base.)
//
// Reported per component and overall (all 400,000 operations): ops/s over
// the component's wall time, p50 and p99 per operation; the median of
// -runs runs.
//
//	cd bench && go run ./erlmcpbench [-runs 5] [-ops 100000] [-workers 100]
package main

import (
	"bytes"
	"flag"
	"fmt"
	"github.com/flowdb/flowdb/bench/internal/stats"
	"hash/maphash"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"time"
)

var (
	runs    = flag.Int("runs", 5, "repetitions (median reported)")
	ops     = flag.Int("ops", 100_000, "operations per component")
	workers = flag.Int("workers", 100, "workers of the registry and session components")
	noErl   = flag.Bool("no-erlang", false, "do not run core_ops.escript")
)

type result struct {
	opsPerS  float64
	p50, p99 time.Duration
	lat      []time.Duration
}

func summarize(lat []time.Duration, wall time.Duration) result {
	s := slices.Clone(lat)
	slices.Sort(s)
	return result{opsPerS: float64(len(lat)) / wall.Seconds(), p50: stats.Pct(s, 50), p99: stats.Pct(s, 99), lat: lat}
}

type regKey struct {
	tag           string
	worker, nonce int
}

type regValue struct {
	tag string
	at  int64
}

// registry: per-worker map, put + get + erase.
func benchRegistry() result {
	return perWorker(1, func(w int, rng *rand.Rand, l []time.Duration) {
		dict := map[regKey]regValue{} // the worker's own dictionary
		for i := range l {
			k := regKey{"registry", w, 1 + rng.IntN(1_000_000)}
			v := regValue{"test_data", time.Now().UnixNano()}
			t0 := time.Now()
			dict[k] = v
			_ = dict[k]
			delete(dict, k)
			l[i] = time.Since(t0)
		}
	})
}

// perWorker runs work on *workers goroutines, each with its own seeded
// generator (stream) and *ops / *workers latency slots to fill, and
// summarizes their latencies.
func perWorker(stream uint64, work func(w int, rng *rand.Rand, l []time.Duration)) result {
	per := *ops / *workers
	lats := make([][]time.Duration, *workers)
	var wg sync.WaitGroup
	start := time.Now()
	for w := range *workers {
		wg.Go(func() {
			lats[w] = make([]time.Duration, per)
			work(w, rand.New(rand.NewPCG(uint64(w), stream)), lats[w])
		})
	}
	wg.Wait()
	return summarize(slices.Concat(lats...), time.Since(start))
}

type item struct {
	tag string
	at  int64
}

// fifo is a growable ring: in at the tail, out at the head.
type fifo struct {
	buf        []item
	head, size int
}

func (q *fifo) in(x item) {
	if q.size == len(q.buf) {
		nb := make([]item, max(2*len(q.buf), 8))
		for i := range q.size {
			nb[i] = q.buf[(q.head+i)%len(q.buf)]
		}
		q.buf, q.head = nb, 0
	}
	q.buf[(q.head+q.size)%len(q.buf)] = x
	q.size++
}

func (q *fifo) out() (item, bool) {
	if q.size == 0 {
		return item{}, false
	}
	x := q.buf[q.head]
	q.head = (q.head + 1) % len(q.buf)
	q.size--
	return x, true
}

// queue: one process, in + out.
func benchQueue() result {
	var q fifo
	l := make([]time.Duration, *ops)
	start := time.Now()
	for i := range l {
		t0 := time.Now()
		q.in(item{"test_item", time.Now().UnixNano()})
		q.out()
		l[i] = time.Since(t0)
	}
	return summarize(l, time.Since(start))
}

// poolTable is a 10-slot pool table: worker id -> available.
type poolTable struct {
	mu        sync.Mutex
	available [10]bool
}

// pool: one process, checkout + yield + checkin.
func benchPool() result {
	var p poolTable
	for i := range p.available {
		p.available[i] = true
	}
	l := make([]time.Duration, *ops)
	start := time.Now()
	for i := range l {
		t0 := time.Now()
		p.mu.Lock()
		id := 0 // as erlmcp: the first worker when none is available
		for j, ok := range p.available {
			if ok {
				id = j
				p.available[j] = false
				break
			}
		}
		p.mu.Unlock()
		runtime.Gosched() // timer:sleep(0)
		p.mu.Lock()
		p.available[id] = true
		p.mu.Unlock()
		l[i] = time.Since(t0)
	}
	return summarize(l, time.Since(start))
}

type sessKey struct {
	tag string
	id  int
}

// sessionTable is a lock-striped shared map, like an ETS set with read and
// write concurrency.
type sessionTable struct {
	seed   maphash.Seed
	shards [64]struct {
		mu sync.RWMutex
		m  map[sessKey]map[string]int64
	}
}

func (t *sessionTable) shard(k sessKey) int {
	return int(maphash.Comparable(t.seed, k) % uint64(len(t.shards)))
}

// session: 100 workers, insert + lookup on the shared table.
func benchSession() result {
	t := &sessionTable{seed: maphash.MakeSeed()}
	for i := range t.shards {
		t.shards[i].m = map[sessKey]map[string]int64{}
	}
	return perWorker(2, func(w int, rng *rand.Rand, l []time.Duration) {
		for i := range l {
			k := sessKey{"session", 1 + rng.IntN(1000)}
			v := map[string]int64{"worker_id": int64(w), "timestamp": time.Now().UnixNano()}
			t0 := time.Now()
			s := &t.shards[t.shard(k)]
			s.mu.Lock()
			s.m[k] = v
			s.mu.Unlock()
			s.mu.RLock()
			_ = s.m[k]
			s.mu.RUnlock()
			l[i] = time.Since(t0)
		}
	})
}

func us(d time.Duration) float64 { return float64(d) / 1e3 }

func main() {
	flag.Parse()
	fmt.Printf("machine: %d CPUs, Go %s (GOMAXPROCS %d); %d ops per component, %d workers (registry, session), %d runs, medians by ops/s\n\n",
		runtime.NumCPU(), runtime.Version(), runtime.GOMAXPROCS(0), *ops, *workers, *runs)
	comps := []struct {
		name string
		fn   func() result
	}{{"registry", benchRegistry}, {"queue", benchQueue}, {"pool", benchPool}, {"session", benchSession}}
	fmt.Printf("Go\n  %-10s %14s %10s %10s\n", "component", "ops/s", "p50 us", "p99 us")
	var all []time.Duration
	var wall float64
	for _, c := range comps {
		rs := make([]result, *runs)
		for i := range rs {
			runtime.GC()
			rs[i] = c.fn()
		}
		m := stats.MedianBy(rs, func(r result) float64 { return r.opsPerS })
		all = append(all, m.lat...)
		wall += float64(len(m.lat)) / m.opsPerS
		fmt.Printf("  %-10s %14.0f %10.3f %10.3f\n", c.name, m.opsPerS, us(m.p50), us(m.p99))
	}
	o := summarize(all, time.Duration(wall*float64(time.Second)))
	fmt.Printf("  %-10s %14.0f %10.3f %10.3f\n", "overall", o.opsPerS, us(o.p50), us(o.p99))
	if *noErl {
		return
	}
	escript, err := exec.LookPath("escript")
	if err != nil {
		fmt.Println("\nErlang: escript not found; apt-get install erlang-base to run core_ops.escript in the same run")
		return
	}
	_, file, _, _ := runtime.Caller(0)
	script := filepath.Join(filepath.Dir(file), "core_ops.escript")
	cmd := exec.Command(escript, script, fmt.Sprint(*ops), fmt.Sprint(*workers), fmt.Sprint(*runs))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Printf("\nErlang: %v\n", err)
		return
	}
	fmt.Printf("\n%s", out.String())
}
