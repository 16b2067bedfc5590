package fuzz

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/flowdb/flowdb/db"
	"github.com/flowdb/flowdb/wal"
)

func FuzzDecodeFrame(f *testing.F) {
	for _, s := range seedFrames() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var d wal.Decoder
		var fr wal.Frame
		err := d.Decode(data, &fr)
		if err != nil {
			if !errors.Is(err, wal.ErrCorrupt) {
				t.Fatalf("decode error does not match ErrCorrupt: %v", err)
			}
			return
		}
		// Copy out bodies (they alias data or the decoder's scratch).
		first := wal.Frame{Origin: fr.Origin, Time: fr.Time}
		for _, r := range fr.Records {
			first.Records = append(first.Records, wal.Record{Kind: r.Kind, Body: bytes.Clone(r.Body)})
		}
		re, _, err := wal.AppendFrame(nil, &first, wal.EncodeOptions{}, nil)
		if err != nil {
			t.Fatalf("re-encode of a decoded frame failed: %v", err)
		}
		var second wal.Frame
		if err := d.Decode(re, &second); err != nil {
			t.Fatalf("decode of re-encoded frame failed: %v", err)
		}
		if !first.Equal(&second) {
			t.Fatal("decode-reencode-decode changed the frame")
		}
	})
}

func FuzzFrameRoundTrip(f *testing.F) {
	f.Add(uint64(1), uint64(2), int64(3), []byte{1, 2, 3}, []byte("hello world, hello world"), uint8(0))
	f.Add(uint64(0), uint64(0), int64(-1), []byte{100}, bytes.Repeat([]byte("ab"), 5000), uint8(1))
	f.Add(uint64(1<<63), uint64(9), int64(1<<62), []byte{7, 7}, bytes.Repeat([]byte{0}, 70000), uint8(2))
	f.Fuzz(func(t *testing.T, id, seq uint64, tm int64, kinds, body []byte, comp uint8) {
		fr := wal.Frame{Origin: wal.Origin{ID: id, Seq: seq}, Time: tm}
		// Split body into one record per kind byte.
		for i, k := range kinds {
			if len(fr.Records) > 64 {
				break
			}
			lo := len(body) * i / len(kinds)
			hi := len(body) * (i + 1) / len(kinds)
			fr.Records = append(fr.Records, wal.Record{Kind: wal.Kind(k) + 1, Body: body[lo:hi]})
		}
		opts := wal.EncodeOptions{Compression: wal.Compression(comp % 3), Threshold: 1}
		buf, _, err := wal.AppendFrame(nil, &fr, opts, nil)
		if err != nil {
			t.Fatal(err)
		}
		got, err := wal.DecodeFrame(buf)
		if err != nil {
			t.Fatalf("decode of encoded frame: %v", err)
		}
		if !fr.Equal(got) {
			t.Fatal("round trip changed the frame")
		}
	})
}

// FuzzKVRecord applies an arbitrary body of a key-value record kind to a
// fresh copy of a store holding one key (harness): it is applied or
// rejected with db.ErrBadRecord, never a panic, the engine keeps working,
// and a rejected record changes nothing.
func FuzzKVRecord(f *testing.F) {
	f.Add(uint8(1), []byte{1, 1, 2, 'n', 's', 1, 'k', 1, 'v', 0})
	f.Add(uint8(1), []byte{2, 3, 0, 0, 1, 0, 1, 'k', 0, 0})
	f.Add(uint8(2), []byte{1, 2, 'n', 's', 1, 'k', 10})
	f.Add(uint8(1), []byte{})
	h := newHarness(f, func(ctx context.Context, e *env) error {
		return e.d.Set(ctx, "ns", []byte("sentinel"), []byte("keep"))
	})
	f.Fuzz(func(t *testing.T, kind uint8, body []byte) {
		e := h.fresh(t)
		k := db.KindKVBatch
		if kind%2 == 0 {
			k = db.KindKVExpire
		}
		err := e.apply(t, k, body)
		// A record whose decoding failed changed nothing.
		if errors.Is(err, db.ErrBadRecord) {
			if v, gerr := e.d.Get(context.Background(), "ns", []byte("sentinel")); gerr != nil || string(v) != "keep" {
				t.Fatalf("rejected record changed the store: %q %v", v, gerr)
			}
		}
	})
}

func seedFrames() [][]byte {
	var out [][]byte
	mk := func(fr wal.Frame, c wal.Compression) {
		b, _, err := wal.AppendFrame(nil, &fr, wal.EncodeOptions{Compression: c, Threshold: 1}, nil)
		if err == nil {
			out = append(out, b)
		}
	}
	mk(wal.Frame{}, wal.CompressNone)
	mk(wal.Frame{Origin: wal.Origin{ID: 1, Seq: 2}, Time: 3, Records: []wal.Record{{Kind: 1, Body: []byte("a")}}}, wal.CompressNone)
	big := wal.Frame{Time: 1 << 60}
	for i := 0; i < 20; i++ {
		big.Records = append(big.Records, wal.Record{Kind: wal.Kind(i + 1), Body: bytes.Repeat([]byte{byte(i)}, 100)})
	}
	mk(big, wal.CompressNone)
	mk(big, wal.CompressS2)
	mk(big, wal.CompressZstd)
	out = append(out, []byte{}, []byte{1}, []byte{1, 0, 0}, []byte{2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	return out
}

// TestWriteSeedCorpus writes the seed corpus files (run it after changing
// the format): FLOWDB_WRITE_CORPUS=1 go test ./fuzz -run TestWriteSeedCorpus
func TestWriteSeedCorpus(t *testing.T) {
	if os.Getenv("FLOWDB_WRITE_CORPUS") == "" {
		t.Skip("set FLOWDB_WRITE_CORPUS=1 to regenerate testdata/fuzz")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzDecodeFrame")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for i, s := range seedFrames() {
		content := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", s)
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed-%02d", i)), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Frames cut and flipped: the interesting failure shapes.
	full := seedFrames()[3]
	for i, s := range [][]byte{full[:len(full)/2], append(bytes.Clone(full[:len(full)-1]), full[len(full)-1]^1)} {
		content := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", s)
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("damaged-%02d", i)), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
