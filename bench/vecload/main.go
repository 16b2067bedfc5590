// Command vecload measures how long a persisted vector collection takes to
// open: it builds a collection of -n clustered vectors through the write
// path (durable batches), closes the store, and times db.Open plus
// hnsw.Attach (which loads the graph from Pebble without a rebuild),
// reporting the medians of -runs reopens, the RSS after, and a search
// check that the loaded graph answers.
//
//	cd bench && go run ./vecload [-n 100000] [-dim 128] [-runs 3]
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/flowdb/flowdb/bench/internal/stats"
	"github.com/flowdb/flowdb/db"
	"github.com/flowdb/flowdb/index/hnsw"
	"github.com/flowdb/flowdb/quant"
)

var (
	n    = flag.Int("n", 100_000, "vectors")
	dim  = flag.Int("dim", 128, "dimensions")
	runs = flag.Int("runs", 3, "reopens (median reported)")
)

func rssMB() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			var kb float64
			fmt.Sscan(strings.TrimSpace(strings.TrimPrefix(l, "VmRSS:")), &kb)
			return kb / 1024
		}
	}
	return 0
}

func main() {
	flag.Parse()
	dir, err := os.MkdirTemp("", "vecload-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	quiet := slog.New(slog.DiscardHandler)
	ctx := context.Background()
	d, m := openStore(dir, quiet)
	if err := m.Create(ctx, hnsw.Config{Name: "c", Dim: *dim, Metric: quant.L2}); err != nil {
		log.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	centers := make([][]float32, 50)
	for i := range centers {
		centers[i] = make([]float32, *dim)
		for j := range centers[i] {
			centers[i][j] = float32(rng.NormFloat64() * 3)
		}
	}
	t0 := time.Now()
	var probe []float32
	for lo := 0; lo < *n; lo += 1000 {
		batch := make([]hnsw.Vector, 0, 1000)
		for i := lo; i < min(lo+1000, *n); i++ {
			c := centers[rng.IntN(len(centers))]
			v := make([]float32, *dim)
			for j := range v {
				v[j] = c[j] + float32(rng.NormFloat64())
			}
			if i == 777 {
				probe = v
			}
			batch = append(batch, hnsw.Vector{ID: uint64(i), Values: v})
		}
		if err := m.Upsert(ctx, "c", batch); err != nil {
			log.Fatal(err)
		}
	}
	build := time.Since(t0)
	d.Close()
	var opens []time.Duration
	var rss float64
	for range *runs {
		runtime.GC()
		t0 := time.Now()
		d, m := openStore(dir, quiet)
		opens = append(opens, time.Since(t0))
		rss = rssMB()
		hits, err := m.Search(ctx, "c", probe, 1, hnsw.SearchOptions{})
		if err != nil || len(hits) != 1 || hits[0].ID != 777 {
			log.Fatalf("loaded graph did not find vector 777: %v %v", hits, err)
		}
		st, _ := m.Stats("c")
		if st.Vectors != *n || !st.Trained {
			log.Fatalf("stats after reopen: %+v", st)
		}
		d.Close()
	}
	fmt.Printf("machine: %d CPUs, %s, kernels %s\n", runtime.NumCPU(), runtime.Version(), quant.Impl)
	fmt.Printf("%d vectors × %d dims built through the write path in %.1fs; reopen (db.Open + hnsw.Attach, graph loaded, no rebuild): median %v of %d (min %v, max %v); RSS after %.0f MB\n",
		*n, *dim, build.Seconds(), stats.Median(opens).Round(time.Millisecond), *runs, slices.Min(opens).Round(time.Millisecond),
		slices.Max(opens).Round(time.Millisecond), rss)
}

// openStore opens the store in dir and attaches its collections.
func openStore(dir string, logger *slog.Logger) (*db.DB, *hnsw.Manager) {
	d, err := db.Open(dir, &db.Options{Logger: logger})
	if err != nil {
		log.Fatal(err)
	}
	m, err := hnsw.Attach(d)
	if err != nil {
		log.Fatal(err)
	}
	return d, m
}
