package db_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
	"github.com/flowdb/flowdb/db"
	"github.com/flowdb/flowdb/internal/testutil"
)

func TestKVErrors(t *testing.T) {
	ctx := context.Background()
	d := testutil.OpenMem(t, nil)
	big := func(n int) []byte { return bytes.Repeat([]byte("x"), n) }
	ns65 := strings.Repeat("n", db.MaxNamespaceSize+1)
	cases := []struct {
		name string
		call func() error
		want error
	}{
		{"set empty key", func() error { return d.Set(ctx, "ns", nil, []byte("v")) }, db.ErrEmptyKey},
		{"set key too large", func() error { return d.Set(ctx, "ns", big(db.MaxKeySize+1), nil) }, db.ErrKeyTooLarge},
		{"set max key ok", func() error { return d.Set(ctx, "ns", big(db.MaxKeySize), nil) }, nil},
		{"set namespace too large", func() error { return d.Set(ctx, ns65, []byte("k"), nil) }, db.ErrNamespaceTooLarge},
		{"set value too large", func() error { return d.Set(ctx, "ns", []byte("k"), big(db.MaxValueSize+1)) }, db.ErrValueTooLarge},
		{"set negative ttl", func() error { return d.SetTTL(ctx, "ns", []byte("k"), nil, -time.Second) }, db.ErrInvalidTTL},
		{"set huge ttl", func() error { return d.SetTTL(ctx, "ns", []byte("k"), nil, db.MaxTTL+1) }, db.ErrInvalidTTL},
		{"get empty key", func() error { _, err := d.Get(ctx, "ns", nil); return err }, db.ErrEmptyKey},
		{"get missing", func() error { _, err := d.Get(ctx, "ns", []byte("missing")); return err }, db.ErrNotFound},
		{"get namespace too large", func() error { _, err := d.Get(ctx, ns65, []byte("k")); return err }, db.ErrNamespaceTooLarge},
		{"delete empty key", func() error { return d.Delete(ctx, "ns", nil) }, db.ErrEmptyKey},
		{"delete missing ok", func() error { return d.Delete(ctx, "ns", []byte("missing")) }, nil},
		{"delete prefix too large", func() error { return d.DeletePrefix(ctx, "ns", big(db.MaxKeySize+1)) }, db.ErrKeyTooLarge},
		{"empty batch", func() error { return d.Commit(ctx, d.NewBatch()) }, db.ErrEmptyBatch},
		{"batch with bad op", func() error {
			b := d.NewBatch()
			b.Set("ns", []byte("ok"), nil)
			b.Set("ns", nil, nil)
			return d.Commit(ctx, b)
		}, db.ErrEmptyKey},
		{"scan start > end", func() error {
			_, err := d.NewCursor("ns", db.ScanOptions{Start: []byte("b"), End: []byte("a")})
			return err
		}, db.ErrInvalidRange},
		{"cancelled context", func() error {
			c, cancel := context.WithCancel(ctx)
			cancel()
			return d.Set(c, "ns", []byte("k"), nil)
		}, context.Canceled},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
	// Rejected inputs lost and corrupted nothing: the failed batch's valid
	// op was not applied.
	if _, err := d.Get(ctx, "ns", []byte("ok")); !errors.Is(err, db.ErrNotFound) {
		t.Fatalf("rejected batch partially applied: %v", err)
	}
}

func TestKVBasics(t *testing.T) {
	ctx := context.Background()
	d := testutil.OpenMem(t, nil)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(d.Set(ctx, "a", []byte("k1"), []byte("v1")))
	must(d.Set(ctx, "b", []byte("k1"), []byte("other")))
	must(d.Set(ctx, "", []byte("k1"), []byte("default-ns")))
	for ns, want := range map[string]string{"a": "v1", "b": "other", "": "default-ns"} {
		got, err := d.Get(ctx, ns, []byte("k1"))
		must(err)
		if string(got) != want {
			t.Fatalf("ns %q: got %q want %q", ns, got, want)
		}
	}
	must(d.Set(ctx, "a", []byte("k1"), []byte("v2")))
	if got, _ := d.Get(ctx, "a", []byte("k1")); string(got) != "v2" {
		t.Fatalf("overwrite: got %q", got)
	}
	// Empty value is a value, not an absence.
	must(d.Set(ctx, "a", []byte("empty"), nil))
	if got, err := d.Get(ctx, "a", []byte("empty")); err != nil || len(got) != 0 || got == nil {
		t.Fatalf("empty value: %q %v", got, err)
	}
	must(d.Delete(ctx, "a", []byte("k1")))
	if _, err := d.Get(ctx, "a", []byte("k1")); !errors.Is(err, db.ErrNotFound) {
		t.Fatalf("after delete: %v", err)
	}
	// Namespaces are isolated from each other, including prefixes of names.
	must(d.Set(ctx, "ab", []byte("k1"), []byte("x")))
	must(d.DeletePrefix(ctx, "a", nil))
	if _, err := d.Get(ctx, "ab", []byte("k1")); err != nil {
		t.Fatalf("DeletePrefix of ns a touched ns ab: %v", err)
	}
	if _, err := d.Get(ctx, "b", []byte("k1")); err != nil {
		t.Fatalf("DeletePrefix of ns a touched ns b: %v", err)
	}
}

func TestScan(t *testing.T) {
	ctx := context.Background()
	d := testutil.OpenMem(t, nil)
	b := d.NewBatch()
	for i := 0; i < 50; i++ {
		b.Set("s", []byte(fmt.Sprintf("user/%02d", i)), []byte(fmt.Sprint(i)))
	}
	b.Set("s", []byte("zzz"), []byte("last"))
	b.Set("s", []byte("aaa"), []byte("first"))
	b.Set("t", []byte("user/00"), []byte("other ns"))
	if err := d.Commit(ctx, b); err != nil {
		t.Fatal(err)
	}
	collect := func(o db.ScanOptions) []string {
		t.Helper()
		var out []string
		for e, err := range d.Scan(ctx, "s", o) {
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, string(e.Key))
		}
		return out
	}
	if got := collect(db.ScanOptions{}); len(got) != 52 || got[0] != "aaa" || got[51] != "zzz" {
		t.Fatalf("full scan: %d keys, %v..", len(got), got[:2])
	}
	if got := collect(db.ScanOptions{Prefix: []byte("user/")}); len(got) != 50 || got[0] != "user/00" {
		t.Fatalf("prefix scan: %v", got)
	}
	got := collect(db.ScanOptions{Prefix: []byte("user/"), Start: []byte("user/10"), End: []byte("user/15"), Reverse: true})
	if strings.Join(got, ",") != "user/14,user/13,user/12,user/11,user/10" {
		t.Fatalf("bounded reverse scan: %v", got)
	}
	if got := collect(db.ScanOptions{Reverse: true, Limit: 3}); strings.Join(got, ",") != "zzz,user/49,user/48" {
		t.Fatalf("reverse limit: %v", got)
	}
	// DeletePrefix removes exactly the prefix.
	if err := d.DeletePrefix(ctx, "s", []byte("user/1")); err != nil {
		t.Fatal(err)
	}
	if got := collect(db.ScanOptions{Prefix: []byte("user/")}); len(got) != 40 {
		t.Fatalf("after DeletePrefix user/1: %d keys", len(got))
	}
	// The scan is a snapshot: a write after the cursor opens is not seen.
	c, err := d.NewCursor("s", db.ScanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Set(ctx, "s", []byte("new"), nil); err != nil {
		t.Fatal(err)
	}
	n := 0
	for ok := c.First(); ok; ok = c.Next() {
		if string(c.Key()) == "new" {
			t.Fatal("cursor saw a later write")
		}
		n++
	}
	if err := c.Close(); err != nil || n != 42 {
		t.Fatalf("cursor: %d entries, %v", n, err)
	}
}

func TestTTL(t *testing.T) {
	ctx := context.Background()
	clock := testutil.NewClock()
	d := testutil.OpenMem(t, clock)
	if err := d.SetTTL(ctx, "s", []byte("short"), []byte("v"), time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := d.SetTTL(ctx, "s", []byte("long"), []byte("v"), time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := d.SetTTL(ctx, "s", []byte("reset"), []byte("old"), time.Minute); err != nil {
		t.Fatal(err)
	}
	e, err := d.GetEntry(ctx, "s", []byte("short"))
	if err != nil || !e.ExpiresAt.Equal(clock.Now().Add(time.Minute)) {
		t.Fatalf("entry %v %v", e, err)
	}
	clock.Advance(30 * time.Second)
	// Re-set without TTL: must survive the old TTL.
	if err := d.Set(ctx, "s", []byte("reset"), []byte("new")); err != nil {
		t.Fatal(err)
	}
	clock.Advance(31 * time.Second)
	// Invisible at once, before any reaping.
	if _, err := d.Get(ctx, "s", []byte("short")); !errors.Is(err, db.ErrNotFound) {
		t.Fatalf("expired key visible: %v", err)
	}
	var keysSeen []string
	for e, err := range d.Scan(ctx, "s", db.ScanOptions{}) {
		if err != nil {
			t.Fatal(err)
		}
		keysSeen = append(keysSeen, string(e.Key))
	}
	if strings.Join(keysSeen, ",") != "long,reset" {
		t.Fatalf("scan after expiry: %v", keysSeen)
	}
	n, err := d.ReapExpired(ctx)
	if err != nil || n != 1 {
		t.Fatalf("reaped %d, %v; want 1 (reset was re-set without TTL)", n, err)
	}
	if v, err := d.Get(ctx, "s", []byte("reset")); err != nil || string(v) != "new" {
		t.Fatalf("re-set key: %q %v", v, err)
	}
	// Reaping again finds nothing: the stale index entry went with the first pass.
	if n, err := d.ReapExpired(ctx); err != nil || n != 0 {
		t.Fatalf("second reap: %d %v", n, err)
	}
	rep, err := d.Check(ctx, nil)
	if err != nil || !rep.OK() {
		t.Fatalf("check: %+v %v", rep, err)
	}
	if rep.ByTable["kv.ttl"] != 1 { // only "long" remains indexed
		t.Fatalf("ttl index entries: %d", rep.ByTable["kv.ttl"])
	}
	if m := d.Metrics(); m.TTLExpired != 1 {
		t.Fatalf("metrics TTLExpired = %d", m.TTLExpired)
	}
}

func TestReopenKeepsData(t *testing.T) {
	ctx := context.Background()
	fs := vfs.NewMem()
	d := testutil.Open(t, "/s", &db.Options{FS: fs, Logger: testutil.Quiet()})
	for i := 0; i < 100; i++ {
		if err := d.Set(ctx, "n", []byte(fmt.Sprint(i)), []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	idx := d.AppliedIndex()
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	d = testutil.Open(t, "/s", &db.Options{FS: fs, Logger: testutil.Quiet()})
	defer d.Close()
	if d.AppliedIndex() != idx {
		t.Fatalf("applied index %d after reopen, want %d", d.AppliedIndex(), idx)
	}
	for i := 0; i < 100; i++ {
		if _, err := d.Get(ctx, "n", []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
}

func TestOpenErrors(t *testing.T) {
	fs := vfs.NewMem()
	if _, err := db.Open("/none", &db.Options{FS: fs, ErrorIfNotExists: true, Logger: testutil.Quiet()}); !errors.Is(err, db.ErrNotExist) {
		t.Fatalf("missing store: %v", err)
	}
	if _, err := db.Open("/x", &db.Options{FS: fs, CacheSize: -1}); !errors.Is(err, db.ErrInvalidOptions) {
		t.Fatalf("bad options: %v", err)
	}
	dir := t.TempDir()
	d := testutil.Open(t, dir, &db.Options{Logger: testutil.Quiet()})
	defer d.Close()
	if _, err := db.Open(dir, &db.Options{Logger: testutil.Quiet()}); !errors.Is(err, db.ErrLocked) {
		t.Fatalf("second open of a locked dir: %v", err)
	}
	ro, err := db.Open(dir, &db.Options{Logger: testutil.Quiet(), ReadOnly: true})
	if err == nil {
		ro.Close()
		t.Fatal("read-only open of a locked dir succeeded")
	}
}

func TestReadOnly(t *testing.T) {
	ctx := context.Background()
	fs := vfs.NewMem()
	d := testutil.Open(t, "/store", testutil.StoreOptions(fs, nil))
	if err := d.Set(ctx, "n", []byte("k"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	d.Close()
	ro := testutil.Open(t, "/store", &db.Options{FS: fs, ReadOnly: true, Logger: testutil.Quiet()})
	defer ro.Close()
	if v, err := ro.Get(ctx, "n", []byte("k")); err != nil || string(v) != "v" {
		t.Fatalf("read-only get: %q %v", v, err)
	}
	if err := ro.Set(ctx, "n", []byte("k"), nil); !errors.Is(err, db.ErrReadOnly) {
		t.Fatalf("read-only set: %v", err)
	}
}

// TestCloseWhileBusy closes the store under concurrent writers, readers and
// open cursors: every call either succeeds or gets ErrClosed, and every
// acknowledged write is there after reopening.
func TestCloseWhileBusy(t *testing.T) {
	ctx := context.Background()
	fs := vfs.NewMem()
	d := testutil.Open(t, "/s", &db.Options{FS: fs, Logger: testutil.Quiet()})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var acked [][]byte
	bad := make(chan error, 64)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; ; i++ {
				k := []byte(fmt.Sprintf("w%d-%d", w, i))
				err := d.Set(ctx, "n", k, k)
				if errors.Is(err, db.ErrClosed) {
					return
				}
				if err != nil {
					bad <- err
					return
				}
				mu.Lock()
				acked = append(acked, k)
				mu.Unlock()
				if _, err := d.Get(ctx, "n", k); err != nil && !errors.Is(err, db.ErrClosed) {
					bad <- fmt.Errorf("read own write: %w", err)
					return
				}
			}
		}(w)
	}
	c, err := d.NewCursor("n", db.ScanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(bad)
	for err := range bad {
		t.Fatal(err)
	}
	if c.First() || !errors.Is(c.Err(), db.ErrClosed) {
		t.Fatalf("cursor after Close: err %v", c.Err())
	}
	if err := d.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	d = testutil.Open(t, "/s", &db.Options{FS: fs, Logger: testutil.Quiet()})
	defer d.Close()
	if len(acked) == 0 {
		t.Fatal("no write acknowledged before Close")
	}
	for _, k := range acked {
		if _, err := d.Get(ctx, "n", k); err != nil {
			t.Fatalf("acknowledged %s lost: %v", k, err)
		}
	}
}

// TestGroupCommit: 32 concurrent writers on a real disk share fsyncs; one
// WAL fsync per write would mean group commit is not working.
func TestGroupCommit(t *testing.T) {
	ctx := context.Background()
	var syncs atomic.Int64
	fs := errorfs.Wrap(vfs.Default, errorfs.InjectorFunc(func(op errorfs.Op) error {
		if strings.HasSuffix(op.Path, ".log") &&
			(op.Kind == errorfs.OpFileSync || op.Kind == errorfs.OpFileSyncData || op.Kind == errorfs.OpFileSyncTo) {
			syncs.Add(1)
		}
		return nil
	}))
	d := testutil.Open(t, t.TempDir(), testutil.StoreOptions(fs, nil))
	defer d.Close()
	before := syncs.Load()
	var wg sync.WaitGroup
	for w := 0; w < 32; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				if err := d.Set(ctx, "g", []byte(fmt.Sprintf("%d/%d", w, i)), []byte("v")); err != nil {
					t.Error(err)
					return
				}
			}
		}(w)
	}
	wg.Wait()
	n := syncs.Load() - before
	if m := d.Metrics(); m.Records != 1600 {
		t.Fatalf("records %d", m.Records)
	}
	if n >= 1600/2 {
		t.Fatalf("%d WAL fsyncs for 1600 acknowledged writes from 32 writers: not grouping", n)
	}
	t.Logf("group commit: 1600 writes, %d WAL fsyncs (%.1f writes per fsync)", n, 1600/float64(n))
}

// TestBackgroundReaper lets the reaper goroutine (not a direct call) reclaim
// expired keys.
func TestBackgroundReaper(t *testing.T) {
	ctx := context.Background()
	d := testutil.Open(t, "/s", &db.Options{FS: vfs.NewMem(), Logger: testutil.Quiet(), TTLReapInterval: 5 * time.Millisecond})
	defer d.Close()
	b := d.NewBatch()
	for i := 0; i < 50; i++ {
		b.SetTTL("s", []byte(fmt.Sprint(i)), []byte("v"), 10*time.Millisecond)
	}
	b.Set("s", []byte("keep"), []byte("v"))
	if err := d.Commit(ctx, b); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for d.Metrics().TTLExpired < 50 {
		if time.Now().After(deadline) {
			t.Fatalf("reaper reclaimed %d of 50 keys in 10s", d.Metrics().TTLExpired)
		}
		time.Sleep(5 * time.Millisecond)
	}
	rep, err := d.Check(ctx, nil)
	if err != nil || rep.ByTable["kv"] != 1 || rep.ByTable["kv.ttl"] != 0 {
		t.Fatalf("after reaping: %+v %v", rep.ByTable, err)
	}
}

// TestCreationIsTwoPhase: a directory with foreign files is refused and left
// alone; a creation interrupted before it completed is cleared and redone.
func TestCreationIsTwoPhase(t *testing.T) {
	fs := vfs.NewMem()
	fs.MkdirAll("/foreign", 0o755)
	f, _ := fs.Create("/foreign/MANIFEST-000001", vfs.WriteCategoryUnspecified)
	f.Write([]byte("not ours"))
	f.Close()
	if _, err := db.Open("/foreign", &db.Options{FS: fs, Logger: testutil.Quiet()}); !errors.Is(err, db.ErrForeign) {
		t.Fatalf("foreign dir: %v", err)
	}
	if ls, _ := fs.List("/foreign"); !slices.Equal(ls, []string{"MANIFEST-000001"}) {
		t.Fatalf("foreign directory changed: %v", ls) // no LOCK either
	}
	// An interrupted creation: the creating marker plus half-made files.
	fs.MkdirAll("/half", 0o755)
	for _, n := range []string{"FLOWDB.creating", "marker.manifest.000001.MANIFEST-000001", "000002.log"} {
		f, _ := fs.Create("/half/"+n, vfs.WriteCategoryUnspecified)
		f.Close()
	}
	d, err := db.Open("/half", testutil.StoreOptions(fs, nil))
	if err != nil {
		t.Fatalf("interrupted creation not recovered: %v", err)
	}
	if err := d.Set(context.Background(), "n", []byte("k"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	d.Close()
	if ls, _ := fs.List("/half"); slices.Contains(ls, "FLOWDB.creating") || !slices.Contains(ls, "FLOWDB") {
		t.Fatalf("markers after creation: %v", ls)
	}
}
