package hnsw

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"

	"github.com/flowdb/flowdb/quant"
)

// clustered returns n vectors around c cluster centers (a Gaussian mixture),
// the shape of real embeddings that makes approximate search non-trivial.
func clustered(seed uint64, n, c, dim int) [][]float32 {
	rng := rand.New(rand.NewPCG(seed, 99))
	centers := make([][]float32, c)
	for i := range centers {
		centers[i] = make([]float32, dim)
		for d := range centers[i] {
			centers[i][d] = float32(rng.NormFloat64() * 3)
		}
	}
	vs := make([][]float32, n)
	for i := range vs {
		ctr := centers[rng.IntN(c)]
		vs[i] = make([]float32, dim)
		for d := range vs[i] {
			vs[i][d] = ctr[d] + float32(rng.NormFloat64())
		}
	}
	return vs
}

func build(t testing.TB, p Params, vs [][]float32, ids []uint64) *Graph {
	return buildWith(t, p, vs, ids, true)
}

// emptyGraph returns an empty graph over int8 codes trained on the first
// 2,000 of vs (quantize), or over float32 vectors.
func emptyGraph(t testing.TB, p Params, vs [][]float32, quantize bool) *Graph {
	t.Helper()
	var q *quant.Quantizer
	if quantize {
		sample := vs[:min(len(vs), 2000)]
		if p.Metric == quant.Cosine {
			sample = normalized(sample)
		}
		var err error
		if q, err = quant.Train(sample, quant.Options{}); err != nil {
			t.Fatal(err)
		}
	}
	g, err := NewGraph(p, q)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// buildWith builds a graph over int8 codes (quantize) or float32 vectors.
func buildWith(t testing.TB, p Params, vs [][]float32, ids []uint64, quantize bool) *Graph {
	t.Helper()
	g := emptyGraph(t, p, vs, quantize)
	for i, v := range vs {
		if err := g.Insert(ids[i], v); err != nil {
			t.Fatal(err)
		}
	}
	return g
}

func normalized(vs [][]float32) [][]float32 {
	out := make([][]float32, len(vs))
	for i, v := range vs {
		n := math.Sqrt(float64(quant.DotF32(v, v)))
		out[i] = make([]float32, len(v))
		for d, x := range v {
			out[i][d] = float32(float64(x) / n)
		}
	}
	return out
}

func seqIDs(n int) []uint64 {
	ids := make([]uint64, n)
	for i := range ids {
		ids[i] = uint64(i + 1)
	}
	return ids
}

// recallAt10 measures recall@10 of g against exact search over live
// (id -> vector), for the queries.
func recallAt10(t testing.TB, g *Graph, m quant.Metric, live map[uint64][]float32, queries [][]float32, ef int) float64 {
	t.Helper()
	ids := slices.Sorted(func(yield func(uint64) bool) {
		for id := range live {
			if !yield(id) {
				return
			}
		}
	})
	hit, total := 0, 0
	for _, q := range queries {
		qv := q
		if m == quant.Cosine {
			qv = normalized([][]float32{q})[0]
		}
		exact := slices.Clone(ids)
		dist := map[uint64]float32{}
		for _, id := range ids {
			v := live[id]
			if m == quant.Cosine {
				v = normalized([][]float32{v})[0]
			}
			dist[id] = m.Exact(qv, v)
		}
		slices.SortFunc(exact, func(a, b uint64) int {
			switch {
			case dist[a] < dist[b]:
				return -1
			case dist[a] > dist[b]:
				return 1
			}
			return 0
		})
		want := map[uint64]bool{}
		for _, id := range exact[:10] {
			want[id] = true
		}
		res, err := g.Search(q, 10, ef, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(res) != min(10, len(ids)) {
			t.Fatalf("%d results, want %d", len(res), min(10, len(ids)))
		}
		seen := map[uint64]bool{}
		for _, r := range res {
			if seen[r.ID] {
				t.Fatalf("duplicate result %d", r.ID)
			}
			seen[r.ID] = true
			if want[r.ID] {
				hit++
			}
		}
		total += 10
	}
	return float64(hit) / float64(total)
}

// TestRecall: recall@10 against brute force on clustered data, per metric,
// with and without quantization, with a floor that fails on regression.
// (Quantized: ranking by the int8 distance only; a collection re-ranks with
// the float32 originals on top.)
func TestRecall(t *testing.T) {
	for _, quantize := range []bool{true, false} {
		for _, m := range []quant.Metric{quant.L2, quant.InnerProduct, quant.Cosine} {
			vs := clustered(1, 3000, 20, 32)
			queries := clustered(2, 50, 20, 32)
			g := buildWith(t, Params{Dim: 32, Metric: m}, vs, seqIDs(len(vs)), quantize)
			live := map[uint64][]float32{}
			for i, v := range vs {
				live[uint64(i+1)] = v
			}
			r := recallAt10(t, g, m, live, queries, 64)
			t.Logf("%v, quantized %v: recall@10 %.3f (ef 64, 3,000 vectors, 32 dims)", m, quantize, r)
			// Floors a little under what this build measured: int8 l2
			// 0.962, cosine 0.904, ip 0.772 (inner product is not a metric
			// and HNSW is weaker on it); float32 l2 0.982, cosine 0.936,
			// ip 0.778.
			floor := map[quant.Metric]float64{quant.L2: 0.93, quant.Cosine: 0.87, quant.InnerProduct: 0.72}[m]
			if !quantize {
				floor = map[quant.Metric]float64{quant.L2: 0.96, quant.Cosine: 0.91, quant.InnerProduct: 0.74}[m]
			}
			if r < floor {
				t.Fatalf("%v, quantized %v: recall@10 %.3f below %.2f", m, quantize, r, floor)
			}
		}
	}
}

// TestSearchBounds: every result's [Lo, Hi] holds the exact distance from
// the query to the original vector, per metric; with quantization off
// both are the exact distance.
func TestSearchBounds(t *testing.T) {
	for _, quantize := range []bool{true, false} {
		for _, m := range []quant.Metric{quant.L2, quant.InnerProduct, quant.Cosine} {
			vs := clustered(21, 2000, 20, 32)
			g := buildWith(t, Params{Dim: 32, Metric: m}, vs, seqIDs(len(vs)), quantize)
			var width, dist float64
			for _, q := range clustered(22, 50, 20, 32) {
				qv, _ := g.Prepare(q)
				res, err := g.Search(q, 20, 64, nil)
				if err != nil {
					t.Fatal(err)
				}
				for _, r := range res {
					v, _ := g.Prepare(vs[r.ID-1])
					exact := m.Exact(qv, v)
					if !(r.Lo <= exact && exact <= r.Hi) || (!quantize && (r.Lo != exact || r.Hi != exact)) {
						t.Fatalf("%v quantized %v: id %d exact %v outside [%v, %v] (distance %v)", m, quantize, r.ID, exact, r.Lo, r.Hi, r.Distance)
					}
					width += float64(r.Hi - r.Lo)
					dist += math.Abs(float64(exact))
				}
			}
			t.Logf("%v quantized %v: mean interval %.3g of mean |distance| %.3g", m, quantize, width/1000, dist/1000)
		}
	}
}

// TestChurn: deleting half the vectors and inserting them again keeps
// recall within 0.02 of a fresh build.
func TestChurn(t *testing.T) {
	t.Parallel()
	for _, quantize := range []bool{true, false} {
		t.Run(fmt.Sprintf("quantized=%v", quantize), func(t *testing.T) { testChurn(t, quantize) })
	}
}

func testChurn(t *testing.T, quantize bool) {
	vs := clustered(3, 3000, 20, 32)
	queries := clustered(4, 50, 20, 32)
	ids := seqIDs(len(vs))
	live := map[uint64][]float32{}
	for i, v := range vs {
		live[ids[i]] = v
	}
	fresh := buildWith(t, Params{Dim: 32, Metric: quant.L2}, vs, ids, quantize)
	rf := recallAt10(t, fresh, quant.L2, live, queries, 64)
	g := buildWith(t, Params{Dim: 32, Metric: quant.L2}, vs, ids, quantize)
	rng := rand.New(rand.NewPCG(5, 5))
	perm := rng.Perm(len(vs))[:len(vs)/2]
	for _, i := range perm {
		if err := g.Delete(ids[i]); err != nil {
			t.Fatal(err)
		}
	}
	for _, i := range perm {
		if err := g.Insert(ids[i], vs[i]); err != nil {
			t.Fatal(err)
		}
	}
	rc := recallAt10(t, g, quant.L2, live, queries, 64)
	t.Logf("recall@10: fresh %.3f, after deleting and re-inserting half %.3f", rf, rc)
	if rc < rf-0.02 {
		t.Fatalf("churn: recall %.3f, fresh %.3f", rc, rf)
	}
	if g.Len() != len(vs) {
		t.Fatalf("len %d", g.Len())
	}
	// After deleting a quarter (without re-inserting), nothing deleted is
	// returned and the live ones are still found.
	for _, i := range perm[:len(perm)/2] {
		if err := g.Delete(ids[i]); err != nil {
			t.Fatal(err)
		}
		delete(live, ids[i])
	}
	rd := recallAt10(t, g, quant.L2, live, queries, 64)
	t.Logf("recall@10 after deleting a quarter: %.3f", rd)
	if rd < rf-0.05 {
		t.Fatalf("after deletes: recall %.3f, fresh %.3f", rd, rf)
	}
}

// TestDeterministic: two graphs that apply the same operations (inserts,
// a replacement, deletes) are byte-identical; a different order is not
// (the test can fail).
func TestDeterministic(t *testing.T) {
	vs := clustered(6, 1500, 10, 24)
	ops := func(g *Graph, order []int) {
		for _, i := range order {
			if err := g.Insert(uint64(i+1), vs[i]); err != nil {
				t.Fatal(err)
			}
		}
		for i := 0; i < 300; i += 3 {
			if err := g.Delete(uint64(i + 1)); err != nil {
				t.Fatal(err)
			}
		}
		if err := g.Insert(2, vs[7]); err != nil { // replace
			t.Fatal(err)
		}
	}
	q, err := quant.Train(vs[:500], quant.Options{})
	if err != nil {
		t.Fatal(err)
	}
	order := make([]int, len(vs))
	for i := range order {
		order[i] = i
	}
	var out [][]byte
	for range 2 {
		g, _ := NewGraph(Params{Dim: 24, Metric: quant.L2}, q)
		ops(g, order)
		out = append(out, g.Marshal())
	}
	if !bytes.Equal(out[0], out[1]) {
		t.Fatal("two graphs built from the same operations differ")
	}
	order[10], order[11] = order[11], order[10]
	g, _ := NewGraph(Params{Dim: 24, Metric: quant.L2}, q)
	ops(g, order)
	if bytes.Equal(out[0], g.Marshal()) {
		t.Fatal("a different insertion order gave the same graph: the comparison is not sensitive")
	}
}

// TestDeterministicAcrossKernels: a quantized graph is the same bytes
// whichever kernel implementation computed its distances (portable, or AVX2
// and AVX-512 under GOEXPERIMENT=simd): its distances come from an exact
// integer kernel and scalar float64 steps, so replicas on different CPUs or
// builds hold identical indexes. Per metric, with cosine normalization and
// the batched (parallel) insert path.
func TestDeterministicAcrossKernels(t *testing.T) {
	vs := clustered(19, 1200, 10, 40) // 40 dims: every kernel's tail path runs
	ids := seqIDs(len(vs))
	for _, m := range []quant.Metric{quant.L2, quant.InnerProduct, quant.Cosine} {
		sample := vs[:500]
		if m == quant.Cosine {
			sample = normalized(sample)
		}
		q, err := quant.Train(sample, quant.Options{})
		if err != nil {
			t.Fatal(err)
		}
		var out [][]byte
		for _, portable := range []bool{false, true} {
			impl := quant.UsePortable(portable)
			g, _ := NewGraph(Params{Dim: 40, Metric: m}, q)
			if err := g.InsertBatch(ids[:800], vs[:800]); err != nil {
				t.Fatal(err)
			}
			for _, i := range []int{800, 801, 802} {
				if err := g.Insert(ids[i], vs[i]); err != nil {
					t.Fatal(err)
				}
			}
			for i := 0; i < 200; i += 3 {
				if err := g.Delete(ids[i]); err != nil {
					t.Fatal(err)
				}
			}
			out = append(out, g.Marshal())
			quant.UsePortable(false)
			t.Logf("%v: built with %s kernels", m, map[bool]string{true: "generic", false: impl}[portable])
		}
		if !bytes.Equal(out[0], out[1]) {
			t.Fatalf("%v: graphs built with the %s and portable kernels differ", m, quant.Impl)
		}
	}
}

// TestBadInput: typed errors for every rejected input.
func TestBadInput(t *testing.T) {
	vs := clustered(7, 100, 3, 8)
	g := build(t, Params{Dim: 8, Metric: quant.Cosine}, vs, seqIDs(len(vs)))
	nan := float32(math.NaN())
	for _, c := range []struct {
		err, want error
	}{
		{g.Insert(1000, make([]float32, 7)), ErrDimension},
		{g.Insert(1000, []float32{1, 2, 3, 4, 5, 6, 7, nan}), ErrNotFinite},
		{g.Insert(1000, make([]float32, 8)), ErrZeroVector},
		{g.Delete(99999), ErrNotFound},
		{searchErr(g, vs[0], 0), ErrInvalid},
		{searchErr(g, vs[0][:3], 5), ErrDimension},
	} {
		if !errors.Is(c.err, c.want) {
			t.Errorf("%v, want %v", c.err, c.want)
		}
	}
	if g.Len() != 100 {
		t.Fatalf("rejected inputs changed the graph: %d live", g.Len())
	}
	if _, err := NewGraph(Params{Dim: 8, M: 1}, nil); !errors.Is(err, ErrInvalid) {
		t.Fatal(err)
	}
}

func searchErr(g *Graph, q []float32, k int) error {
	_, err := g.Search(q, k, 10, nil)
	return err
}

// TestRestore: encoding every node and restoring gives the same graph
// (Marshal) and the same search results.
func TestRestore(t *testing.T) {
	for _, quantize := range []bool{true, false} {
		t.Run(fmt.Sprintf("quantized=%v", quantize), func(t *testing.T) { testRestore(t, quantize) })
	}
}

func testRestore(t *testing.T, quantize bool) {
	vs := clustered(8, 1200, 10, 16)
	g := buildWith(t, Params{Dim: 16, Metric: quant.L2}, vs, seqIDs(len(vs)), quantize)
	for i := 0; i < 100; i++ {
		if err := g.Delete(uint64(3*i + 1)); err != nil {
			t.Fatal(err)
		}
	}
	nodes := make([][]byte, len(g.nodes))
	codes := make([][]byte, len(g.nodes))
	for s := range nodes {
		nodes[s] = g.EncodeNode(uint32(s))
		if !g.nodes[s].deleted {
			codes[s] = g.slotBytes(uint32(s))
		}
	}
	r, err := Restore(g.p, g.q, g.Entry(), nodes, codes)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(g.Marshal(), r.Marshal()) || r.Len() != g.Len() {
		t.Fatal("restored graph differs")
	}
	for _, q := range clustered(9, 20, 10, 16) {
		a, _ := g.Search(q, 10, 50, nil)
		b, _ := r.Search(q, 10, 50, nil)
		if !slices.Equal(a, b) {
			t.Fatalf("search differs after restore: %v vs %v", a, b)
		}
	}
	// Damage is reported, never a panic.
	bad := slices.Clone(nodes)
	bad[5] = bad[5][:len(bad[5])-1]
	if _, err := Restore(g.p, g.q, g.Entry(), bad, codes); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("truncated node: %v", err)
	}
	short := slices.Clone(codes)
	short[7] = short[7][1:]
	if _, err := Restore(g.p, g.q, g.Entry(), nodes, short); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("short code: %v", err)
	}
	if quantize {
		// A residual that is negative or NaN is damage; a code stored
		// without one (before residuals were kept) restores with an
		// unbounded interval, and the same distances.
		for _, r := range [][2]float32{{-1, 0}, {float32(math.NaN()), 0}, {1, float32(math.Inf(1))}} {
			bad := slices.Clone(codes)
			bad[7] = binary.LittleEndian.AppendUint32(slices.Clone(bad[7][:16]), math.Float32bits(r[0]))
			bad[7] = binary.LittleEndian.AppendUint32(bad[7], math.Float32bits(r[1]))
			if _, err := Restore(g.p, g.q, g.Entry(), nodes, bad); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("residual %v: %v", r, err)
			}
		}
		old := make([][]byte, len(codes))
		for s, c := range codes {
			if c != nil {
				old[s] = c[:16]
			}
		}
		o, err := Restore(g.p, g.q, g.Entry(), nodes, old)
		if err != nil {
			t.Fatal(err)
		}
		q := clustered(9, 1, 10, 16)[0]
		a, _ := g.Search(q, 10, 50, nil)
		b, _ := o.Search(q, 10, 50, nil)
		for i := range a {
			if a[i].ID != b[i].ID || a[i].Distance != b[i].Distance || !math.IsInf(float64(b[i].Hi), 1) || math.IsInf(float64(a[i].Hi), 1) {
				t.Fatalf("without residuals: %+v, with: %+v", b[i], a[i])
			}
		}
	}
	if !quantize {
		nan := slices.Clone(codes)
		nan[7] = slices.Clone(nan[7])
		binary.LittleEndian.PutUint32(nan[7], math.Float32bits(float32(math.NaN())))
		if _, err := Restore(g.p, g.q, g.Entry(), nodes, nan); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("NaN component: %v", err)
		}
	}
}

// FuzzRestore: arbitrary node bytes never panic Restore.
func FuzzRestore(f *testing.F) {
	vs := clustered(10, 50, 3, 4)
	q, _ := quant.Train(vs, quant.Options{})
	g, _ := NewGraph(Params{Dim: 4, Metric: quant.L2, M: 4}, q)
	for i, v := range vs {
		g.Insert(uint64(i), v)
	}
	code := func(s uint32) []byte {
		var b []byte
		for _, c := range g.Code(s) {
			b = append(b, byte(c))
		}
		return b
	}
	f.Add(g.EncodeNode(0), g.EncodeNode(1), code(0), true)
	f.Add(g.EncodeNode(0), g.EncodeNode(1), g.slotBytes(0)[:4], true)
	f.Add(g.EncodeNode(0), g.EncodeNode(1), g.slotBytes(0), true)
	fg, _ := NewGraph(Params{Dim: 4, Metric: quant.L2, M: 4}, nil)
	for i, v := range vs {
		fg.Insert(uint64(i), v)
	}
	f.Add(fg.EncodeNode(0), fg.EncodeNode(1), fg.slotBytes(0), false)
	f.Fuzz(func(t *testing.T, a, b, c []byte, quantized bool) {
		rq := q
		if !quantized {
			rq = nil
		}
		r, err := Restore(Params{Dim: 4, Metric: quant.L2, M: 4}, rq, 0, [][]byte{a, b}, [][]byte{c, c})

		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatal(err)
			}
			return
		}
		if _, err := r.Search([]float32{1, 2, 3, 4}, 3, 10, nil); err != nil {
			t.Fatal(err)
		}
	})
}

// TestInsertBatch: a batched build (parallel candidate search) is
// deterministic whatever the number of goroutines, and its recall is within
// 0.02 of one-at-a-time inserts.
func TestInsertBatch(t *testing.T) { // serial: it sets GOMAXPROCS, process-wide
	vs := clustered(18, 3000, 20, 32)
	queries := clustered(19, 50, 20, 32)
	ids := seqIDs(len(vs))
	live := map[uint64][]float32{}
	for i, v := range vs {
		live[ids[i]] = v
	}
	seq := build(t, Params{Dim: 32, Metric: quant.L2}, vs, ids)
	rs := recallAt10(t, seq, quant.L2, live, queries, 64)
	var marsh [][]byte
	var rb float64
	for _, procs := range []int{1, 2, 4} {
		prev := runtime.GOMAXPROCS(procs)
		g, _ := NewGraph(Params{Dim: 32, Metric: quant.L2}, seq.q)
		for lo := 0; lo < len(vs); lo += 700 {
			hi := min(lo+700, len(vs))
			if err := g.InsertBatch(ids[lo:hi], vs[lo:hi]); err != nil {
				t.Fatal(err)
			}
		}
		runtime.GOMAXPROCS(prev)
		marsh = append(marsh, g.Marshal())
		rb = recallAt10(t, g, quant.L2, live, queries, 64)
	}
	if !bytes.Equal(marsh[0], marsh[1]) || !bytes.Equal(marsh[0], marsh[2]) {
		t.Fatal("batched builds with 1, 2 and 4 goroutines differ")
	}
	t.Logf("recall@10: one at a time %.3f, batched %.3f", rs, rb)
	if rb < rs-0.02 {
		t.Fatalf("batched recall %.3f, sequential %.3f", rb, rs)
	}
	// A bad vector rejects the whole batch.
	g, _ := NewGraph(Params{Dim: 32, Metric: quant.L2}, seq.q)
	bad := slices.Clone(vs[:10])
	bad[7] = bad[7][:3]
	if err := g.InsertBatch(ids[:10], bad); !errors.Is(err, ErrDimension) || g.Len() != 0 {
		t.Fatalf("bad batch: %v, %d inserted", err, g.Len())
	}
}
