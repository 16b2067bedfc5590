// Package vecio reads vector files: IDX (the MNIST and Fashion-MNIST image
// format, optionally gzipped) and .fvecs (the TEXMEX format). Readers
// never panic on bad bytes: they return ErrFormat.
package vecio

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
)

// ErrFormat reports a file that is not in the expected format.
var ErrFormat = errors.New("vecio: bad format")

// MaxVectors bounds what one read returns (a guard against absurd headers).
const MaxVectors = 1 << 26

// Open opens path, transparently gunzipping a gzip file.
func Open(path string) (io.ReadCloser, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	br := bufio.NewReaderSize(f, 1<<20)
	if magic, _ := br.Peek(2); bytes.Equal(magic, []byte{0x1f, 0x8b}) {
		zr, err := gzip.NewReader(br)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("%w: %v", ErrFormat, err)
		}
		return struct {
			io.Reader
			io.Closer
		}{zr, f}, nil
	}
	return struct {
		io.Reader
		io.Closer
	}{br, f}, nil
}

// ReadIDX reads an IDX file of unsigned bytes with 2 or more dimensions
// (images: count × rows × cols) as float32 vectors of rows·cols components
// (0-255). limit > 0 reads at most limit vectors.
func ReadIDX(r io.Reader, limit int) ([][]float32, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, fmt.Errorf("%w: idx header: %v", ErrFormat, err)
	}
	if hdr[0] != 0 || hdr[1] != 0 || hdr[2] != 0x08 || hdr[3] < 2 || hdr[3] > 4 {
		return nil, fmt.Errorf("%w: idx magic %x (want unsigned bytes, 2-4 dimensions)", ErrFormat, hdr)
	}
	dims := make([]uint32, hdr[3])
	if err := binary.Read(r, binary.BigEndian, dims); err != nil {
		return nil, fmt.Errorf("%w: idx dimensions: %v", ErrFormat, err)
	}
	n, dim := uint64(dims[0]), uint64(1)
	for _, d := range dims[1:] {
		dim *= uint64(d)
	}
	if n > MaxVectors || dim == 0 || dim > 1<<16 {
		return nil, fmt.Errorf("%w: idx of %d vectors of %d", ErrFormat, n, dim)
	}
	if limit > 0 && uint64(limit) < n {
		n = uint64(limit)
	}
	out := make([][]float32, 0, n)
	buf := make([]byte, dim)
	for range n {
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, fmt.Errorf("%w: idx vector %d: %v", ErrFormat, len(out), err)
		}
		v := make([]float32, dim)
		for i, b := range buf {
			v[i] = float32(b)
		}
		out = append(out, v)
	}
	return out, nil
}

// ReadFvecs reads .fvecs vectors (each: int32 dimension, then that many
// float32, little-endian) until EOF or limit (> 0).
func ReadFvecs(r io.Reader, limit int) ([][]float32, error) {
	var out [][]float32
	var dimBuf [4]byte
	for limit <= 0 || len(out) < limit {
		if _, err := io.ReadFull(r, dimBuf[:]); err == io.EOF {
			return out, nil
		} else if err != nil {
			return nil, fmt.Errorf("%w: fvecs vector %d: %v", ErrFormat, len(out), err)
		}
		dim := binary.LittleEndian.Uint32(dimBuf[:])
		if dim == 0 || dim > 1<<16 || (len(out) > 0 && int(dim) != len(out[0])) {
			return nil, fmt.Errorf("%w: fvecs vector %d has dimension %d", ErrFormat, len(out), dim)
		}
		raw := make([]byte, 4*dim)
		if _, err := io.ReadFull(r, raw); err != nil {
			return nil, fmt.Errorf("%w: fvecs vector %d: %v", ErrFormat, len(out), err)
		}
		v := make([]float32, dim)
		for i := range v {
			v[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
		}
		out = append(out, v)
	}
	return out, nil
}
