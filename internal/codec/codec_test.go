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

// TestVarintsAreCanonical checks that every value has one accepted encoding:
// the minimal one round-trips, and a padded one (a zero final group) is
// refused, so a decoder that re-encodes what it accepted gets the same bytes.
func TestVarintsAreCanonical(t *testing.T) {
	for _, v := range []uint64{0, 1, 127, 128, 300, 1 << 32, 1<<64 - 1} {
		p := binary.AppendUvarint(nil, v)
		if got, rest, ok := Uvarint(p); !ok || got != v || len(rest) != 0 {
			t.Errorf("Uvarint(%x) = %d, %v", p, got, ok)
		}
		if len(p) < binary.MaxVarintLen64 {
			padded := append(append([]byte(nil), p...), 0)
			padded[len(p)-1] |= 0x80
			if _, _, ok := Uvarint(padded); ok {
				t.Errorf("Uvarint accepted the padded %x for %d", padded, v)
			}
		}
		sv := int64(v)
		q := binary.AppendVarint(nil, sv)
		if got, _, ok := Varint(q); !ok || got != sv {
			t.Errorf("Varint(%x) = %d, %v", q, got, ok)
		}
		if len(q) < binary.MaxVarintLen64 {
			padded := append(append([]byte(nil), q...), 0)
			padded[len(q)-1] |= 0x80
			if _, _, ok := Varint(padded); ok {
				t.Errorf("Varint accepted the padded %x for %d", padded, sv)
			}
		}
	}
}
