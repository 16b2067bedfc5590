package hnsw

import (
	"context"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// TestSearchLatency: Stats.Search counts exactly the searches of its own
// collection that returned hits; refused searches do not count, another
// collection's do not, and a dropped collection created again starts
// afresh.
func TestSearchLatency(t *testing.T) {
	ctx := context.Background()
	_, m := openColl(t, vfs.NewMem())
	vs := clustered(5, 200, 8, 16)
	for _, name := range []string{"a", "b"} {
		if err := m.Create(ctx, Config{Name: name, Dim: 16}); err != nil {
			t.Fatal(err)
		}
		batch := make([]Vector, len(vs))
		for i, v := range vs {
			batch[i] = Vector{ID: uint64(i + 1), Values: v}
		}
		if err := m.Upsert(ctx, name, batch); err != nil {
			t.Fatal(err)
		}
	}
	if st, _ := m.Stats("a"); st.Search.Count != 0 || st.Search.Quantile(0.5) != -1 {
		t.Fatalf("before any search: %d samples", st.Search.Count)
	}
	const n = 25
	for i := range n {
		if _, err := m.Search(ctx, "a", vs[i], 10, SearchOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := m.Search(ctx, "a", []float32{1, 2}, 10, SearchOptions{}); err == nil {
		t.Fatal("wrong dimension accepted")
	}
	if _, err := m.Search(ctx, "b", vs[0], 10, SearchOptions{}); err != nil {
		t.Fatal(err)
	}
	a, _ := m.Stats("a")
	b, _ := m.Stats("b")
	if a.Search.Count != n || b.Search.Count != 1 {
		t.Fatalf("samples: a %d (want %d), b %d (want 1)", a.Search.Count, n, b.Search.Count)
	}
	if p50, p99 := a.Search.Quantile(0.5), a.Search.Quantile(0.99); p50 <= 0 || p99 < p50 {
		t.Fatalf("a: p50 %v p99 %v", p50, p99)
	}
	if err := m.Drop(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	if err := m.Create(ctx, Config{Name: "b", Dim: 16}); err != nil {
		t.Fatal(err)
	}
	if st, _ := m.Stats("b"); st.Search.Count != 0 {
		t.Fatalf("b created again holds %d samples", st.Search.Count)
	}
}
