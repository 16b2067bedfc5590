package hnsw

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"strconv"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/flowdb/flowdb/db"
	"github.com/flowdb/flowdb/internal/keys"
	"github.com/flowdb/flowdb/internal/testutil"
	"github.com/flowdb/flowdb/quant"
)

func openColl(t testing.TB, fs vfs.FS) (*db.DB, *Manager) {
	t.Helper()
	d := testutil.Open(t, "/v", testutil.StoreOptions(fs, nil))
	m, err := Attach(d)
	if err != nil {
		t.Fatal(err)
	}
	return d, m
}

// ops applies a fixed mix of operations: batches of upserts past the
// training threshold, replacements, deletes.
func ops(t testing.TB, m *Manager, vs [][]float32) { opsWith(t, m, vs, false) }

// opsWith is ops on a collection with quantization off (float) or on.
func opsWith(t testing.TB, m *Manager, vs [][]float32, float bool) {
	opsMetric(t, m, vs, float, quant.L2)
}

func opsMetric(t testing.TB, m *Manager, vs [][]float32, float bool, metric quant.Metric) {
	t.Helper()
	ctx := context.Background()
	if err := m.Create(ctx, Config{Name: "mem", Dim: len(vs[0]), Metric: metric, TrainSize: 400, Float: float}); err != nil {
		t.Fatal(err)
	}
	for lo := 0; lo < len(vs); lo += 100 {
		var batch []Vector
		for i := lo; i < min(lo+100, len(vs)); i++ {
			batch = append(batch, Vector{ID: uint64(i + 1), Values: vs[i], Tags: []string{[]string{"a", "b"}[i%2]}})
		}
		if err := m.Upsert(ctx, "mem", batch); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.Upsert(ctx, "mem", []Vector{{ID: 5, Values: vs[9]}}); err != nil { // replace
		t.Fatal(err)
	}
	var del []uint64
	for i := 10; i < 200; i += 7 {
		del = append(del, uint64(i))
	}
	if n, err := m.Delete(ctx, "mem", del); err != nil || n != len(del) {
		t.Fatalf("deleted %d (%v), want %d", n, err, len(del))
	}
}

func tableDump(t testing.TB, d *db.DB) []byte {
	t.Helper()
	var out []byte
	for _, table := range []byte{TableDef, TableVec, TableNode, TableCode, TableTag} {
		lo, hi := keys.TableRange(keys.FirstData, table)
		it, err := d.Pebble().NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
		if err != nil {
			t.Fatal(err)
		}
		for ok := it.First(); ok; ok = it.Next() {
			out = append(append(out, it.Key()...), it.Value()...)
		}
		it.Close()
	}
	return out
}

// TestCollectionDeterministic: two stores that apply the same operations
// hold byte-identical collection tables and graphs.
func TestCollectionDeterministic(t *testing.T) {
	for _, float := range []bool{false, true} {
		t.Run(fmt.Sprintf("float=%v", float), func(t *testing.T) { testCollectionDeterministic(t, float) })
	}
}

func testCollectionDeterministic(t *testing.T, float bool) {
	vs := clustered(11, 1200, 10, 24)
	var dumps, graphs [][]byte
	for range 2 {
		d, m := openColl(t, vfs.NewMem())
		opsWith(t, m, vs, float)
		dumps = append(dumps, tableDump(t, d))
		graphs = append(graphs, m.graphBytes("mem"))
		d.Close()
	}
	if len(graphs[0]) == 0 || !bytes.Equal(graphs[0], graphs[1]) {
		t.Fatal("graphs differ (or no graph was built)")
	}
	if !bytes.Equal(dumps[0], dumps[1]) {
		t.Fatal("collection tables differ")
	}
}

// TestCollectionDeterministicAcrossKernels: a store whose kernels are the
// portable ones and one with the fastest this CPU has (AVX2 or AVX-512
// under GOEXPERIMENT=simd) hold byte-identical quantized collections after
// the same records, under L2 and cosine (whose normalization apply stores).
func TestCollectionDeterministicAcrossKernels(t *testing.T) {
	vs := clustered(21, 1000, 10, 40)
	for _, metric := range []quant.Metric{quant.L2, quant.Cosine} {
		var dumps [][]byte
		for _, portable := range []bool{false, true} {
			quant.UsePortable(portable)
			d, m := openColl(t, vfs.NewMem())
			opsMetric(t, m, vs, false, metric)
			dumps = append(dumps, tableDump(t, d))
			d.Close()
			quant.UsePortable(false)
		}
		if !bytes.Equal(dumps[0], dumps[1]) {
			t.Fatalf("%v: collections built with the %s and portable kernels differ", metric, quant.Impl)
		}
	}
}

// TestCollectionPersistence: the graph, vectors and tags survive a reopen
// and a crash (acknowledged writes are durable) and load without a
// rebuild; searches answer the same.
func TestCollectionPersistence(t *testing.T) {
	for _, float := range []bool{false, true} {
		t.Run(fmt.Sprintf("float=%v", float), func(t *testing.T) { testCollectionPersistence(t, float) })
	}
}

func testCollectionPersistence(t *testing.T, float bool) {
	vs := clustered(12, 1500, 12, 32)
	fs := vfs.NewCrashableMem()
	d, m := openColl(t, fs)
	opsWith(t, m, vs, float)
	if float {
		// Quantization off: no quantizer, no codes stored (the vector
		// table is the graph's source on open).
		if lo, hi := keys.TableRange(keys.FirstData, TableCode); countRange(t, d, lo, hi) != 0 {
			t.Fatal("codes stored with quantization off")
		}
	}

	before := m.graphBytes("mem")
	queries := clustered(13, 20, 12, 32)
	var want [][]Hit
	for _, q := range queries {
		h, err := m.Search(context.Background(), "mem", q, 10, SearchOptions{})
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, h)
	}
	st, _ := m.Stats("mem")
	crashed := fs.CrashClone(vfs.CrashCloneCfg{})
	d.Close()
	for _, f := range []vfs.FS{fs, crashed} {
		d2, m2 := openColl(t, f)
		if !bytes.Equal(m2.graphBytes("mem"), before) {
			t.Fatal("graph differs after reopen")
		}
		// Search latency is this Manager's own (none yet after reopen).
		if st2, _ := m2.Stats("mem"); st2.Config != st.Config || st2.Vectors != st.Vectors || !st2.Trained || st2.Search.Count != 0 {
			t.Fatalf("stats %+v, before %+v", st2, st)
		}
		// The tag bitmaps are rebuilt from the tag index.
		if h, err := m2.Search(context.Background(), "mem", vs[102], 5, SearchOptions{Tags: []string{"a"}}); err != nil || len(h) != 5 || h[0].ID != 103 {
			t.Fatalf("filtered search after reopen: %v %v", h, err)
		}
		for i, q := range queries {
			h, err := m2.Search(context.Background(), "mem", q, 10, SearchOptions{})
			if err != nil || !slices.EqualFunc(h, want[i], func(a, b Hit) bool {
				return a.ID == b.ID && a.Distance == b.Distance && slices.Equal(a.Tags, b.Tags)
			}) {
				t.Fatalf("query %d after reopen: %v %v, want %v", i, h, err, want[i])
			}
		}
		d2.Close()
	}
}

// TestCollectionSearch: re-ranked search finds each stored vector as its own
// nearest neighbor, never returns deleted ids or duplicates, and is exact
// before training.
func TestCollectionSearch(t *testing.T) {
	vs := clustered(14, 1000, 10, 16)
	d, m := openColl(t, vfs.NewMem())
	defer d.Close()
	ctx := context.Background()
	if err := m.Create(ctx, Config{Name: "c", Dim: 16, Metric: quant.Cosine, TrainSize: 500}); err != nil {
		t.Fatal(err)
	}
	// Before training: exact.
	var batch []Vector
	for i := range 300 {
		batch = append(batch, Vector{ID: uint64(i), Values: vs[i]})
	}
	if err := m.Upsert(ctx, "c", batch); err != nil {
		t.Fatal(err)
	}
	if st, _ := m.Stats("c"); st.Trained || st.Vectors != 300 {
		t.Fatalf("stats %+v", st)
	}
	h, err := m.Search(ctx, "c", vs[7], 3, SearchOptions{})
	if err != nil || h[0].ID != 7 || math.Abs(float64(h[0].Distance)) > 1e-6 {
		t.Fatalf("exact search: %v %v", h, err)
	}
	batch = batch[:0]
	for i := 300; i < len(vs); i++ {
		batch = append(batch, Vector{ID: uint64(i), Values: vs[i]})
	}
	if err := m.Upsert(ctx, "c", batch); err != nil {
		t.Fatal(err)
	}
	if st, _ := m.Stats("c"); !st.Trained || st.Vectors != len(vs) {
		t.Fatalf("stats %+v", st)
	}
	if _, err := m.Delete(ctx, "c", []uint64{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	found := 0
	for i := 4; i < len(vs); i += 10 {
		h, err := m.Search(ctx, "c", vs[i], 10, SearchOptions{})
		if err != nil || len(h) != 10 {
			t.Fatalf("search %d: %d hits, %v", i, len(h), err)
		}
		seen := map[uint64]bool{}
		for _, x := range h {
			if seen[x.ID] || x.ID == 1 || x.ID == 2 || x.ID == 3 {
				t.Fatalf("bad hit %d in %v", x.ID, h)
			}
			seen[x.ID] = true
		}
		if h[0].ID == uint64(i) {
			found++
		}
	}
	if found < 95*len(vs)/1000 {
		t.Fatalf("a stored vector was its own nearest neighbor %d times of %d", found, len(vs)/10)
	}
}

// TestCollectionBadInput: typed errors, and nothing changes.
func TestCollectionBadInput(t *testing.T) {
	d, m := openColl(t, vfs.NewMem())
	defer d.Close()
	ctx := context.Background()
	if err := m.Create(ctx, Config{Name: "c", Dim: 4, Metric: quant.Cosine}); err != nil {
		t.Fatal(err)
	}
	nan := float32(math.NaN())
	for _, c := range []struct {
		err, want error
	}{
		{m.Upsert(ctx, "nope", []Vector{{ID: 1, Values: []float32{1, 2, 3, 4}}}), ErrNoCollection},
		{m.Upsert(ctx, "c", []Vector{{ID: 1, Values: []float32{1, 2, 3}}}), ErrDimension},
		{m.Upsert(ctx, "c", []Vector{{ID: 1, Values: []float32{1, nan, 3, 4}}}), ErrNotFinite},
		{m.Upsert(ctx, "c", []Vector{{ID: 1, Values: []float32{0, 0, 0, 0}}}), ErrZeroVector},
		{m.Create(ctx, Config{Name: "c", Dim: 5, Metric: quant.Cosine}), ErrExists},
		{m.Create(ctx, Config{Name: "", Dim: 5}), ErrInvalid},
		{searchErrC(m, "c", []float32{1, 2, 3, 4}, 0), ErrInvalid},
		{searchErrC(m, "nope", []float32{1, 2, 3, 4}, 1), ErrNoCollection},
	} {
		if !errors.Is(c.err, c.want) {
			t.Errorf("%v, want %v", c.err, c.want)
		}
	}
	if st, _ := m.Stats("c"); st.Vectors != 0 {
		t.Fatalf("rejected inputs stored %d vectors", st.Vectors)
	}
}

func searchErrC(m *Manager, name string, q []float32, k int) error {
	_, err := m.Search(context.Background(), name, q, k, SearchOptions{})
	return err
}

// TestFilteredSearch: filters matching 0.1% to 100% of the vectors return
// min(k, matches) results, all matching, no duplicates, and agree with
// brute force over the matching vectors (exactly when the set is small).
func TestFilteredSearch(t *testing.T) {
	for _, float := range []bool{false, true} {
		t.Run(fmt.Sprintf("float=%v", float), func(t *testing.T) { testFilteredSearch(t, float) })
	}
}

func testFilteredSearch(t *testing.T, float bool) {
	const n = 5000
	vs := clustered(15, n, 20, 16)
	d, m := openColl(t, vfs.NewMem())
	defer d.Close()
	ctx := context.Background()
	if err := m.Create(ctx, Config{Name: "f", Dim: 16, Metric: quant.L2, TrainSize: 1000, Float: float}); err != nil {
		t.Fatal(err)
	}
	mods := []int{1000, 100, 10, 2, 1} // 0.1%, 1%, 10%, 50%, 100%
	for lo := 0; lo < n; lo += 500 {
		var batch []Vector
		for i := lo; i < lo+500; i++ {
			var tags []string
			for _, md := range mods {
				if i%md == 0 {
					tags = append(tags, "m"+strconv.Itoa(md))
				}
			}
			batch = append(batch, Vector{ID: uint64(i), Values: vs[i], Tags: tags})
		}
		if err := m.Upsert(ctx, "f", batch); err != nil {
			t.Fatal(err)
		}
	}
	queries := clustered(16, 20, 20, 16)
	for _, md := range mods {
		tag := "m" + strconv.Itoa(md)
		matches := (n + md - 1) / md
		hit, total := 0, 0
		for _, q := range queries {
			res, err := m.Search(ctx, "f", q, 10, SearchOptions{Tags: []string{tag}})
			if err != nil {
				t.Fatal(err)
			}
			if len(res) != min(10, matches) {
				t.Fatalf("%s: %d results, want %d", tag, len(res), min(10, matches))
			}
			var exact []Hit
			for i := 0; i < n; i += md {
				exact = append(exact, Hit{ID: uint64(i), Distance: quant.L2.Exact(q, vs[i])})
			}
			slices.SortFunc(exact, func(a, b Hit) int {
				if a.Distance < b.Distance {
					return -1
				}
				return 1
			})
			want := map[uint64]bool{}
			for _, h := range exact[:min(10, len(exact))] {
				want[h.ID] = true
			}
			seen := map[uint64]bool{}
			for _, h := range res {
				if int(h.ID)%md != 0 || seen[h.ID] || !slices.Contains(h.Tags, tag) {
					t.Fatalf("%s: bad result %+v", tag, h)
				}
				seen[h.ID] = true
				if want[h.ID] {
					hit++
				}
			}
			total += len(res)
		}
		recall := float64(hit) / float64(total)
		t.Logf("filter %s (%d of %d vectors): recall@10 %.3f", tag, matches, n, recall)
		floor := 0.95
		if matches <= ExactFilterMax {
			floor = 1
		}
		if recall < floor {
			t.Fatalf("%s: recall %.3f below %.2f", tag, recall, floor)
		}
	}
	// An unknown tag matches nothing; replacing a vector moves its tags.
	if res, err := m.Search(ctx, "f", queries[0], 10, SearchOptions{Tags: []string{"nope"}}); err != nil || len(res) != 0 {
		t.Fatalf("unknown tag: %v %v", res, err)
	}
	if err := m.Upsert(ctx, "f", []Vector{{ID: 0, Values: vs[0], Tags: []string{"moved"}}}); err != nil {
		t.Fatal(err)
	}
	if res, _ := m.Search(ctx, "f", vs[0], 10, SearchOptions{Tags: []string{"moved"}}); len(res) != 1 || res[0].ID != 0 {
		t.Fatalf("moved tag: %v", res)
	}
	if res, _ := m.Search(ctx, "f", vs[0], 1, SearchOptions{Tags: []string{"m1000"}}); len(res) != 1 || res[0].ID == 0 {
		t.Fatalf("old tag still finds the replaced vector: %v", res)
	}
}

// TestGetAndDrop: Get returns what was stored; Drop removes every key of
// the collection, and it is gone after a reopen.
func TestGetAndDrop(t *testing.T) {
	fs := vfs.NewMem()
	d, m := openColl(t, fs)
	vs := clustered(17, 600, 5, 8)
	ops(t, m, vs)
	v, err := m.Get("mem", 3)
	if err != nil || !slices.Equal(v.Values, vs[2]) || !slices.Equal(v.Tags, []string{"a"}) {
		t.Fatalf("get: %+v %v", v, err)
	}
	if _, err := m.Get("mem", 10); !errors.Is(err, ErrNotFound) { // deleted by ops
		t.Fatalf("get deleted: %v", err)
	}
	if err := m.Drop(context.Background(), "mem"); err != nil {
		t.Fatal(err)
	}
	if dump := tableDump(t, d); len(dump) != 0 {
		t.Fatalf("drop left %d bytes of keys", len(dump))
	}
	d.Close()
	d, m = openColl(t, fs)
	defer d.Close()
	if _, err := m.Stats("mem"); !errors.Is(err, ErrNoCollection) || len(m.Collections()) != 0 {
		t.Fatalf("after drop and reopen: %v %v", err, m.Collections())
	}
}

func countRange(t testing.TB, d *db.DB, lo, hi []byte) int {
	t.Helper()
	it, err := d.Pebble().NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	n := 0
	for ok := it.First(); ok; ok = it.Next() {
		n++
	}
	return n
}

// TestRerank: on random intervals around random exact distances, with
// some candidates gone by the time they are read, Rerank asks for every
// live candidate among the k nearest, and, with none gone, for no more
// than the candidates whose lower bound is at most the k-th smallest upper
// bound.
func TestRerank(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	asked, static := 0, 0
	for trial := range 20000 {
		n, k := 1+rng.IntN(30), 1+rng.IntN(12)
		exact := make(map[uint64]float32, n)
		gone := map[uint64]bool{}
		cands := make([]Result, n)
		for i := range cands {
			d := rng.Float32() * 10
			if rng.IntN(4) == 0 { // ties
				d = float32(rng.IntN(3))
			}
			id := uint64(i)
			exact[id] = d
			cands[i] = Result{ID: id, Distance: d, Lo: d - rng.Float32()*2*rng.Float32(), Hi: d + rng.Float32()*2*rng.Float32()}
			gone[id] = trial%2 == 1 && rng.IntN(5) == 0
		}
		got := map[uint64]bool{}
		nAsked, err := Rerank(cands, k, func(id uint64) (float32, bool, error) {
			if got[id] {
				t.Fatalf("trial %d: %d asked for twice", trial, id)
			}
			got[id] = true
			return exact[id], !gone[id], nil
		})
		if err != nil || nAsked != len(got) {
			t.Fatalf("trial %d: %d asked, %d counted, %v", trial, len(got), nAsked, err)
		}
		// The k nearest live candidates (every one tied with the k-th) were
		// all asked for.
		var live []float32
		for id, d := range exact {
			if !gone[id] {
				live = append(live, d)
			}
		}
		slices.Sort(live)
		if len(live) > 0 {
			kth := live[min(k, len(live))-1]
			for id, d := range exact {
				if !gone[id] && d < kth && !got[id] {
					t.Fatalf("trial %d: candidate %d at %v (k-th %v) not read", trial, id, d, kth)
				}
			}
			n := 0
			for id, d := range exact {
				if !gone[id] && d <= kth && got[id] {
					n++
				}
			}
			if n < min(k, len(live)) {
				t.Fatalf("trial %d: %d of the %d nearest read", trial, n, min(k, len(live)))
			}
		}
		if trial%2 == 0 {
			his := make([]float32, n)
			for i, c := range cands {
				his[i] = c.Hi
			}
			slices.Sort(his)
			st := 0
			for _, c := range cands {
				if len(his) < k || c.Lo <= his[k-1] {
					st++
				}
			}
			if nAsked > st {
				t.Fatalf("trial %d: asked %d, the static rule %d", trial, nAsked, st)
			}
			asked += nAsked
			static += st
		}
	}
	t.Logf("asked for %d candidates where the static rule reads %d", asked, static)
}

// TestRerankBounds: Search reads only the candidates whose bounds let them
// rank, and returns exactly what re-ranking every candidate returns (the
// reference here: the graph's 2·k candidates, each read with Get and
// ranked by its exact distance), per metric; it reads fewer than all.
func TestRerankBounds(t *testing.T) {
	for _, metric := range []quant.Metric{quant.L2, quant.InnerProduct, quant.Cosine} {
		vs := clustered(31, 2000, 20, 32)
		d, m := openColl(t, vfs.NewMem())
		opsMetric(t, m, vs, false, metric)
		g := m.colls["mem"].g
		ctx := context.Background()
		read, all := 0, 0
		for _, q := range clustered(32, 100, 20, 32) {
			got, err := m.Search(ctx, "mem", q, 10, SearchOptions{})
			if err != nil {
				t.Fatal(err)
			}
			qv, _ := g.Prepare(q)
			cands, err := g.Search(q, 20, g.Beam(64, 10), nil) // as Manager.Search at the default ef
			if err != nil {
				t.Fatal(err)
			}
			r, err := Rerank(cands, 10, func(id uint64) (float32, bool, error) {
				v, err := m.Get("mem", id)
				if err != nil {
					return 0, false, err
				}
				return metric.Exact(qv, v.Values), true, nil
			})
			if err != nil {
				t.Fatal(err)
			}
			read += r
			all += len(cands)
			var want []Hit
			for _, c := range cands {
				v, err := m.Get("mem", c.ID)
				if err != nil {
					t.Fatal(err)
				}
				want = append(want, Hit{ID: c.ID, Distance: metric.Exact(qv, v.Values), Tags: v.Tags})
			}
			slices.SortFunc(want, func(a, b Hit) int {
				if c := cmp.Compare(a.Distance, b.Distance); c != 0 {
					return c
				}
				return cmp.Compare(a.ID, b.ID)
			})
			want = want[:10]
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("%v: search %v, re-ranking every candidate %v", metric, got, want)
			}
		}
		t.Logf("%v: read %d of %d candidates (%.1f per query of 20)", metric, read, all, float64(read)/100)
		if read >= all {
			t.Errorf("%v: the bounds pruned nothing (%d of %d read)", metric, read, all)
		}
		d.Close()
	}
}

// TestFloats: a stored vector reads the same from an aligned buffer (read
// in place) and a misaligned one (decoded).
func TestFloats(t *testing.T) {
	v := []float32{1.5, -2, 3.25, float32(math.Pi)}
	enc := encodeVec(v, nil)
	for off := range 4 {
		buf := append(make([]byte, off), enc...)[off:]
		got := floats(buf, make([]float32, len(v)))
		if !slices.Equal(got, v) {
			t.Fatalf("offset %d: %v, want %v", off, got, v)
		}
	}
}

// TestCompact: Compact moves every table holding a collection's vectors to
// the LSM's last level and changes nothing a reader sees (tables, graph,
// search results); it refuses unknown collections, closed stores and
// read-only ones with typed errors.
func TestCompact(t *testing.T) {
	ctx := context.Background()
	vs := clustered(21, 1200, 8, 32)
	fs := vfs.NewMem()
	d, m := openColl(t, fs)
	if err := m.Create(ctx, Config{Name: "mem", Dim: 32, Metric: quant.L2, TrainSize: 400}); err != nil {
		t.Fatal(err)
	}
	for lo := 0; lo < len(vs); lo += 200 {
		var batch []Vector
		for i := lo; i < lo+200; i++ {
			batch = append(batch, Vector{ID: uint64(i + 1), Values: vs[i], Tags: []string{strconv.Itoa(i % 3)}})
		}
		if err := m.Upsert(ctx, "mem", batch); err != nil {
			t.Fatal(err)
		}
		// One table per batch, as a bulk load past several memtables
		// leaves them: overlapping tables in L0.
		if err := d.Pebble().Flush(); err != nil {
			t.Fatal(err)
		}
	}
	c, err := m.get("mem")
	if err != nil {
		t.Fatal(err)
	}
	vecLo := ckey(c.shard, TableVec, "mem", nil)
	vecHi := keys.PrefixEnd(vecLo)
	// levels lists the level of each table that overlaps the vector range.
	levels := func() []int {
		tables, err := d.Pebble().SSTables()
		if err != nil {
			t.Fatal(err)
		}
		var out []int
		for level, ts := range tables {
			for _, tb := range ts {
				if bytes.Compare(tb.Smallest.UserKey, vecHi) < 0 && bytes.Compare(tb.Largest.UserKey, vecLo) >= 0 {
					out = append(out, level)
				}
			}
		}
		return out
	}
	if ls := levels(); !slices.ContainsFunc(ls, func(l int) bool { return l < 6 }) {
		t.Fatalf("before Compact the vectors are already in the last level only (%v): the test sets nothing up", ls)
	}
	queries := clustered(22, 20, 8, 32)
	search := func() [][]Hit {
		var out [][]Hit
		for _, q := range queries {
			h, err := m.Search(ctx, "mem", q, 10, SearchOptions{})
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, h)
		}
		return out
	}
	dump, graph, hits := tableDump(t, d), m.graphBytes("mem"), search()

	if err := m.Compact(ctx, "mem"); err != nil {
		t.Fatal(err)
	}
	ls := levels()
	if len(ls) == 0 || slices.ContainsFunc(ls, func(l int) bool { return l != 6 }) {
		t.Fatalf("after Compact the vector tables are in levels %v, want all in L6", ls)
	}
	if !bytes.Equal(tableDump(t, d), dump) || !bytes.Equal(m.graphBytes("mem"), graph) || !reflect.DeepEqual(search(), hits) {
		t.Fatal("Compact changed what a reader sees")
	}
	if rep, err := d.Check(ctx, nil); err != nil || !rep.OK() {
		t.Fatalf("check after Compact: %v %+v", err, rep)
	}

	if err := m.Compact(ctx, "nope"); !errors.Is(err, ErrNoCollection) {
		t.Fatalf("unknown collection: %v", err)
	}
	d.Close()
	if err := m.Compact(ctx, "mem"); !errors.Is(err, db.ErrClosed) {
		t.Fatalf("closed store: %v", err)
	}
	ro := testutil.Open(t, "/v", &db.Options{FS: fs, Logger: testutil.Quiet(), ReadOnly: true, TTLReapInterval: -1})
	defer ro.Close()
	mro, err := Attach(ro)
	if err != nil {
		t.Fatal(err)
	}
	if err := mro.Compact(ctx, "mem"); !errors.Is(err, db.ErrReadOnly) {
		t.Fatalf("read-only store: %v", err)
	}
}
