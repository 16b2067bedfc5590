// Command recallgap measures what quantization costs a graph's recall: on
// real data it builds the same HNSW graph twice, once over int8 codes and
// once over the float32 vectors (quantization off), and for each ef
// compares recall@10 of
//
//   - float: the float32 graph searched at ef;
//   - links: the int8 graph's links searched with float32 distances (its
//     structure alone: where this equals float, the build lost nothing);
//   - int8@ef: the int8 graph searched with ef candidates, the best 2k
//     re-ranked by exact distance, pruned by the bounds as a collection
//     does (hnsw.Rerank);
//   - int8: the same with the beam a collection uses (Graph.Beam; int8@ef
//     where the library has no Beam, so the program also builds against
//     older trees for a before/after);
//
// with the gap of each int8 column to float, the exact reads per query,
// and with -timing N the single-threaded queries per CPU second (of the
// searching thread: Linux's RUSAGE_THREAD) of the int8@ef and int8 columns
// and their ratio (medians of N passes over the queries each, alternating,
// after a warm-up pass; re-ranking from memory as bench/vecbench's graph
// sweep does).
//
// Data: Fashion-MNIST (784 dims; apt-get install dataset-fashion-mnist) and
// scikit-learn's bundled handwritten digits (64 dims, 1,797 images; apt-get
// install python3-sklearn), searched in -digits-folds folds: each fold's
// images are the queries of a graph built from all the others, so every
// image is a query once.
//
//	cd bench && go run ./recallgap -metric cosine [-timing 3]
package main

import (
	"bufio"
	"cmp"
	"compress/gzip"
	"encoding/binary"
	"flag"
	"fmt"
	"log"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/flowdb/flowdb/bench/internal/data"
	"github.com/flowdb/flowdb/index/hnsw"
	"github.com/flowdb/flowdb/quant"
)

var (
	fashionDir = flag.String("fashion", data.FashionDir, "Fashion-MNIST directory")
	digitsCSV  = flag.String("digits", "/usr/lib/python3/dist-packages/sklearn/datasets/data/digits.csv.gz", "scikit-learn's digits.csv.gz")
	nQueries   = flag.Int("queries", 1000, "Fashion-MNIST queries (from the test set)")
	nBase      = flag.Int("base", 0, "Fashion-MNIST base vectors (0: all 60,000)")
	folds      = flag.Int("digits-folds", 6, "digits: folds (each fold the queries of a graph built from the others)")
	timing     = flag.Int("timing", 0, "time the int8 search: passes per ef (median reported; 0: no timing)")
	gtCache    = flag.String("gt-cache", os.TempDir(), "directory caching Fashion-MNIST's exact neighbors between runs (empty: none)")
	metricFlag = flag.String("metric", "cosine", "metric: l2, ip or cosine")
	efsFlag    = flag.String("efs", "10,16,32,64,128,256", "ef sweep")
	sets       = flag.String("sets", "fashion,digits", "data sets")
)

func main() {
	flag.Parse()
	runtime.LockOSThread() // threadCPU measures the searching thread
	metric, err := quant.ParseMetric(*metricFlag)
	if err != nil {
		log.Fatal(err)
	}
	var efs []int
	for _, s := range strings.Split(*efsFlag, ",") {
		ef, err := strconv.Atoi(s)
		if err != nil {
			log.Fatal(err)
		}
		efs = append(efs, ef)
	}
	for _, set := range strings.Split(*sets, ",") {
		switch set {
		case "fashion":
			base := data.IDX(*fashionDir, "train-images-idx3-ubyte.gz", *nBase)
			queries := data.IDX(*fashionDir, "t10k-images-idx3-ubyte.gz", *nQueries)
			fmt.Printf("\n%s, %s: %d base vectors of %d dims, %d queries, M 16, efConstruction 200\n", set, metric, len(base), len(base[0]), len(queries))
			printRows(efs, run(metric, base, queries, efs, fmt.Sprintf("fashion-%v-%d-%d", metric, len(base), len(queries))))
		case "digits":
			all := loadDigits()
			fmt.Printf("\n%s, %s: %d images of %d dims in %d folds (each the queries of a graph built from the others), M 16, efConstruction 200\n",
				set, metric, len(all), len(all[0]), *folds)
			var sum []row
			for f := range *folds {
				lo, hi := f*len(all) / *folds, (f+1)*len(all) / *folds
				base := append(slices.Clone(all[:lo]), all[hi:]...)
				rs := run(metric, base, all[lo:hi], efs, "")
				if sum == nil {
					sum = make([]row, len(rs))
				}
				for i, r := range rs {
					sum[i].add(r)
				}
			}
			printRows(efs, sum)
		default:
			log.Fatalf("unknown set %q", set)
		}
	}
}

// loadDigits reads the 64 pixel columns of each row (the 65th is the label).
func loadDigits() [][]float32 {
	f, err := os.Open(*digitsCSV)
	if err != nil {
		log.Fatalf("%v (apt-get install python3-sklearn)", err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		log.Fatal(err)
	}
	var out [][]float32
	sc := bufio.NewScanner(zr)
	for sc.Scan() {
		fs := strings.Split(sc.Text(), ",")
		if len(fs) != 65 {
			log.Fatalf("digits: a row of %d fields", len(fs))
		}
		v := make([]float32, 64)
		for i := range v {
			x, err := strconv.ParseFloat(fs[i], 32)
			if err != nil {
				log.Fatal(err)
			}
			v[i] = float32(x)
		}
		out = append(out, v)
	}
	if err := sc.Err(); err != nil {
		log.Fatal(err)
	}
	return out
}

func prepare(metric quant.Metric, v []float32) []float32 {
	if metric != quant.Cosine {
		return v
	}
	return data.Normalize(v)
}

// row is one ef's counts: hits of each column, queries, exact reads, and
// the int8@ef and int8 columns' queries/s times the queries (summed over
// folds, so that printRows gives the mean weighted by queries).
type row struct {
	float, links, atEf, beam, queries, reads int
	qpsEf, qps                               float64
}

func (r *row) add(o row) {
	r.float += o.float
	r.links += o.links
	r.atEf += o.atEf
	r.beam += o.beam
	r.queries += o.queries
	r.reads += o.reads
	r.qpsEf += o.qpsEf
	r.qps += o.qps
}

func printRows(efs []int, rows []row) {
	fmt.Printf("  %5s %8s %8s %9s %8s %9s %8s %6s", "ef", "float", "links", "int8@ef", "gap", "int8", "gap", "reads")
	if *timing > 0 {
		fmt.Printf(" %9s %9s %6s", "@ef q/s", "int8 q/s", "ratio")
	}
	fmt.Println()
	for i, r := range rows {
		n := float64(10 * r.queries)
		f := float64(r.float) / n
		fmt.Printf("  %5d %8.4f %8.4f %9.4f %+8.4f %9.4f %+8.4f %6.1f", efs[i], f, float64(r.links)/n,
			float64(r.atEf)/n, float64(r.atEf)/n-f, float64(r.beam)/n, float64(r.beam)/n-f, float64(r.reads)/float64(r.queries))
		if *timing > 0 {
			fmt.Printf(" %9.0f %9.0f %6.3f", r.qpsEf/float64(r.queries), r.qps/float64(r.queries), r.qps/r.qpsEf)
		}
		fmt.Println()
	}
}

// beam is the candidate list size a collection searches g with (Graph.Beam
// where the library has it).
func beam(g *hnsw.Graph, ef, k int) int {
	if b, ok := any(g).(interface{ Beam(ef, k int) int }); ok {
		return b.Beam(ef, k)
	}
	return max(ef, k)
}

func run(metric quant.Metric, base, queries [][]float32, efs []int, cache string) []row {
	const k = 10
	dim := len(base[0])
	pb := make([][]float32, len(base))
	for i, v := range base {
		pb[i] = prepare(metric, v)
	}
	ids := make([]uint64, len(base))
	for i := range ids {
		ids[i] = uint64(i)
	}
	q, err := quant.Train(pb[:min(len(pb), 10_000)], quant.Options{}) // as vecbench and a collection of that size
	if err != nil {
		log.Fatal(err)
	}
	p := hnsw.Params{Dim: dim, Metric: metric}
	gq, err := hnsw.NewGraph(p, q)
	if err != nil {
		log.Fatal(err)
	}
	gf, err := hnsw.NewGraph(p, nil)
	if err != nil {
		log.Fatal(err)
	}
	for lo := 0; lo < len(base); lo += 1000 { // as a collection applies insert records of 1,000
		hi := min(lo+1000, len(base))
		if err := gq.InsertBatch(ids[lo:hi], base[lo:hi]); err != nil {
			log.Fatal(err)
		}
		if err := gf.InsertBatch(ids[lo:hi], base[lo:hi]); err != nil {
			log.Fatal(err)
		}
	}
	gl := withFloats(p, gq, pb)
	gt := groundTruth(metric, pb, queries, k, cache)
	// int8 searches a quantized graph with width candidates as a
	// collection does: the best 2k re-ranked (bounds-pruned) by exact
	// distance; it returns the hits and the exact reads.
	searchInt8 := func(i int, width int) (int, int) {
		cands, err := gq.Search(queries[i], min(2*k, width), width, nil)
		if err != nil {
			log.Fatal(err)
		}
		pq := prepare(metric, queries[i])
		var got []hnsw.Result
		n, err := hnsw.Rerank(cands, k, func(id uint64) (float32, bool, error) {
			d := metric.Exact(pq, pb[id])
			got = append(got, hnsw.Result{ID: id, Distance: d})
			return d, true, nil
		})
		if err != nil {
			log.Fatal(err)
		}
		slices.SortFunc(got, func(a, b hnsw.Result) int {
			if a.Distance != b.Distance {
				return cmp.Compare(a.Distance, b.Distance)
			}
			return cmp.Compare(a.ID, b.ID)
		})
		return hits(got[:min(k, len(got))], gt[i]), n
	}
	exact := func(g *hnsw.Graph, i, ef int) int {
		rs, err := g.Search(queries[i], k, ef, nil)
		if err != nil {
			log.Fatal(err)
		}
		return hits(rs, gt[i])
	}
	var out []row
	for _, ef := range efs {
		r := row{queries: len(queries)}
		for i := range queries {
			r.float += exact(gf, i, ef)
			r.links += exact(gl, i, ef)
			h, _ := searchInt8(i, max(ef, k))
			r.atEf += h
			h, n := searchInt8(i, beam(gq, ef, k))
			r.beam += h
			r.reads += n
		}
		if *timing > 0 {
			// int8@ef and int8 passes alternate (which goes first
			// alternating too), so that both see the same machine.
			widths := []int{max(ef, k), beam(gq, ef, k)}
			for i := range queries { // warm-up
				searchInt8(i, widths[1])
			}
			qps := [2][]float64{}
			for p := range *timing {
				for j := range 2 {
					j = (j + p) % 2
					t0 := threadCPU()
					for i := range queries {
						searchInt8(i, widths[j])
					}
					qps[j] = append(qps[j], float64(len(queries))/(threadCPU()-t0).Seconds())
				}
			}
			for j := range qps {
				slices.Sort(qps[j])
			}
			r.qpsEf = qps[0][len(qps[0])/2] * float64(len(queries))
			r.qps = qps[1][len(qps[1])/2] * float64(len(queries))
		}
		out = append(out, r)
	}
	return out
}

// threadCPU is the CPU time the calling thread has used (the queries/s
// above are per CPU second of the searching thread, not per wall second:
// on a host shared with other jobs, time spent waiting for a core does
// not count).
func threadCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(1 /* RUSAGE_THREAD */, &ru); err != nil {
		log.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// withFloats returns g's links over the float32 vectors pb (by id):
// the int8 graph's structure searched with exact distances.
func withFloats(p hnsw.Params, g *hnsw.Graph, pb [][]float32) *hnsw.Graph {
	nodes := make([][]byte, g.Slots())
	vecs := make([][]byte, len(nodes))
	for s := range nodes {
		nodes[s] = g.EncodeNode(uint32(s))
		v := pb[binary.BigEndian.Uint64(nodes[s])]
		b := make([]byte, 0, 4*len(v))
		for _, x := range v {
			b = binary.LittleEndian.AppendUint32(b, math.Float32bits(x))
		}
		vecs[s] = b
	}
	gl, err := hnsw.Restore(p, nil, g.Entry(), nodes, vecs)
	if err != nil {
		log.Fatal(err)
	}
	return gl
}

func hits(rs []hnsw.Result, gt map[uint64]bool) int {
	n := 0
	for _, r := range rs {
		if gt[r.ID] {
			n++
		}
	}
	return n
}

// groundTruth returns each query's exact k nearest of pb, read from (and
// written to) a file named cache under -gt-cache if cache is not empty.
func groundTruth(metric quant.Metric, pb, queries [][]float32, k int, cache string) []map[uint64]bool {
	gt := make([]map[uint64]bool, len(queries))
	path := ""
	if cache != "" && *gtCache != "" {
		path = filepath.Join(*gtCache, "recallgap-gt-"+cache)
		if b, err := os.ReadFile(path); err == nil && len(b) == 8*k*len(queries) {
			for i := range gt {
				gt[i] = map[uint64]bool{}
				for j := range k {
					gt[i][binary.LittleEndian.Uint64(b[8*(i*k+j):])] = true
				}
			}
			return gt
		}
	}
	ord := make([][]uint64, len(queries))
	var wg sync.WaitGroup
	workers := runtime.NumCPU()
	for w := range workers {
		wg.Go(func() {
			for i := w; i < len(queries); i += workers {
				qv := prepare(metric, queries[i])
				idx := make([]int, len(pb))
				d := make([]float32, len(pb))
				for j := range pb {
					idx[j], d[j] = j, metric.Exact(qv, pb[j])
				}
				slices.SortFunc(idx, func(a, b int) int {
					if d[a] != d[b] {
						if d[a] < d[b] {
							return -1
						}
						return 1
					}
					return a - b
				})
				gt[i] = map[uint64]bool{}
				for _, j := range idx[:k] {
					gt[i][uint64(j)] = true
					ord[i] = append(ord[i], uint64(j))
				}
			}
		})
	}
	wg.Wait()
	if path != "" {
		var b []byte
		for _, o := range ord {
			for _, id := range o {
				b = binary.LittleEndian.AppendUint64(b, id)
			}
		}
		if err := os.WriteFile(path, b, 0o644); err != nil {
			log.Print(err)
		}
	}
	return gt
}
