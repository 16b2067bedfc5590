package db

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"log/slog"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/record"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// noSyncWALFS implements the NoSync durability mode. The store commits
// every frame exactly as in SyncEachCommit mode (Pebble's Commit with Sync,
// answered after Pebble's WAL writer reports the sync done), but the WAL
// files it hands Pebble ignore fsync: Pebble's WAL writer has then passed
// the frame to the OS with write(2) before it reports the "sync" complete,
// so a caller is answered only once the kernel holds its frame. A process
// crash (SIGKILL, panic, OOM kill) therefore loses nothing acknowledged; a
// power cut or kernel crash may lose the frames written since the kernel
// last wrote the WAL back, always a suffix (Pebble recovers a prefix of its
// WAL). Tables, the manifest and every other file are still synced as
// usual, so such a loss never corrupts the store.
//
// Committing with pebble.NoSync instead would answer while the frame may
// still sit in the WAL writer's user-space buffer, which a process crash
// loses (TestDurabilityModesSurviveSIGKILL shows it).
type noSyncWALFS struct{ vfs.FS }

func isWAL(name string) bool { return strings.HasSuffix(name, ".log") }

func (fs noSyncWALFS) Create(name string, category vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.Create(name, category)
	if err != nil || !isWAL(name) {
		return f, err
	}
	return noSyncFile{f}, nil
}

func (fs noSyncWALFS) ReuseForWrite(oldname, newname string, category vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.ReuseForWrite(oldname, newname, category)
	if err != nil || !isWAL(newname) {
		return f, err
	}
	return noSyncFile{f}, nil
}

func (fs noSyncWALFS) OpenReadWrite(name string, category vfs.DiskWriteCategory, opts ...vfs.OpenOption) (vfs.File, error) {
	f, err := fs.FS.OpenReadWrite(name, category, opts...)
	if err != nil || !isWAL(name) {
		return f, err
	}
	return noSyncFile{f}, nil
}

// noSyncFile is a WAL file whose writes go straight to the underlying file
// (the OS) and whose syncs do nothing.
type noSyncFile struct{ vfs.File }

func (noSyncFile) Sync() error                             { return nil }
func (noSyncFile) SyncData() error                         { return nil }
func (noSyncFile) SyncTo(int64) (fullSync bool, err error) { return false, nil }

// openPebble opens Pebble for Open, keeping the NoSync marker's contract:
// the marker is made durable before a NoSync store writes; a WAL damaged at
// its tail is cut only in a store that has the marker; a store opened in
// SyncEachCommit mode drops the marker once it has flushed what NoSync
// wrote.
func openPebble(dir string, po *pebble.Options, o Options) (*pebble.DB, error) {
	fs := o.FS
	if o.Durability == NoSync && !o.ReadOnly {
		if err := markNoSync(fs, dir); err != nil {
			return nil, err
		}
	}
	pdb, err := pebble.Open(dir, po)
	if err != nil && (errors.Is(err, record.ErrInvalidChunk) || errors.Is(err, record.ErrZeroedChunk)) && !o.ReadOnly && hasNoSyncMarker(fs, dir) {
		cut, cerr := cutNoSyncWALTail(fs, dir, o.Logger)
		if cerr != nil {
			return nil, fmt.Errorf("db: open pebble in %s: %w (and cutting the NoSync WAL's tail failed: %v)", dir, err, cerr)
		}
		if cut > 0 {
			pdb, err = pebble.Open(dir, po)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("db: open pebble in %s: %w", dir, err)
	}
	if o.Durability != NoSync && !o.ReadOnly && hasNoSyncMarker(fs, dir) {
		if err := pdb.Flush(); err != nil {
			pdb.Close()
			return nil, fmt.Errorf("db: flush the NoSync WAL: %w", err)
		}
		if err := clearNoSync(fs, dir); err != nil {
			pdb.Close()
			return nil, err
		}
	}
	return pdb, nil
}

// nosyncMarker names the file that says the store's WAL may have been
// written in NoSync mode since the last flush. Such a WAL's chunks claim
// syncs that never reached the disk, so after a power cut its tail may hold
// a hole followed by chunks that Pebble's recovery takes for proof of
// corruption (a hole before a claimed sync offset). For a store with the
// marker, Open treats such damage as the torn tail it is: it cuts the WAL at
// the last whole record (dropping a suffix of frames, never one in the
// middle) and opens again. Without the marker the same damage is corruption
// and Open fails (ErrCorrupt). A store opened in SyncEachCommit mode flushes
// its memtables after recovery and then removes the marker: from then on
// every WAL sync is real.
const nosyncMarker = "FLOWDB-NOSYNC-WAL"

// markNoSync creates the NoSync marker durably (file and directory entry)
// before the store writes anything in NoSync mode.
func markNoSync(fs vfs.FS, dir string) error {
	name := fs.PathJoin(dir, nosyncMarker)
	if _, err := fs.Stat(name); err == nil {
		return nil
	}
	f, err := fs.Create(name, vfs.WriteCategoryUnspecified)
	if err != nil {
		return fmt.Errorf("db: create %s: %w", name, err)
	}
	if err := errors.Join(f.Sync(), f.Close()); err != nil {
		return fmt.Errorf("db: sync %s: %w", name, err)
	}
	return syncDir(fs, dir)
}

func hasNoSyncMarker(fs vfs.FS, dir string) bool {
	_, err := fs.Stat(fs.PathJoin(dir, nosyncMarker))
	return err == nil
}

// clearNoSync removes the marker once no WAL written in NoSync mode is left
// (the caller has flushed).
func clearNoSync(fs vfs.FS, dir string) error {
	if err := fs.Remove(fs.PathJoin(dir, nosyncMarker)); err != nil && !errors.Is(err, iofs.ErrNotExist) {
		return fmt.Errorf("db: remove %s: %w", nosyncMarker, err)
	}
	return syncDir(fs, dir)
}

// newWALReader calls record.NewReader, whose log-number parameter has a
// type from Pebble's internal packages; reflection converts it.
func newWALReader(r io.Reader, logNum uint64) *record.Reader {
	fn := reflect.ValueOf(record.NewReader)
	out := fn.Call([]reflect.Value{reflect.ValueOf(&r).Elem(), reflect.ValueOf(logNum).Convert(fn.Type().In(1))})
	return out[0].Interface().(*record.Reader)
}

// cutNoSyncWALTail finds the first WAL (in log-number order) whose records
// end in damage, truncates it after its last whole record, and removes every
// later WAL (they hold only later frames). It reports the bytes dropped;
// 0 means nothing was damaged and nothing was changed.
func cutNoSyncWALTail(fs vfs.FS, dir string, logger *slog.Logger) (int64, error) {
	names, err := fs.List(dir)
	if err != nil {
		return 0, err
	}
	type walFile struct {
		num  uint64
		name string
	}
	var wals []walFile
	for _, n := range names {
		if !isWAL(n) {
			continue
		}
		num, err := strconv.ParseUint(strings.TrimSuffix(n, ".log"), 10, 64)
		if err != nil {
			continue // not a WAL of this store's naming (000123.log)
		}
		wals = append(wals, walFile{num, fs.PathJoin(dir, n)})
	}
	slices.SortFunc(wals, func(a, b walFile) int { return cmp.Compare(a.num, b.num) })
	for i, w := range wals {
		good, size, damaged, err := lastWholeRecord(fs, w.name, w.num)
		if err != nil {
			return 0, err
		}
		if !damaged {
			continue
		}
		dropped := size - good
		if err := truncateFile(fs, w.name, good); err != nil {
			return 0, fmt.Errorf("db: cut %s: %w", w.name, err)
		}
		for _, later := range wals[i+1:] {
			st, err := fs.Stat(later.name)
			if err == nil {
				dropped += st.Size()
			}
			if err := fs.Remove(later.name); err != nil {
				return 0, fmt.Errorf("db: remove %s: %w", later.name, err)
			}
		}
		if err := syncDir(fs, dir); err != nil {
			return 0, err
		}
		logger.Warn("flowdb: the WAL written in NoSync mode lost a tail in a crash; cut it at the last whole record",
			"wal", w.name, "offset", good, "bytes dropped", dropped, "later wals removed", len(wals)-i-1)
		return max(dropped, 1), nil
	}
	return 0, nil
}

// lastWholeRecord reads the WAL at name and returns the offset just past its
// last whole record, its size, and whether its records end in damage rather
// than at a clean end.
func lastWholeRecord(fs vfs.FS, name string, num uint64) (good, size int64, damaged bool, err error) {
	f, err := fs.Open(name)
	if err != nil {
		return 0, 0, false, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, 0, false, err
	}
	r := newWALReader(f, num)
	for {
		rr, err := r.Next()
		if err == nil {
			_, err = io.Copy(io.Discard, rr)
		}
		switch {
		case err == nil:
			good = r.Offset()
		case errors.Is(err, io.EOF) || errors.Is(err, record.ErrUnexpectedEOF):
			return good, st.Size(), false, nil // a clean end or a torn last record: Pebble stops there itself
		case errors.Is(err, record.ErrInvalidChunk) || errors.Is(err, record.ErrZeroedChunk):
			return good, st.Size(), true, nil
		default:
			return 0, 0, false, fmt.Errorf("db: read %s: %w", name, err)
		}
	}
}

// truncateFile keeps the first n bytes of name: vfs.File cannot truncate,
// so they are copied to a new file that is synced and renamed over it.
func truncateFile(fs vfs.FS, name string, n int64) error {
	src, err := fs.Open(name)
	if err != nil {
		return err
	}
	defer src.Close()
	tmp := name + ".cut"
	dst, err := fs.Create(tmp, vfs.WriteCategoryUnspecified)
	if err != nil {
		return err
	}
	_, err = io.Copy(dst, io.NewSectionReader(src, 0, n))
	if err = errors.Join(err, dst.Sync(), dst.Close()); err != nil {
		return err
	}
	return fs.Rename(tmp, name)
}
