package raftsm

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2/vfs/atomicfs"
	"github.com/flowdb/flowdb/db"
	"github.com/flowdb/flowdb/wal"
	sm "github.com/lni/dragonboat/v4/statemachine"
)

// Errors.
var (
	// ErrIndexBehind: the applied index stored for the shard is behind one
	// this state machine already reported to Dragonboat (the store was
	// replaced by an older copy); Open refuses it.
	ErrIndexBehind = errors.New("raftsm: applied index went backwards")
	// ErrBadSnapshot: snapshot bytes that do not decode, hold a key outside
	// the shard or lack the applied index (db.ErrBadSnapshot itself: the
	// store reads and writes snapshots).
	ErrBadSnapshot = db.ErrBadSnapshot
	// ErrBadEntry: a Raft entry that is not a frame.
	ErrBadEntry = errors.New("raftsm: entry is not a frame")
)

// StateMachine is a Dragonboat on-disk state machine over one shard of a
// flowdb store: it applies each entry's frame through the store's applier
// (db.ShardApplier), many entries per Pebble batch, with the shard's
// applied index in the same batch.
type StateMachine struct {
	d       *db.DB
	shard   uint32
	markDir string
	sa      *db.ShardApplier
	hwm     *atomicfs.Marker // located on the first writeHWM
}

// recovered counts RecoverFromSnapshot calls that completed (tests).
var recovered atomic.Int64

// hwmName names the high-water mark: the applied index last made durable
// by Sync, kept in markDir (with the Raft log, not in the store) as a
// Pebble atomicfs marker, so that a store replaced by an older copy is
// caught on Open.
func (s *StateMachine) hwmName() string { return fmt.Sprintf("raftsm-shard-%d-applied", s.shard) }

func (s *StateMachine) readHWM() (uint64, error) {
	v, err := atomicfs.ReadMarker(s.d.FS(), s.markDir, s.hwmName())
	if err != nil || v == "" {
		return 0, err
	}
	index, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("raftsm: high-water mark %s: %q", s.hwmName(), v)
	}
	return index, nil
}

// writeHWM records index durably through the store's file system: the
// marker moves to a new file named after index, and the directory is
// synced.
func (s *StateMachine) writeHWM(index uint64) error {
	if s.hwm == nil {
		m, _, err := atomicfs.LocateMarker(s.d.FS(), s.markDir, s.hwmName())
		if err != nil {
			return err
		}
		if err := m.RemoveObsolete(); err != nil {
			m.Close()
			return err
		}
		s.hwm = m
	}
	return s.hwm.Move(strconv.FormatUint(index, 10))
}

// New returns a state machine for shard of d, keeping its high-water mark
// in markDir (the NodeHost's directory, beside the Raft log; it must
// exist). Dragonboat calls it through Factory.
func New(d *db.DB, shard uint32, markDir string) *StateMachine {
	return &StateMachine{d: d, shard: shard, markDir: markDir}
}

// Factory returns a Dragonboat factory that gives the replica of shard the
// state machine over d (one store per replica).
func Factory(d *db.DB, shard uint32, markDir string) sm.CreateOnDiskStateMachineFunc {
	return func(uint64, uint64) sm.IOnDiskStateMachine { return New(d, shard, markDir) }
}

// Open returns the applied index stored for the shard.
func (s *StateMachine) Open(stopc <-chan struct{}) (uint64, error) {
	sa, err := s.d.ShardApplier(s.shard)
	if err != nil {
		return 0, err
	}
	hwm, err := s.readHWM()
	if err != nil {
		return 0, err
	}
	if sa.Applied() < hwm {
		return 0, fmt.Errorf("%w: shard %d stored at %d, but %d was synced before", ErrIndexBehind, s.shard, sa.Applied(), hwm)
	}
	s.sa = sa
	return sa.Applied(), nil
}

// Update applies entries (consecutive committed frames) in one batch
// (db.ShardBatch), written without a sync (Sync makes it durable; Pebble's
// log keeps batches in order, so a crash loses a suffix, never a hole).
// Each entry's Result is Value = the number of records applied without a
// rejection, Data = the encoded results (see result).
func (s *StateMachine) Update(entries []sm.Entry) ([]sm.Entry, error) {
	// Each frame decodes on its own (a shared Decoder's scratch would hold
	// only the last compressed frame's records).
	frames := make([]*wal.Frame, len(entries))
	for i, e := range entries {
		f, err := wal.DecodeFrame(e.Cmd)
		if err != nil {
			return nil, fmt.Errorf("%w: index %d: %w", ErrBadEntry, e.Index, err)
		}
		frames[i] = f
	}
	err := s.sa.Exclusive(func() error {
		b := s.sa.NewBatch(frames...)
		var hooks []func()
		for i, e := range entries {
			if e.Index <= s.sa.Applied() {
				continue // applied before a restart (Open reported a lower index)
			}
			results, enc, h, err := s.sa.Apply(b, e.Index, frames[i])
			if err != nil {
				b.Close()
				return err
			}
			hooks = append(hooks, h...)
			entries[i].Result = result(results, enc)
		}
		if err := s.sa.Commit(b); err != nil {
			return err
		}
		for _, h := range hooks {
			h()
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return entries, nil
}

// result is an entry's Result: Value = records applied without a
// rejection, Data = the encoded results (typed rejections included;
// db.DB.DecodeResults decodes them).
func result(rs []wal.Result, enc []byte) sm.Result {
	var ok uint64
	for _, r := range rs {
		if r.Err == nil {
			ok++
		}
	}
	return sm.Result{Value: ok, Data: enc}
}

// Lookup returns the applied index for a nil query. Reads of the store
// need no Lookup: a replica reads its own store after a Raft read index
// (db.DB.ReadBarrier), which Node takes with a nil query.
func (s *StateMachine) Lookup(q interface{}) (interface{}, error) {
	if q == nil {
		return s.sa.Applied(), nil
	}
	return nil, fmt.Errorf("raftsm: unknown query %T", q)
}

// Sync makes every applied batch durable, then records the applied index
// as the high-water mark Open checks.
func (s *StateMachine) Sync() error {
	if err := s.sa.Sync(); err != nil {
		return err
	}
	return s.writeHWM(s.sa.Applied())
}

// PrepareSnapshot captures the shard as it is now (db.ShardSnapshot).
func (s *StateMachine) PrepareSnapshot() (interface{}, error) { return s.sa.PrepareSnapshot(), nil }

// SaveSnapshot streams the shard from the prepared snapshot in the store's
// shard snapshot format (db.ShardApplier.SaveSnapshot).
func (s *StateMachine) SaveSnapshot(ctx interface{}, w io.Writer, done <-chan struct{}) error {
	return stopped(s.sa.SaveSnapshot(ctx.(*db.ShardSnapshot), w, done))
}

// stopped turns the store's db.ErrSnapshotStopped into Dragonboat's
// statemachine.ErrSnapshotStopped, which Dragonboat compares by identity.
func stopped(err error) error {
	if errors.Is(err, db.ErrSnapshotStopped) {
		return sm.ErrSnapshotStopped
	}
	return err
}

// RecoverFromSnapshot replaces the shard's key range with the snapshot's
// keys (the applied index among them), durably, repositions the applier
// and rebuilds the in-memory views (db.ShardApplier.RecoverSnapshot), then
// records the new applied index as the high-water mark. Bytes that do not
// decode and keys outside the shard are refused (ErrBadSnapshot).
func (s *StateMachine) RecoverFromSnapshot(r io.Reader, done <-chan struct{}) error {
	if err := s.sa.RecoverSnapshot(r, done); err != nil {
		return stopped(err)
	}
	if err := s.writeHWM(s.sa.Applied()); err != nil {
		return err
	}
	recovered.Add(1)
	return nil
}

// Close releases the high-water mark's directory handle; the store belongs
// to the caller.
func (s *StateMachine) Close() error {
	if s.hwm == nil {
		return nil
	}
	err := s.hwm.Close()
	s.hwm = nil
	return err
}
