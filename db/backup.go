package db

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// ErrExists is returned by Backup and Restore when the destination already
// holds files.
var ErrExists = errors.New("db: destination is not empty")

// Progress reports bytes copied so far out of total.
type Progress func(done, total int64)

// Backup writes a consistent copy of the store to dest, which must not exist
// or be empty. It takes a Pebble checkpoint (hard links, flushed WAL) into a
// staging directory inside the store, copies it file by file with fsync,
// reporting progress, into dest's partial directory (PartialDir) and
// renames that to dest once complete, then removes the staging directory.
// Writes may continue meanwhile; the backup holds exactly the frames durable
// when the checkpoint was taken. A backup that fails or is stopped (ctx)
// leaves dest as it was; its partial directory is removed, or, after a
// crash, by the next Backup or Restore to dest.
func (d *DB) Backup(ctx context.Context, dest string, progress Progress) error {
	if err := d.enter(); err != nil {
		return err
	}
	fs := d.opts.FS
	if ls, err := fs.List(dest); err == nil && len(ls) > 0 {
		d.leave()
		return fmt.Errorf("%w: %s", ErrExists, dest)
	}
	staging := fs.PathJoin(d.dir, "backup-staging-"+strconv.FormatInt(time.Now().UnixNano(), 36))
	err := d.pdb.Checkpoint(staging, pebble.WithFlushedWAL())
	d.leave()
	defer fs.RemoveAll(staging)
	if err != nil {
		return fmt.Errorf("db: checkpoint: %w", err)
	}
	return install(ctx, fs, staging, dest, progress, true)
}

// PartialDir is where Backup and Restore write before renaming into dest:
// a sibling of dest, "<dest>.partial".
func PartialDir(dest string) string {
	return filepath.Clean(dest) + ".partial"
}

// install copies the files of src into dest's partial directory, writes
// the store marker if marker, renames the partial directory to dest (which
// must not exist or be an empty directory) and syncs dest's parent. On
// failure it removes the partial directory.
func install(ctx context.Context, fs vfs.FS, src, dest string, progress Progress, marker bool) (err error) {
	tmp := PartialDir(dest)
	if err := fs.RemoveAll(tmp); err != nil { // left by a crashed run
		return err
	}
	defer func() {
		if err != nil {
			fs.RemoveAll(tmp)
		}
	}()
	if err := copyDir(ctx, fs, src, tmp, progress); err != nil {
		return err
	}
	if marker {
		if err := writeMarker(fs, tmp); err != nil {
			return err
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if st, err := fs.Stat(dest); err == nil {
		if !st.IsDir() {
			return fmt.Errorf("%w: %s is a file", ErrExists, dest)
		}
		if err := fs.Remove(dest); err != nil { // empty, unless filled meanwhile
			return fmt.Errorf("%w: %s: %v", ErrExists, dest, err)
		}
	}
	if err := fs.Rename(tmp, dest); err != nil {
		return err
	}
	return syncDir(fs, fs.PathDir(filepath.Clean(dest)))
}

// RestoreOptions configures Restore.
type RestoreOptions struct {
	// FS holds both directories. Default: the OS file system.
	FS vfs.FS
	// Attach registers the state machines whose tables the backup may hold
	// (queue.Attach, ...) on the read-only backup before it is checked, so
	// that their tables are verified rather than reported unknown.
	Attach func(*DB) error
}

// Restore copies the backup in from into dest (which must not exist or be
// empty), after opening the backup read-only and checking it. Like Backup
// it writes into dest's partial directory and renames it to dest once
// complete. On the OS file system the restored files are the owner's only
// (0600 files, 0700 directories), as a store's own.
func Restore(ctx context.Context, from, dest string, o *RestoreOptions, progress Progress) (*CheckReport, error) {
	var ro RestoreOptions
	if o != nil {
		ro = *o
	}
	fs := ro.FS
	if fs == nil || fs == vfs.Default {
		fs = privateFS{vfs.Default}
	}
	if ls, err := fs.List(dest); err == nil && len(ls) > 0 {
		return nil, fmt.Errorf("%w: %s", ErrExists, dest)
	}
	src, err := Open(from, &Options{FS: fs, ReadOnly: true, Logger: discardLogger()})
	if err != nil {
		return nil, fmt.Errorf("db: open backup %s: %w", from, err)
	}
	if ro.Attach != nil {
		if err := ro.Attach(src); err != nil {
			src.Close()
			return nil, err
		}
	}
	rep, err := src.Check(ctx, nil)
	src.Close()
	if err != nil {
		return nil, err
	}
	if !rep.OK() {
		return rep, fmt.Errorf("db: backup %s is damaged: %s", from, rep.Problems[0].Err)
	}
	return rep, install(ctx, fs, from, dest, progress, false)
}

// copyDir copies the regular files of src into dest with fsync of each file
// and of dest.
func copyDir(ctx context.Context, fs vfs.FS, src, dest string, progress Progress) error {
	names, err := fs.List(src)
	if err != nil {
		return err
	}
	var total int64
	var files []string
	for _, n := range names {
		st, err := fs.Stat(fs.PathJoin(src, n))
		if err != nil {
			return err
		}
		if st.IsDir() {
			continue
		}
		files = append(files, n)
		total += st.Size()
	}
	if err := fs.MkdirAll(dest, 0o700); err != nil {
		return err
	}
	var done int64
	buf := make([]byte, 1<<20)
	for _, n := range files {
		if err := ctx.Err(); err != nil {
			return err
		}
		in, err := fs.Open(fs.PathJoin(src, n))
		if err != nil {
			return err
		}
		out, err := fs.Create(fs.PathJoin(dest, n), vfs.WriteCategoryUnspecified)
		if err != nil {
			in.Close()
			return err
		}
		for {
			k, rerr := in.Read(buf)
			if k > 0 {
				if _, werr := out.Write(buf[:k]); werr != nil {
					in.Close()
					out.Close()
					return werr
				}
				done += int64(k)
				if progress != nil {
					progress(done, total)
				}
			}
			if rerr == io.EOF {
				break
			}
			if rerr != nil {
				in.Close()
				out.Close()
				return rerr
			}
		}
		in.Close()
		if err := out.Sync(); err != nil {
			out.Close()
			return err
		}
		if err := out.Close(); err != nil {
			return err
		}
	}
	dir, err := fs.OpenDir(dest)
	if err != nil {
		return err
	}
	defer dir.Close()
	if progress != nil {
		progress(done, total)
	}
	return dir.Sync()
}
