package db_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/flowdb/flowdb/db"
)

// backupSource opens a store in a temporary directory holding n keys.
func backupSource(t *testing.T, n int) *db.DB {
	t.Helper()
	d, err := db.Open(filepath.Join(t.TempDir(), "src"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	for i := range n {
		if err := d.Set(context.Background(), "ns", fmt.Appendf(nil, "k%04d", i), make([]byte, 1024)); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

// stopAfterFirst returns a context and a Progress that cancels it at the
// first progress report: the copy stops part-way.
func stopAfterFirst() (context.Context, db.Progress) {
	ctx, cancel := context.WithCancel(context.Background())
	return ctx, func(done, total int64) {
		if done < total {
			cancel()
		}
	}
}

// absent fails unless path does not exist.
func absent(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("%s: want absent, got %v", path, err)
	}
}

// TestBackupInterrupted: a backup stopped part-way leaves neither its
// destination nor its partial directory, and a rerun succeeds (a backup
// used to be copied in place, and the rerun failed with ErrExists).
func TestBackupInterrupted(t *testing.T) {
	d := backupSource(t, 2000)
	dest := filepath.Join(t.TempDir(), "bak")
	ctx, progress := stopAfterFirst()
	if err := d.Backup(ctx, dest, progress); !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted backup: %v", err)
	}
	absent(t, dest)
	absent(t, db.PartialDir(dest))
	// A crash leaves the partial directory: the next backup clears it.
	if err := os.MkdirAll(filepath.Join(db.PartialDir(dest), "junk"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := d.Backup(context.Background(), dest, nil); err != nil {
		t.Fatalf("backup after an interrupted one: %v", err)
	}
	absent(t, db.PartialDir(dest))
	if err := d.Backup(context.Background(), dest, nil); !errors.Is(err, db.ErrExists) {
		t.Fatalf("backup over a backup: %v", err)
	}
}

// TestRestoreInterruptedAndPrivate: an interrupted restore leaves nothing
// behind; a complete one gives the store's permissions (0600 files, 0700
// directories) whatever the backup's, and an empty destination directory
// is accepted.
func TestRestoreInterruptedAndPrivate(t *testing.T) {
	d := backupSource(t, 2000)
	base := t.TempDir()
	bak, dest := filepath.Join(base, "bak"), filepath.Join(base, "dest")
	if err := d.Backup(context.Background(), bak, nil); err != nil {
		t.Fatal(err)
	}
	// Loosen the backup's permissions, as a copy by other tools may.
	ents, err := os.ReadDir(bak)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if err := os.Chmod(filepath.Join(bak, e.Name()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ctx, progress := stopAfterFirst()
	if _, err := db.Restore(ctx, bak, dest, nil, progress); !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted restore: %v", err)
	}
	absent(t, dest)
	absent(t, db.PartialDir(dest))
	if err := os.Mkdir(dest, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Restore(context.Background(), bak, dest, nil, nil); err != nil {
		t.Fatalf("restore after an interrupted one: %v", err)
	}
	err = filepath.WalkDir(dest, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		st, err := e.Info()
		if err != nil {
			return err
		}
		want := fs.FileMode(0o600)
		if e.IsDir() {
			want = 0o700
		}
		if st.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v", p, st.Mode().Perm(), want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	r, err := db.Open(dest, &db.Options{ErrorIfNotExists: true})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := r.Get(context.Background(), "ns", []byte("k1999")); err != nil {
		t.Fatalf("restored store: %v", err)
	}
}
