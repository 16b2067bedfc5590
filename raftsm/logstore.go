package raftsm

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/lni/dragonboat/v4/config"
	"github.com/lni/dragonboat/v4/plugin/tan"
	"github.com/lni/dragonboat/v4/raftio"
	"github.com/lni/vfs"
)

// Log stores (Config.LogStore): how Dragonboat keeps a node's Raft log.
const (
	// LogStorePebble is Dragonboat's default log store: one Pebble
	// instance per LogDB shard (sized by Config.LogDB), with its memtable
	// flushes and compactions.
	LogStorePebble = "pebble"
	// LogStoreTan is Dragonboat's own append-only log (plugin/tan): per
	// Raft shard a log file that entries are appended to and synced, with
	// an index, and no memtable, flush or compaction; files are dropped
	// once the log was compacted past them.
	LogStoreTan = "tan"
)

// ErrLogStoreChanged: a node's Raft directory was written by another log
// store than Config.LogStore names. The log cannot be read by the other
// store, so the node refuses to start rather than start with an empty
// log; it starts with the store it was created with.
var ErrLogStoreChanged = errors.New("raftsm: the Raft directory was written by another log store")

// logStoreMarker, in the Raft directory, names the log store the node was
// created with. A bootstrapped node without it predates the choice and
// used LogStorePebble.
const logStoreMarker = "flowdb-logstore"

// defaultLogStore is the log store of a new node whose Config.LogStore is
// empty.
const defaultLogStore = LogStorePebble

// resolveLogStore returns the log store the node in raftDir uses: the one
// it was created with (recorded in logStoreMarker; a bootstrapped node
// without the marker predates it and used LogStorePebble), or for a new
// node want (defaultLogStore when empty), which it records. A want that
// differs from an existing node's store is refused (ErrLogStoreChanged).
func resolveLogStore(raftDir, want string, restart bool) (string, error) {
	p := filepath.Join(raftDir, logStoreMarker)
	b, err := os.ReadFile(p)
	have := ""
	switch {
	case err == nil:
		have = strings.TrimSpace(string(b))
	case !errors.Is(err, os.ErrNotExist):
		return "", err
	case restart:
		have = LogStorePebble
	}
	if have != "" {
		if _, err := logStoreFactory(have); err != nil {
			return "", fmt.Errorf("%w: %s names an unknown log store %q", ErrLogStoreChanged, p, have)
		}
		if want != "" && want != have {
			return "", fmt.Errorf("%w: %s holds a %q log, Config.LogStore is %q (start it with %q or leave LogStore empty)", ErrLogStoreChanged, raftDir, have, want, have)
		}
		if err == nil {
			return have, nil
		}
		return have, writeFileSync(p, []byte(have+"\n"))
	}
	if want == "" {
		want = defaultLogStore
	}
	return want, writeFileSync(p, []byte(want+"\n"))
}

// writeFileSync writes a small file 0600 and syncs it and its directory.
func writeFileSync(p string, b []byte) error {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	d, err := os.Open(filepath.Dir(p))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// logStoreFactory returns the LogDBFactory of a log store name (nil:
// Dragonboat's default, Pebble).
func logStoreFactory(name string) (config.LogDBFactory, error) {
	switch name {
	case LogStorePebble:
		return nil, nil
	case LogStoreTan:
		return tanFactory{}, nil
	}
	return nil, fmt.Errorf("%w: LogStore %q (want %q or %q)", ErrConfig, name, LogStorePebble, LogStoreTan)
}

// tanFactory creates Dragonboat's tan log store over a file system whose
// files tan cannot preallocate: tan reserves 64 MiB of blocks for each
// Raft shard's log file (fallocate, when the file is an *os.File), which
// would make an idle node with three shards take about 200 MiB. Without
// it a log file takes the blocks its entries fill.
type tanFactory struct{}

func (tanFactory) Create(cfg config.NodeHostConfig, cb config.LogDBCallback, dirs, wals []string) (raftio.ILogDB, error) {
	cfg.Expert.FS = noPreallocFS{cfg.Expert.FS}
	return tan.Factory.Create(cfg, cb, dirs, wals)
}

func (tanFactory) Name() string { return tan.Factory.Name() }

// noPreallocFS hands out files that are not *os.File, so tan's prealloc
// (a type assertion to *os.File) does nothing; everything else passes
// through.
type noPreallocFS struct{ vfs.FS }

type plainFile struct{ vfs.File }

func (fs noPreallocFS) Create(name string) (vfs.File, error) {
	f, err := fs.FS.Create(name)
	if err != nil {
		return nil, err
	}
	return plainFile{f}, nil
}
