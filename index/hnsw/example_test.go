package hnsw_test

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/flowdb/flowdb/db"
	"github.com/flowdb/flowdb/index/hnsw"
	"github.com/flowdb/flowdb/quant"
)

// A vector collection: insert memories with tags, then find the nearest
// ones, optionally only among those carrying a tag.
func Example() {
	dir, err := os.MkdirTemp("", "flowdb-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	d, err := db.Open(dir, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer d.Close()
	m, err := hnsw.Attach(d)
	if err != nil {
		log.Fatal(err)
	}

	ctx := context.Background()
	// TrainSize 4: the int8 quantizer is trained, and the graph built, once
	// the collection holds 4 vectors (until then search is exact).
	if err := m.Create(ctx, hnsw.Config{Name: "memories", Dim: 3, Metric: quant.Cosine, TrainSize: 4}); err != nil {
		log.Fatal(err)
	}
	err = m.Upsert(ctx, "memories", []hnsw.Vector{
		{ID: 1, Values: []float32{1, 0, 0}, Tags: []string{"agent-a"}},
		{ID: 2, Values: []float32{0.9, 0.1, 0}, Tags: []string{"agent-b"}},
		{ID: 3, Values: []float32{0, 1, 0}, Tags: []string{"agent-a"}},
		{ID: 4, Values: []float32{0, 0, 1}, Tags: []string{"agent-b"}},
		{ID: 5, Values: []float32{0.7, 0.7, 0}, Tags: []string{"agent-a"}},
	})
	if err != nil {
		log.Fatal(err)
	}
	query := []float32{1, 0.05, 0}
	hits, err := m.Search(ctx, "memories", query, 2, hnsw.SearchOptions{})
	if err != nil {
		log.Fatal(err)
	}
	for _, h := range hits {
		fmt.Printf("id %d distance %.3f\n", h.ID, h.Distance)
	}
	hits, err = m.Search(ctx, "memories", query, 2, hnsw.SearchOptions{Tags: []string{"agent-b"}})
	if err != nil {
		log.Fatal(err)
	}
	for _, h := range hits {
		fmt.Printf("agent-b: id %d %v\n", h.ID, h.Tags)
	}
	// Output:
	// id 1 distance 0.001
	// id 2 distance 0.002
	// agent-b: id 2 [agent-b]
	// agent-b: id 4 [agent-b]
}
