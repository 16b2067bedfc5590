package db

import (
	"runtime"
	"strings"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// yieldFS wraps the store's file system so that every write to a table
// file (flushes and compactions) first yields the processor
// (runtime.Gosched). Flushes and compactions are long CPU-bound goroutines;
// on a machine with few cores both of Go's processors may be running them
// while the commit pipeline's goroutines (apply, write, fsync, answer) wait
// to be scheduled, up to the scheduler's 10 ms preemption interval each.
// Table writes come every 4 KiB (Pebble buffers them), so yielding there
// bounds that wait at a fraction of a millisecond for a negligible cost.
type yieldFS struct{ vfs.FS }

func (fs yieldFS) Create(name string, category vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.Create(name, category)
	if err != nil || !strings.HasSuffix(name, ".sst") {
		return f, err
	}
	return yieldFile{f}, nil
}

type yieldFile struct{ vfs.File }

func (f yieldFile) Write(p []byte) (int, error) {
	runtime.Gosched()
	return f.File.Write(p)
}
