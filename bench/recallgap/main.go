// Command recallgap measures what quantization costs a graph's recall: on
// real data it builds the same HNSW graph twice, once over int8 codes and
// once over the float32 vectors (quantization off), and for each ef
// compares the float graph's recall@10 with the quantized graph's after
// re-ranking, for several re-rank depths: the best T candidates by the int8
// distance (T = 2k, 3k, 4k), and every candidate (T = ef), each pruned by
// the exact-distance bounds as a collection does (hnsw.Rerank). It prints
// recall, the gap to the float graph and the exact reads per query.
//
// Data: Fashion-MNIST (784 dims; apt-get install dataset-fashion-mnist) and
// scikit-learn's bundled handwritten digits (64 dims, 1,797 images; apt-get
// install python3-sklearn), the last -digits-queries of them as queries.
//
//	cd bench && go run ./recallgap -metric cosine
package main

import (
	"bufio"
	"compress/gzip"
	"flag"
	"fmt"
	"log"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/flowdb/flowdb/bench/internal/data"
	"github.com/flowdb/flowdb/index/hnsw"
	"github.com/flowdb/flowdb/quant"
)

var (
	fashionDir = flag.String("fashion", data.FashionDir, "Fashion-MNIST directory")
	digitsCSV  = flag.String("digits", "/usr/lib/python3/dist-packages/sklearn/datasets/data/digits.csv.gz", "scikit-learn's digits.csv.gz")
	nQueries   = flag.Int("queries", 1000, "Fashion-MNIST queries (from the test set)")
	nBase      = flag.Int("base", 0, "Fashion-MNIST base vectors (0: all 60,000)")
	digitsQ    = flag.Int("digits-queries", 300, "digits held out as queries")
	metricFlag = flag.String("metric", "cosine", "metric: l2, ip or cosine")
	efsFlag    = flag.String("efs", "10,16,32,64,128,256", "ef sweep")
	sets       = flag.String("sets", "fashion,digits", "data sets")
)

func main() {
	flag.Parse()
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
		var base, queries [][]float32
		switch set {
		case "fashion":
			base = data.IDX(*fashionDir, "train-images-idx3-ubyte.gz", *nBase)
			queries = data.IDX(*fashionDir, "t10k-images-idx3-ubyte.gz", *nQueries)
		case "digits":
			all := loadDigits()
			base, queries = all[:len(all)-*digitsQ], all[len(all)-*digitsQ:]
		default:
			log.Fatalf("unknown set %q", set)
		}
		run(set, metric, base, queries, efs)
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

func run(set string, metric quant.Metric, base, queries [][]float32, efs []int) {
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
	gt := groundTruth(metric, pb, queries, k)
	fmt.Printf("\n%s, %s: %d base vectors of %d dims, %d queries, M 16, efConstruction 200\n", set, metric, len(base), dim, len(queries))
	depths := []int{2 * k, 3 * k, 4 * k, 0} // 0: every candidate
	fmt.Printf("  %5s %8s", "ef", "float")
	for _, t := range depths {
		name := "all"
		if t > 0 {
			name = strconv.Itoa(t)
		}
		fmt.Printf(" %9s %7s %6s", "T="+name, "gap", "reads")
	}
	fmt.Println()
	for _, ef := range efs {
		var hitF int
		for i, qv := range queries {
			rs, err := gf.Search(qv, k, ef, nil)
			if err != nil {
				log.Fatal(err)
			}
			hitF += hits(rs, gt[i])
		}
		rf := float64(hitF) / float64(k*len(queries))
		fmt.Printf("  %5d %8.4f", ef, rf)
		for _, t := range depths {
			take := t
			if take == 0 || take > max(ef, k) {
				take = max(ef, k)
			}
			var hitQ, reads int
			for i, qv := range queries {
				cands, err := gq.Search(qv, take, max(ef, k), nil)
				if err != nil {
					log.Fatal(err)
				}
				pq := prepare(metric, qv)
				var got []hnsw.Result
				n, err := hnsw.Rerank(cands, k, func(id uint64) (float32, bool, error) {
					d := metric.Exact(pq, pb[id])
					got = append(got, hnsw.Result{ID: id, Distance: d})
					return d, true, nil
				})
				if err != nil {
					log.Fatal(err)
				}
				reads += n
				slices.SortFunc(got, func(a, b hnsw.Result) int {
					if a.Distance != b.Distance {
						if a.Distance < b.Distance {
							return -1
						}
						return 1
					}
					return int(a.ID) - int(b.ID)
				})
				hitQ += hits(got[:min(k, len(got))], gt[i])
			}
			rq := float64(hitQ) / float64(k*len(queries))
			fmt.Printf(" %9.4f %+7.4f %6.1f", rq, rq-rf, float64(reads)/float64(len(queries)))
		}
		fmt.Println()
	}
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

func groundTruth(metric quant.Metric, pb, queries [][]float32, k int) []map[uint64]bool {
	gt := make([]map[uint64]bool, len(queries))
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
				}
			}
		})
	}
	wg.Wait()
	return gt
}
