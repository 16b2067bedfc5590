package db_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/flowdb/flowdb/db"
	"github.com/flowdb/flowdb/internal/testutil"
)

// damage writes raw bytes behind flowdb's back, as disk corruption or a bug
// would, then reopens the store for Check.
func damage(t *testing.T, fs vfs.FS, fn func(p *pebble.DB)) *db.DB {
	t.Helper()
	p, err := pebble.Open("/store", &pebble.Options{FS: fs})
	if err != nil {
		t.Fatal(err)
	}
	fn(p)
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	d := testutil.Open(t, "/store", &db.Options{FS: fs, Logger: testutil.Quiet(), TTLReapInterval: -1, LogRetention: 100})
	t.Cleanup(func() { d.Close() })
	return d
}

func seeded(t *testing.T) vfs.FS {
	fs := vfs.NewMem()
	d := testutil.Open(t, "/store", &db.Options{FS: fs, Logger: testutil.Quiet(), TTLReapInterval: -1, LogRetention: 100})
	ctx := context.Background()
	for i := 0; i < 20; i++ {
		if err := d.Set(ctx, "n", []byte{byte('a' + i)}, []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	if rep, err := d.Check(ctx, nil); err != nil || !rep.OK() || rep.Frames != 20 || rep.AppliedIndex != 20 {
		t.Fatalf("healthy store: %+v %v", rep, err)
	}
	d.Close()
	return fs
}

func logKey(i uint64) []byte {
	k := []byte{0, 0, 0, 0, 0x02}
	return binary.BigEndian.AppendUint64(k, i)
}

func TestCheckFindsDamage(t *testing.T) {
	cases := []struct {
		name, want string
		fn         func(p *pebble.DB)
	}{
		{"flipped frame byte", "checksum mismatch", func(p *pebble.DB) {
			v, c, _ := p.Get(logKey(7))
			bad := append([]byte(nil), v...)
			c.Close()
			bad[len(bad)/2] ^= 0x40
			p.Set(logKey(7), bad, pebble.Sync)
		}},
		{"missing frame", "gap in the command log", func(p *pebble.DB) { p.Delete(logKey(9), pebble.Sync) }},
		{"bad kv value", "bad kv value header", func(p *pebble.DB) {
			p.Set([]byte{0, 0, 0, 2, 0x10, 1, 'n', 'z', 'z'}, []byte{0xff, 1, 2}, pebble.Sync)
		}},
		{"unknown table", "unknown table", func(p *pebble.DB) { p.Set([]byte{0, 0, 0, 2, 0x7f, 1}, nil, pebble.Sync) }},
		{"applied index behind log", "applied index", func(p *pebble.DB) {
			v := make([]byte, 16)
			binary.BigEndian.PutUint64(v, 19)
			p.Set([]byte("\x00\x00\x00\x00\x01applied"), v, pebble.Sync)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := damage(t, seeded(t), tc.fn)
			rep, err := d.Check(context.Background(), nil)
			if err != nil {
				t.Fatal(err)
			}
			if rep.OK() {
				t.Fatal("check found no damage")
			}
			if !strings.Contains(rep.Problems[0].Err, tc.want) {
				t.Fatalf("problem %q, want mention of %q", rep.Problems[0].Err, tc.want)
			}
		})
	}
}

// TestCheckFindsDiskCorruption flips bytes inside the sstables on disk.
func TestCheckFindsDiskCorruption(t *testing.T) {
	dir := t.TempDir()
	// No command log: the table then holds only kv blocks after the meta keys.
	d := testutil.Open(t, dir, testutil.StoreOptions(nil, nil))
	ctx := context.Background()
	b := d.NewBatch()
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 5000; i++ {
		v := make([]byte, 100) // incompressible, so the table has many small blocks
		for j := range v {
			v[j] = byte(rng.Uint32())
		}
		b.Set("n", fmt.Appendf(nil, "key-%06d", i), v)
	}
	if err := d.Commit(ctx, b); err != nil {
		t.Fatal(err)
	}
	if err := d.Pebble().Flush(); err != nil {
		t.Fatal(err)
	}
	d.Close()
	ssts, _ := filepath.Glob(filepath.Join(dir, "*.sst"))
	if len(ssts) == 0 {
		t.Fatal("no sstable written")
	}
	// Damage the largest table, which holds the key-value data. (A new
	// store also has a small one from Open's first flush, holding only
	// store metadata that Open must read.)
	largest, size := "", int64(0)
	for _, f := range ssts {
		if st, err := os.Stat(f); err == nil && st.Size() > size {
			largest, size = f, st.Size()
		}
	}
	data, err := os.ReadFile(largest)
	if err != nil {
		t.Fatal(err)
	}
	for i := len(data) / 3; i < 2*len(data)/3; i += 997 { // data blocks, not the first (meta) block
		data[i] ^= 0xff
	}
	os.WriteFile(largest, data, 0o600)
	d, err = db.Open(dir, testutil.StoreOptions(nil, nil))
	if err != nil {
		t.Fatalf("open failed; only data blocks were damaged: %v", err)
	}
	defer d.Close()
	rep, err := d.Check(ctx, nil)
	if err == nil && rep.OK() {
		t.Fatal("check missed corrupted sstables")
	}
	if err == nil {
		t.Logf("check: %d problems, first: %s", len(rep.Problems), rep.Problems[0].Err)
		// Readable: the damaged file, not Pebble's carrier placeholder.
		for _, p := range rep.Problems {
			if strings.Contains(p.Err, "detail carrier") || !strings.Contains(p.Err, ".sst") {
				t.Errorf("problem does not name the damaged table: %s", p.Err)
			}
		}
	}
}

// TestLogRetentionIsAStoreProperty opens a store with the log on, then with
// the default options (as flowctl does), then turns the log off: the log never
// gets a hole and Check stays clean throughout.
func TestLogRetentionIsAStoreProperty(t *testing.T) {
	ctx := context.Background()
	fs := vfs.NewMem()
	step := func(retention, writes, wantFrames int) {
		t.Helper()
		d := testutil.Open(t, "/r", &db.Options{FS: fs, Logger: testutil.Quiet(), TTLReapInterval: -1, LogRetention: retention})
		defer d.Close()
		for i := 0; i < writes; i++ {
			if err := d.Set(ctx, "n", []byte(fmt.Sprint(i)), nil); err != nil {
				t.Fatal(err)
			}
		}
		rep, err := d.Check(ctx, nil)
		if err != nil || !rep.OK() || rep.Frames != wantFrames {
			t.Fatalf("retention %d: %d frames (want %d), problems %+v, %v", retention, rep.Frames, wantFrames, rep.Problems, err)
		}
	}
	step(100, 5, 5) // log on
	step(0, 5, 10)  // default options keep the store's setting
	step(-1, 5, 0)  // off: kept frames dropped
	step(0, 5, 0)   // stays off
	step(100, 3, 3) // on again: a fresh log, no hole
}
