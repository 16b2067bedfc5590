package hnsw

import (
	"context"
	"encoding/binary"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/flowdb/flowdb/db"
	"github.com/flowdb/flowdb/internal/testutil"
	"github.com/flowdb/flowdb/quant"
)

// TestCollectionSelfRecall churns a collection of 32-dimension vectors
// through its records (batched upserts, updates that move a vector,
// deletes), as the report that found unfindable memories did, then
// requires every live vector to come back among its own 10 nearest at the
// collection's default ef, before and after a reopen, and db.Check (which
// loads each graph from disk and walks it) to find nothing unreachable.
func TestCollectionSelfRecall(t *testing.T) {
	ctx := context.Background()
	fs := vfs.NewMem()
	open := func() (*db.DB, *Manager) {
		d, err := db.Open("/c", testutil.StoreOptions(fs, nil))
		if err != nil {
			t.Fatal(err)
		}
		m, err := Attach(d)
		if err != nil {
			t.Fatal(err)
		}
		return d, m
	}
	d, m := open()
	const dim = 32
	if err := m.Create(ctx, Config{Name: "mem", Dim: dim, Metric: quant.Cosine, TrainSize: 500}); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(32, 2))
	vec := func() []float32 {
		v := make([]float32, dim)
		for i := range v {
			v[i] = float32(rng.NormFloat64())
		}
		return v
	}
	ops, n := reachScale()
	live := map[uint64][]float32{}
	var ids []uint64
	next := uint64(1)
	for range max(6, n/160) { // 1,200 by default, in batches of 100
		var vs []Vector
		for range 100 {
			v := Vector{ID: next, Values: vec()}
			vs = append(vs, v)
			live[next] = v.Values
			ids = append(ids, next)
			next++
		}
		if err := m.Upsert(ctx, "mem", vs); err != nil {
			t.Fatal(err)
		}
	}
	for range ops {
		switch r := rng.IntN(4); {
		case r < 2:
			v := vec()
			if err := m.Upsert(ctx, "mem", []Vector{{ID: next, Values: v}}); err != nil {
				t.Fatal(err)
			}
			live[next] = v
			ids = append(ids, next)
			next++
		case r == 2:
			id := ids[rng.IntN(len(ids))]
			v := vec()
			if err := m.Upsert(ctx, "mem", []Vector{{ID: id, Values: v}}); err != nil {
				t.Fatal(err)
			}
			live[id] = v
		default:
			k := rng.IntN(len(ids))
			if _, err := m.Delete(ctx, "mem", []uint64{ids[k]}); err != nil {
				t.Fatal(err)
			}
			delete(live, ids[k])
			ids[k] = ids[len(ids)-1]
			ids = ids[:len(ids)-1]
		}
	}
	selfRecall := func(when string) {
		t.Helper()
		missed := 0
		for _, id := range ids {
			hits, err := m.Search(ctx, "mem", live[id], 10, SearchOptions{})
			if err != nil {
				t.Fatal(err)
			}
			found := false
			for _, h := range hits {
				found = found || h.ID == id
			}
			if !found {
				missed++
			}
		}
		if missed > 0 {
			t.Fatalf("%s: %d of %d live vectors not found among their own 10 nearest at the default ef", when, missed, len(ids))
		}
		rep, err := d.Check(ctx, nil)
		if err != nil || !rep.OK() || len(rep.Warnings) > 0 {
			t.Fatalf("%s: check: %v %+v", when, err, rep)
		}
	}
	selfRecall("after churn")
	d.Close()
	d, m = open()
	defer d.Close()
	selfRecall("after reopen")
	t.Logf("%d live vectors, each its own nearest; check clean", len(ids))

	// Check finds what it is there for: cut every stored link to one live
	// node (damage written straight to Pebble, as a bad disk or a bug
	// would) and it must report that node unreachable.
	c := m.colls["mem"]
	victim := c.g.slot[ids[0]]
	b := d.Pebble().NewBatch()
	for s := range c.g.Slots() {
		enc := c.g.EncodeNode(uint32(s))
		if enc[9] == 1 { // deleted
			continue
		}
		out := append([]byte(nil), enc[:10]...)
		rest := enc[10:]
		for range int(enc[8]) + 1 {
			n, k := binary.Uvarint(rest)
			rest = rest[k:]
			var keep []uint32
			for i := range int(n) {
				if l := binary.BigEndian.Uint32(rest[4*i:]); l != victim {
					keep = append(keep, l)
				}
			}
			rest = rest[4*n:]
			out = binary.AppendUvarint(out, uint64(len(keep)))
			for _, l := range keep {
				out = binary.BigEndian.AppendUint32(out, l)
			}
		}
		if err := b.Set(ckey(c.shard, TableNode, "mem", be32(uint32(s))), out, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Commit(nil); err != nil {
		t.Fatal(err)
	}
	rep, err := d.Check(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, p := range rep.Warnings {
		found = found || strings.Contains(p.Err, "1 live vectors unreachable")
	}
	if !found {
		t.Fatalf("check missed a node no link reaches: %+v", rep.Problems)
	}
}
