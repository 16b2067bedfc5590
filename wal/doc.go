// Package wal defines flowdb's command log: records, frames (batches of
// records), their binary format, and the group-commit Batcher that turns many
// concurrent submissions into one frame.
//
// Every mutation in flowdb is a Record. Records never reach Pebble directly:
// the Batcher groups them into a Frame, the frame is given a log index, and
// the db applier applies the whole frame, together with that index, in one
// Pebble batch. The standalone engine and the replicated one (raftsm) apply
// the same frames with the same code.
//
// # Frame format
//
// This is a wire format: frames are stored in the log table and travel as
// Raft proposals. It must not change without bumping Version.
//
//	+---------+-------+-----------------+--------------------+----------------+
//	| version | flags | length (uvarint)| payload (length B) | xxhash64 (8 B) |
//	|  1 byte | 1 byte|                 |                    | little-endian  |
//	+---------+-------+-----------------+--------------------+----------------+
//
//	version   Version (currently 1). Other values are ErrCorrupt.
//	flags     bit 0: payload is s2-compressed; bit 1: payload is zstd-compressed.
//	          At most one compression bit may be set; other bits must be 0.
//	length    number of payload bytes as stored (after compression).
//	xxhash64  checksum of every preceding byte of the frame (version through
//	          the end of the payload), so corruption is detected before any
//	          decompression is attempted.
//
// A compressed payload is the compression of the plain payload below, prefixed
// by the plain payload's length as a uvarint (so decompression is bounded):
//
//	compressed payload = uvarint(plain length) | compressed bytes
//
// The plain payload:
//
//	+----------------+-------------+--------------+-----------------+---------+
//	| origin uvarint | seq uvarint | time varint  | count uvarint   | records |
//	+----------------+-------------+--------------+-----------------+---------+
//
//	origin, seq  the proposer's identity and sequence number (0, 0 when the
//	             proposer does not ask for deduplication); used by replicated
//	             state machines to drop a retried proposal.
//	time         the proposer's clock, Unix nanoseconds. Apply never reads a
//	             clock; it uses max(time, last applied time) instead.
//	count        number of records that follow.
//
// Each record:
//
//	+--------------+---------------+----------------------+
//	| kind uvarint | len uvarint   | body (len bytes)     |
//	+--------------+---------------+----------------------+
//
// Record bodies are opaque to this package: each state machine defines the
// body of its own kinds (see Kind for the allocated ranges). Decoding never
// copies a body: Record.Body aliases the frame buffer (or, for a compressed
// frame, the Decoder's scratch buffer) and is valid until that buffer is
// reused.
//
// # Invariants
//
//  1. DecodeFrame never panics and never allocates in proportion to a length
//     field it has not checked against the bytes actually present; any
//     malformed, truncated or trailing input yields an error matching
//     ErrCorrupt.
//  2. Decode(Encode(f)) == f for every frame that Encode accepts, compressed
//     or not.
//  3. A frame either decodes whole or not at all.
//
// # Concurrency
//
// Encoding and decoding functions are pure and safe for concurrent use; a
// Decoder is not (it owns a scratch buffer). A Batcher is safe for any number
// of concurrent submitters and exactly one consumer calling Next.
package wal
