package db

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/flowdb/flowdb/internal/codec"
	"github.com/flowdb/flowdb/internal/keys"
	"github.com/flowdb/flowdb/wal"
)

// Limits of the key-value space, enforced at the API edge with typed errors
// and again in apply (a record that breaks them is rejected).
const (
	// MaxNamespaceSize is the longest namespace in bytes. The empty namespace
	// is valid (the default namespace).
	MaxNamespaceSize = 64
	// MaxKeySize is the longest key in bytes; keys must be non-empty.
	MaxKeySize = 4096
	// MaxValueSize is the largest value in bytes (16 MiB).
	MaxValueSize = 16 << 20
	// MaxBatchOps is the most operations in one Batch.
	MaxBatchOps = 100_000
	// MaxBatchBytes is the largest encoded Batch (32 MiB).
	MaxBatchBytes = 32 << 20
	// MaxTTL is the longest TTL (100 years).
	MaxTTL = 100 * 365 * 24 * time.Hour
)

// Record kinds owned by the key-value space (wal kinds 1-99).
const (
	// KindKVBatch: an atomic batch of set, delete and delete-prefix ops.
	KindKVBatch wal.Kind = 1
	// KindKVExpire: reclaim expired keys (proposed by the TTL reaper).
	KindKVExpire wal.Kind = 2
)

// Operation codes inside a KindKVBatch body.
const (
	opSet          byte = 1
	opDelete       byte = 2
	opDeletePrefix byte = 3
)

// value header flags.
const valHasExpiry byte = 1

// kvKey appends the key of (ns, key) on shard; ns is a string or bytes:
//
//	shard | TableKV | len(ns) (1 B) | ns | key
func kvKey[N ~string | ~[]byte](dst []byte, shard uint32, ns N, key []byte) []byte {
	return append(keys.AppendName(dst, shard, keys.TableKV, ns), key...)
}

// ttlKey appends the TTL index key of (ns, key) expiring at expiry:
//
//	shard | TableKVTTL | expiry (8 B, order-preserving int64) | len(ns) | ns | key
func ttlKey(dst []byte, shard uint32, expiry int64, ns string, key []byte) []byte {
	dst = keys.AppendPrefix(dst, shard, keys.TableKVTTL)
	dst = keys.AppendInt64(dst, expiry)
	dst = append(dst, byte(len(ns)))
	dst = append(dst, ns...)
	return append(dst, key...)
}

// splitNSKey splits "len(ns) | ns | key" (a kv key without its prefix).
func splitNSKey(b []byte) (ns, key []byte, ok bool) {
	if len(b) < 1 || int(b[0]) > MaxNamespaceSize || len(b) < 1+int(b[0]) {
		return nil, nil, false
	}
	return b[1 : 1+b[0]], b[1+b[0]:], true
}

// decodeValue splits a stored value into its expiry (0 = none) and the user
// value:
//
//	flags (1 B) | [expiry int64 BE (8 B) if flags&1] | value
func decodeValue(v []byte) (expiry int64, val []byte, err error) {
	if len(v) < 1 || v[0]&^valHasExpiry != 0 {
		return 0, nil, fmt.Errorf("%w: bad kv value header", wal.ErrCorrupt)
	}
	if v[0]&valHasExpiry == 0 {
		return 0, v[1:], nil
	}
	if len(v) < 9 {
		return 0, nil, fmt.Errorf("%w: truncated kv expiry", wal.ErrCorrupt)
	}
	return int64(binary.BigEndian.Uint64(v[1:9])), v[9:], nil
}

func checkNS(ns string) error {
	if len(ns) > MaxNamespaceSize {
		return fmt.Errorf("%w: %d bytes > %d", ErrNamespaceTooLarge, len(ns), MaxNamespaceSize)
	}
	return nil
}

func checkKey(key []byte) error {
	if len(key) == 0 {
		return ErrEmptyKey
	}
	if len(key) > MaxKeySize {
		return fmt.Errorf("%w: %d bytes > %d", ErrKeyTooLarge, len(key), MaxKeySize)
	}
	return nil
}

func checkValue(v []byte) error {
	if len(v) > MaxValueSize {
		return fmt.Errorf("%w: %d bytes > %d", ErrValueTooLarge, len(v), MaxValueSize)
	}
	return nil
}

func checkTTL(ttl time.Duration) error {
	if ttl < 0 || ttl > MaxTTL {
		return fmt.Errorf("%w: %v (want 0 for none, or up to %v)", ErrInvalidTTL, ttl, MaxTTL)
	}
	return nil
}

// Batch is an atomic group of key-value operations: Commit applies all of
// them in one record or none. Operations apply in the order added. A Batch
// is not safe for concurrent use; the first invalid operation makes the
// batch fail as a whole (Err and Commit report it) without applying anything.
type Batch struct {
	body []byte // encoded ops, without the leading count
	n    int
	err  error
}

// NewBatch returns an empty batch.
func (d *DB) NewBatch() *Batch { return &Batch{} }

// Len returns the number of operations.
func (b *Batch) Len() int { return b.n }

// Err returns the first error met while building the batch.
func (b *Batch) Err() error { return b.err }

// Reset empties the batch for reuse.
func (b *Batch) Reset() { b.body, b.n, b.err = b.body[:0], 0, nil }

func (b *Batch) add(op byte, ns string, key, value []byte, ttl time.Duration) {
	if b.err != nil {
		return
	}
	err := checkNS(ns)
	if err == nil {
		if op == opDeletePrefix {
			if len(key) > MaxKeySize {
				err = fmt.Errorf("%w: prefix of %d bytes", ErrKeyTooLarge, len(key))
			}
		} else {
			err = checkKey(key)
		}
	}
	if err == nil && op == opSet {
		if err = checkValue(value); err == nil {
			err = checkTTL(ttl)
		}
	}
	if err == nil && b.n+1 > MaxBatchOps {
		err = fmt.Errorf("%w: more than %d operations", ErrBatchTooLarge, MaxBatchOps)
	}
	if err == nil && len(b.body)+len(key)+len(value)+len(ns)+32 > MaxBatchBytes {
		err = fmt.Errorf("%w: more than %d bytes", ErrBatchTooLarge, MaxBatchBytes)
	}
	if err != nil {
		b.err = fmt.Errorf("batch op %d: %w", b.n, err)
		return
	}
	b.body = append(b.body, op)
	b.body = binary.AppendUvarint(b.body, uint64(len(ns)))
	b.body = append(b.body, ns...)
	b.body = binary.AppendUvarint(b.body, uint64(len(key)))
	b.body = append(b.body, key...)
	if op == opSet {
		b.body = binary.AppendUvarint(b.body, uint64(len(value)))
		b.body = append(b.body, value...)
		b.body = binary.AppendVarint(b.body, int64(ttl))
	}
	b.n++
}

// Set adds ns/key = value (no expiry).
func (b *Batch) Set(ns string, key, value []byte) { b.add(opSet, ns, key, value, 0) }

// SetTTL adds ns/key = value, expiring ttl after the batch is applied.
// ttl == 0 means no expiry.
func (b *Batch) SetTTL(ns string, key, value []byte, ttl time.Duration) {
	b.add(opSet, ns, key, value, ttl)
}

// Delete adds the deletion of ns/key. Deleting an absent key is not an error.
func (b *Batch) Delete(ns string, key []byte) { b.add(opDelete, ns, key, nil, 0) }

// DeletePrefix adds the deletion of every key in ns that starts with prefix;
// an empty prefix deletes the whole namespace.
func (b *Batch) DeletePrefix(ns string, prefix []byte) { b.add(opDeletePrefix, ns, prefix, nil, 0) }

// Record is the batch as one KindKVBatch record, for proposing it through
// another log (package raftsm). It aliases the batch's buffer.
func (b *Batch) Record() wal.Record { return b.record() }

// record encodes the batch as one KindKVBatch record. The record aliases
// the batch's buffer: the batch must not change until the record is applied.
func (b *Batch) record() wal.Record {
	return wal.Record{Kind: KindKVBatch, Body: b.body}
}

// Commit applies b atomically and returns once it is durable. b must not be
// modified while Commit runs; it may be Reset and reused afterwards.
func (d *DB) Commit(ctx context.Context, b *Batch) error {
	if b.err != nil {
		return b.err
	}
	if b.n == 0 {
		return ErrEmptyBatch
	}
	_, err := d.Propose(ctx, b.record())
	return err
}

func (d *DB) single(ctx context.Context, op byte, ns string, key, value []byte, ttl time.Duration) error {
	var b Batch
	b.add(op, ns, key, value, ttl)
	if b.err != nil {
		return errors.Unwrap(b.err) // drop the "batch op 0" context
	}
	_, err := d.Propose(ctx, b.record())
	return err
}

// Set stores value under ns/key, replacing any value (and its TTL).
func (d *DB) Set(ctx context.Context, ns string, key, value []byte) error {
	return d.single(ctx, opSet, ns, key, value, 0)
}

// SetTTL stores value under ns/key, invisible ttl after it is applied and
// reclaimed in the background after that. ttl == 0 means no expiry.
func (d *DB) SetTTL(ctx context.Context, ns string, key, value []byte, ttl time.Duration) error {
	return d.single(ctx, opSet, ns, key, value, ttl)
}

// Delete removes ns/key. Deleting an absent key is not an error.
func (d *DB) Delete(ctx context.Context, ns string, key []byte) error {
	return d.single(ctx, opDelete, ns, key, nil, 0)
}

// DeletePrefix removes every key of ns that begins with prefix (the whole
// namespace for an empty prefix), atomically.
func (d *DB) DeletePrefix(ctx context.Context, ns string, prefix []byte) error {
	return d.single(ctx, opDeletePrefix, ns, prefix, nil, 0)
}

// Entry is a key-value pair read from the store. Its slices are owned by the
// caller.
type Entry struct {
	Namespace string
	Key       []byte
	Value     []byte
	// ExpiresAt is the zero Time for a key without TTL.
	ExpiresAt time.Time
}

// Get returns a copy of the value under ns/key, or ErrNotFound if it is
// absent or expired.
func (d *DB) Get(ctx context.Context, ns string, key []byte) ([]byte, error) {
	e, err := d.GetEntry(ctx, ns, key)
	return e.Value, err
}

// GetEntry is Get that also returns the key's expiry.
func (d *DB) GetEntry(ctx context.Context, ns string, key []byte) (Entry, error) {
	if err := ctx.Err(); err != nil {
		return Entry{}, err
	}
	if err := checkNS(ns); err != nil {
		return Entry{}, err
	}
	if err := checkKey(key); err != nil {
		return Entry{}, err
	}
	if err := d.ReadBarrier(ctx, d.placement.ShardFor(ns)); err != nil {
		return Entry{}, err
	}
	if err := d.enter(); err != nil {
		return Entry{}, err
	}
	defer d.leave()
	var kb [64]byte
	k := kvKey(kb[:0], d.placement.ShardFor(ns), ns, key)
	v, c, err := d.pdb.Get(k)
	if errors.Is(err, pebble.ErrNotFound) {
		return Entry{}, ErrNotFound
	}
	if err != nil {
		return Entry{}, err
	}
	defer c.Close()
	exp, val, err := decodeValue(v)
	if err != nil {
		return Entry{}, fmt.Errorf("db: key %q in %q: %w", key, ns, err)
	}
	if exp != 0 && exp <= d.opts.Now().UnixNano() {
		return Entry{}, ErrNotFound
	}
	e := Entry{Namespace: ns, Key: append([]byte(nil), key...), Value: append([]byte{}, val...)}
	if exp != 0 {
		e.ExpiresAt = time.Unix(0, exp)
	}
	return e, nil
}

// kvMachine applies the key-value kinds. Its scratch state is used only by
// the applying goroutine.
type kvMachine struct {
	ops     []kvOp
	keyBuf  []byte
	expired func(n int) // metrics hook, called after commit
}

type kvOp struct {
	op         byte
	ns         []byte
	key, value []byte
	ttl        int64
}

func (d *DB) registerKV() error {
	m := &kvMachine{expired: func(n int) { d.m.ttlExpired.Add(uint64(n)) }}
	return d.Attach(Machine{
		Name: "kv",
		Kinds: []KindSpec{
			{Kind: KindKVBatch, Name: "kv.batch", Apply: m.applyBatch, Route: routeKVBatch, Txn: true},
			{Kind: KindKVExpire, Name: "kv.expire", Reads: true, Apply: m.applyExpire, Route: routeKVExpire},
		},
		Tables: []TableSpec{
			{Table: keys.TableKV, Name: "kv", Check: checkKVEntry},
			{Table: keys.TableKVTTL, Name: "kv.ttl", Check: checkTTLEntry},
		},
	})
}

// routeKVBatch routes a batch to its namespaces' shard; on a replicated
// store a batch whose namespaces sit on different shards is refused with
// ErrCrossShard (each shard is its own Raft group, so it could not apply
// atomically).
func routeKVBatch(p Placement, body []byte) (uint32, error) {
	var m kvMachine
	if err := m.parseBatch(body); err != nil {
		return 0, err
	}
	shard := uint32(0)
	for i, o := range m.ops {
		s := p.ShardForBytes(o.ns)
		if i > 0 && s != shard {
			return 0, fmt.Errorf("%w: namespaces %q and %q", ErrCrossShard, m.ops[0].ns, o.ns)
		}
		shard = s
	}
	if len(m.ops) == 0 {
		return 0, ErrEmptyBatch
	}
	return shard, nil
}

// routeKVExpire routes a reaper record by its first namespace (the reaper
// proposes one shard's keys per record).
func routeKVExpire(p Placement, body []byte) (uint32, error) {
	n, rest, ok := codec.Uvarint(body)
	if !ok || n == 0 {
		return 0, fmt.Errorf("%w: kv expire", ErrBadRecord)
	}
	ns, _, ok := codec.LenBytes(rest, MaxNamespaceSize)
	if !ok {
		return 0, fmt.Errorf("%w: kv expire", ErrBadRecord)
	}
	return p.ShardForBytes(ns), nil
}

var errBadKV = fmt.Errorf("%w: kv batch", ErrBadRecord)

// parseBatch decodes a KindKVBatch body into m.ops, validating every op.
func (m *kvMachine) parseBatch(body []byte) error {
	if len(body) == 0 || len(body) > MaxBatchBytes {
		return errBadKV
	}
	m.ops = m.ops[:0]
	p := body
	var ok bool
	for len(p) > 0 {
		if len(m.ops) == MaxBatchOps {
			return errBadKV
		}
		o := kvOp{op: p[0]}
		p = p[1:]
		if o.ns, p, ok = codec.LenBytes(p, MaxNamespaceSize); !ok {
			return errBadKV
		}
		if o.key, p, ok = codec.LenBytes(p, MaxKeySize); !ok {
			return errBadKV
		}
		switch o.op {
		case opSet:
			if len(o.key) == 0 {
				return errBadKV
			}
			if o.value, p, ok = codec.LenBytes(p, MaxValueSize); !ok {
				return errBadKV
			}
			var ttl int64
			if ttl, p, ok = codec.Varint(p); !ok || ttl < 0 || ttl > int64(MaxTTL) {
				return errBadKV
			}
			o.ttl = ttl
		case opDelete:
			if len(o.key) == 0 {
				return errBadKV
			}
		case opDeletePrefix:
		default:
			return errBadKV
		}
		m.ops = append(m.ops, o)
	}
	return nil
}

func (m *kvMachine) applyBatch(tx *Tx, rec wal.Record) (wal.Result, error) {
	if err := m.parseBatch(rec.Body); err != nil {
		return Reject(err)
	}
	for i := range m.ops {
		o := &m.ops[i]
		shard := tx.Placement.ShardForBytes(o.ns)
		m.keyBuf = kvKey(m.keyBuf[:0], shard, o.ns, o.key)
		switch o.op {
		case opSet:
			hdr := 1
			var exp int64
			if o.ttl > 0 {
				exp = tx.Time + o.ttl
				if exp < tx.Time { // overflow: clamp
					exp = math.MaxInt64
				}
				hdr = 9
				if err := tx.Set(ttlKey(nil, shard, exp, string(o.ns), o.key), nil); err != nil {
					return wal.Result{}, err
				}
			}
			// Write key and value straight into the batch.
			op := tx.batch.SetDeferred(len(m.keyBuf), hdr+len(o.value))
			copy(op.Key, m.keyBuf)
			op.Value[0] = 0
			if hdr == 9 {
				op.Value[0] = valHasExpiry
				binary.BigEndian.PutUint64(op.Value[1:9], uint64(exp))
			}
			copy(op.Value[hdr:], o.value)
			if err := op.Finish(); err != nil {
				return wal.Result{}, err
			}
		case opDelete:
			if err := tx.Delete(m.keyBuf); err != nil {
				return wal.Result{}, err
			}
		case opDeletePrefix:
			end := keys.PrefixEnd(m.keyBuf)
			if err := tx.DeleteRange(m.keyBuf, end); err != nil {
				return wal.Result{}, err
			}
		}
	}
	return wal.Result{N: uint64(len(m.ops))}, nil
}

// expireRecord encodes a KindKVExpire body: count, then (ns, key, expiry).
func expireRecord(entries []expireEntry) wal.Record {
	var body []byte
	body = binary.AppendUvarint(body, uint64(len(entries)))
	for _, e := range entries {
		body = binary.AppendUvarint(body, uint64(len(e.ns)))
		body = append(body, e.ns...)
		body = binary.AppendUvarint(body, uint64(len(e.key)))
		body = append(body, e.key...)
		body = binary.AppendVarint(body, e.expiry)
	}
	return wal.Record{Kind: KindKVExpire, Body: body}
}

type expireEntry struct {
	ns, key []byte
	expiry  int64
}

// applyExpire deletes each listed key whose stored expiry equals the listed
// one and has passed at tx.Time, and drops the listed TTL index entries that
// have passed. A key re-set since the reaper looked keeps its new value.
func (m *kvMachine) applyExpire(tx *Tx, rec wal.Record) (wal.Result, error) {
	n, p, ok := codec.Uvarint(rec.Body)
	if !ok || n > uint64(len(p)) {
		return Reject(fmt.Errorf("%w: kv expire", ErrBadRecord))
	}
	m.ops = m.ops[:0]
	for i := uint64(0); i < n; i++ {
		var o kvOp
		if o.ns, p, ok = codec.LenBytes(p, MaxNamespaceSize); !ok {
			break
		}
		if o.key, p, ok = codec.LenBytes(p, MaxKeySize); !ok || len(o.key) == 0 {
			ok = false
			break
		}
		if o.ttl, p, ok = codec.Varint(p); !ok {
			break
		}
		m.ops = append(m.ops, o)
	}
	if !ok || len(p) != 0 {
		return Reject(fmt.Errorf("%w: kv expire", ErrBadRecord))
	}
	deleted := 0
	for i := range m.ops {
		o := &m.ops[i]
		if o.ttl > tx.Time {
			continue // not yet expired at apply time
		}
		ns := string(o.ns)
		shard := tx.Placement.ShardFor(ns)
		m.keyBuf = kvKey(m.keyBuf[:0], shard, ns, o.key)
		v, c, err := tx.Get(m.keyBuf)
		switch {
		case errors.Is(err, pebble.ErrNotFound):
		case err != nil:
			return wal.Result{}, err
		default:
			exp, _, derr := decodeValue(v)
			c.Close()
			if derr == nil && exp == o.ttl {
				if err := tx.Delete(m.keyBuf); err != nil {
					return wal.Result{}, err
				}
				deleted++
			}
		}
		if err := tx.Delete(ttlKey(nil, shard, o.ttl, ns, o.key)); err != nil {
			return wal.Result{}, err
		}
	}
	if deleted > 0 {
		tx.AfterCommit(func() { m.expired(deleted) })
	}
	return wal.Result{N: uint64(deleted)}, nil
}

func checkKVEntry(key, value []byte) error {
	if _, k, ok := splitNSKey(key); !ok || len(k) == 0 || len(k) > MaxKeySize {
		return fmt.Errorf("%w: malformed kv key", wal.ErrCorrupt)
	}
	_, _, err := decodeValue(value)
	return err
}

func checkTTLEntry(key, value []byte) error {
	if len(key) < 8 {
		return fmt.Errorf("%w: short ttl index key", wal.ErrCorrupt)
	}
	if _, k, ok := splitNSKey(key[8:]); !ok || len(k) == 0 {
		return fmt.Errorf("%w: malformed ttl index key", wal.ErrCorrupt)
	}
	if len(value) != 0 {
		return fmt.Errorf("%w: ttl index entry has a value", wal.ErrCorrupt)
	}
	return nil
}
