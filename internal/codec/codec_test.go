package codec

import (
	"encoding/binary"
	"testing"
)

func TestHelpersAreTotal(t *testing.T) {
	for _, p := range [][]byte{nil, {}, {0x80}, {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}} {
		if _, _, ok := Uvarint(p); ok {
			t.Fatalf("Uvarint(%x) ok", p)
		}
		if _, _, ok := Varint(p); ok {
			t.Fatalf("Varint(%x) ok", p)
		}
		if _, _, ok := LenBytes(p, 10); ok {
			t.Fatalf("LenBytes(%x) ok", p)
		}
	}
	if _, _, ok := LenBytes([]byte{5, 1, 2}, 10); ok {
		t.Fatal("LenBytes past the end")
	}
	if _, _, ok := LenBytes([]byte{3, 1, 2, 3}, 2); ok {
		t.Fatal("LenBytes over max")
	}
	b, rest, ok := LenBytes(AppendLenBytes(nil, []byte("abc")), 3)
	if !ok || string(b) != "abc" || len(rest) != 0 || cap(b) != 3 {
		t.Fatalf("round trip: %q %v", b, ok)
	}
	for _, v := range []uint64{0, 1, 127, 128, 1 << 32, 1<<64 - 1} {
		if UvarintLen(v) != len(binary.AppendUvarint(nil, v)) {
			t.Fatalf("UvarintLen(%d)", v)
		}
	}
}
