package hnsw

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/flowdb/flowdb/quant"
)

// imageLike returns n vectors shaped like small images: c prototypes, each
// a sparse set of lit components (0..16) over a dark background, and each
// vector one prototype with noise on its lit components, clamped at 0. The
// first dims/8 components are dark in every vector (an image's corners):
// constant in any training sample.
func imageLike(seed uint64, n, c, dim int) [][]float32 {
	rng := rand.New(rand.NewPCG(seed, 7))
	protos := make([][]float32, c)
	for i := range protos {
		protos[i] = make([]float32, dim)
		for d := dim / 8; d < dim; d++ {
			if rng.Float64() < 0.45 {
				protos[i][d] = float32(4 + rng.IntN(13))
			}
		}
	}
	vs := make([][]float32, n)
	for i := range vs {
		p := protos[rng.IntN(c)]
		vs[i] = make([]float32, dim)
		for d, x := range p {
			if x > 0 {
				vs[i][d] = float32(max(0, min(16, float64(x)+rng.NormFloat64()*3)))
			}
		}
	}
	return vs
}

// gapRecall is recall@10 of g for the queries as a collection searches it
// (Search with Beam(ef, k) candidates, the best 2·k re-ranked by exact
// distance through Rerank) against the exact top 10 of base; base and
// queries are prepared (normalized under cosine).
func gapRecall(t *testing.T, g *Graph, m quant.Metric, base, queries [][]float32, gt [][]uint64, ef int) float64 {
	t.Helper()
	hit := 0
	for i, q := range queries {
		take := 2 * 10
		if !g.Quantized() {
			take = 10
		}
		width := g.Beam(ef, 10)
		cs, err := g.Search(q, min(take, width), width, nil)
		if err != nil {
			t.Fatal(err)
		}
		var got []ranked
		if _, err := Rerank(cs, 10, func(id uint64) (float32, bool, error) {
			d := m.Exact(q, base[id])
			got = append(got, ranked{id: id, d: d})
			return d, true, nil
		}); err != nil {
			t.Fatal(err)
		}
		slices.SortFunc(got, compareRanked)
		for _, r := range got[:min(10, len(got))] {
			if slices.Contains(gt[i], r.id) {
				hit++
			}
		}
	}
	return float64(hit) / float64(10*len(queries))
}

// exactTop10 is the exact top 10 of base (ids = indexes) for each query.
func exactTop10(m quant.Metric, base, queries [][]float32) [][]uint64 {
	gt := make([][]uint64, len(queries))
	for i, q := range queries {
		ids := make([]uint64, len(base))
		for j := range ids {
			ids[j] = uint64(j)
		}
		slices.SortFunc(ids, func(a, b uint64) int {
			return compareRanked(ranked{id: a, d: m.Exact(q, base[a])}, ranked{id: b, d: m.Exact(q, base[b])})
		})
		gt[i] = ids[:10]
	}
	return gt
}

// TestQuantizedRecallGap: on image-like data under cosine (non-negative
// components, most of them dark, some dark in every vector), the int8
// graph searched as a collection searches it (int8 traversal, exact
// re-rank) finds the true neighbors about as often as the same build
// over float32 vectors, at the small ef where the two differ most. Before
// SymDistance centred its rounded weights on the code of 0, and before
// Train gave a constant dimension the widest step instead of 1 (which
// rounded every other symmetric weight to 0), the int8 graph's links were
// chosen by distorted distances and this gap was 0.05-0.6.
func TestQuantizedRecallGap(t *testing.T) {
	t.Parallel()
	const dim = 64
	m := quant.Cosine
	base := normalized(imageLike(1, 3000, 40, dim))
	queries := normalized(imageLike(2, 300, 40, dim)[0:300])
	gt := exactTop10(m, base, queries)
	ids := make([]uint64, len(base))
	for i := range ids {
		ids[i] = uint64(i)
	}
	p := Params{Dim: dim, Metric: m}
	gq := emptyGraph(t, p, base, true)
	gf := emptyGraph(t, p, base, false)
	for lo := 0; lo < len(base); lo += 500 {
		hi := min(lo+500, len(base))
		if err := gq.InsertBatch(ids[lo:hi], base[lo:hi]); err != nil {
			t.Fatal(err)
		}
		if err := gf.InsertBatch(ids[lo:hi], base[lo:hi]); err != nil {
			t.Fatal(err)
		}
	}
	for _, ef := range []int{10, 16, 32} {
		rf := gapRecall(t, gf, m, base, queries, gt, ef)
		rq := gapRecall(t, gq, m, base, queries, gt, ef)
		t.Logf("ef %d: recall@10 float32 graph %.4f, int8 graph %.4f (gap %+.4f)", ef, rf, rq, rq-rf)
		if rq < rf-0.01 {
			t.Errorf("ef %d: int8 graph recall@10 %.4f, more than 0.01 below the float32 graph's %.4f", ef, rq, rf)
		}
	}
}
