package testutil

import (
	"log/slog"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/flowdb/flowdb/db"
)

// Quiet returns a logger that discards every record.
func Quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

// StoreOptions returns the options tests open a store with: fs (nil for
// the operating system's), a quiet logger, no TTL reaper, and the clock's
// time when clock is not nil (else the wall clock). The caller may change
// any field before Open.
func StoreOptions(fs vfs.FS, clock *Clock) *db.Options {
	o := &db.Options{FS: fs, Logger: Quiet(), TTLReapInterval: -1}
	if clock != nil {
		o.Now = clock.Now
	}
	return o
}

// Open opens the store in dir with o and fails t if it cannot. The caller
// closes the store.
func Open(t testing.TB, dir string, o *db.Options) *db.DB {
	t.Helper()
	d, err := db.Open(dir, o)
	if err != nil {
		t.Fatalf("open %s: %v", dir, err)
	}
	return d
}

// OpenMem opens a new store on a fresh in-memory file system, with the
// rest of StoreOptions, and closes it when the test ends (closing it
// earlier is fine: Close may be called more than once).
func OpenMem(t testing.TB, clock *Clock) *db.DB {
	t.Helper()
	d := Open(t, "/store", StoreOptions(vfs.NewMem(), clock))
	t.Cleanup(func() { d.Close() })
	return d
}
