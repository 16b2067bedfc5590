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

// noSyncWAL reports whether the store's WAL fsyncs are no-ops: NoSync
// durability on a standalone store. A replica's durability is Raft's
// (ShardApplier.Sync must reach the disk before Dragonboat compacts its
// log), so NoSync does not change its WAL.
func (o *Options) noSyncWAL() bool { return o.Durability == NoSync && o.Replicator == nil }

// openPebble opens Pebble for Open, keeping the NoSync marker's contract:
// a NoSync store records, before its first write, the number of the first
// WAL it writes in NoSync mode; after a crash, a WAL damaged before a sync
// it claims is cut only if it is the newest WAL and was written in NoSync
// mode (its number is at least the marker's); a store opened in
// SyncEachCommit mode drops the marker once it has flushed what NoSync
// wrote.
func openPebble(dir string, po *pebble.Options, o Options) (*pebble.DB, error) {
	fs := o.FS
	pdb, err := pebble.Open(dir, po)
	if err != nil && (errors.Is(err, record.ErrInvalidChunk) || errors.Is(err, record.ErrZeroedChunk)) && !o.ReadOnly {
		if first, ok := readNoSyncMarker(fs, dir); ok {
			cut, cerr := cutNoSyncWALTail(fs, dir, first, o.Logger)
			if cerr != nil {
				return nil, fmt.Errorf("db: open pebble in %s: %w (and cutting the NoSync WAL's tail failed: %v)", dir, err, cerr)
			}
			if cut > 0 {
				pdb, err = pebble.Open(dir, po)
			}
		}
	}
	if err != nil {
		return nil, fmt.Errorf("db: open pebble in %s: %w", dir, err)
	}
	switch {
	case o.ReadOnly:
	case o.noSyncWAL():
		// Pebble has created the WAL this store writes next; nothing has
		// been written in NoSync mode yet (the commit pipeline has not
		// started).
		newest, err := newestWAL(fs, dir)
		if err == nil {
			err = markNoSync(fs, dir, newest)
		}
		if err != nil {
			pdb.Close()
			return nil, err
		}
	default:
		if _, ok := readNoSyncMarker(fs, dir); ok {
			if err := pdb.Flush(); err != nil {
				pdb.Close()
				return nil, fmt.Errorf("db: flush the NoSync WAL: %w", err)
			}
			if err := clearNoSync(fs, dir); err != nil {
				pdb.Close()
				return nil, err
			}
		}
	}
	return pdb, nil
}

// nosyncMarker names the file that says the store's WAL may have been
// written in NoSync mode since the last flush, and from which WAL number on.
// Such a WAL's chunks claim syncs that never reached the disk, so after a
// power cut its tail may hold a hole followed by chunks that Pebble's
// recovery takes for proof of corruption (a hole before a claimed sync
// offset). For a store with the marker, Open treats such damage in the
// newest WAL, if NoSync wrote it, as the torn tail it is: it cuts that WAL
// at its last whole record (dropping a suffix of frames, never one in the
// middle) and opens again. Damage anywhere else, or in a store without the
// marker, is corruption and Open fails. A store opened in SyncEachCommit
// mode flushes its memtables after recovery and then removes the marker:
// from then on every WAL sync is real. A read-only Open never cuts: a
// NoSync store torn by a power cut needs one read-write open first.
const nosyncMarker = "FLOWDB-NOSYNC-WAL"

// markNoSync records that WALs from number first on are written in NoSync
// mode (keeping an older number already recorded: its WALs may still be
// unflushed), durably: the file and the directory entry are synced every
// time, so a marker left unsynced by a crash becomes durable here.
func markNoSync(fs vfs.FS, dir string, first uint64) error {
	if old, ok := readNoSyncMarker(fs, dir); ok {
		first = min(first, old)
	}
	name := fs.PathJoin(dir, nosyncMarker)
	tmp := name + ".tmp"
	f, err := fs.Create(tmp, vfs.WriteCategoryUnspecified)
	if err != nil {
		return fmt.Errorf("db: create %s: %w", tmp, err)
	}
	_, err = f.Write([]byte(strconv.FormatUint(first, 10)))
	if err = errors.Join(err, f.Sync(), f.Close()); err != nil {
		return fmt.Errorf("db: write %s: %w", tmp, err)
	}
	if err := fs.Rename(tmp, name); err != nil {
		return fmt.Errorf("db: rename %s: %w", tmp, err)
	}
	return syncDir(fs, dir)
}

// readNoSyncMarker returns the first WAL number the marker records, and
// whether there is a marker. A marker that does not parse (torn by a crash
// before it was synced) counts as none: nothing was written in NoSync mode
// after a marker that never became durable.
func readNoSyncMarker(fs vfs.FS, dir string) (uint64, bool) {
	f, err := fs.Open(fs.PathJoin(dir, nosyncMarker))
	if err != nil {
		return 0, false
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 32))
	if err != nil {
		return 0, false
	}
	n, err := strconv.ParseUint(string(b), 10, 64)
	return n, err == nil
}

// walFile is one WAL of the store and its number.
type walFile struct {
	num  uint64
	name string
}

// wals lists the store's WAL files (000123.log), in number order.
func wals(fs vfs.FS, dir string) ([]walFile, error) {
	names, err := fs.List(dir)
	if err != nil {
		return nil, err
	}
	var out []walFile
	for _, n := range names {
		if !isWAL(n) {
			continue
		}
		num, err := strconv.ParseUint(strings.TrimSuffix(n, ".log"), 10, 64)
		if err != nil {
			continue // not a WAL of this store's naming
		}
		out = append(out, walFile{num, fs.PathJoin(dir, n)})
	}
	slices.SortFunc(out, func(a, b walFile) int { return cmp.Compare(a.num, b.num) })
	return out, nil
}

func newestWAL(fs vfs.FS, dir string) (uint64, error) {
	ws, err := wals(fs, dir)
	if err != nil || len(ws) == 0 {
		return 0, fmt.Errorf("db: no WAL in %s after open: %v", dir, err)
	}
	return ws[len(ws)-1].num, nil
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

// cutNoSyncWALTail cuts the newest WAL after its last whole record if it
// was written in NoSync mode (its number is at least first) and its records
// end in damage. It reports the bytes dropped; 0 means it changed nothing.
// Only the newest WAL is ever cut, and nothing is deleted: a power cut
// loses the frames the kernel had not written back, which are the newest;
// damage in an older WAL is not a torn tail (a later WAL holds frames
// written after it), so Open reports it as corruption instead of dropping
// frames from the middle.
func cutNoSyncWALTail(fs vfs.FS, dir string, first uint64, logger *slog.Logger) (int64, error) {
	ws, err := wals(fs, dir)
	if err != nil || len(ws) == 0 {
		return 0, err
	}
	w := ws[len(ws)-1]
	if w.num < first {
		return 0, nil
	}
	good, size, damaged, err := lastWholeRecord(fs, w.name, w.num)
	if err != nil || !damaged {
		return 0, err
	}
	if err := truncateFile(fs, w.name, good); err != nil {
		return 0, fmt.Errorf("db: cut %s: %w", w.name, err)
	}
	if err := syncDir(fs, dir); err != nil {
		return 0, err
	}
	logger.Warn("flowdb: the WAL written in NoSync mode lost a tail in a crash; cut it at the last whole record",
		"wal", w.name, "offset", good, "bytes dropped", size-good)
	return max(size-good, 1), nil
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
