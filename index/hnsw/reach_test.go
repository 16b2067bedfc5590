package hnsw

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"

	"github.com/flowdb/flowdb/quant"
)

// TestReachableUnderChurn builds graphs from random and clustered data in
// several dimensions, metrics and with quantization on and off, churns them
// (inserts, updates that move a vector, deletes), and requires after every
// operation that no live node is unreachable from the entry point, and at
// the end that every live vector is found among its own 10 nearest at
// ef 64 (the collections' default ef) with the default M. Before the graph kept reachability
// (reach.go), graphs of 2,000 random vectors left 0-3 nodes that no other
// node links to, which no search can return.
//
// FLOWDB_REACH_OPS sets the churn operations per configuration (default
// 1,500) and FLOWDB_REACH_N the vectors each graph starts with (default
// 2,000); CI's race-detector pass runs smaller.
func TestReachableUnderChurn(t *testing.T) {
	t.Parallel()
	ops, n := reachScale()
	type config struct {
		dim      int
		metric   quant.Metric
		data     string
		quantize bool
		m        int
	}
	configs := []config{
		{8, quant.L2, "random", true, 0},
		{32, quant.L2, "clustered", true, 0},
		{32, quant.Cosine, "random", true, 0},
		{96, quant.Cosine, "clustered", true, 0},
		{16, quant.L2, "clustered", false, 0},
		{48, quant.InnerProduct, "random", true, 0},
		{32, quant.L2, "random", true, 6},
		{24, quant.L2, "duplicates", true, 8},
	}
	for i, c := range configs {
		name := fmt.Sprintf("%s-%d-%s-q%v-m%d", c.data, c.dim, c.metric, c.quantize, c.m)
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			seed := uint64(i + 1)
			rng := rand.New(rand.NewPCG(seed, 17))
			gen := func(n int) [][]float32 {
				switch c.data {
				case "clustered":
					return clustered(rng.Uint64(), n, 12, c.dim)
				case "duplicates": // tight groups of near-copies, as repeated memories are
					vs := clustered(rng.Uint64(), n, n/8, c.dim)
					for j := range vs {
						for d := range vs[j] {
							vs[j][d] *= 0.01 + 0.99*float32(d%2)
						}
					}
					return vs
				}
				vs := make([][]float32, n)
				for j := range vs {
					vs[j] = make([]float32, c.dim)
					for d := range vs[j] {
						vs[j][d] = rng.Float32()*2 - 1
					}
				}
				return vs
			}
			initial := gen(n)
			g := emptyGraph(t, Params{Dim: c.dim, Metric: c.metric, M: c.m}, initial, c.quantize)
			live := map[uint64][]float32{}
			var order []uint64 // live ids in a deterministic order, for picking
			ids := make([]uint64, len(initial))
			for j := range ids {
				ids[j] = uint64(j + 1)
				live[ids[j]] = initial[j]
				order = append(order, ids[j])
			}
			// Half in batches, half one at a time.
			if err := g.InsertBatch(ids[:n/2], initial[:n/2]); err != nil {
				t.Fatal(err)
			}
			for j := n / 2; j < len(ids); j++ {
				if err := g.Insert(ids[j], initial[j]); err != nil {
					t.Fatal(err)
				}
			}
			check := func(step string) {
				t.Helper()
				if miss := g.Unreachable(); len(miss) > 0 {
					t.Fatalf("%s: %d live vectors unreachable from the entry point, e.g. %v", step, len(miss), miss[:min(5, len(miss))])
				}
			}
			check("after the build")
			next := uint64(len(ids) + 1)
			fresh := gen(ops)
			for op := range ops {
				switch r := rng.IntN(4); {
				case r < 2: // insert
					if err := g.Insert(next, fresh[op]); err != nil {
						t.Fatal(err)
					}
					live[next] = fresh[op]
					order = append(order, next)
					next++
				case r == 2: // update: the id moves to another vector
					id := order[rng.IntN(len(order))]
					if err := g.Insert(id, fresh[op]); err != nil {
						t.Fatal(err)
					}
					live[id] = fresh[op]
				default: // delete
					k := rng.IntN(len(order))
					id := order[k]
					if err := g.Delete(id); err != nil {
						t.Fatal(err)
					}
					delete(live, id)
					order[k] = order[len(order)-1]
					order = order[:len(order)-1]
				}
				check(fmt.Sprintf("op %d", op))
			}
			// The default M finds every vector at the default ef. The sparse
			// graphs (M 6 and 8) are held to reachability only: a node
			// reachable by a long path may still escape a greedy search
			// (one of 2,348 at ef 256 with M 6 in 32 random dimensions).
			const ef = 64
			missed := 0
			for _, id := range order {
				rs, err := g.Search(live[id], 10, ef, nil)
				if err != nil {
					t.Fatal(err)
				}
				found := false
				for _, r := range rs {
					found = found || r.ID == id
				}
				if !found {
					missed++
				}
			}
			if c.m != 0 {
				t.Logf("M %d: %d of %d live vectors not found among their own 10 nearest at ef %d", c.m, missed, len(order), ef)
			} else if missed > 0 {
				t.Fatalf("%d of %d live vectors not found among their own 10 nearest at ef %d", missed, len(order), ef)
			}
			if g.Len() != len(order) {
				t.Fatalf("graph holds %d, model %d", g.Len(), len(order))
			}
		})
	}
}

// reachScale returns the churn operations and starting vectors of the
// reachability tests (FLOWDB_REACH_OPS, FLOWDB_REACH_N).
func reachScale() (ops, n int) {
	ops, n = 1500, 2000
	if v, err := strconv.Atoi(os.Getenv("FLOWDB_REACH_OPS")); err == nil && v > 0 {
		ops = v
	}
	if v, err := strconv.Atoi(os.Getenv("FLOWDB_REACH_N")); err == nil && v >= 100 {
		n = v
	}
	return ops, n
}
