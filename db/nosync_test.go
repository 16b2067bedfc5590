package db_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/flowdb/flowdb/db"
	"github.com/flowdb/flowdb/internal/testutil"
)

// TestNoSyncWALCutNeedsMarker checks both sides of the NoSync WAL contract
// (nosyncfs.go): a hole in a WAL whose later chunks claim syncs is cut at
// the last whole record only in a store that was written in NoSync mode (it
// has the marker); in any other store the same damage is corruption and
// Open fails. It also checks that reopening in SyncEachCommit mode removes
// the marker and keeps every write.
func TestNoSyncWALCutNeedsMarker(t *testing.T) {
	ctx := context.Background()
	const marker = "FLOWDB-NOSYNC-WAL"
	fs := vfs.NewCrashableMem()
	d, err := db.Open("/n", &db.Options{FS: fs, Logger: testutil.Quiet(), TTLReapInterval: -1, Durability: db.NoSync})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(7, 7))
	for i := 1; i <= 900; i++ {
		if err := d.Set(ctx, "ns", fmt.Appendf(nil, "k%05d", i), []byte(strings.Repeat("v", 20+rng.IntN(200)))); err != nil {
			t.Fatal(err)
		}
	}
	image := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 100, RNG: rng})
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := image.Stat("/n/" + marker); err != nil {
		t.Fatalf("a NoSync store has no marker: %v", err)
	}
	// Zero 16 bytes before the first block end of the newest WAL.
	names, _ := image.List("/n")
	var wal string
	for _, n := range names {
		if strings.HasSuffix(n, ".log") && n > wal {
			wal = n
		}
	}
	f, err := image.OpenReadWrite("/n/"+wal, vfs.WriteCategoryUnspecified)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(make([]byte, 16), 32<<10-16); err != nil {
		t.Fatal(err)
	}
	f.Close()

	// Without the marker the hole is corruption.
	unmarked := image.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 100, RNG: rng})
	if err := unmarked.Remove("/n/" + marker); err != nil {
		t.Fatal(err)
	}
	if d2, err := db.Open("/n", &db.Options{FS: unmarked, Logger: testutil.Quiet(), TTLReapInterval: -1}); err == nil {
		d2.Close()
		t.Fatal("a store written with real syncs opened over a hole in its synced WAL")
	} else if !strings.Contains(err.Error(), "invalid chunk") {
		t.Fatalf("open failed, but not on the WAL's damage: %v", err)
	}

	// With it, the WAL is cut, a prefix survives, and a SyncEachCommit open
	// flushes and drops the marker.
	d3, err := db.Open("/n", &db.Options{FS: image, Logger: testutil.Quiet(), TTLReapInterval: -1})
	if err != nil {
		t.Fatalf("open with the marker: %v", err)
	}
	n := 0
	for e, err := range d3.Scan(ctx, "ns", db.ScanOptions{}) {
		if err != nil {
			t.Fatal(err)
		}
		n++
		if string(e.Key) != fmt.Sprintf("k%05d", n) {
			t.Fatalf("write %d missing but %s survived", n, e.Key)
		}
	}
	if n == 0 || n >= 900 {
		t.Fatalf("%d of 900 writes survived: the hole should cut a tail", n)
	}
	if _, err := image.Stat("/n/" + marker); err == nil {
		t.Fatal("the marker survived a SyncEachCommit open")
	}
	if err := d3.Set(ctx, "ns", []byte("after"), []byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := d3.Close(); err != nil {
		t.Fatal(err)
	}
	d4, err := db.Open("/n", &db.Options{FS: image, Logger: testutil.Quiet(), TTLReapInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer d4.Close()
	if rep, err := d4.Check(ctx, nil); err != nil || !rep.OK() {
		t.Fatalf("check: %v %+v", err, rep)
	}
	t.Logf("%d of 900 writes kept before the hole", n)
}
