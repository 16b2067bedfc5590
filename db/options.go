package db

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/flowdb/flowdb/wal"
)

// Durability selects when a mutation is acknowledged.
type Durability uint8

const (
	// SyncEachCommit acknowledges a mutation only after the Pebble batch that
	// holds it has been fsynced. Survives process crashes and power loss.
	// The default.
	SyncEachCommit Durability = iota
	// NoSync acknowledges after the frame has been written to the WAL file
	// with write(2), without an fsync: the kernel holds every acknowledged
	// frame. A process crash (SIGKILL, panic, OOM kill) loses nothing
	// acknowledged. A power cut or kernel crash may lose the frames the
	// kernel had not yet written back: a suffix of the acknowledged ones,
	// never a frame in the middle. Since the WAL's chunks then claim syncs
	// that never happened, a store written in this mode carries a marker
	// file, and Open cuts the newest WAL, if NoSync wrote it, at its last
	// whole record instead of reporting corruption; damage elsewhere still
	// fails Open. Tables and the manifest are synced as in SyncEachCommit.
	// Opening the store in SyncEachCommit mode flushes and removes the
	// marker. A replica (Options.Replicator) ignores NoSync: its durability
	// is Raft's.
	NoSync
)

func (d Durability) String() string {
	switch d {
	case SyncEachCommit:
		return "sync"
	case NoSync:
		return "nosync"
	}
	return fmt.Sprintf("durability(%d)", uint8(d))
}

// Options configures Open. A nil *Options means all defaults. Open copies the
// struct, so the caller may reuse it.
type Options struct {
	// FS is the file system every engine file is written through. Default:
	// vfs.Default (the OS), on which the store's files are created 0600 and
	// its directories 0700 whatever the umask. Tests pass
	// vfs.NewCrashableMem() or an errorfs.
	FS vfs.FS
	// CacheSize is Pebble's block cache in bytes. Default 128 MiB. Memtables
	// take a quarter of it each (between 4 and 64 MiB), because Pebble
	// accounts memtable memory against the cache.
	CacheSize int64
	// Durability: default SyncEachCommit.
	Durability Durability
	// Logger receives engine and Pebble events. Default slog.Default().
	Logger *slog.Logger
	// Now is the proposer clock that stamps frames and decides expiry on
	// reads. Apply never calls it. Default time.Now.
	Now func() time.Time
	// ReadOnly opens the store without the commit pipeline; mutations fail
	// with ErrReadOnly. Default false.
	ReadOnly bool
	// ErrorIfNotExists makes Open fail with ErrNotExist when dir holds no
	// store. Default false (create it).
	ErrorIfNotExists bool

	// Batcher bounds group commit: frame size, records per frame, linger.
	// Defaults: see wal.BatcherOptions.
	Batcher wal.BatcherOptions
	// Compression of stored frames of at least CompressionThreshold bytes.
	// Default (and the zero value) wal.CompressS2; to store frames plainly
	// set CompressionThreshold negative.
	Compression wal.Compression
	// CompressionThreshold in bytes. Default 1 MiB (smaller frames cost more
	// committer CPU to compress than they save); negative disables.
	CompressionThreshold int
	// LogRetention is how many recent frames the command log keeps in Pebble,
	// where `flowctl check` verifies their checksums and contiguity. It is a
	// property of the store, kept across opens: 0 (the default) keeps the
	// store's setting (a new store keeps no frames); a positive value sets
	// it; a negative value turns the log off and drops the frames it kept.
	// Keeping frames writes every mutation twice (state and frame); on the
	// batched-write benchmark that cost a third of the throughput (see
	// db/doc.go).
	LogRetention int

	// TTLReapInterval is how often expired keys are reclaimed in the
	// background. Expired keys are invisible at once whatever this is.
	// Default 1s; negative disables the reaper.
	TTLReapInterval time.Duration
	// TTLReapBatch caps the keys reclaimed per reaper record. Default 1024.
	TTLReapBatch int
	// DataShards is the number of data shards names are placed on (see
	// Placement). Fixed when the store is created. Default 1.
	DataShards int

	// Replicator, if set, makes the store a replica of Raft-replicated
	// shards (package raftsm sets it): no standalone commit pipeline runs;
	// each record is proposed to the shard that owns it and applied there
	// on every replica. Default nil (standalone).
	Replicator Replicator
	// StaleReads, on a replica, serves reads from local state without a
	// read index: faster, but a read may miss writes acknowledged
	// elsewhere. Default false (linearizable reads).
	StaleReads bool
	// ProposeTimeout bounds how long a replica keeps one frame's proposal
	// in Raft (retrying while the shard is not ready) before its callers
	// get ErrOutcomeUnknown. Default 30s.
	ProposeTimeout time.Duration
	// MaxInflight bounds the frames a replica has in Raft at once over all
	// its shards, and MaxShardInflight those of one shard. While every
	// slot is taken, proposals gather in the batcher and the next frame
	// carries them all; Raft's cost is per proposal, so fewer frames in
	// flight make each carry more records. The per-shard bound keeps a
	// shard without a quorum from holding every slot. Defaults 8 and 4
	// (replbench: with 1,600 producers these frames carried 71 records
	// where 16 and 16 gave 23, for 1.4x the throughput).
	MaxInflight, MaxShardInflight int

	// Pebble, if set, is called on the Pebble options after flowdb filled
	// them, for tuning (memtable size, compaction concurrency). It must not
	// change FS, Cache, Logger, ReadOnly or Lock.
	Pebble func(*pebble.Options)
}

// withDefaults returns a copy of o with defaults filled in, validated.
func (o *Options) withDefaults() (Options, error) {
	var c Options
	if o != nil {
		c = *o
	}
	if c.FS == nil || c.FS == vfs.Default {
		// Store files are the owner's only: 0600 files, 0700 directories.
		c.FS = privateFS{vfs.Default}
	}
	if c.CacheSize == 0 {
		c.CacheSize = 128 << 20
	}
	if c.MaxInflight <= 0 {
		c.MaxInflight = 8
	}
	if c.MaxShardInflight <= 0 {
		c.MaxShardInflight = 4
	}
	if c.ProposeTimeout <= 0 {
		c.ProposeTimeout = 30 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Compression == wal.CompressNone {
		c.Compression = wal.CompressS2
	}
	if c.CompressionThreshold == 0 {
		c.CompressionThreshold = 1 << 20
	}
	if c.TTLReapInterval == 0 {
		c.TTLReapInterval = time.Second
	}
	if c.TTLReapBatch <= 0 {
		c.TTLReapBatch = 1024
	}
	if c.DataShards == 0 {
		c.DataShards = 1
	}
	switch {
	case c.CacheSize < 0:
		return c, fmt.Errorf("%w: CacheSize %d < 0", ErrInvalidOptions, c.CacheSize)
	case c.Durability > NoSync:
		return c, fmt.Errorf("%w: unknown durability %d", ErrInvalidOptions, c.Durability)
	case c.Compression > wal.CompressZstd:
		return c, fmt.Errorf("%w: unknown compression %d", ErrInvalidOptions, c.Compression)
	case c.DataShards < 0 || c.DataShards > 1<<16:
		return c, fmt.Errorf("%w: DataShards %d out of [1, 65536]", ErrInvalidOptions, c.DataShards)
	}
	return c, nil
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
