// Package keys encodes flowdb's Pebble keys: order-preserving big-endian
// tuples that begin with a shard id and a table tag, so one shard's state is
// one contiguous key range and one table is one contiguous range within it.
//
//	+----------------+-----------+---------------------------+
//	| shard (4 B BE) | table (1) | table-specific suffix ... |
//	+----------------+-----------+---------------------------+
//
// This is an on-disk format. Table tags are allocated here, one range per
// package, and never reused:
//
//	0x01       meta (applied index, applied time, format version)
//	0x02       command log (frames by log index)
//	0x10-0x1f  db key-value space
//	0x20-0x2f  queue
//	0x30-0x3f  registry
//	0x40-0x4f  index/hnsw, quant
//
// Shard 0 is the local shard of a standalone store: it holds the local
// command log and its applied index. Shard 1 is the catalog shard; data
// shards start at 2 (Dragonboat shard ids are the same numbers).
package keys

import "encoding/binary"

// Table tags.
const (
	TableMeta  byte = 0x01
	TableLog   byte = 0x02
	TableKV    byte = 0x10
	TableKVTTL byte = 0x11
	// Transactions' idempotency keys (db): key -> time, sum, outcome; and
	// time, key for reclaiming them.
	TableTxnIdem   byte = 0x12
	TableTxnIdemAt byte = 0x13

	TableQueueDef     byte = 0x20 // queue name -> config
	TableQueueTask    byte = 0x21 // queue, task id -> task body (immutable)
	TableQueueReady   byte = 0x22 // queue, 255-priority, seq -> task id
	TableQueueDelayed byte = 0x23 // queue, not-before, task id
	TableQueueLease   byte = 0x24 // queue, lease expiry, task id
	TableQueueDead    byte = 0x25 // queue, dead-at, task id
	TableQueueDone    byte = 0x26 // queue, done-at, task id
	TableQueueIdem    byte = 0x27 // queue, idempotency key -> task id, time
	TableQueueMeta    byte = 0x28 // queue -> counters
	TableQueueIdemAt  byte = 0x29 // queue, time, idempotency key (for reclaiming keys)
	TableQueueState   byte = 0x2A // queue, task id -> task state (the body is in TableQueueTask)
	TableQueueHeld    byte = 0x2B // no longer written (was: queue, agent, task id); reserved

	TableAgent byte = 0x30 // agent id -> agent (catalog shard)
	TablePool  byte = 0x31 // pool name -> pool config (catalog shard)

	TableVecDef    byte = 0x40 // collection -> config | quantizer | entry point
	TableVecVector byte = 0x41 // collection, id (8) -> float32 vector | tags
	TableVecNode   byte = 0x42 // collection, slot (4) -> graph node (links)
	TableVecCode   byte = 0x43 // collection, slot (4) -> int8 code
	TableVecTag    byte = 0x44 // collection, len(tag) | tag | id (8) (tag index)
)

// Well-known shards.
const (
	LocalShard   uint32 = 0
	CatalogShard uint32 = 1
	FirstData    uint32 = 2
)

// PrefixLen is the length of the shard and table prefix.
const PrefixLen = 5

// AppendPrefix appends shard and table to dst.
func AppendPrefix(dst []byte, shard uint32, table byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, shard)
	return append(dst, table)
}

// Prefix returns a new shard/table prefix.
func Prefix(shard uint32, table byte) []byte {
	return AppendPrefix(make([]byte, 0, PrefixLen), shard, table)
}

// ShardRange returns [start, end) covering every key of shard.
func ShardRange(shard uint32) (start, end []byte) {
	start = binary.BigEndian.AppendUint32(nil, shard)
	end = binary.BigEndian.AppendUint32(nil, shard+1)
	return start, end
}

// TableRange returns [start, end) covering every key of one table in shard.
func TableRange(shard uint32, table byte) (start, end []byte) {
	return Prefix(shard, table), Prefix(shard, table+1)
}

// Split returns the shard and table of a key and the rest; ok is false for a
// key shorter than a prefix.
func Split(key []byte) (shard uint32, table byte, rest []byte, ok bool) {
	if len(key) < PrefixLen {
		return 0, 0, nil, false
	}
	return binary.BigEndian.Uint32(key), key[4], key[PrefixLen:], true
}

// AppendName appends the prefix of a named object's keys (a queue, a
// collection, a key-value namespace) to dst:
//
//	shard (4 B) | table (1 B) | len(name) (1 B) | name
//
// Names are at most 255 bytes; callers validate them before any key is
// built.
func AppendName[N ~string | ~[]byte](dst []byte, shard uint32, table byte, name N) []byte {
	dst = AppendPrefix(dst, shard, table)
	dst = append(dst, byte(len(name)))
	return append(dst, name...)
}

// NameKey returns a new key of a named object: AppendName's prefix, then
// each suffix in turn. It has room for 26 more bytes than that before an
// append must grow it.
func NameKey(shard uint32, table byte, name string, suffix ...[]byte) []byte {
	k := AppendName(make([]byte, 0, 32+len(name)), shard, table, name)
	for _, s := range suffix {
		k = append(k, s...)
	}
	return k
}

// AppendUint64 appends v big-endian (order-preserving).
func AppendUint64(dst []byte, v uint64) []byte { return binary.BigEndian.AppendUint64(dst, v) }

// AppendInt64 appends v so that byte order matches numeric order.
func AppendInt64(dst []byte, v int64) []byte {
	return binary.BigEndian.AppendUint64(dst, uint64(v)^(1<<63))
}

// Int64 decodes AppendInt64.
func Int64(b []byte) int64 { return int64(binary.BigEndian.Uint64(b) ^ (1 << 63)) }

// PrefixEnd returns the smallest key greater than every key with prefix p, or
// nil if there is none (p is all 0xff).
func PrefixEnd(p []byte) []byte {
	end := append([]byte(nil), p...)
	for i := len(end) - 1; i >= 0; i-- {
		end[i]++
		if end[i] != 0 {
			return end[:i+1]
		}
	}
	return nil
}
