package db

import (
	"fmt"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/flowdb/flowdb/wal"
)

// ShardApplier applies the frames of one replicated shard, outside the
// standalone commit pipeline: package raftsm drives it from a Raft state
// machine, which serializes its calls. Frames go through the same applier
// (the same record kinds and Apply functions) as the standalone engine's,
// into a batch (ShardBatch) the caller commits; the shard's applied index
// and time are written in the same batch. It also saves and recovers the
// shard's snapshots (snapshot.go), so the caller never touches Pebble.
//
// Raft log indexes that carry no frame (elections, membership changes)
// never reach it, so an index need only be above the applied one, not
// next to it.
type ShardApplier struct {
	d      *DB
	mu     sync.Mutex // serializes Apply/Commit/reload (the caller should already)
	a      applier
	sorter batchSorter
}

// ShardApplier returns the applier of shard, positioned at the applied
// index stored for it (0 for a new shard). The standalone pipeline keeps
// its own index (keys.LocalShard); a replicated shard must be one of the
// data or catalog shards, whose keys no standalone record touches when the
// store is a replica.
func (d *DB) ShardApplier(shard uint32) (*ShardApplier, error) {
	if shard == 0 {
		return nil, fmt.Errorf("%w: shard 0 is the standalone log's", ErrInvalidOptions)
	}
	index, t, err := readApplied(d.pdb, shard)
	if err != nil {
		return nil, err
	}
	return &ShardApplier{d: d, a: applier{reg: &d.reg, shard: shard, placement: d.placement, index: index, time: t, gaps: true}}, nil
}

// Applied is the index of the last frame whose batch was committed.
func (s *ShardApplier) Applied() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.a.index
}

// ShardBatch holds the writes of frames applied by ShardApplier.Apply
// until Commit writes them. It belongs to the goroutine that applies the
// shard; its contents are the engine's, not the caller's.
type ShardBatch struct {
	b *pebble.Batch
}

// Close discards the batch's writes (after a failed Apply). Commit closes
// the batch itself.
func (b *ShardBatch) Close() {
	if b.b != nil {
		b.b.Close()
		b.b = nil
	}
}

// NewBatch returns a batch for frames f will be applied into: indexed when
// any record in them reads state (KindSpec.Reads), so that reads see the
// batch's earlier writes.
func (s *ShardApplier) NewBatch(frames ...*wal.Frame) *ShardBatch {
	for _, f := range frames {
		// Deduplication reads what the batch kept for earlier frames.
		if f.Origin.ID != 0 || s.a.mayRead(f) {
			return &ShardBatch{b: s.d.pdb.NewIndexedBatch()}
		}
	}
	return &ShardBatch{b: s.d.pdb.NewBatch()}
}

// Apply applies f as log index `index` (above every index applied or
// applied into b so far) into b, returning one result per record, the same
// results encoded (see DecodeResults), and the hooks to run, in order, once b
// is committed. The applier counts f as
// applied from here on (the next frame may go into the same batch), so a
// batch that is not committed leaves the shard to be reopened; a non-nil
// error is likewise fatal for the shard: b must be discarded (Close).
func (s *ShardApplier) Apply(b *ShardBatch, index uint64, f *wal.Frame) ([]wal.Result, []byte, []func(), error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	results := make([]wal.Result, len(f.Records))
	// b is indexed whenever f may read (NewBatch), so it stays the batch.
	t0 := time.Now() // for Metrics.Apply only: apply never sees it
	_, hooks, err := s.a.applyFrame(b.b, nil, index, f, nil, results)
	if err != nil {
		return nil, nil, nil, err
	}
	s.d.m.apply.Since(t0)
	// Several frames may go into one batch: the next one follows this.
	s.a.committed()
	enc := s.a.encoded // deduplicated frames were encoded once already
	if enc == nil {
		enc = encodeResults(s.a.reg.load(), results)
	}
	return results, enc, hooks, nil
}

// Commit writes b, which holds frames applied by Apply, to Pebble without
// a sync, and closes it. Its point writes go in key order, as the
// standalone pipeline writes them (batchSorter): the same state, cheaper
// memtable inserts.
func (s *ShardApplier) Commit(b *ShardBatch) error {
	s.mu.Lock()
	pb := s.sorter.sort(s.d.pdb, b.b)
	s.mu.Unlock()
	b.b = nil
	err := pb.Commit(pebble.NoSync)
	pb.Close()
	return err
}

// Sync makes every batch committed so far durable (Commit writes without
// a sync; Pebble's log keeps batches in order, so a crash before Sync
// loses a suffix of them, never one in the middle).
func (s *ShardApplier) Sync() error { return s.d.pdb.LogData(nil, pebble.Sync) }

// reload re-reads the applied index and time from the store after a
// snapshot replaced the shard's key range, and has every machine that
// lives on the shard rebuild its in-memory view of it (Machine.Reload).
// REQUIRES: d.applyMu held (Exclusive).
func (s *ShardApplier) reload() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	index, t, err := readApplied(s.d.pdb, s.a.shard)
	if err != nil {
		return err
	}
	s.a.index, s.a.time = index, t
	for _, m := range s.a.reg.load().machines {
		if m.Reload == nil || !m.ownsShard(s.a.shard) {
			continue
		}
		if err := m.Reload(s.a.shard); err != nil {
			return fmt.Errorf("db: reload shard %d: %w", s.a.shard, err)
		}
	}
	return nil
}

// Exclusive runs fn while no other shard of the store applies: the state
// machines' in-memory views (queue hot sets, the registry, HNSW graphs)
// are written by apply functions written for one applying goroutine, as
// the standalone engine has, so a replica's shards apply one at a time.
// Wrap each batch (apply, commit, hooks) in it; RecoverSnapshot takes it
// itself.
func (s *ShardApplier) Exclusive(fn func() error) error {
	s.d.applyMu.Lock()
	defer s.d.applyMu.Unlock()
	return fn()
}
