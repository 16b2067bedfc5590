// Package fuzz holds flowdb's native Go fuzz targets that drive a whole
// store or cut across packages:
//
//   - FuzzDecodeFrame: arbitrary bytes into the wal frame decoder. It must
//     never panic; whatever decodes must re-encode and decode to the same
//     frame (decode-reencode-decode).
//   - FuzzFrameRoundTrip: frames built from fuzzed fields, encoded with each
//     compression, must decode to themselves.
//   - FuzzKVRecord, FuzzQueueRecord, FuzzRegistryRecord, FuzzVecRecord: an
//     arbitrary body of one of the key-value, queue, registry or vector
//     record kinds, applied to a store that holds a little state of that
//     subsystem: it is applied or rejected with a typed error, never a
//     panic; the applied index advances; the engine still accepts a write
//     afterwards; the store passes Check (and a rejected key-value record
//     changes nothing, a collection still searches).
//   - FuzzTxnRecord: an arbitrary transaction body (db.KindTxn) into
//     db.DecodeTxn (never a panic; refusals match db.ErrBadRecord; what
//     decodes re-encodes and decodes the same), then applied to a store
//     holding a little of every subsystem under the same rules, and a
//     refused transaction leaves every table (the log, the meta and the
//     idempotency keys' bookkeeping aside) and every in-memory view as
//     they were.
//
// The record targets judge every input on a fresh copy of their base store
// (harness_test.go): the base state is built once in a crashable in-memory
// file system, and each input opens a clone of it with every subsystem
// attached. A target's verdict is then a function of its input alone, so
// a failure replays from the saved input; a target that applied every
// input to one shared store could fail on an input only because of the
// ones before it, which the minimizer then cannot shrink or replay.
//
// TestPoisonRecords (here) and raftsm's TestPoisonRecordsReplicated propose
// malformed bodies of every kind directly: each is rejected with a typed
// error and neither the engine nor a replica stops.
//
// Fuzz targets for one package's decoders live beside the code they fuzz:
//
//   - db FuzzDecodeResults: replica result bytes decode or fail with
//     wal.ErrCorrupt, never panic; what decodes re-encodes to itself.
//   - queue FuzzDecodeTask: the task decoders never panic; what decodes
//     re-encodes to the same bytes.
//   - quant FuzzUnmarshal: quantizer bytes never panic Unmarshal; what
//     decodes re-encodes to the same bytes.
//   - index/hnsw FuzzRestore: arbitrary node bytes never panic Restore.
//   - raftsm FuzzRecoverFromSnapshot: snapshot bytes are recovered or
//     refused with ErrBadSnapshot, never a panic.
//   - internal/vecio FuzzReaders: the vector file readers never panic;
//     failures are ErrFormat.
//
// Seed corpora live in testdata/fuzz/<Target>/ (in this package, and in
// queue for FuzzDecodeTask); the other targets seed themselves with f.Add.
// Seeds run with every `go test ./...`. Run a campaign with, for example:
//
//	go test ./fuzz -run '^$' -fuzz FuzzDecodeFrame -fuzztime 5m
//	go test ./queue -run '^$' -fuzz FuzzDecodeTask -fuzztime 5m
//
// Regenerate the seed corpus with FLOWDB_WRITE_CORPUS=1 go test ./fuzz -run TestWriteSeedCorpus.
package fuzz
