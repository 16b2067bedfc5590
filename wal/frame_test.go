package wal

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
)

func sampleFrame(n, bodySize int) *Frame {
	f := &Frame{Origin: Origin{ID: 7, Seq: 42}, Time: 1_700_000_000_000_000_000}
	for i := 0; i < n; i++ {
		unit := []byte(fmt.Sprintf("record-%d;", i))
		body := bytes.Repeat(unit, bodySize/len(unit)+1)[:bodySize]
		f.Records = append(f.Records, Record{Kind: Kind(1 + i%300), Body: body})
	}
	return f
}

func TestFrameRoundTrip(t *testing.T) {
	for _, comp := range []Compression{CompressNone, CompressS2, CompressZstd} {
		for _, shape := range []struct{ n, size int }{{0, 0}, {1, 0}, {1, 1}, {3, 100}, {100, 1000}, {2, 200_000}} {
			name := fmt.Sprintf("%v/%dx%d", comp, shape.n, shape.size)
			t.Run(name, func(t *testing.T) {
				f := sampleFrame(shape.n, shape.size)
				f.Time = -5 // negative times round-trip too
				buf, _, err := AppendFrame([]byte("prefix"), f, EncodeOptions{Compression: comp, Threshold: 64}, nil)
				if err != nil {
					t.Fatal(err)
				}
				if string(buf[:6]) != "prefix" {
					t.Fatal("AppendFrame clobbered dst")
				}
				var d Decoder
				var got Frame
				if err := d.Decode(buf[6:], &got); err != nil {
					t.Fatal(err)
				}
				if !f.Equal(&got) {
					t.Fatalf("round trip mismatch")
				}
				if comp != CompressNone && shape.n == 100 && buf[7] == 0 {
					t.Fatalf("compressible frame stored plainly")
				}
			})
		}
	}
}

// TestFrameCorruption flips every bit and truncates at every length: each
// damaged frame must fail with ErrCorrupt, never panic, never decode.
func TestFrameCorruption(t *testing.T) {
	for _, comp := range []Compression{CompressNone, CompressS2, CompressZstd} {
		f := sampleFrame(4, 300)
		buf, _, err := AppendFrame(nil, f, EncodeOptions{Compression: comp, Threshold: 1}, nil)
		if err != nil {
			t.Fatal(err)
		}
		var d Decoder
		var got Frame
		for i := range buf {
			for bit := 0; bit < 8; bit++ {
				bad := append([]byte(nil), buf...)
				bad[i] ^= 1 << bit
				if err := d.Decode(bad, &got); !errors.Is(err, ErrCorrupt) {
					t.Fatalf("%v: flip byte %d bit %d: err %v", comp, i, bit, err)
				}
			}
		}
		for n := 0; n < len(buf); n++ {
			if err := d.Decode(buf[:n], &got); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("%v: truncated to %d: err %v", comp, n, err)
			}
		}
		if err := d.Decode(append(append([]byte(nil), buf...), 0), &got); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("%v: trailing byte accepted: %v", comp, err)
		}
	}
}

func TestEncodeLimits(t *testing.T) {
	f := &Frame{Records: []Record{{Kind: 0, Body: nil}}}
	if _, _, err := AppendFrame(nil, f, EncodeOptions{}, nil); err == nil {
		t.Fatal("kind 0 accepted")
	}
	f = &Frame{Records: []Record{{Kind: 1, Body: make([]byte, MaxRecordBody+1)}}}
	if _, _, err := AppendFrame(nil, f, EncodeOptions{}, nil); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversized body: %v", err)
	}
}

// TestDecodeDoesNotCopy checks that record bodies alias the frame buffer.
func TestDecodeDoesNotCopy(t *testing.T) {
	buf, _, _ := AppendFrame(nil, sampleFrame(2, 50), EncodeOptions{}, nil)
	f, err := DecodeFrame(buf)
	if err != nil {
		t.Fatal(err)
	}
	b := f.Records[1].Body
	found := false
	for i := range buf {
		if &buf[i] == &b[0] {
			found = true
		}
	}
	if !found {
		t.Fatal("record body was copied out of the frame")
	}
}

func BenchmarkEncodeDecode(b *testing.B) {
	f := sampleFrame(64, 256)
	var buf []byte
	var d Decoder
	var got Frame
	b.ReportAllocs()
	b.SetBytes(int64(PayloadSize(f)))
	for i := 0; i < b.N; i++ {
		buf, _, _ = AppendFrame(buf[:0], f, EncodeOptions{}, nil)
		if err := d.Decode(buf, &got); err != nil {
			b.Fatal(err)
		}
	}
}
