package hnsw

import (
	"encoding/binary"
	"fmt"
	"math"
	"unsafe"

	"github.com/flowdb/flowdb/internal/codec"
	"github.com/flowdb/flowdb/quant"
)

func encodeConfig(c Config) codec.Enc {
	var float uint64
	if c.Float {
		float = 1
	}
	return codec.Enc(nil).S(c.Name).U(uint64(c.Dim)).U(uint64(c.Metric)).U(uint64(c.M)).U(uint64(c.EfConstruction)).
		U(uint64(c.Ef)).U(uint64(c.TrainSize)).U(float)
}

func decodeConfig(d *codec.Dec) Config {
	c := Config{Name: d.S(MaxNameSize), Dim: int(d.U()), Metric: quant.Metric(d.U()), M: int(d.U()),
		EfConstruction: int(d.U()), Ef: int(d.U()), TrainSize: int(d.U())}
	switch d.U() {
	case 0:
	case 1:
		c.Float = true
	default:
		d.OK = false
	}
	return c
}

// def value: config | quantizer bytes | entry point + 1.
func encodeDef(c *coll) []byte {
	e := encodeConfig(c.cfg).B(c.qb)
	entry := int64(-1)
	if c.g != nil {
		entry = int64(c.g.Entry())
	}
	return e.I(entry)
}

func decodeDef(v []byte) (Config, *quant.Quantizer, int32, error) {
	d := codec.NewDec(v)
	cfg := decodeConfig(d)
	qb := d.B(1 << 20)
	entry := d.I()
	if !d.Done() || cfg.validate() != nil || entry < -1 || entry > math.MaxInt32 {
		return cfg, nil, 0, fmt.Errorf("%w: collection definition", ErrCorrupt)
	}
	if len(qb) == 0 {
		return cfg, nil, int32(entry), nil
	}
	q, err := quant.Unmarshal(qb)
	if err != nil || q.Dim() != cfg.Dim {
		return cfg, nil, 0, fmt.Errorf("%w: quantizer of %q", ErrCorrupt, cfg.Name)
	}
	return cfg, q, int32(entry), nil
}

// encodeVec is a stored vector: dim float32 (LE) | tags.
func encodeVec(v []float32, tags [][]byte) []byte {
	b := make([]byte, 0, 4*len(v)+8)
	for _, x := range v {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(x))
	}
	return codec.Enc(b).List(tags)
}

// floats is the stored vector at the start of val: val's own bytes read
// as float32 where the layout allows it (little-endian, aligned), else
// decoded into scratch.
func floats(val []byte, scratch []float32) []float32 {
	dim := len(scratch)
	if nativeLE {
		if uintptr(unsafe.Pointer(unsafe.SliceData(val)))%4 == 0 {
			return unsafe.Slice((*float32)(unsafe.Pointer(unsafe.SliceData(val))), dim)
		}
		// A block's values are packed with no alignment: one memmove
		// rather than a float at a time.
		copy(unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(scratch))), 4*dim), val[:4*dim])
		return scratch
	}
	for i := range scratch {
		scratch[i] = math.Float32frombits(binary.LittleEndian.Uint32(val[4*i:]))
	}
	return scratch
}

// nativeLE is whether this machine stores a uint32 little-endian, the
// stored vectors' byte order.
var nativeLE = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

func decodeVec(b []byte, dim int) ([]float32, []string, bool) {
	if len(b) < 4*dim {
		return nil, nil, false
	}
	v := make([]float32, dim)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	d := codec.NewDec(b[4*dim:])
	tags := d.Strings(MaxTags, MaxTagSize)
	return v, tags, d.Done()
}

type insItem struct {
	id   uint64
	v    []float32
	tags [][]byte
}

func decodeInsert(body []byte) (string, []insItem, bool) {
	d := codec.NewDec(body)
	name, dim, n := d.S(MaxNameSize), d.U(), d.U()
	if !d.OK || dim == 0 || dim > quant.MaxDim || n == 0 || n > MaxBatch || n*dim*4 > uint64(len(d.P)) {
		return "", nil, false
	}
	items := make([]insItem, n)
	for i := range items {
		items[i].id = d.U64()
		raw := d.B(4 * int(dim))
		if len(raw) != 4*int(dim) {
			return "", nil, false
		}
		items[i].v = make([]float32, dim)
		for j := range items[i].v {
			items[i].v[j] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*j:]))
		}
		items[i].tags = d.List(MaxTags, MaxTagSize)
	}
	return name, items, d.Done()
}
