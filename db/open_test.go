package db

import (
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// openTestStore opens the store in dir on fs (nil for the operating
// system's) with the options tests use: no logging, no TTL reaper. It
// fails tb if the store cannot open; the caller closes it. Tests of other
// packages use internal/testutil, which db's own tests cannot import (it
// imports db).
func openTestStore(tb testing.TB, dir string, fs vfs.FS) *DB {
	tb.Helper()
	d, err := Open(dir, &Options{FS: fs, Logger: discardLogger(), TTLReapInterval: -1})
	if err != nil {
		tb.Fatal(err)
	}
	return d
}
