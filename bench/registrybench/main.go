// Command registrybench measures registry lookups: by id and by capability
// set, with 1 and 2 goroutines, on a Zipf-distributed workload over 10,000
// registered agents. Throughput is measured over untimed loops; p50/p99 come
// from a separate pass that times every lookup (so they include the timer's
// own cost, about 20-40 ns here). The same run measures a plain map behind
// a sync.RWMutex holding the same agents, the simplest correct peer.
//
//	cd bench && go run ./registrybench [-agents 10000] [-ops 5000000] [-runs 3] [-cache 0] [-staleness 100ms]
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"runtime"
	"sync"
	"time"

	"github.com/flowdb/flowdb/bench/internal/stats"
	"github.com/flowdb/flowdb/db"
	"github.com/flowdb/flowdb/registry"
)

var caps = []string{"gpu", "cpu", "py", "go", "rust", "big-mem", "vision", "speech", "search", "code"}

type result struct {
	opsPerS  float64
	p50, p99 time.Duration
}

// measure runs lookup over keys on g goroutines: first untimed for
// throughput, then timing each call for latency.
func measure(g int, keys []int, lookup func(k int)) result {
	var wg sync.WaitGroup
	start := time.Now()
	for w := range g {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(keys); i += g {
				lookup(keys[i])
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	lat := make([][]time.Duration, g)
	for w := range g {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := len(keys) / g / 10 // a tenth of the ops, timed one by one
			l := make([]time.Duration, 0, n)
			for i := w; len(l) < n; i += g {
				t0 := time.Now()
				lookup(keys[i])
				l = append(l, time.Since(t0))
			}
			lat[w] = l
		}()
	}
	wg.Wait()
	all := stats.Sorted(lat...)
	return result{float64(len(keys)) / el.Seconds(), stats.Pct(all, 50), stats.Pct(all, 99)}
}

// median is the run of median throughput.
func median(rs []result) result {
	return stats.MedianBy(rs, func(r result) float64 { return r.opsPerS })
}

func main() {
	agents := flag.Int("agents", 10_000, "registered agents")
	ops := flag.Int("ops", 5_000_000, "lookups per measurement")
	runs := flag.Int("runs", 3, "repetitions (median reported)")
	cacheSize := flag.Int("cache", 0, "registry ByCapabilities cache entries (0: the registry default, 4,096)")
	staleness := flag.Duration("staleness", 100*time.Millisecond, "registry Options.Staleness")
	flag.Parse()
	dir, _ := os.MkdirTemp("", "registrybench-")
	defer os.RemoveAll(dir)
	d, err := db.Open(dir, &db.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer d.Close()
	r, err := registry.Attach(d, &registry.Options{Staleness: *staleness, CacheSize: *cacheSize})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer r.Close()
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, 2))
	ids := make([]string, *agents)
	peer := map[string]*registry.Agent{}
	var peerMu sync.RWMutex
	fmt.Printf("registering %d agents...\n", *agents)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 256)
	for i := range ids {
		ids[i] = fmt.Sprintf("agent-%05d", i)
		var c []string
		for _, x := range caps {
			if rng.IntN(3) == 0 {
				c = append(c, x)
			}
		}
		wg.Add(1)
		sem <- struct{}{}
		go func(s registry.AgentSpec) {
			defer wg.Done()
			defer func() { <-sem }()
			if err := r.Register(ctx, s); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
		}(registry.AgentSpec{ID: ids[i], Pool: fmt.Sprint("pool-", i%20), Capabilities: c, Capacity: 4, HeartbeatInterval: time.Hour})
	}
	wg.Wait()
	for _, id := range ids {
		a, _ := r.Get(id)
		peer[id] = a
	}
	// Zipf over agent ids (s=1.1): a few hot agents, a long tail.
	z := rand.NewZipf(rng, 1.1, 1, uint64(*agents-1))
	keys := make([]int, *ops)
	for i := range keys {
		keys[i] = int(z.Uint64())
	}
	capSets := make([][]string, 64)
	for i := range capSets {
		capSets[i] = []string{caps[rng.IntN(len(caps))], caps[rng.IntN(len(caps))]}
	}
	fmt.Printf("machine: %d CPUs, Go %s; %d agents, Zipf s=1.1; cache %d entries, staleness %v; %d lookups per measurement, %d runs, medians\n\n",
		runtime.NumCPU(), runtime.Version(), *agents, *cacheSize, *staleness, *ops, *runs)
	fmt.Printf("%-34s %4s %14s %10s %10s %12s\n", "lookup", "gor", "ops/s", "p50", "p99", "vs peer")
	for _, g := range []int{1, 2} {
		var mine, base []result
		for range *runs {
			mine = append(mine, measure(g, keys, func(k int) {
				if _, err := r.Get(ids[k]); err != nil {
					panic(err)
				}
			}))
			base = append(base, measure(g, keys, func(k int) {
				peerMu.RLock()
				a := peer[ids[k]]
				peerMu.RUnlock()
				if a == nil {
					panic("missing")
				}
			}))
		}
		m, b := median(mine), median(base)
		fmt.Printf("%-34s %4d %14.0f %10v %10v %11.2fx\n", "by id (flowdb registry)", g, m.opsPerS, m.p50, m.p99, m.opsPerS/b.opsPerS)
		fmt.Printf("%-34s %4d %14.0f %10v %10v %12s\n", "by id (map + RWMutex peer)", g, b.opsPerS, b.p50, b.p99, "-")
	}
	capOps := *ops / 10
	for _, g := range []int{1, 2} {
		var mine []result
		before := r.CacheStats()
		for range *runs {
			mine = append(mine, measure(g, keys[:capOps], func(k int) { r.ByCapabilities(capSets[k%len(capSets)]) }))
		}
		after := r.CacheStats()
		m := median(mine)
		hit := float64(after.Hits-before.Hits) / float64(after.Hits-before.Hits+after.Misses-before.Misses)
		fmt.Printf("%-34s %4d %14.0f %10v %10v %12s   cache hit rate %.4f\n", "by capability set (2 caps)", g, m.opsPerS, m.p50, m.p99, "-", hit)
	}
}
