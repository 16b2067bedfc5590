package fuzz

import (
	"context"
	"errors"
	"log/slog"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/flowdb/flowdb/db"
	"github.com/flowdb/flowdb/registry"
	"github.com/flowdb/flowdb/wal"
)

// FuzzRegistryRecord proposes arbitrary bodies of every registry record
// kind to a live store: each is applied or rejected with a typed error,
// never panics, and the store keeps passing its checks.
func FuzzRegistryRecord(f *testing.F) {
	d, err := db.Open("/fr", &db.Options{FS: vfs.NewMem(), Logger: slog.New(slog.DiscardHandler),
		TTLReapInterval: -1, Durability: db.NoSync})
	if err != nil {
		f.Fatal(err)
	}
	defer d.Close()
	r, err := registry.Attach(d, &registry.Options{CheckInterval: -1})
	if err != nil {
		f.Fatal(err)
	}
	defer r.Close()
	ctx := context.Background()
	if err := r.Register(ctx, registry.AgentSpec{ID: "a", Capacity: 2, Capabilities: []string{"gpu"}}); err != nil {
		f.Fatal(err)
	}
	f.Add(uint8(0), []byte("\x01b\x00\x01\x03gpu\x02\x00\x80\x94\xeb\xdc\x07")) // register
	f.Add(uint8(1), []byte("\x01a"))                                            // deregister
	f.Add(uint8(2), []byte("\x01a\x01\x02ok"))                                  // heartbeat
	f.Add(uint8(3), []byte("\x03"))                                             // expire
	f.Add(uint8(4), []byte("\x01p\x01\x02\x00"))                                // pool
	f.Fuzz(func(t *testing.T, kind uint8, body []byte) {
		k := registry.KindRegister + wal.Kind(kind%6)
		before := d.AppliedIndex()
		res, err := d.Propose(ctx, wal.Record{Kind: k, Body: body})
		if err == nil {
			err = res.Err
		}
		if err != nil && !errors.Is(err, db.ErrBadRecord) && !errors.Is(err, registry.ErrNotFound) {
			t.Fatalf("kind %d body %x: untyped error %v", k, body, err)
		}
		if d.AppliedIndex() != before+1 {
			t.Fatalf("applied index %d -> %d", before, d.AppliedIndex())
		}
		if d.AppliedIndex()%64 == 0 {
			if rep, err := d.Check(ctx, nil); err != nil || !rep.OK() {
				t.Fatalf("check after kind %d body %x: %v %+v", k, body, err, rep.Problems)
			}
		}
		r.List(registry.Filter{})
	})
}
