// Package fuzz holds flowdb's native Go fuzz targets that drive a whole
// store or cut across packages:
//
//   - FuzzDecodeFrame: arbitrary bytes into the wal frame decoder. It must
//     never panic; whatever decodes must re-encode and decode to the same
//     frame (decode-reencode-decode).
//   - FuzzFrameRoundTrip: frames built from fuzzed fields, encoded with each
//     compression, must decode to themselves.
//   - FuzzKVRecord: arbitrary bodies for the key-value record kinds, applied
//     through a real store: each is applied or rejected with db.ErrBadRecord,
//     never a panic, and a rejected record changes nothing.
//   - FuzzQueueRecord: arbitrary bodies of every queue record kind applied
//     through a live store: applied or rejected with a typed error, never a
//     panic; the applied index advances and the store passes Check.
//   - FuzzRegistryRecord: the same for every registry record kind.
//   - FuzzVecRecord: the same for every vector-collection record kind.
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
