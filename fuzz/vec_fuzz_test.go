package fuzz

import (
	"context"
	"errors"
	"testing"

	"github.com/flowdb/flowdb/index/hnsw"
	"github.com/flowdb/flowdb/quant"
	"github.com/flowdb/flowdb/wal"
)

// FuzzVecRecord applies an arbitrary body of a vector-collection record
// kind to a fresh copy of a store holding one trained collection (harness):
// it is applied or rejected with a typed error, never a panic, the engine
// keeps working, the store passes Check, and the collection still searches.
func FuzzVecRecord(f *testing.F) {
	h := newHarness(f, func(ctx context.Context, e *env) error {
		if err := e.v.Create(ctx, hnsw.Config{Name: "v", Dim: 2, Metric: quant.L2, TrainSize: 4}); err != nil {
			return err
		}
		return e.v.Upsert(ctx, "v", []hnsw.Vector{{ID: 1, Values: []float32{1, 2}}, {ID: 2, Values: []float32{3, 1}},
			{ID: 3, Values: []float32{0, 1}}, {ID: 4, Values: []float32{2, 2}}})
	})
	f.Add(uint8(1), []byte("\x01v\x02\x01\x00\x00\x00\x00\x00\x00\x00\x09\x08\x00\x00\x80\x3f\x00\x00\x00\x40\x00")) // insert
	f.Add(uint8(2), []byte("\x01v\x01\x00\x00\x00\x00\x00\x00\x00\x01"))                                             // delete
	f.Add(uint8(0), []byte("\x01w\x02\x00\x10\x80\x01\x40\x80\x08"))                                                 // create
	f.Add(uint8(0), []byte("0"))                                                                                     // the input an earlier shared-store target could not replay
	f.Fuzz(func(t *testing.T, kind uint8, body []byte) {
		e := h.fresh(t)
		k := hnsw.KindCreate + wal.Kind(kind%5)
		e.apply(t, k, body, hnsw.ErrNoCollection, hnsw.ErrExists, hnsw.ErrInvalid, hnsw.ErrDimension,
			hnsw.ErrNotFinite, hnsw.ErrZeroVector)
		if _, err := e.v.Search(context.Background(), "v", []float32{1, 1}, 3, hnsw.SearchOptions{}); err != nil &&
			!errors.Is(err, hnsw.ErrNoCollection) {
			t.Fatalf("search after kind %d body %x: %v", k, body, err)
		}
	})
}
