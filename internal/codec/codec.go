// Package codec holds the small decoding helpers shared by flowdb's record
// decoders. Every function is total: on short or malformed input it reports
// !ok and never panics or allocates.
package codec

import "encoding/binary"

// Uvarint reads a uvarint from p and returns it with the rest of p. Only the
// minimal encoding is accepted (a longer one ends in a zero byte), so each
// value decodes from exactly one byte string and re-encodes to it.
func Uvarint(p []byte) (uint64, []byte, bool) {
	v, n := binary.Uvarint(p)
	if n <= 0 || (n > 1 && p[n-1] == 0) {
		return 0, p, false
	}
	return v, p[n:], true
}

// Varint reads a zig-zag varint from p and returns it with the rest of p,
// minimally encoded as Uvarint requires.
func Varint(p []byte) (int64, []byte, bool) {
	v, n := binary.Varint(p)
	if n <= 0 || (n > 1 && p[n-1] == 0) {
		return 0, p, false
	}
	return v, p[n:], true
}

// LenBytes reads a uvarint length of at most max and that many bytes. The
// returned slice aliases p and has its capacity cut to its length.
func LenBytes(p []byte, max int) ([]byte, []byte, bool) {
	n, p, ok := Uvarint(p)
	if !ok || n > uint64(max) || n > uint64(len(p)) {
		return nil, p, false
	}
	return p[:n:n], p[n:], true
}

// AppendLenBytes appends b prefixed by its uvarint length.
func AppendLenBytes(dst, b []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(b)))
	return append(dst, b...)
}

// UvarintLen returns the encoded length of v as a uvarint.
func UvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}
