package db

import (
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/flowdb/flowdb/internal/histo"
)

// engineMetrics are counters updated by the commit loop.
type engineMetrics struct {
	frames      atomic.Uint64
	records     atomic.Uint64
	frameBytes  atomic.Uint64
	commitNanos atomic.Uint64
	waitNanos   atomic.Uint64
	applyNanos  atomic.Uint64
	writeNanos  atomic.Uint64
	syncNanos   atomic.Uint64
	rejected    atomic.Uint64
	ttlExpired  atomic.Uint64
	corruptions atomic.Uint64
	// commit: each answered Propose, from Submit to its answer; apply:
	// each frame's state-machine time (see Metrics.Commit and Apply).
	commit, apply histo.Histogram
}

// Metrics is a snapshot of engine and Pebble figures.
type Metrics struct {
	// AppliedIndex is the log index of the last durable frame.
	AppliedIndex uint64 `json:"applied_index"`
	// Frames committed since Open, and the records they held.
	Frames  uint64 `json:"frames"`
	Records uint64 `json:"records"`
	// RecordsPerFrame is the average group-commit size since Open.
	RecordsPerFrame float64 `json:"records_per_frame"`
	// FrameBytes is the encoded size of stored frames since Open.
	FrameBytes uint64 `json:"frame_bytes"`
	// MeanCommit is the mean time to apply and commit one frame, from the
	// moment the commit loop takes it up to its fsync. Its stages:
	// MeanVisibilityWait (a frame's first read of state waits until the
	// previous frame is in Pebble; a frame that reads nothing never waits),
	// MeanApply (the state machines), MeanWrite (Pebble's WAL write and
	// memtable insert) and MeanSyncWait (the acker's wait for the fsync).
	// The stages overlap across frames.
	MeanCommit         time.Duration `json:"mean_commit_ns"`
	MeanVisibilityWait time.Duration `json:"mean_visibility_wait_ns"`
	MeanApply          time.Duration `json:"mean_apply_ns"`
	MeanWrite          time.Duration `json:"mean_write_ns"`
	MeanSyncWait       time.Duration `json:"mean_sync_wait_ns"`
	// Commit is the distribution of commit latency as callers see it: one
	// sample per Propose answered by the pipeline (applied, rejected by
	// its state machine, or failed; not one whose caller's context ended
	// first), from its submission to the batcher to that answer, so it
	// holds the wait for a frame, Raft commit on a replica, apply, and the
	// fsync. Quantiles: Commit.Quantile(0.99).
	Commit histo.Snapshot `json:"commit"`
	// Apply is the distribution of apply time per frame: the state
	// machines' work on it (MeanApply's stage) on the standalone pipeline,
	// and on a replica every frame its shards apply, whoever proposed it.
	// The clock is read around apply, never by it.
	Apply histo.Snapshot `json:"apply"`
	// Rejected counts records refused by their state machine.
	Rejected uint64 `json:"rejected"`
	// TTLExpired counts keys reclaimed by the TTL reaper since Open.
	TTLExpired uint64 `json:"ttl_expired"`
	// Corruptions counts on-disk corruption Pebble reported on read paths.
	Corruptions uint64 `json:"corruptions"`
	// Pending is the number of proposals waiting for a frame.
	Pending int `json:"pending"`
	// DiskBytes is the disk space Pebble uses.
	DiskBytes uint64 `json:"disk_bytes"`
	// Durability is the acknowledgement mode.
	Durability string `json:"durability"`
	// Pebble holds Pebble's own metrics (levels, compactions, cache).
	Pebble *pebble.Metrics `json:"-"`
}

// Metrics returns current figures. It is cheap enough to poll.
func (d *DB) Metrics() Metrics {
	m := Metrics{
		AppliedIndex: d.applied.Load(),
		Frames:       d.m.frames.Load(),
		Records:      d.m.records.Load(),
		FrameBytes:   d.m.frameBytes.Load(),
		Rejected:     d.m.rejected.Load(),
		TTLExpired:   d.m.ttlExpired.Load(),
		Corruptions:  d.m.corruptions.Load(),
		Durability:   d.opts.Durability.String(),
	}
	d.m.commit.SnapshotInto(&m.Commit)
	d.m.apply.SnapshotInto(&m.Apply)
	if m.Frames > 0 {
		m.RecordsPerFrame = float64(m.Records) / float64(m.Frames)
		m.MeanCommit = time.Duration(d.m.commitNanos.Load() / m.Frames)
		m.MeanVisibilityWait = time.Duration(d.m.waitNanos.Load() / m.Frames)
		m.MeanApply = time.Duration(d.m.applyNanos.Load() / m.Frames)
		m.MeanWrite = time.Duration(d.m.writeNanos.Load() / m.Frames)
		m.MeanSyncWait = time.Duration(d.m.syncNanos.Load() / m.Frames)
	}
	if d.batcher != nil {
		m.Pending = d.batcher.Pending()
	}
	if d.enter() == nil {
		m.Pebble = d.pdb.Metrics()
		m.DiskBytes = m.Pebble.DiskSpaceUsage()
		d.leave()
	}
	return m
}
