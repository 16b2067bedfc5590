package codec

import "encoding/binary"

// Enc appends fields to a record body or stored value. Its counterpart Dec
// reads them back.
type Enc []byte

// U appends a uvarint.
func (e Enc) U(v uint64) Enc { return binary.AppendUvarint(e, v) }

// I appends a zig-zag varint.
func (e Enc) I(v int64) Enc { return binary.AppendVarint(e, v) }

// B appends length-prefixed bytes.
func (e Enc) B(v []byte) Enc { return AppendLenBytes(e, v) }

// S appends a length-prefixed string.
func (e Enc) S(v string) Enc { return AppendLenBytes(e, []byte(v)) }

// U64 appends a big-endian uint64.
func (e Enc) U64(v uint64) Enc { return binary.BigEndian.AppendUint64(e, v) }

// List appends a count and that many length-prefixed byte strings.
func (e Enc) List(v [][]byte) Enc {
	e = e.U(uint64(len(v)))
	for _, x := range v {
		e = e.B(x)
	}
	return e
}

// Strings appends a count and that many length-prefixed strings.
func (e Enc) Strings(v []string) Enc {
	e = e.U(uint64(len(v)))
	for _, x := range v {
		e = e.S(x)
	}
	return e
}

// Dec reads fields written by Enc. At the first malformed field it goes
// !OK (and stays so), returning zero values: it never panics, and every
// length it reads is bounded by the caller's maximum and by the bytes left.
type Dec struct {
	P  []byte
	OK bool
}

// NewDec reads p.
func NewDec(p []byte) *Dec { return &Dec{P: p, OK: true} }

// U reads a uvarint.
func (d *Dec) U() uint64 {
	if !d.OK {
		return 0
	}
	v, p, ok := Uvarint(d.P)
	d.P, d.OK = p, ok
	return v
}

// I reads a zig-zag varint.
func (d *Dec) I() int64 {
	if !d.OK {
		return 0
	}
	v, p, ok := Varint(d.P)
	d.P, d.OK = p, ok
	return v
}

// B reads length-prefixed bytes of at most max (aliasing the input).
func (d *Dec) B(max int) []byte {
	if !d.OK {
		return nil
	}
	v, p, ok := LenBytes(d.P, max)
	d.P, d.OK = p, ok
	return v
}

// S reads a length-prefixed string of at most max bytes.
func (d *Dec) S(max int) string { return string(d.B(max)) }

// U64 reads a big-endian uint64.
func (d *Dec) U64() uint64 {
	if !d.OK || len(d.P) < 8 {
		d.OK = false
		return 0
	}
	v := binary.BigEndian.Uint64(d.P)
	d.P = d.P[8:]
	return v
}

// List reads at most maxItems byte strings of at most maxLen each.
func (d *Dec) List(maxItems, maxLen int) [][]byte {
	n := d.U()
	if !d.OK || n > uint64(maxItems) || n > uint64(len(d.P)) {
		d.OK = false
		return nil
	}
	var out [][]byte
	for i := uint64(0); i < n && d.OK; i++ {
		out = append(out, d.B(maxLen))
	}
	return out
}

// Strings reads at most maxItems strings of at most maxLen bytes each.
func (d *Dec) Strings(maxItems, maxLen int) []string {
	l := d.List(maxItems, maxLen)
	if len(l) == 0 {
		return nil
	}
	out := make([]string, len(l))
	for i, b := range l {
		out[i] = string(b)
	}
	return out
}

// Done reports whether decoding consumed everything without error.
func (d *Dec) Done() bool { return d.OK && len(d.P) == 0 }
