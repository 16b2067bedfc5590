package db_test

import (
	"io/fs"
	"path/filepath"
	"testing"

	"github.com/flowdb/flowdb/internal/testutil"
)

// TestPrivateFiles: on the OS file system a store's files are 0600 and its
// directories 0700.
func TestPrivateFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	d := testutil.Open(t, dir, testutil.StoreOptions(nil, nil))
	for i := range 100 {
		if err := d.Set(t.Context(), "ns", []byte{byte(i)}, make([]byte, 1000)); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.Pebble().Flush(); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	n := 0
	err := filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := e.Info()
		if err != nil {
			return err
		}
		want := fs.FileMode(0o600)
		if e.IsDir() {
			want = 0o700
		}
		if info.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v", p, info.Mode().Perm(), want)
		}
		n++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 4 {
		t.Fatalf("only %d entries under the store", n)
	}
}
