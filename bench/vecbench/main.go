// Command vecbench compares flowdb's HNSW graph (index/hnsw over int8
// codes, package quant) with hnswlib on Fashion-MNIST (Debian's
// dataset-fashion-mnist: 60,000 base and 10,000 query vectors, 784 dims),
// raw under L2 and L2-normalized under cosine, with the same M and
// efConstruction, in the same run. hnswlib runs from /usr/bin/python3
// (python3-hnswlib) through hnswlib_peer.py beside this file.
//
// Each of -runs runs builds and sweeps flowdb's graph, then hnswlib's;
// the medians are reported, with flowdb's queries/s over hnswlib's. Per
// ef: single-threaded queries/s and recall@10 against brute force; build
// time (flowdb: InsertBatch in batches of 1,000 as a collection's apply
// does, candidates searched on GOMAXPROCS goroutines; hnswlib: -threads);
// bytes per vector of the graph in RAM (Go heap growth over the build
// divided by the vectors; the float32 originals, which a collection keeps
// in Pebble, are outside it). The graph sweep re-ranks the best -rerank·k
// candidates with the float32 originals held in memory.
//
// With -collection (default on) each run also builds a real collection
// (db.Open, hnsw.Attach, durable upserts of 1,000), reopens it (timed), and
// sweeps Manager.Search, which re-ranks from Pebble: the figure a user of
// the library sees, with the store's block cache (-cache MiB; default
// db's 128) deciding how many of those reads hit memory. After the build
// the collection is compacted (Manager.Compact, as `flowctl vec import`
// does; -compact=false measures the store as built). Each ef runs on a
// freshly reopened store after -warm warm-up queries that are not
// measured, so no pass finds in the cache what an earlier pass over the
// same queries read. A reopen fills the block cache with the graph's node
// and code blocks, read once to load the graph; the default 8,000 warm-up
// queries replace most of them with vector blocks, as a running store's
// searches would (the sweep prints the cache's hit rate; with 2,000 it was
// 92% against 96%). The collection rows are medians over the runs, each
// run's ratio against the hnswlib run beside it ("run ratios" gives their
// range), and a last table lines the two up at equal recall as
// ann-benchmarks does: for each recall R, each system's fastest ef whose
// median recall@10 reaches R.
//
// -caches 32,64,128 replaces the collection sweep with an A/B of block
// cache sizes on the one store (the first metric's first run): each size
// in turn is reopened, warmed and measured, -rounds times per ef with the
// order rotating, and hnswlib runs once per round; it prints the medians,
// the ratios to hnswlib and the cache hit rates, removes the store and
// exits.
//
//	cd bench && GOEXPERIMENT=simd go run ./vecbench [-runs 3] [-queries 1000] [-m 16] [-efc 200] [-efs 16,32,64,128] [-metric l2,cosine] [-cache 0] [-compact=true] [-warm 8000] [-caches 64,128,256 -rounds 3]
package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/flowdb/flowdb/bench/internal/data"
	"github.com/flowdb/flowdb/bench/internal/prof"
	"github.com/flowdb/flowdb/bench/internal/stats"
	"github.com/flowdb/flowdb/db"
	"github.com/flowdb/flowdb/index/hnsw"
	"github.com/flowdb/flowdb/quant"
)

var (
	dir       = flag.String("data", data.FashionDir, "Fashion-MNIST directory (apt-get install dataset-fashion-mnist)")
	nQueries  = flag.Int("queries", 1000, "queries (from the test set)")
	nBase     = flag.Int("base", 0, "base vectors (0: all 60,000)")
	m         = flag.Int("m", 16, "M")
	efc       = flag.Int("efc", 200, "efConstruction")
	efsFlag   = flag.String("efs", "16,32,64,128,256", "search ef sweep")
	metrics   = flag.String("metric", "l2,cosine", "metrics to run")
	noPeer    = flag.Bool("no-hnswlib", false, "skip hnswlib")
	threads   = flag.Int("threads", 2, "hnswlib build threads")
	cpuprof   = flag.String("cpuprofile", "", "write a CPU profile of the search sweep")
	buildprof = flag.String("buildprofile", "", "write a CPU profile of the build")
	runs      = flag.Int("runs", 1, "runs (each a flowdb build and sweep, then hnswlib's); medians are reported")
	rerank    = flag.Int("rerank", 2, "re-rank the best rerank·k of the candidates (at least k, at most Graph.Beam(ef, k)), as a collection does by default")
	collprof  = flag.String("collprofile", "", "write a CPU profile of each measured collection pass (not its reopen or warm-up) to this path with .ef<ef> appended")
	cacheMB   = flag.Int64("cache", 0, "the collection store's block cache in MiB (0: db's default, 128)")
	caches    = flag.String("caches", "", "instead of the sweep, an A/B of block cache sizes on one collection store: comma-separated MiB, each in turn reopened, warmed and measured, -rounds times per ef (the order rotating), with hnswlib run once per round (unless -no-hnswlib); prints medians and exits")
	rounds    = flag.Int("rounds", 3, "rounds of the -caches A/B")
	compact   = flag.Bool("compact", true, "compact the collection after the build (Manager.Compact, as flowctl vec import does), before the reopen")
	warmN     = flag.Int("warm", 8000, "collection: warm-up queries before the sweep (test-set vectors after the measured ones), so that the sweep measures a running store's block cache rather than a just-opened one's; the first ef is also timed cold, before them")
	coll      = flag.Bool("collection", true, "also measure a collection (db.Open, hnsw.Attach): durable build, search with re-ranking from Pebble, reopen")
)

// warm holds the collection's warm-up queries.
var warm [][]float32

type run struct {
	EF     int     `json:"ef"`
	QPS    float64 `json:"qps"`
	Recall float64 `json:"recall"`
	Reads  float64 `json:"-"` // flowdb: candidates re-ranked per query
}

type peer struct {
	BuildS float64 `json:"build_s"`
	Bytes  int     `json:"bytes_per_vector_level0"`
	Runs   []run   `json:"runs"`
}

func heap() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

func main() {
	flag.Parse()
	var efs []int
	for _, s := range strings.Split(*efsFlag, ",") {
		var e int
		fmt.Sscan(s, &e)
		efs = append(efs, e)
	}
	base := data.IDX(*dir, "train-images-idx3-ubyte.gz", *nBase)
	tests := data.IDX(*dir, "t10k-images-idx3-ubyte.gz", *nQueries+*warmN)
	queries := tests[:min(*nQueries, len(tests))]
	warm = tests[min(*nQueries, len(tests)):]
	fmt.Printf("machine: %d CPUs, %s, kernels %s; Fashion-MNIST %d × %d, %d queries; M %d, efConstruction %d\n",
		runtime.NumCPU(), runtime.Version(), quant.Impl, len(base), len(base[0]), len(queries), *m, *efc)
	for _, name := range strings.Split(*metrics, ",") {
		metric, err := quant.ParseMetric(name)
		if err != nil {
			log.Fatal(err)
		}
		bench(metric, base, queries, efs)
	}
}

func bench(metric quant.Metric, base, queries [][]float32, efs []int) {
	// Exact ground truth (float32, parallel).
	prep := func(v []float32) []float32 { return v }
	if metric == quant.Cosine {
		prep = func(v []float32) []float32 {
			n := quant.DotF32(v, v)
			out := make([]float32, len(v))
			for i, x := range v {
				out[i] = x / float32(math.Sqrt(float64(n)))
			}
			return out
		}
	}
	pb := make([][]float32, len(base))
	for i, v := range base {
		pb[i] = prep(v)
	}
	gt := make([][]int, len(queries))
	var wg sync.WaitGroup
	for w := range runtime.NumCPU() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(queries); i += runtime.NumCPU() {
				q := prep(queries[i])
				idx := make([]int, len(pb))
				d := make([]float32, len(pb))
				for j := range pb {
					idx[j], d[j] = j, metric.Exact(q, pb[j])
				}
				slices.SortFunc(idx, func(a, b int) int {
					switch {
					case d[a] < d[b]:
						return -1
					case d[a] > d[b]:
						return 1
					}
					return 0
				})
				gt[i] = idx[:10]
			}
		}()
	}
	wg.Wait()

	var mine [][]run
	var peers []peer
	var builds []float64
	var bytesPer float64
	var colls []collRun
	for r := range *runs {
		g, build, bp := buildGraph(metric, base, r == 0)
		builds, bytesPer = append(builds, build), bp
		mine = append(mine, sweep(g, metric, queries, pb, gt, efs, prep, r == 0))
		g = nil
		if *coll {
			colls = append(colls, collection(metric, base, queries, gt, efs))
		}
		if !*noPeer {
			peers = append(peers, runPeer(metric, len(queries), efs))
		}
	}
	var p peer
	var peerBuilds []float64
	for _, pr := range peers {
		peerBuilds = append(peerBuilds, pr.BuildS)
		p.Bytes = pr.Bytes
	}
	p.BuildS = stats.Median(peerBuilds)
	fmt.Printf("\n%s (median of %d runs; flowdb and hnswlib alternate): flowdb build %.1fs (batches of 1,000, candidates searched on %d goroutines), %.0f bytes/vector in RAM; hnswlib build %.1fs (%d threads), %d bytes/vector at level 0\n",
		metric, *runs, stats.Median(builds), runtime.GOMAXPROCS(0), bytesPer, p.BuildS, *threads, p.Bytes)
	fmt.Printf("  %5s %14s %10s %8s %14s %10s %8s\n", "ef", "flowdb qps", "recall@10", "re-rank", "hnswlib qps", "recall@10", "ratio")
	for i, ef := range efs {
		var q, pq []float64
		for r := range mine {
			q = append(q, mine[r][i].QPS)
		}
		var precall float64
		for _, pr := range peers {
			pq = append(pq, pr.Runs[i].QPS)
			precall = pr.Runs[i].Recall
		}
		ratio := 0.0
		if len(pq) > 0 {
			ratio = stats.Median(q) / stats.Median(pq)
		}
		fmt.Printf("  %5d %14.0f %10.4f %8.1f %14.0f %10.4f %8.2f\n", ef, stats.Median(q), mine[0][i].Recall, mine[0][i].Reads, stats.Median(pq), precall, ratio)
	}
	if !*coll {
		return
	}
	each := func(f func(cr collRun) float64) float64 {
		var xs []float64
		for _, cr := range colls {
			xs = append(xs, f(cr))
		}
		return stats.Median(xs)
	}
	secs := func(f func(cr collRun) time.Duration) time.Duration {
		return time.Duration(each(func(cr collRun) float64 { return float64(f(cr)) })).Round(time.Millisecond)
	}
	fmt.Printf("  collection (median of %d runs, each built between flowdb's graph and hnswlib): %d vectors upserted in durable records of 1,000 in %.1fs; compacted in %v; reopen (db.Open + hnsw.Attach) %v; just after it, ef %d ran %.0f q/s; then per ef a fresh reopen, %d warm-up queries, and search through Manager.Search (k 10, ef candidates re-ranked from Pebble):\n",
		len(colls), len(base), each(func(cr collRun) float64 { return cr.build }), secs(func(cr collRun) time.Duration { return cr.compact }),
		secs(func(cr collRun) time.Duration { return cr.open }), efs[0], each(func(cr collRun) float64 { return cr.cold.QPS }), len(warm))
	fmt.Printf("  %5s %14s %10s %14s %8s %15s %12s %10s\n", "ef", "flowdb qps", "recall@10", "hnswlib qps", "ratio", "run ratios", "cache fill", "cache hit")
	for i, ef := range efs {
		var pq []float64
		for _, pr := range peers {
			pq = append(pq, pr.Runs[i].QPS)
		}
		q := each(func(cr collRun) float64 { return cr.runs[i].QPS })
		ratio, lo, hi := 0.0, 0.0, 0.0
		if len(pq) > 0 {
			// Each run's ratio is against the hnswlib run that followed it.
			var rs []float64
			for r, cr := range colls {
				rs = append(rs, cr.runs[i].QPS/pq[r])
			}
			ratio, lo, hi = q/stats.Median(pq), slices.Min(rs), slices.Max(rs)
		}
		fmt.Printf("  %5d %14.0f %10.4f %14.0f %8.2f %7.2f-%-7.2f %9d MiB %9.1f%%\n", ef, q, colls[0].runs[i].Recall, stats.Median(pq), ratio, lo, hi,
			int64(each(func(cr collRun) float64 { return float64(cr.cacheFill[i]) }))>>20, 100*each(func(cr collRun) float64 { return cr.cacheHit[i] }))
	}
	if len(peers) == 0 {
		return
	}
	// The target compares queries/s at the same recall. ef alone does not
	// line the two up (the same ef gives each a slightly different recall),
	// so this applies ann-benchmarks' rule to the medians: for a recall R,
	// each system's fastest ef whose recall@10 reaches R.
	var mineC, theirs []run
	for i, ef := range efs {
		mineC = append(mineC, run{EF: ef, QPS: each(func(cr collRun) float64 { return cr.runs[i].QPS }), Recall: each(func(cr collRun) float64 { return cr.runs[i].Recall })})
		var pq, pr []float64
		for _, p := range peers {
			pq, pr = append(pq, p.Runs[i].QPS), append(pr, p.Runs[i].Recall)
		}
		theirs = append(theirs, run{EF: ef, QPS: stats.Median(pq), Recall: stats.Median(pr)})
	}
	fmt.Printf("  collection at equal recall (for each R, the fastest ef whose median recall@10 reaches it):\n")
	fmt.Printf("  %6s %10s %14s %10s %14s %8s\n", "R", "flowdb ef", "flowdb qps", "hnswlib ef", "hnswlib qps", "ratio")
	for _, R := range []float64{0.95, 0.97, 0.98, 0.99, 0.995} {
		a, okA := fastestAt(mineC, R)
		b, okB := fastestAt(theirs, R)
		switch {
		case okA && okB:
			fmt.Printf("  %6.3f %10d %14.0f %10d %14.0f %8.2f\n", R, a.EF, a.QPS, b.EF, b.QPS, a.QPS/b.QPS)
		case okA || okB:
			fmt.Printf("  %6.3f  reached by only one system in this sweep (flowdb %v, hnswlib %v)\n", R, okA, okB)
		}
	}
}

// fastestAt returns the point with the highest queries/s among those whose
// recall reaches r, and false when none does.
func fastestAt(points []run, r float64) (run, bool) {
	var best run
	ok := false
	for _, p := range points {
		if p.Recall >= r && (!ok || p.QPS > best.QPS) {
			best, ok = p, true
		}
	}
	return best, ok
}

type collRun struct {
	build float64
	open  time.Duration
	// compact is Manager.Compact's time (0 with -compact=false).
	compact time.Duration
	cold    run // the first ef, on a just-opened store
	runs    []run
	// Per ef: the block cache's fill when the measured pass began (bytes)
	// and its hit rate over that pass (data, index and filter blocks).
	cacheFill []int64
	cacheHit  []float64
}

// collection builds the data set as a user would (a store, a collection,
// durable upserts of 1,000), searches it through Manager.Search, and times
// a reopen.
func collection(metric quant.Metric, base, queries [][]float32, gt [][]int, efs []int) collRun {
	dir, err := os.MkdirTemp("", "vecbench-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	quiet := slog.New(slog.DiscardHandler)
	ctx := context.Background()
	opts := func() *db.Options { return &db.Options{Logger: quiet, CacheSize: *cacheMB << 20} }
	d, err := db.Open(dir, opts())
	if err != nil {
		log.Fatal(err)
	}
	vm, err := hnsw.Attach(d)
	if err != nil {
		log.Fatal(err)
	}
	cfg := hnsw.Config{Name: "fm", Dim: len(base[0]), Metric: metric, M: *m, EfConstruction: *efc, TrainSize: min(10_000, len(base))}
	if err := vm.Create(ctx, cfg); err != nil {
		log.Fatal(err)
	}
	var cr collRun
	t0 := time.Now()
	for lo := 0; lo < len(base); lo += 1000 {
		batch := make([]hnsw.Vector, 0, 1000)
		for i := lo; i < min(lo+1000, len(base)); i++ {
			batch = append(batch, hnsw.Vector{ID: uint64(i), Values: base[i]})
		}
		if err := vm.Upsert(ctx, "fm", batch); err != nil {
			log.Fatal(err)
		}
	}
	cr.build = time.Since(t0).Seconds()
	lsm := func(when string) {
		m := d.Pebble().Metrics()
		var parts []string
		for i, l := range m.Levels {
			if l.TablesCount > 0 {
				parts = append(parts, fmt.Sprintf("L%d %d tables %d MB", i, l.TablesCount, l.TablesSize>>20))
			}
		}
		fmt.Printf("  LSM %s: %s\n", when, strings.Join(parts, ", "))
	}
	lsm("after the build")
	if *compact {
		t0 := time.Now()
		if err := vm.Compact(ctx, "fm"); err != nil {
			log.Fatal(err)
		}
		cr.compact = time.Since(t0)
		lsm("after Manager.Compact")
	}
	reopen := func() time.Duration {
		d.Close()
		t0 := time.Now()
		if d, err = db.Open(dir, opts()); err != nil {
			log.Fatal(err)
		}
		if vm, err = hnsw.Attach(d); err != nil {
			log.Fatal(err)
		}
		return time.Since(t0)
	}
	cr.open = reopen()
	defer func() { d.Close() }()
	pass := func(ef int, qs [][]float32, gt [][]int) run {
		t0 := time.Now()
		hits := 0
		for i, qv := range qs {
			res, err := vm.Search(ctx, "fm", qv, 10, hnsw.SearchOptions{Ef: ef})
			if err != nil {
				log.Fatal(err)
			}
			for _, r := range res {
				if gt != nil && slices.Contains(gt[i], int(r.ID)) {
					hits++
				}
			}
		}
		return run{ef, float64(len(qs)) / time.Since(t0).Seconds(), float64(hits) / float64(10*len(qs)), 0}
	}
	if *caches != "" {
		cacheAB(metric, len(queries), efs, func(mib int64, ef int) (run, float64) {
			*cacheMB = mib
			reopen()
			pass(ef, warm, nil)
			before := d.Pebble().Metrics().BlockCache
			r := pass(ef, queries, gt)
			after := d.Pebble().Metrics().BlockCache
			return r, hitRate(before, after)
		})
		// os.Exit skips the deferred clean-up: do it first.
		d.Close()
		os.RemoveAll(dir)
		os.Exit(0)
	}
	cr.cold = pass(efs[0], queries, gt)
	// Each ef is measured on a freshly opened store warmed by the warm-up
	// queries (none of them measured): measured one after another on one
	// store, a pass would find in the block cache the very vectors the
	// previous ef's pass over the same queries read.
	for i, ef := range efs {
		reopen()
		pass(ef, warm, nil)
		if i == 0 {
			lsm("after the warm-up")
		}
		before := d.Pebble().Metrics().BlockCache
		stop := func() {}
		if *collprof != "" {
			stop = prof.CPU(fmt.Sprintf("%s.ef%d", *collprof, ef))
		}
		cr.runs = append(cr.runs, pass(ef, queries, gt))
		stop()
		after := d.Pebble().Metrics().BlockCache
		cr.cacheFill = append(cr.cacheFill, before.Size)
		cr.cacheHit = append(cr.cacheHit, hitRate(before, after))
	}
	return cr
}

// cacheAB measures each -caches block cache size in turn with measure
// (reopen with it, warm up, one measured pass), -rounds rounds per ef, and
// hnswlib once per round, and prints the medians and their ratios.
func cacheAB(metric quant.Metric, nq int, efs []int, measure func(mib int64, ef int) (run, float64)) {
	var sizes []int64
	for _, f := range strings.Split(*caches, ",") {
		var mib int64
		if _, err := fmt.Sscanf(f, "%d", &mib); err != nil || mib <= 0 {
			log.Fatalf("-caches %q: want sizes in MiB", f)
		}
		sizes = append(sizes, mib)
	}
	qps := make(map[[2]int][]float64) // [ef index, size index]
	hit := make(map[[2]int][]float64)
	rec := make(map[int]float64)
	peerQPS := make([][]float64, len(efs))
	peerRec := make([]float64, len(efs))
	for r := range *rounds {
		for i, ef := range efs {
			for j := range sizes {
				k := (j + r) % len(sizes)
				run, h := measure(sizes[k], ef)
				key := [2]int{i, k}
				qps[key], hit[key], rec[i] = append(qps[key], run.QPS), append(hit[key], h), run.Recall
			}
		}
		if !*noPeer {
			p := runPeer(metric, nq, efs)
			for i := range efs {
				peerQPS[i], peerRec[i] = append(peerQPS[i], p.Runs[i].QPS), p.Runs[i].Recall
			}
		}
	}
	fmt.Printf("  block cache sizes on one store (%s), medians of %d rounds (each: reopen, %d warm-up queries, one measured pass; order rotating; hnswlib once per round)\n", metric, *rounds, *warmN)
	fmt.Printf("  %5s %10s %12s %16s %10s %10s %14s %10s %10s\n", "ef", "cache", "flowdb qps", "range", "recall@10", "cache hit", "hnswlib qps", "recall@10", "ratio")
	for i, ef := range efs {
		pq := stats.Median(peerQPS[i])
		for k, mib := range sizes {
			q := qps[[2]int{i, k}]
			ratio := 0.0
			if pq > 0 {
				ratio = stats.Median(q) / pq
			}
			fmt.Printf("  %5d %6d MiB %12.0f %7.0f-%-8.0f %10.4f %9.1f%% %14.0f %10.4f %10.2f\n", ef, mib, stats.Median(q), slices.Min(q), slices.Max(q),
				rec[i], 100*stats.Median(hit[[2]int{i, k}]), pq, peerRec[i], ratio)
		}
	}
}

// hitRate is the block cache's hit rate between two readings of its metrics.
func hitRate(before, after pebble.CacheMetrics) float64 {
	h, m := after.Hits-before.Hits, after.Misses-before.Misses
	return float64(h) / float64(max(h+m, 1))
}

// buildGraph builds the graph as a collection's apply does (InsertBatch in
// records of 1,000) and measures its heap (first run only).
func buildGraph(metric quant.Metric, base [][]float32, first bool) (*hnsw.Graph, float64, float64) {
	h0 := heap()
	pb := base
	if metric == quant.Cosine {
		pb = make([][]float32, 0, 10_000)
		for _, v := range base[:min(len(base), 10_000)] {
			pb = append(pb, data.Normalize(v))
		}
	}
	q, err := quant.Train(pb[:min(len(pb), 10_000)], quant.Options{})
	if err != nil {
		log.Fatal(err)
	}
	g, err := hnsw.NewGraph(hnsw.Params{Dim: len(base[0]), Metric: metric, M: *m, EfConstruction: *efc}, q)
	if err != nil {
		log.Fatal(err)
	}
	if first {
		defer prof.CPU(*buildprof)()
	}
	t0 := time.Now()
	ids := make([]uint64, len(base))
	for i := range ids {
		ids[i] = uint64(i)
	}
	for lo := 0; lo < len(base); lo += 1000 { // as a collection applies insert records of 1,000
		hi := min(lo+1000, len(base))
		if err := g.InsertBatch(ids[lo:hi], base[lo:hi]); err != nil {
			log.Fatal(err)
		}
	}
	build := time.Since(t0).Seconds()
	return g, build, float64(heap()-h0) / float64(len(base))
}

// sweep searches every query at each ef, single-threaded, re-ranking the
// ef candidates with the float32 originals (from memory here).
// warmSweep is how many of the queries run untimed before a sweep, for
// flowdb's graph and for hnswlib alike.
const warmSweep = 200

func sweep(g *hnsw.Graph, metric quant.Metric, queries, pb [][]float32, gt [][]int, efs []int, prep func([]float32) []float32, first bool) []run {
	if first {
		defer prof.CPU(*cpuprof)()
	}
	// query answers one query as a collection would: the graph's
	// candidates (Graph.Beam of them), then the float32 originals of those whose bounds let
	// them rank (each distance computed once), best first. It returns the
	// results and how many originals it read.
	query := func(qv []float32, ef int) ([]hnsw.Result, int) {
		width := g.Beam(ef, 10) // as Manager.Search widens a quantized graph's beam
		res, err := g.Search(qv, max(10, min(width, *rerank*10)), width, nil)
		if err != nil {
			log.Fatal(err)
		}
		pq := prep(qv)
		var ranked []hnsw.Result
		n, _ := hnsw.Rerank(res, 10, func(id uint64) (float32, bool, error) {
			d := metric.Exact(pq, pb[id])
			ranked = append(ranked, hnsw.Result{ID: id, Distance: d})
			return d, true, nil
		})
		slices.SortFunc(ranked, func(a, b hnsw.Result) int { return cmp.Compare(a.Distance, b.Distance) })
		return ranked, n
	}
	// A garbage collection, then an untimed pass, as hnswlib_peer.py makes
	// one: the first timed ef otherwise paid for the caches and the GC debt
	// the build (and, for the second metric, the first metric's graph and
	// collection) left.
	runtime.GC()
	for _, qv := range queries[:min(warmSweep, len(queries))] {
		query(qv, efs[0])
	}
	var out []run
	for _, ef := range efs {
		t0 := time.Now()
		hits, reads := 0, 0
		for i, qv := range queries {
			res, n := query(qv, ef)
			reads += n
			for _, r := range res[:min(10, len(res))] {
				if slices.Contains(gt[i], int(r.ID)) {
					hits++
				}
			}
		}
		el := time.Since(t0)
		out = append(out, run{ef, float64(len(queries)) / el.Seconds(), float64(hits) / float64(10*len(queries)), float64(reads) / float64(len(queries))})
	}
	return out
}

// runPeer builds and sweeps hnswlib once.
func runPeer(metric quant.Metric, nq int, efs []int) peer {
	_, file, _, _ := runtime.Caller(0)
	script := filepath.Join(filepath.Dir(file), "hnswlib_peer.py")
	var efList []string
	for _, e := range efs {
		efList = append(efList, fmt.Sprint(e))
	}
	cmd := exec.Command("/usr/bin/python3", script, *dir, fmt.Sprint(*nBase), fmt.Sprint(nq), fmt.Sprint(*m), fmt.Sprint(*efc),
		fmt.Sprint(*threads), metric.String(), strings.Join(efList, ","))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, os.Stderr
	if err := cmd.Run(); err != nil {
		log.Fatalf("hnswlib: %v (apt-get install python3-hnswlib)", err)
	}
	var p peer
	if err := json.Unmarshal(out.Bytes(), &p); err != nil {
		log.Fatalf("hnswlib output: %v: %s", err, out.String())
	}
	return p
}
