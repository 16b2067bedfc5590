// Command quantbench measures how much int8 quantization (package quant)
// costs in search quality on real data, to choose between one global range
// and a range per dimension: Fashion-MNIST (Debian's dataset-fashion-mnist,
// 60,000 base and 10,000 query images, 784 dims), raw under L2 and
// L2-normalized under cosine. For each setting it trains a quantizer on a
// sample of the base vectors, encodes them all, and for each query ranks
// every base vector by the asymmetric distance (float32 query × int8 code);
// it reports recall@10 against the exact float32 ranking, without
// re-ranking and after re-ranking the top 10·oversample candidates with
// the float32 vectors.
//
//	cd bench && go run ./quantbench [-queries 200] [-train 10000] [-oversample 4]
package main

import (
	"container/heap"
	"flag"
	"fmt"
	"log"
	"runtime"
	"sync"

	"github.com/flowdb/flowdb/bench/internal/data"
	"github.com/flowdb/flowdb/quant"
)

var (
	dir        = flag.String("data", data.FashionDir, "Fashion-MNIST directory (apt-get install dataset-fashion-mnist)")
	nQueries   = flag.Int("queries", 200, "queries (from the test set)")
	nTrain     = flag.Int("train", 10_000, "training sample (the first base vectors)")
	oversample = flag.Int("oversample", 4, "re-rank the top 10·oversample candidates")
)

const k = 10

// item and maxHeap keep the n smallest distances.
type item struct {
	id int
	d  float32
}
type maxHeap []item

func (h maxHeap) Len() int           { return len(h) }
func (h maxHeap) Less(i, j int) bool { return h[i].d > h[j].d }
func (h maxHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *maxHeap) Push(x any)        { *h = append(*h, x.(item)) }
func (h *maxHeap) Pop() any          { o := *h; x := o[len(o)-1]; *h = o[:len(o)-1]; return x }

func topN(n, count int, dist func(i int) float32) []int {
	h := make(maxHeap, 0, n+1)
	for i := range count {
		d := dist(i)
		if len(h) < n {
			heap.Push(&h, item{i, d})
		} else if d < h[0].d {
			h[0] = item{i, d}
			heap.Fix(&h, 0)
		}
	}
	ids := make([]int, len(h))
	for i := len(h) - 1; i >= 0; i-- {
		ids[i] = heap.Pop(&h).(item).id
	}
	return ids
}

func parallel(n int, fn func(i int)) {
	var wg sync.WaitGroup
	g := runtime.NumCPU()
	for w := range g {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += g {
				fn(i)
			}
		}()
	}
	wg.Wait()
}

func recall(got, want [][]int) float64 {
	hit := 0
	for i := range got {
		set := map[int]bool{}
		for _, id := range want[i] {
			set[id] = true
		}
		for _, id := range got[i][:min(k, len(got[i]))] {
			if set[id] {
				hit++
			}
		}
	}
	return float64(hit) / float64(k*len(got))
}

func main() {
	flag.Parse()
	base := data.IDX(*dir, "train-images-idx3-ubyte.gz", 0)
	queries := data.IDX(*dir, "t10k-images-idx3-ubyte.gz", *nQueries)
	fmt.Printf("machine: %d CPUs, %s; Fashion-MNIST %d base × %d dims, %d queries; quantizers trained on the first %d base vectors\n\n",
		runtime.NumCPU(), runtime.Version(), len(base), len(base[0]), len(queries), *nTrain)
	fmt.Printf("%-8s %-14s %6s %12s %22s\n", "data", "range", "clip", "recall@10", fmt.Sprintf("re-ranked top %d", k**oversample))
	for _, set := range []struct {
		name   string
		metric quant.Metric
		norm   bool
	}{{"raw", quant.L2, false}, {"cosine", quant.Cosine, true}} {
		b, qs := base, queries
		if set.norm {
			b, qs = data.NormalizeAll(base), data.NormalizeAll(queries)
		}
		exact := make([][]int, len(qs))
		parallel(len(qs), func(i int) {
			exact[i] = topN(k, len(b), func(j int) float32 { return set.metric.Exact(qs[i], b[j]) })
		})
		for _, r := range []quant.Range{quant.Global, quant.PerDimension} {
			for _, clip := range []float64{0, 0.001} {
				q, err := quant.Train(b[:*nTrain], quant.Options{Range: r, Clip: clip})
				if err != nil {
					log.Fatal(err)
				}
				codes := make([][]int8, len(b))
				for i, v := range b {
					if codes[i], err = q.Encode(nil, v); err != nil {
						log.Fatal(err)
					}
				}
				got := make([][]int, len(qs))
				reranked := make([][]int, len(qs))
				parallel(len(qs), func(i int) {
					pq, err := q.Prepare(set.metric, qs[i])
					if err != nil {
						log.Fatal(err)
					}
					cands := topN(k**oversample, len(codes), func(j int) float32 { return pq.Distance(codes[j]) })
					got[i] = cands
					reranked[i] = topN(k, len(cands), func(j int) float32 { return set.metric.Exact(qs[i], b[cands[j]]) })
					for j, c := range reranked[i] {
						reranked[i][j] = cands[c]
					}
				})
				fmt.Printf("%-8s %-14s %6.3f %12.4f %22.4f\n", set.name, r, clip, recall(got, exact), recall(reranked, exact))
			}
		}
	}
}
