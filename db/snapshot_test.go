package db

import (
	"bytes"
	"encoding/binary"
	"errors"
	"log/slog"
	"slices"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/flowdb/flowdb/internal/keys"
	"github.com/flowdb/flowdb/wal"
)

func openShards(tb testing.TB, dataShards int) *DB {
	tb.Helper()
	d, err := Open("store", &Options{FS: vfs.NewMem(), Logger: slog.New(slog.DiscardHandler), TTLReapInterval: -1, DataShards: dataShards})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { d.Close() })
	return d
}

// shardEntries returns shard's keys and values, in key order.
func shardEntries(t *testing.T, d *DB, shard uint32) [][2]string {
	t.Helper()
	lo, hi := keys.ShardRange(shard)
	it, err := d.pdb.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	var out [][2]string
	for ok := it.First(); ok; ok = it.Next() {
		out = append(out, [2]string{string(it.Key()), string(it.Value())})
	}
	return out
}

// applySet applies, as log index index of sa's shard, a frame that sets
// ns/key = value.
func applySet(t *testing.T, sa *ShardApplier, index uint64, ns, key, value string) {
	t.Helper()
	var b Batch
	b.Set(ns, []byte(key), []byte(value))
	f := &wal.Frame{Time: int64(index), Records: []wal.Record{b.Record()}}
	sb := sa.NewBatch(f)
	rs, _, hooks, err := sa.Apply(sb, index, f)
	if err != nil || rs[0].Err != nil {
		t.Fatalf("apply %d: %v %v", index, err, rs)
	}
	if err := sa.Commit(sb); err != nil {
		t.Fatal(err)
	}
	for _, h := range hooks {
		h()
	}
}

// TestShardSnapshot: a shard snapshot holds the shard's keys as of
// PrepareSnapshot, in the documented format; RecoverSnapshot replaces the
// shard's whole range with it, repositions the applier and reloads only the
// machines that live on the shard; damaged or stopped recoveries change
// nothing.
func TestShardSnapshot(t *testing.T) {
	src, dst := openShards(t, 2), openShards(t, 2)
	shard := src.Placement().ShardFor("ns")
	sa, err := src.ShardApplier(shard)
	if err != nil {
		t.Fatal(err)
	}
	applySet(t, sa, 3, "ns", "a", "1")
	applySet(t, sa, 7, "ns", "b", "")
	want := shardEntries(t, src, shard)
	ss := sa.PrepareSnapshot()
	applySet(t, sa, 9, "ns", "c", "after the snapshot")
	var buf bytes.Buffer
	if err := sa.SaveSnapshot(ss, &buf, nil); err != nil {
		t.Fatal(err)
	}
	if err := ss.Close(); err != nil { // closed by SaveSnapshot: a no-op
		t.Fatal(err)
	}

	// The format: per key uvarint len | key | uvarint len | value, then 0.
	var enc []byte
	for _, kv := range want {
		enc = binary.AppendUvarint(enc, uint64(len(kv[0])))
		enc = append(enc, kv[0]...)
		enc = binary.AppendUvarint(enc, uint64(len(kv[1])))
		enc = append(enc, kv[1]...)
	}
	enc = append(enc, 0)
	if !bytes.Equal(buf.Bytes(), enc) {
		t.Fatalf("snapshot bytes %x, want %x", buf.Bytes(), enc)
	}

	var reloads []uint32
	var catalogReloads int
	if err := dst.Attach(Machine{Name: "data", Reload: func(s uint32) error { reloads = append(reloads, s); return nil }}); err != nil {
		t.Fatal(err)
	}
	if err := dst.Attach(Machine{Name: "catalog", Catalog: true, Reload: func(uint32) error { catalogReloads++; return nil }}); err != nil {
		t.Fatal(err)
	}
	dsa, err := dst.ShardApplier(shard)
	if err != nil {
		t.Fatal(err)
	}
	applySet(t, dsa, 1, "ns", "stale", "removed by the recovery")
	before := shardEntries(t, dst, shard)
	damaged := [][]byte{buf.Bytes()[:buf.Len()/2], {5, 'x'}, append([]byte{1, 'z', 1, 'v'}, 0), {0}}
	for _, bad := range damaged {
		if err := dsa.RecoverSnapshot(bytes.NewReader(bad), nil); !errors.Is(err, ErrBadSnapshot) {
			t.Fatalf("damaged snapshot %x: %v", bad[:min(len(bad), 12)], err)
		}
	}
	stop := make(chan struct{})
	close(stop)
	if err := dsa.RecoverSnapshot(bytes.NewReader(buf.Bytes()), stop); !errors.Is(err, ErrSnapshotStopped) {
		t.Fatalf("stopped recovery: %v", err)
	}
	if got := shardEntries(t, dst, shard); !slices.Equal(got, before) || dsa.Applied() != 1 || len(reloads) != 0 {
		t.Fatalf("refused recoveries changed the shard: %q applied %d reloads %v", got, dsa.Applied(), reloads)
	}

	if err := dsa.RecoverSnapshot(bytes.NewReader(buf.Bytes()), nil); err != nil {
		t.Fatal(err)
	}
	if got := shardEntries(t, dst, shard); !slices.Equal(got, want) {
		t.Fatalf("recovered shard %q, want %q", got, want)
	}
	if dsa.Applied() != 7 {
		t.Fatalf("applied %d after recovery, want 7", dsa.Applied())
	}
	if !slices.Equal(reloads, []uint32{shard}) || catalogReloads != 0 {
		t.Fatalf("reloads: data %v, catalog %d; want [%d] and 0", reloads, catalogReloads, shard)
	}
	applySet(t, dsa, 8, "ns", "next", "follows the snapshot") // the applier moved on to 7
}

// TestAttach: a machine's kinds, tables and errors register all or none;
// Load runs once per shard the machine lives on.
func TestAttach(t *testing.T) {
	d := openShards(t, 3)
	nop := func(*Tx, wal.Record) (wal.Result, error) { return wal.Result{}, nil }
	var dataLoads, catalogLoads []uint32
	if err := d.Attach(Machine{Name: "a", Kinds: []KindSpec{{Kind: 200, Name: "a.x", Apply: nop}},
		Tables: []TableSpec{{Table: 0x70, Name: "a.t"}},
		Load:   func(s uint32) error { dataLoads = append(dataLoads, s); return nil }}); err != nil {
		t.Fatal(err)
	}
	if err := d.Attach(Machine{Name: "c", Catalog: true, Load: func(s uint32) error { catalogLoads = append(catalogLoads, s); return nil }}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(dataLoads, []uint32{2, 3, 4}) || !slices.Equal(catalogLoads, []uint32{keys.CatalogShard}) {
		t.Fatalf("loads: data %v, catalog %v", dataLoads, catalogLoads)
	}
	errB := errors.New("b: refused")
	before := d.reg.load()
	err := d.Attach(Machine{Name: "b", Errors: []error{errB},
		Kinds:  []KindSpec{{Kind: 201, Name: "b.y", Apply: nop}, {Kind: 200, Name: "b.dup", Apply: nop}},
		Tables: []TableSpec{{Table: 0x71, Name: "b.t"}}})
	if !errors.Is(err, ErrKindRegistered) {
		t.Fatalf("duplicate kind: %v", err)
	}
	if d.reg.load() != before {
		t.Fatal("a refused machine changed the registry")
	}
	if err := d.Attach(Machine{Name: "b2", Tables: []TableSpec{{Table: 0x70, Name: "dup"}}}); !errors.Is(err, ErrKindRegistered) {
		t.Fatalf("duplicate table: %v", err)
	}
	if err := d.Attach(Machine{Name: "bad", Kinds: []KindSpec{{Kind: 202, Name: "no apply"}}}); !errors.Is(err, ErrInvalidOptions) {
		t.Fatalf("kind without Apply: %v", err)
	}
}
