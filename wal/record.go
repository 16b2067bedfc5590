package wal

import (
	"errors"
	"fmt"
)

// Version is the frame format version written by this package.
const Version byte = 1

// Frame flag bits.
const (
	flagS2   byte = 1 << 0
	flagZstd byte = 1 << 1
	flagMask      = flagS2 | flagZstd
)

// Limits enforced by the encoder and the decoder.
const (
	// MaxRecordBody is the largest record body accepted (64 MiB).
	MaxRecordBody = 64 << 20
	// MaxFrameBytes is the largest plain (uncompressed) frame payload accepted
	// (256 MiB). Decompression never produces more than this.
	MaxFrameBytes = 256 << 20
)

var (
	// ErrCorrupt is returned (possibly wrapped) for any frame that fails to
	// decode: bad checksum, unknown version or flags, truncation, trailing
	// bytes, or a length that does not fit.
	ErrCorrupt = errors.New("wal: corrupt frame")
	// ErrTooLarge is returned by the encoder for a record or frame over the
	// limits above.
	ErrTooLarge = errors.New("wal: record or frame too large")
)

// Kind identifies the state machine that owns a record and the shape of its
// body. Kinds are allocated in ranges of a hundred, one per package that
// owns records, so that packages register their own kinds (db.KindSpec)
// without coordinating beyond this table. The engine refuses a second
// registration of a kind (db.ErrKindRegistered), and the encoder a record
// of kind 0.
//
//	range      owner        kinds in use
//	0          -            invalid
//	1-99       db           1 key-value batch, 2 key-value expiry, 3 transaction, 4 condition
//	                        (KindKVBatch, KindKVExpire, KindTxn, KindKVRequire)
//	100-199    queue        100-112: create, enqueue, lease, extend, ack, nack, cancel,
//	                        tick, replay, purge, ack batch, assign, release
//	200-299    registry     200-205: register, deregister, heartbeat, expire,
//	                        pool define, pool delete
//	300-399    index/hnsw   300-304: create, insert, delete, train, drop
//	400-65535  unallocated  a new package that owns records takes the next free hundred
//
// Packages without kinds of their own: sched proposes queue records
// (assign 111, release 112); quant's parameters travel inside hnsw's train
// record; raftsm replicates frames of the kinds above.
//
// Wire format: the numeric value of a kind is stored in every frame and
// must never change or be reused for another body.
type Kind uint16

// Record is one mutation. Body is owned by whoever produced it; after
// decoding it aliases the frame buffer (see the package doc).
type Record struct {
	Kind Kind
	Body []byte
}

// Origin identifies the proposer of a frame for deduplication. The zero
// Origin means "no deduplication requested".
type Origin struct {
	ID  uint64
	Seq uint64
}

// Frame is a batch of records that is applied atomically under one log
// index.
type Frame struct {
	Origin Origin
	// Time is the proposer's clock in Unix nanoseconds. Apply uses
	// max(Time, last applied time), never the clock.
	Time    int64
	Records []Record
}

// Compression selects how Encode compresses frame payloads that exceed the
// threshold.
type Compression uint8

const (
	// CompressNone stores every payload plainly.
	CompressNone Compression = iota
	// CompressS2 uses klauspost/compress/s2: fast, moderate ratio. The default.
	CompressS2
	// CompressZstd uses klauspost/compress/zstd at its fastest level: better
	// ratio, more CPU.
	CompressZstd
)

func (c Compression) String() string {
	switch c {
	case CompressNone:
		return "none"
	case CompressS2:
		return "s2"
	case CompressZstd:
		return "zstd"
	}
	return fmt.Sprintf("compression(%d)", uint8(c))
}

// corruptf wraps ErrCorrupt with detail.
func corruptf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrCorrupt}, args...)...)
}
