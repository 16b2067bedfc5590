// Command vecbench compares flowdb's HNSW graph (index/hnsw over int8
// codes, package quant) with hnswlib on Fashion-MNIST (Debian's
// dataset-fashion-mnist: 60,000 base and 10,000 query vectors, 784 dims),
// raw under L2 and L2-normalized under cosine, with the same M and
// efConstruction, in the same run. hnswlib runs from /usr/bin/python3
// (python3-hnswlib) through hnswlib_peer.py beside this file.
//
// Reported per ef: single-threaded queries/s and recall@10 against brute
// force; build time; bytes per vector of the graph in RAM (Go heap growth
// over the build divided by the vectors; the float32 originals, which a
// collection keeps in Pebble, are outside it). flowdb ranks by the int8
// distance and re-ranks the ef candidates with the float32 originals (here
// from memory).
//
//	cd bench && go run ./vecbench [-queries 1000] [-m 16] [-efc 200] [-efs 16,32,64,128,256] [-metric l2,cosine]
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/flowdb/flowdb/index/hnsw"
	"github.com/flowdb/flowdb/internal/vecio"
	"github.com/flowdb/flowdb/quant"
)

var (
	dir      = flag.String("data", "/usr/share/datasets/fashion-mnist", "Fashion-MNIST directory (apt-get install dataset-fashion-mnist)")
	nQueries = flag.Int("queries", 1000, "queries (from the test set)")
	nBase    = flag.Int("base", 0, "base vectors (0: all 60,000)")
	m        = flag.Int("m", 16, "M")
	efc      = flag.Int("efc", 200, "efConstruction")
	efsFlag  = flag.String("efs", "16,32,64,128,256", "search ef sweep")
	metrics  = flag.String("metric", "l2,cosine", "metrics to run")
	noPeer   = flag.Bool("no-hnswlib", false, "skip hnswlib")
	threads  = flag.Int("threads", 2, "hnswlib build threads")
)

func load(name string, limit int) [][]float32 {
	r, err := vecio.Open(filepath.Join(*dir, name))
	if err != nil {
		log.Fatalf("%v (apt-get install dataset-fashion-mnist)", err)
	}
	defer r.Close()
	vs, err := vecio.ReadIDX(r, limit)
	if err != nil {
		log.Fatal(err)
	}
	return vs
}

type run struct {
	EF     int     `json:"ef"`
	QPS    float64 `json:"qps"`
	Recall float64 `json:"recall"`
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
	base := load("train-images-idx3-ubyte.gz", *nBase)
	queries := load("t10k-images-idx3-ubyte.gz", *nQueries)
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

	h0 := heap()
	q, err := quant.Train(pb[:min(len(pb), 10_000)], quant.Options{})
	if err != nil {
		log.Fatal(err)
	}
	g, err := hnsw.NewGraph(hnsw.Params{Dim: len(base[0]), Metric: metric, M: *m, EfConstruction: *efc}, q)
	if err != nil {
		log.Fatal(err)
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
	build := time.Since(t0)
	bytesPer := float64(heap()-h0) / float64(len(base))

	var mine []run
	for _, ef := range efs {
		t0 := time.Now()
		hits := 0
		for i, qv := range queries {
			res, err := g.Search(qv, ef, ef, nil)
			if err != nil {
				log.Fatal(err)
			}
			// Re-rank the candidates with the float32 originals.
			pq := prep(qv)
			slices.SortFunc(res, func(a, b hnsw.Result) int {
				da, db := metric.Exact(pq, pb[a.ID]), metric.Exact(pq, pb[b.ID])
				switch {
				case da < db:
					return -1
				case da > db:
					return 1
				}
				return 0
			})
			for _, r := range res[:min(10, len(res))] {
				if slices.Contains(gt[i], int(r.ID)) {
					hits++
				}
			}
		}
		el := time.Since(t0)
		mine = append(mine, run{ef, float64(len(queries)) / el.Seconds(), float64(hits) / float64(10*len(queries))})
	}
	var p peer
	if !*noPeer {
		_, file, _, _ := runtime.Caller(0)
		script := filepath.Join(filepath.Dir(file), "hnswlib_peer.py")
		var efList []string
		for _, e := range efs {
			efList = append(efList, fmt.Sprint(e))
		}
		cmd := exec.Command("/usr/bin/python3", script, *dir, fmt.Sprint(*nBase), fmt.Sprint(len(queries)), fmt.Sprint(*m), fmt.Sprint(*efc),
			fmt.Sprint(*threads), metric.String(), strings.Join(efList, ","))
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, os.Stderr
		if err := cmd.Run(); err != nil {
			log.Fatalf("hnswlib: %v (apt-get install python3-hnswlib)", err)
		}
		if err := json.Unmarshal(out.Bytes(), &p); err != nil {
			log.Fatalf("hnswlib output: %v: %s", err, out.String())
		}
	}
	fmt.Printf("\n%s: flowdb build %.1fs (batches of 1,000, candidates searched on %d goroutines), %.0f bytes/vector in RAM; hnswlib build %.1fs (%d threads), %d bytes/vector at level 0\n",
		metric, build.Seconds(), runtime.GOMAXPROCS(0), bytesPer, p.BuildS, *threads, p.Bytes)
	fmt.Printf("  %5s %14s %10s %14s %10s\n", "ef", "flowdb qps", "recall@10", "hnswlib qps", "recall@10")
	for i, r := range mine {
		var pr run
		if i < len(p.Runs) {
			pr = p.Runs[i]
		}
		fmt.Printf("  %5d %14.0f %10.4f %14.0f %10.4f\n", r.EF, r.QPS, r.Recall, pr.QPS, pr.Recall)
	}
}
