// Package fuzz holds flowdb's native Go fuzz targets, across packages:
//
//   - FuzzDecodeFrame: arbitrary bytes into the wal frame decoder. It must
//     never panic; whatever decodes must re-encode and decode to the same
//     frame (decode-reencode-decode).
//   - FuzzFrameRoundTrip: frames built from fuzzed fields, encoded with each
//     compression, must decode to themselves.
//   - FuzzKVRecord: arbitrary bodies for the key-value record kinds, applied
//     through a real store: each is applied or rejected with db.ErrBadRecord,
//     never a panic, and a rejected record changes nothing.
//
// The seed corpus lives in testdata/fuzz/<Target>/ and runs with every
// `go test ./...`. Run a campaign with, for example:
//
//	go test ./fuzz -run '^$' -fuzz FuzzDecodeFrame -fuzztime 5m
//
// Regenerate the seed corpus with FLOWDB_WRITE_CORPUS=1 go test ./fuzz -run TestWriteSeedCorpus.
package fuzz
