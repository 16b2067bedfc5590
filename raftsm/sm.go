package raftsm

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"
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
	// ErrBadSnapshot: snapshot bytes that do not decode.
	ErrBadSnapshot = errors.New("raftsm: corrupt snapshot")
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

// Update applies entries (consecutive committed frames) in one Pebble
// batch, written without a sync (Sync makes it durable; Pebble's log keeps
// batches in order, so a crash loses a suffix, never a hole). Each entry's
// Result is Value = the number of records applied without a rejection,
// Data = per record: uvarint N | error text (length-prefixed).
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
// rejection, Data = the encoded results (db.EncodeResults; typed
// rejections included).
func result(rs []wal.Result, enc []byte) sm.Result {
	var ok uint64
	for _, r := range rs {
		if r.Err == nil {
			ok++
		}
	}
	return sm.Result{Value: ok, Data: enc}
}

// Lookup runs a read: a func(pebble.Reader) (any, error) gets the store
// (reads of the shard's key range), nil returns the applied index.
func (s *StateMachine) Lookup(q interface{}) (interface{}, error) {
	switch q := q.(type) {
	case nil:
		return s.sa.Applied(), nil
	case func(pebble.Reader) (any, error):
		return q(s.d.Pebble())
	}
	return nil, fmt.Errorf("raftsm: unknown query %T", q)
}

// Sync makes every applied batch durable, then records the applied index
// as the high-water mark Open checks.
func (s *StateMachine) Sync() error {
	if err := s.d.Pebble().LogData(nil, pebble.Sync); err != nil {
		return err
	}
	return s.writeHWM(s.sa.Applied())
}

// PrepareSnapshot captures the shard as it is now (a Pebble snapshot).
func (s *StateMachine) PrepareSnapshot() (interface{}, error) { return s.d.Pebble().NewSnapshot(), nil }

// SaveSnapshot streams the shard's key range from the prepared snapshot:
// per key, uvarint len | key | uvarint len | value; then a zero length.
// The same state always gives the same bytes (keys in order).
func (s *StateMachine) SaveSnapshot(ctx interface{}, w io.Writer, done <-chan struct{}) error {
	snap := ctx.(*pebble.Snapshot)
	defer snap.Close()
	lo, hi := db.ShardBounds(s.shard)
	it, err := snap.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return err
	}
	defer it.Close()
	bw := bufio.NewWriterSize(w, 1<<20)
	var hdr []byte
	for ok := it.First(); ok; ok = it.Next() {
		select {
		case <-done:
			return sm.ErrSnapshotStopped
		default:
		}
		v, err := it.ValueAndErr()
		if err != nil {
			return err
		}
		hdr = binary.AppendUvarint(hdr[:0], uint64(len(it.Key())))
		bw.Write(hdr)
		bw.Write(it.Key())
		hdr = binary.AppendUvarint(hdr[:0], uint64(len(v)))
		bw.Write(hdr)
		if _, err := bw.Write(v); err != nil {
			return err
		}
	}
	if err := it.Error(); err != nil {
		return err
	}
	bw.WriteByte(0)
	return bw.Flush()
}

// RecoverFromSnapshot replaces the shard's key range with the snapshot's
// keys (the applied index among them), durably, then repositions the
// applier. Keys outside the shard's range are refused (ErrBadSnapshot).
func (s *StateMachine) RecoverFromSnapshot(r io.Reader, done <-chan struct{}) error {
	lo, hi := db.ShardBounds(s.shard)
	appliedKey := db.AppliedKey(s.shard)
	var applied []byte
	br := bufio.NewReaderSize(r, 1<<20)
	p := s.d.Pebble()
	b := p.NewBatch()
	if err := b.DeleteRange(lo, hi, nil); err != nil {
		return err
	}
	read := func() ([]byte, bool, error) {
		n, err := binary.ReadUvarint(br)
		if err != nil {
			return nil, false, fmt.Errorf("%w: %w", ErrBadSnapshot, err)
		}
		if n == 0 {
			return nil, true, nil
		}
		if n > 1<<30 {
			return nil, false, fmt.Errorf("%w: length %d", ErrBadSnapshot, n)
		}
		buf := make([]byte, n)
		if _, err := io.ReadFull(br, buf); err != nil {
			return nil, false, fmt.Errorf("%w: %w", ErrBadSnapshot, err)
		}
		return buf, false, nil
	}
	for {
		select {
		case <-done:
			b.Close()
			return sm.ErrSnapshotStopped
		default:
		}
		k, end, err := read()
		if err != nil {
			b.Close()
			return err
		}
		if end {
			break
		}
		v, end, err := read()
		if err == nil && end {
			v = nil // an empty value reads as the end marker's length: keep it empty
		} else if err != nil {
			b.Close()
			return err
		}
		if string(k) < string(lo) || string(k) >= string(hi) {
			b.Close()
			return fmt.Errorf("%w: key outside shard %d", ErrBadSnapshot, s.shard)
		}
		if bytes.Equal(k, appliedKey) {
			if _, _, err := db.DecodeApplied(v); err != nil {
				b.Close()
				return fmt.Errorf("%w: %w", ErrBadSnapshot, err)
			}
			applied = v // written last: a recovery cut short leaves no applied index
			continue
		}
		if err := b.Set(k, v, nil); err != nil {
			b.Close()
			return err
		}
		if b.Len() > 64<<20 {
			if err := b.Commit(pebble.NoSync); err != nil {
				return err
			}
			b = p.NewBatch()
		}
	}
	if applied == nil {
		b.Close()
		return fmt.Errorf("%w: no applied index", ErrBadSnapshot)
	}
	if err := b.Set(appliedKey, applied, nil); err != nil {
		b.Close()
		return err
	}
	err := s.sa.Exclusive(func() error {
		if err := b.Commit(pebble.Sync); err != nil {
			return err
		}
		return s.sa.Reload()
	})
	if err != nil {
		return err
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
