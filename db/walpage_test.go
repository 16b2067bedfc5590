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

// TestLostWALPageKeepsPrefix crashes stores whose WAL lost the end of a
// 32 KiB block: the bytes from some point to the block's end are zeros (the
// page was never written back) while later blocks reached the disk (a
// file's dirty pages are written back in any order). Recovery must stop at
// the hole: every image holds writes 1..j and nothing after.
//
// A new store's first WAL used to be written in Pebble's older chunk format
// (11-byte headers), because Pebble creates it before raising the new store
// to the format version flowdb asks for. In that format a record may begin
// 11 to 18 bytes before a block's end, and Pebble's reader takes zeros there
// for the padding of the newer format (19-byte headers): it skipped to the
// next block, dropped the rest of the record and applied the records after
// it. The queue crash sweep saw this as counters that counted a task whose
// records were gone. db.Open now starts a new store on a WAL in the newer
// format (doc.go, Invariants). Without that rotation, seeds 5, 15, 23, 25
// and 32 fail ("write 858 is missing but k00859 survived").
//
// The stores are written in NoSync mode (every WAL byte unsynced), whose
// WAL chunks claim syncs that never reached the disk: a hole before such a
// claim is what Pebble calls corruption, and Open must cut the WAL at the
// hole instead (the NoSync marker, nosyncfs.go).
//
// FLOWDB_WALPAGE_SEEDS sets the number of stores (default 20, 60 with
// FLOWDB_FULL=1; each store's
// WAL positions differ a little from run to run, as frames carry times).
func TestLostWALPageKeepsPrefix(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const writes = 900 // within a new store's first memtable (256 KiB)
	key := func(i int) []byte { return fmt.Appendf(nil, "k%05d", i) }
	// 20 stores by default, 60 under FLOWDB_FULL; CI's race pass runs fewer.
	seeds := uint64(testutil.Scale("FLOWDB_WALPAGE_SEEDS", 20, 60))
	images, cut := 0, 0
	for seed := uint64(1); seed <= seeds; seed++ {
		rng := rand.New(rand.NewPCG(seed, 1))
		vals := make([][]byte, writes+1)
		fs := vfs.NewCrashableMem()
		// Nothing is synced after Open: the WAL is all unsynced data, as
		// whatever follows a hole must be.
		d := testutil.Open(t, "/w", &db.Options{FS: fs, Logger: testutil.Quiet(), TTLReapInterval: -1, Durability: db.NoSync})
		for i := 1; i <= writes; i++ {
			vals[i] = []byte(strings.Repeat("v", 20+rng.IntN(200)))
			if err := d.Set(ctx, "ns", key(i), vals[i]); err != nil {
				t.Fatal(err)
			}
		}
		image := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 100, RNG: rng})
		if err := d.Close(); err != nil {
			t.Fatal(err)
		}
		names, err := image.List("/w")
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range names {
			if !strings.HasSuffix(n, ".log") {
				continue
			}
			st, err := image.Stat("/w/" + n)
			if err != nil {
				t.Fatal(err)
			}
			const block = 32 << 10
			for b := int64(block); b < st.Size(); b += block {
				for k := int64(11); k < 19; k++ {
					img := image.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 100, RNG: rng})
					f, err := img.OpenReadWrite("/w/"+n, vfs.WriteCategoryUnspecified)
					if err != nil {
						t.Fatal(err)
					}
					if _, err := f.WriteAt(make([]byte, k), b-k); err != nil {
						t.Fatal(err)
					}
					f.Close()
					images++
					where := fmt.Sprintf("seed %d, %s, %d zeros before offset %d", seed, n, k, b)
					d2, err := db.Open("/w", testutil.StoreOptions(img, nil))
					if err != nil {
						t.Fatalf("%s: open: %v", where, err)
					}
					// The keys sort in write order: the store must hold
					// exactly writes 1..n for some n.
					n := 0
					for e, err := range d2.Scan(ctx, "ns", db.ScanOptions{}) {
						if err != nil {
							t.Fatalf("%s: scan: %v", where, err)
						}
						n++
						if string(e.Key) != string(key(n)) {
							t.Errorf("%s: write %d is missing but %s survived", where, n, e.Key)
							break
						}
						if string(e.Value) != string(vals[n]) {
							t.Fatalf("%s: write %d: wrong value", where, n)
						}
					}
					if n < writes {
						cut++
					}
					if rep, err := d2.Check(ctx, nil); err != nil || !rep.OK() {
						t.Errorf("%s: check: %v %+v", where, err, rep)
					}
					d2.Close()
				}
			}
		}
	}
	t.Logf("%d images, %d of them lost a tail of writes", images, cut)
	if cut == 0 {
		t.Fatal("no image lost a write: the zeros never hit a record, so nothing was tested")
	}
}
