package db

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/cockroachdb/pebble/v2"
	"github.com/flowdb/flowdb/internal/keys"
)

// A shard snapshot is the shard's whole key range (its applied index
// included), keys in order, so that the same state always gives the same
// bytes. Wire format (raftsm sends it between replicas; it must not change
// without a version):
//
//	+-------------------+-----+---------------------+-------+
//	| uvarint len(key)  | key | uvarint len(value)  | value |  per key, in key order
//	+-------------------+-----+---------------------+-------+
//	| 0                                                     |  end (no key is empty)
//	+-------------------------------------------------------+
//
// An empty value is written as a zero length, like the end marker; it is
// read back as a value, since a value always follows a key.

// ErrBadSnapshot marks snapshot bytes that do not decode, hold a key
// outside the shard, or lack a well-formed applied index.
var ErrBadSnapshot = errors.New("db: corrupt shard snapshot")

// ErrSnapshotStopped is returned by SaveSnapshot and RecoverSnapshot when
// their done channel closed before they finished.
var ErrSnapshotStopped = errors.New("db: shard snapshot stopped")

// maxSnapshotEntry bounds one key or value read from a snapshot.
const maxSnapshotEntry = 1 << 30

// recoverCommitBytes is the batch size beyond which RecoverSnapshot commits
// what it read so far (without the applied index) and goes on in a new
// batch.
const recoverCommitBytes = 64 << 20

// ShardSnapshot is the state of one shard at a point in time, taken by
// ShardApplier.PrepareSnapshot and streamed by SaveSnapshot, which may run
// while later frames apply.
type ShardSnapshot struct {
	shard uint32
	snap  *pebble.Snapshot
}

// Close releases the snapshot. SaveSnapshot closes it; Close is for a
// snapshot that is never saved, and may be called more than once.
func (ss *ShardSnapshot) Close() error {
	if ss.snap == nil {
		return nil
	}
	err := ss.snap.Close()
	ss.snap = nil
	return err
}

// PrepareSnapshot captures the shard as it is now: every batch committed
// so far, none applied later.
func (s *ShardApplier) PrepareSnapshot() *ShardSnapshot {
	return &ShardSnapshot{shard: s.a.shard, snap: s.d.pdb.NewSnapshot()}
}

// SaveSnapshot streams ss to w in the shard snapshot format and closes ss.
// It returns ErrSnapshotStopped if done closes first. It may run
// concurrently with Apply and Commit.
func (s *ShardApplier) SaveSnapshot(ss *ShardSnapshot, w io.Writer, done <-chan struct{}) error {
	defer ss.Close()
	lo, hi := keys.ShardRange(ss.shard)
	it, err := ss.snap.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return err
	}
	defer it.Close()
	bw := bufio.NewWriterSize(w, 1<<20)
	var hdr []byte
	for ok := it.First(); ok; ok = it.Next() {
		select {
		case <-done:
			return ErrSnapshotStopped
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

// RecoverSnapshot replaces the shard's key range with the snapshot read
// from r, durably (a synced commit), then repositions the applier at the
// snapshot's applied index and has every machine on the shard rebuild its
// view (Machine.Reload), with every shard's apply stopped (Exclusive).
// Bytes that do not decode, keys outside the shard and a missing or
// malformed applied index give ErrBadSnapshot, and ErrSnapshotStopped
// comes back if done closes first; either way, for snapshots under 64 MiB
// nothing was written. Larger ones commit in steps, the applied index last,
// so a recovery cut short leaves the shard without an applied index and
// Raft sends the snapshot again.
func (s *ShardApplier) RecoverSnapshot(r io.Reader, done <-chan struct{}) error {
	lo, hi := keys.ShardRange(s.a.shard)
	appliedKey := metaAppliedKey(s.a.shard)
	var applied []byte
	br := bufio.NewReaderSize(r, 1<<20)
	p := s.d.pdb
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
		if n > maxSnapshotEntry {
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
			return ErrSnapshotStopped
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
			return fmt.Errorf("%w: key outside shard %d", ErrBadSnapshot, s.a.shard)
		}
		if bytes.Equal(k, appliedKey) {
			if _, _, err := decodeApplied(v); err != nil {
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
		if b.Len() > recoverCommitBytes {
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
	return s.Exclusive(func() error {
		if err := b.Commit(pebble.Sync); err != nil {
			return err
		}
		return s.reload()
	})
}
