package db

import (
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// TestYieldFSWrapsTablesOnly checks that only table files yield on write:
// the WAL, the manifest and the rest are Pebble's own files, passed through.
func TestYieldFSWrapsTablesOnly(t *testing.T) {
	fs := yieldFS{vfs.NewMem()}
	for name, wrapped := range map[string]bool{"000123.sst": true, "000002.log": false, "MANIFEST-000001": false, "OPTIONS-000003": false} {
		f, err := fs.Create(name, vfs.WriteCategoryUnspecified)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := f.(yieldFile); ok != wrapped {
			t.Errorf("%s: wrapped %v, want %v", name, ok, wrapped)
		}
		if n, err := f.Write([]byte("abc")); n != 3 || err != nil {
			t.Errorf("%s: Write = %d, %v", name, n, err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		if st, err := fs.Stat(name); err != nil || st.Size() != 3 {
			t.Errorf("%s: after write: %v, %v", name, st, err)
		}
	}
}
