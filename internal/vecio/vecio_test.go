package vecio

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"testing"
)

func idx(n, rows, cols int) []byte {
	b := []byte{0, 0, 8, 3}
	for _, d := range []int{n, rows, cols} {
		b = binary.BigEndian.AppendUint32(b, uint32(d))
	}
	for i := range n * rows * cols {
		b = append(b, byte(i))
	}
	return b
}

func fvecs(vs [][]float32) []byte {
	var b []byte
	for _, v := range vs {
		b = binary.LittleEndian.AppendUint32(b, uint32(len(v)))
		for _, x := range v {
			b = binary.LittleEndian.AppendUint32(b, math.Float32bits(x))
		}
	}
	return b
}

func TestReadIDX(t *testing.T) {
	vs, err := ReadIDX(bytes.NewReader(idx(3, 2, 2)), 0)
	if err != nil || len(vs) != 3 || len(vs[0]) != 4 || vs[2][3] != 11 {
		t.Fatalf("%v %v", vs, err)
	}
	if vs, err := ReadIDX(bytes.NewReader(idx(3, 2, 2)), 2); err != nil || len(vs) != 2 {
		t.Fatalf("limit: %v %v", vs, err)
	}
	full := idx(3, 2, 2)
	for _, bad := range [][]byte{nil, full[:3], full[:10], full[:len(full)-1], {0, 0, 9, 3}, {0, 0, 8, 1}} {
		if _, err := ReadIDX(bytes.NewReader(bad), 0); !errors.Is(err, ErrFormat) {
			t.Fatalf("%x: %v", bad, err)
		}
	}
}

func TestReadFvecs(t *testing.T) {
	in := [][]float32{{1, 2, 3}, {4, 5, 6}}
	vs, err := ReadFvecs(bytes.NewReader(fvecs(in)), 0)
	if err != nil || len(vs) != 2 || vs[1][2] != 6 {
		t.Fatalf("%v %v", vs, err)
	}
	b := fvecs(in)
	for _, bad := range [][]byte{b[:3], b[:len(b)-1], fvecs([][]float32{{1}, {1, 2}}), {0, 0, 0, 0}} {
		if _, err := ReadFvecs(bytes.NewReader(bad), 0); !errors.Is(err, ErrFormat) {
			t.Fatalf("%x: %v", bad, err)
		}
	}
}

// FuzzReaders: arbitrary bytes never panic the readers; failures are
// ErrFormat.
func FuzzReaders(f *testing.F) {
	f.Add(idx(2, 2, 2))
	f.Add(fvecs([][]float32{{1, 2}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		if _, err := ReadIDX(bytes.NewReader(b), 100); err != nil && !errors.Is(err, ErrFormat) {
			t.Fatal(err)
		}
		if _, err := ReadFvecs(bytes.NewReader(b), 100); err != nil && !errors.Is(err, ErrFormat) {
			t.Fatal(err)
		}
	})
}
