package db_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
	"github.com/flowdb/flowdb/db"
	"github.com/flowdb/flowdb/internal/testutil"
)

// TestFailedSyncIsFatal fails the WAL fsync once the store is running: the
// write that needed it is not acknowledged, the engine refuses every later
// write with ErrFatal, and what was acknowledged before is intact on reopen.
func TestFailedSyncIsFatal(t *testing.T) {
	ctx := context.Background()
	mem := vfs.NewCrashableMem()
	var failing atomic.Bool
	inj := errorfs.InjectorFunc(func(op errorfs.Op) error {
		if failing.Load() && strings.HasSuffix(op.Path, ".log") &&
			(op.Kind == errorfs.OpFileSync || op.Kind == errorfs.OpFileSyncData || op.Kind == errorfs.OpFileSyncTo) {
			return errorfs.ErrInjected
		}
		return nil
	})
	d := testutil.Open(t, "/f", &db.Options{FS: errorfs.Wrap(mem, inj), Logger: testutil.Quiet(), TTLReapInterval: -1})
	for i := 0; i < 10; i++ {
		if err := d.Set(ctx, "n", []byte(fmt.Sprint(i)), []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	failing.Store(true)
	if err := d.Set(ctx, "n", []byte("doomed"), []byte("v")); !errors.Is(err, db.ErrFatal) {
		t.Fatalf("write whose fsync failed: got %v, want ErrFatal", err)
	}
	failing.Store(false)
	if err := d.Set(ctx, "n", []byte("after"), []byte("v")); !errors.Is(err, db.ErrFatal) {
		t.Fatalf("write after a failed fsync: got %v, want ErrFatal", err)
	}
	d.Close()
	d = testutil.Open(t, "/f", &db.Options{FS: mem.CrashClone(vfs.CrashCloneCfg{}), Logger: testutil.Quiet(), TTLReapInterval: -1})
	defer d.Close()
	for i := 0; i < 10; i++ {
		if _, err := d.Get(ctx, "n", []byte(fmt.Sprint(i))); err != nil {
			t.Fatalf("acknowledged key %d lost: %v", i, err)
		}
	}
	if _, err := d.Get(ctx, "n", []byte("after")); !errors.Is(err, db.ErrNotFound) {
		t.Fatalf("write refused with ErrFatal is present: %v", err)
	}
}
