package raftsm

import (
	"bytes"
	"errors"
	"path/filepath"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/flowdb/flowdb/db"
	"github.com/flowdb/flowdb/internal/keys"
	"github.com/flowdb/flowdb/internal/testutil"
	"github.com/flowdb/flowdb/wal"
	sm "github.com/lni/dragonboat/v4/statemachine"
)

func openStore(t *testing.T, dir string) *db.DB {
	t.Helper()
	d := testutil.Open(t, dir, testutil.StoreOptions(nil, nil))
	return d
}

// openMemSM opens a store on an in-memory file system and the state machine
// of its first data shard, its high-water mark beside the store.
func openMemSM(t *testing.T) (*db.DB, *StateMachine) {
	t.Helper()
	d := testutil.Open(t, "/s", testutil.StoreOptions(vfs.NewMem(), nil))
	s := New(d, keys.FirstData, "/s")
	if _, err := s.Open(nil); err != nil {
		t.Fatal(err)
	}
	return d, s
}

func setFrame(t *testing.T, key, value string) []byte {
	t.Helper()
	var b db.Batch
	b.Set("kv", []byte(key), []byte(value))
	cmd, _, err := wal.AppendFrame(nil, &wal.Frame{Time: 1, Records: []wal.Record{b.Record()}}, wal.EncodeOptions{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return cmd
}

// TestUpdate: entries apply in one batch with gaps between Raft indexes;
// results say what each record did; an entry at or below the applied index
// (re-delivered after a restart) changes nothing; a non-frame is refused.
func TestUpdate(t *testing.T) {
	dir := t.TempDir()
	d := openStore(t, filepath.Join(dir, "s"))
	defer d.Close()
	s := New(d, keys.FirstData, dir)
	if idx, err := s.Open(nil); err != nil || idx != 0 {
		t.Fatalf("open: %d %v", idx, err)
	}
	var bad db.Batch
	bad.Set("kv", nil, []byte("empty key")) // rejected by apply
	badCmd, _, _ := wal.AppendFrame(nil, &wal.Frame{Records: []wal.Record{bad.Record()}}, wal.EncodeOptions{}, nil)
	out, err := s.Update([]sm.Entry{{Index: 3, Cmd: setFrame(t, "a", "1")}, {Index: 7, Cmd: badCmd}, {Index: 8, Cmd: setFrame(t, "b", "2")}})
	if err != nil {
		t.Fatal(err)
	}
	if out[0].Result.Value != 1 || out[2].Result.Value != 1 || out[1].Result.Value != 0 {
		t.Fatalf("results %+v", out)
	}
	rs, err := d.DecodeResults(out[1].Result.Data)
	if err != nil || len(rs) != 1 || !errors.Is(rs[0].Err, db.ErrBadRecord) {
		t.Fatalf("a rejected record's result does not carry its typed error: %+v %v", rs, err)
	}
	if idx, _ := s.Lookup(nil); idx.(uint64) != 8 {
		t.Fatalf("applied %v, want 8", idx)
	}
	// Re-delivered entries are skipped.
	if _, err := s.Update([]sm.Entry{{Index: 8, Cmd: setFrame(t, "b", "changed")}}); err != nil {
		t.Fatal(err)
	}
	if v, err := d.Get(t.Context(), "kv", []byte("b")); err != nil || string(v) != "2" {
		t.Fatalf("b = %q %v", v, err)
	}
	if _, err := s.Update([]sm.Entry{{Index: 9, Cmd: []byte("not a frame")}}); !errors.Is(err, ErrBadEntry) {
		t.Fatalf("garbage entry: %v", err)
	}
	// Compressed frames, several in one Update: each keeps its own records.
	var es []sm.Entry
	for i, kv := range [][2]string{{"c", "compressed-1"}, {"d", "compressed-2"}} {
		var b db.Batch
		b.Set("kv", []byte(kv[0]), bytes.Repeat([]byte(kv[1]), 40))
		cmd, _, err := wal.AppendFrame(nil, &wal.Frame{Time: 1, Records: []wal.Record{b.Record()}},
			wal.EncodeOptions{Compression: wal.CompressS2, Threshold: 1}, nil)
		if err != nil {
			t.Fatal(err)
		}
		es = append(es, sm.Entry{Index: uint64(10 + i), Cmd: cmd})
	}
	if _, err := s.Update(es); err != nil {
		t.Fatal(err)
	}
	for _, kv := range [][2]string{{"c", "compressed-1"}, {"d", "compressed-2"}} {
		if v, err := d.Get(t.Context(), "kv", []byte(kv[0])); err != nil || !bytes.Equal(v, bytes.Repeat([]byte(kv[1]), 40)) {
			t.Fatalf("%s = %q %v", kv[0], v, err)
		}
	}
}

// TestOpenRefusesBackwards: after Sync recorded index 8, a store holding
// less (an older copy put in its place) is refused; the real one opens.
func TestOpenRefusesBackwards(t *testing.T) {
	dir := t.TempDir()
	d := openStore(t, filepath.Join(dir, "s"))
	s := New(d, keys.FirstData, dir)
	if _, err := s.Open(nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Update([]sm.Entry{{Index: 8, Cmd: setFrame(t, "a", "1")}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	d.Close()
	older := openStore(t, filepath.Join(dir, "older"))
	if _, err := New(older, keys.FirstData, dir).Open(nil); !errors.Is(err, ErrIndexBehind) {
		t.Fatalf("older store: %v", err)
	}
	older.Close()
	d = openStore(t, filepath.Join(dir, "s"))
	defer d.Close()
	if idx, err := New(d, keys.FirstData, dir).Open(nil); err != nil || idx != 8 {
		t.Fatalf("reopen: %d %v", idx, err)
	}
}

// TestSnapshot: a snapshot streamed from one store and recovered into a
// fresh one gives the same shard range and applied index; damaged snapshots
// are refused with ErrBadSnapshot and never panic.
func TestSnapshot(t *testing.T) {
	dir := t.TempDir()
	d := openStore(t, filepath.Join(dir, "a"))
	defer d.Close()
	s := New(d, keys.FirstData, dir)
	s.Open(nil)
	var es []sm.Entry
	for i := range 50 {
		es = append(es, sm.Entry{Index: uint64(2*i + 1), Cmd: setFrame(t, string(rune('a'+i%26))+string(rune('a'+i/26)), "v")})
	}
	if _, err := s.Update(es); err != nil {
		t.Fatal(err)
	}
	ctx, err := s.PrepareSnapshot()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := s.SaveSnapshot(ctx, &buf, nil); err != nil {
		t.Fatal(err)
	}
	d2 := openStore(t, filepath.Join(dir, "b"))
	defer d2.Close()
	markB := t.TempDir()
	s2 := New(d2, keys.FirstData, markB)
	s2.Open(nil)
	if err := s2.RecoverFromSnapshot(bytes.NewReader(buf.Bytes()), nil); err != nil {
		t.Fatal(err)
	}
	h1, n1 := shardHash(t, d)
	h2, n2 := shardHash(t, d2)
	if h1 != h2 || n1 != n2 {
		t.Fatalf("recovered shard differs: %x/%d vs %x/%d", h2, n2, h1, n1)
	}
	if a, _ := s2.Lookup(nil); a.(uint64) != 99 {
		t.Fatalf("applied after recovery %v, want 99", a)
	}
	for _, bad := range [][]byte{buf.Bytes()[:buf.Len()/2], {5, 'x'}, {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, append([]byte{1, 'z', 1, 'v'}, 0)} {
		if err := s2.RecoverFromSnapshot(bytes.NewReader(bad), nil); !errors.Is(err, ErrBadSnapshot) {
			t.Fatalf("damaged snapshot %q: %v", bad[:min(len(bad), 12)], err)
		}
	}
}

// FuzzRecoverFromSnapshot: arbitrary snapshot bytes never panic and are
// either recovered or refused with ErrBadSnapshot.
func FuzzRecoverFromSnapshot(f *testing.F) {
	f.Add([]byte{0})
	f.Add([]byte{5, 0, 0, 0, 2, 'k', 1, 'v', 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		// An in-memory store (and high-water mark) per input: a fresh state
		// for each, at in-memory speed.
		d, s := openMemSM(t)
		defer d.Close()
		before, _ := shardHash(t, d)
		err := s.RecoverFromSnapshot(bytes.NewReader(b), nil)
		if err != nil && !errors.Is(err, ErrBadSnapshot) {
			t.Fatal(err)
		}
		if after, _ := shardHash(t, d); err != nil && after != before {
			t.Fatal("a refused snapshot changed the shard")
		}
	})
}

// TestDedup: a retried frame (same Origin) applies once and answers with
// the first application's results, even when the retry lands in the same
// Update as the original.
func TestDedup(t *testing.T) {
	dir := t.TempDir()
	d := openStore(t, filepath.Join(dir, "s"))
	defer d.Close()
	s := New(d, keys.FirstData, dir)
	if _, err := s.Open(nil); err != nil {
		t.Fatal(err)
	}
	frame := func(o wal.Origin, value string, empty bool) []byte {
		var b db.Batch
		if empty {
			b.Set("kv", nil, []byte(value)) // rejected by apply
		} else {
			b.Set("kv", []byte("x"), []byte(value))
		}
		cmd, _, err := wal.AppendFrame(nil, &wal.Frame{Origin: o, Time: 1, Records: []wal.Record{b.Record()}}, wal.EncodeOptions{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	a := wal.Origin{ID: 7, Seq: 1}
	rej := wal.Origin{ID: 7, Seq: 2}
	out, err := s.Update([]sm.Entry{
		{Index: 1, Cmd: frame(a, "1", false)},
		{Index: 2, Cmd: frame(wal.Origin{}, "2", false)},
		{Index: 3, Cmd: frame(a, "1", false)}, // retry in the same batch
		{Index: 4, Cmd: frame(rej, "3", true)},
	})
	if err != nil {
		t.Fatal(err)
	}
	if v, err := d.Get(t.Context(), "kv", []byte("x")); string(v) != "2" {
		t.Fatalf("x = %q (%v) after a retried frame; want 2 (the retry applied again)", v, err)
	}
	if out[2].Result.Value != 1 {
		t.Fatalf("retry result %+v, want the first application's", out[2].Result)
	}
	// A later retry of the rejected frame answers with the kept, typed error.
	out, err = s.Update([]sm.Entry{{Index: 9, Cmd: frame(rej, "3", true)}, {Index: 10, Cmd: frame(a, "1", false)}})
	if err != nil {
		t.Fatal(err)
	}
	rs, err := d.DecodeResults(out[0].Result.Data)
	if err != nil || len(rs) != 1 || !errors.Is(rs[0].Err, db.ErrBadRecord) {
		t.Fatalf("kept results of a rejected frame: %+v %v", rs, err)
	}
	if v, _ := d.Get(t.Context(), "kv", []byte("x")); string(v) != "2" {
		t.Fatalf("x = %q after retries; want 2", v)
	}
	if idx, _ := s.Lookup(nil); idx.(uint64) != 10 {
		t.Fatalf("applied %v, want 10", idx)
	}
}

// TestLeadsBeforeStart: the store's background loops are attached before
// Open starts the NodeHost and may ask Leads in between (a CI race run
// caught the registry loop doing so); the answer is no, not a nil
// dereference.
func TestLeadsBeforeStart(t *testing.T) {
	var n Node
	if n.Leads(1) {
		t.Fatal("a node without a NodeHost leads")
	}
}
