package fuzz

import (
	"context"
	"errors"
	"log/slog"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/flowdb/flowdb/db"
	"github.com/flowdb/flowdb/index/hnsw"
	"github.com/flowdb/flowdb/quant"
	"github.com/flowdb/flowdb/wal"
)

// FuzzVecRecord applies arbitrary bodies of every vector-collection record
// kind through a live store: each is applied or rejected with a typed
// error, never a panic, and the applied index advances.
func FuzzVecRecord(f *testing.F) {
	d, err := db.Open("/fv", &db.Options{FS: vfs.NewMem(), Logger: slog.New(slog.DiscardHandler),
		TTLReapInterval: -1, Durability: db.NoSync})
	if err != nil {
		f.Fatal(err)
	}
	defer d.Close()
	m, err := hnsw.Attach(d)
	if err != nil {
		f.Fatal(err)
	}
	ctx := context.Background()
	if err := m.Create(ctx, hnsw.Config{Name: "v", Dim: 2, Metric: quant.L2, TrainSize: 4}); err != nil {
		f.Fatal(err)
	}
	if err := m.Upsert(ctx, "v", []hnsw.Vector{{ID: 1, Values: []float32{1, 2}}, {ID: 2, Values: []float32{3, 1}},
		{ID: 3, Values: []float32{0, 1}}, {ID: 4, Values: []float32{2, 2}}}); err != nil {
		f.Fatal(err)
	}
	f.Add(uint8(1), []byte("\x01v\x02\x01\x00\x00\x00\x00\x00\x00\x00\x09\x08\x00\x00\x80\x3f\x00\x00\x00\x40\x00")) // insert
	f.Add(uint8(2), []byte("\x01v\x01\x00\x00\x00\x00\x00\x00\x00\x01"))                                             // delete
	f.Add(uint8(0), []byte("\x01w\x02\x00\x10\x80\x01\x40\x80\x08"))                                                 // create
	f.Fuzz(func(t *testing.T, kind uint8, body []byte) {
		k := hnsw.KindCreate + wal.Kind(kind%5)
		before := d.AppliedIndex()
		_, err := d.Propose(ctx, wal.Record{Kind: k, Body: body})
		if err != nil && !errors.Is(err, db.ErrBadRecord) && !errors.Is(err, hnsw.ErrNoCollection) &&
			!errors.Is(err, hnsw.ErrExists) && !errors.Is(err, hnsw.ErrInvalid) && !errors.Is(err, hnsw.ErrDimension) &&
			!errors.Is(err, hnsw.ErrNotFinite) && !errors.Is(err, hnsw.ErrZeroVector) {
			t.Fatalf("kind %d body %x: untyped error %v", k, body, err)
		}
		if d.AppliedIndex() != before+1 {
			t.Fatalf("applied index %d -> %d", before, d.AppliedIndex())
		}
		if _, err := m.Search(ctx, "v", []float32{1, 1}, 3, hnsw.SearchOptions{}); err != nil && !errors.Is(err, hnsw.ErrNoCollection) {
			t.Fatalf("search after kind %d body %x: %v", k, body, err)
		}
	})
}
