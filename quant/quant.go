package quant

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
)

// Errors. Every rejected input gets one of these (wrapped), matched with
// errors.Is.
var (
	// ErrDimension: a vector or code of the wrong length, or a dimension
	// outside 1..MaxDim.
	ErrDimension = errors.New("quant: wrong dimension")
	// ErrNotFinite: a NaN or ±Inf component.
	ErrNotFinite = errors.New("quant: NaN or infinite component")
	// ErrSample: a training sample that is empty or ragged.
	ErrSample = errors.New("quant: bad training sample")
	// ErrCorrupt: encoded quantizer parameters that do not decode.
	ErrCorrupt = errors.New("quant: corrupt parameters")
)

// MaxDim bounds a quantizer's dimension: below it the int32 kernels cannot
// overflow (32,768 × 255² < 2³¹).
const MaxDim = 32_768

// Range chooses how the quantization range is shared across dimensions.
type Range uint8

const (
	// PerDimension: a range (min, max) per dimension. The default: see the
	// package documentation for the measurement behind it.
	PerDimension Range = iota
	// Global: one range for every dimension.
	Global
)

func (r Range) String() string {
	if r == Global {
		return "global"
	}
	return "per-dimension"
}

// Options configures Train.
type Options struct {
	// Range: PerDimension (default) or Global.
	Range Range
	// Clip is the fraction of sample values clipped at each tail before the
	// range is taken (0: plain min and max; 0.001 ignores the lowest and
	// highest 0.1%). Values outside the range saturate to the end codes.
	Clip float64
}

// Quantizer maps float32 vectors to int8 codes, per dimension d:
//
//	code_d = clamp(round((x_d - min_d) / scale_d) - 128, -128, 127)
//	x_d   ≈ min_d + scale_d * (code_d + 128)
//
// Under Global every min_d and scale_d are equal. A Quantizer is immutable
// and safe for concurrent use.
type Quantizer struct {
	rng     Range
	min     []float32
	scale   []float32
	inv     []float32 // 1/scale
	uniform bool      // every scale_d equal (symmetric kernels are exact affine maps)
	m2      float32   // Σ min_d²
	w2      []float32 // scale_d², the L2 weights (shared, read-only)
	// Symmetric (code to code) distances: the weights scale_d² as integers
	// at a step, for L2 (≤ WMaxL2) and inner products (≤ WMaxDot); the
	// per-dimension min_d·scale_d; and the inner product's constant
	// Σ min_d² + 128²·Σ scale_d².
	wl2, wdot   []int16
	sl2, sdot   float64
	ms          []float64
	symConstant float64
	xmax        float64 // the largest norm of a decoded vector (Query.Bounds)
}

// Train fits a quantizer to a sample of vectors (all of one dimension).
func Train(sample [][]float32, o Options) (*Quantizer, error) {
	if len(sample) == 0 {
		return nil, fmt.Errorf("%w: empty", ErrSample)
	}
	dim := len(sample[0])
	if dim < 1 || dim > MaxDim {
		return nil, fmt.Errorf("%w: %d", ErrDimension, dim)
	}
	if o.Clip < 0 || o.Clip >= 0.5 || math.IsNaN(o.Clip) {
		return nil, fmt.Errorf("%w: clip %v not in [0, 0.5)", ErrSample, o.Clip)
	}
	if o.Range != Global && o.Range != PerDimension {
		return nil, fmt.Errorf("%w: range %d", ErrSample, o.Range)
	}
	for i, v := range sample {
		if len(v) != dim {
			return nil, fmt.Errorf("%w: vector %d has %d dimensions, want %d", ErrSample, i, len(v), dim)
		}
		if err := CheckFinite(v); err != nil {
			return nil, fmt.Errorf("vector %d: %w", i, err)
		}
	}
	lo, hi := make([]float32, dim), make([]float32, dim)
	if o.Range == Global {
		all := make([]float32, 0, len(sample)*dim)
		for _, v := range sample {
			all = append(all, v...)
		}
		l, h := quantiles(all, o.Clip)
		for d := range dim {
			lo[d], hi[d] = l, h
		}
	} else {
		col := make([]float32, len(sample))
		for d := range dim {
			for i, v := range sample {
				col[i] = v[d]
			}
			lo[d], hi[d] = quantiles(col, o.Clip)
		}
	}
	scale := make([]float32, dim)
	var widest float32 // the largest step of a dimension that varies
	for d := range dim {
		scale[d] = (hi[d] - lo[d]) / 255
		if !(scale[d] > 0) || math.IsInf(float64(1/scale[d]), 0) {
			scale[d] = 0
		}
		widest = max(widest, scale[d])
	}
	if widest == 0 {
		widest = 1
	}
	for d := range dim {
		if scale[d] == 0 {
			// A constant dimension: its value encodes exactly to code
			// -128, and a later vector's larger value at the widest step
			// of the others. Not an arbitrary step such as 1: the
			// symmetric distance's integer weights are scaled to the
			// largest scale_d², and one far above the rest rounds every
			// other weight to 0 (SymDistance).
			scale[d] = widest
		}
	}
	return newQuantizer(o.Range, lo, scale)
}

// quantiles returns the clip and 1-clip quantiles of xs (reordering xs).
func quantiles(xs []float32, clip float64) (float32, float32) {
	if clip == 0 {
		return slices.Min(xs), slices.Max(xs)
	}
	slices.Sort(xs)
	k := int(clip * float64(len(xs)))
	return xs[k], xs[len(xs)-1-k]
}

func newQuantizer(r Range, lo, scale []float32) (*Quantizer, error) {
	q := &Quantizer{rng: r, min: lo, scale: scale, inv: make([]float32, len(scale)), uniform: true,
		w2: make([]float32, len(scale))}
	for d, s := range scale {
		hi := float64(lo[d]) + 255*float64(s)
		if !(s > 0) || math.IsInf(float64(1/s), 0) || math.IsNaN(float64(lo[d])) || math.IsInf(float64(lo[d]), 0) ||
			math.IsInf(float64(float32(hi)), 0) {
			return nil, fmt.Errorf("%w: dimension %d: min %v scale %v", ErrCorrupt, d, lo[d], s)
		}
		q.inv[d] = 1 / s
		q.w2[d] = s * s
		q.m2 += lo[d] * lo[d]
		if s != scale[0] {
			q.uniform = false
		}
	}
	q.wl2, q.sl2 = intWeights(q.w2, WMaxL2(len(scale)))
	q.wdot, q.sdot = intWeights(q.w2, WMaxDot(len(scale)))
	q.ms = make([]float64, len(scale))
	var sw float64
	for d := range scale {
		q.ms[d] = float64(lo[d]) * float64(scale[d]) // exact
		q.symConstant += float64(lo[d]) * float64(lo[d])
		sw += float64(q.w2[d])
	}
	q.symConstant += float64(16384 * sw)
	var x2 float64
	for d := range scale {
		e := max(math.Abs(float64(lo[d])), math.Abs(float64(lo[d])+255*float64(scale[d])))
		x2 += e * e
	}
	q.xmax = math.Sqrt(x2)
	return q, nil
}

// intWeights maps weights to integers in 0..wmax at one step, rounding to
// nearest: w_d ≈ step·W_d. Scalar code, so the same on every machine.
func intWeights(w []float32, wmax int32) ([]int16, float64) {
	var mx float64
	for _, x := range w {
		mx = max(mx, float64(x))
	}
	out := make([]int16, len(w))
	step := mx / float64(wmax)
	for d, x := range w {
		out[d] = int16(min(float64(wmax), math.Round(float64(x)/step)))
	}
	return out, step
}

// CheckFinite returns ErrNotFinite if v has a NaN or infinite component.
func CheckFinite(v []float32) error {
	for i, x := range v {
		// All exponent bits set: ±Inf or NaN.
		if math.Float32bits(x)&0x7f800000 == 0x7f800000 {
			return fmt.Errorf("%w: component %d is %v", ErrNotFinite, i, x)
		}
	}
	return nil
}

// Dim is the dimension.
func (q *Quantizer) Dim() int { return len(q.min) }

// Range is the range mode the quantizer was trained with.
func (q *Quantizer) Range() Range { return q.rng }

// Encode appends the code of v to dst. v must have Dim components and be
// finite (see CheckFinite); components outside the trained range saturate.
func (q *Quantizer) Encode(dst []int8, v []float32) ([]int8, error) {
	if len(v) != len(q.min) {
		return dst, fmt.Errorf("%w: %d components, want %d", ErrDimension, len(v), len(q.min))
	}
	if err := CheckFinite(v); err != nil {
		return dst, err
	}
	for d, x := range v {
		c := math.Round(float64((x-q.min[d])*q.inv[d])) - 128
		dst = append(dst, int8(max(-128, min(127, c))))
	}
	return dst, nil
}

// Decode appends the approximate vector of code c to dst.
func (q *Quantizer) Decode(dst []float32, c []int8) ([]float32, error) {
	if len(c) != len(q.min) {
		return dst, fmt.Errorf("%w: code of %d, want %d", ErrDimension, len(c), len(q.min))
	}
	for d, x := range c {
		dst = append(dst, q.min[d]+q.scale[d]*float32(int32(x)+128))
	}
	return dst, nil
}

// Residual describes a vector's quantization error e = v − x̂ (x̂ the
// vector its code stands for), which Query.Bounds needs to bound exact
// distances around the asymmetric ones: R = ‖e‖, rounded up, and
// K = ⟨x̂, e⟩ (inner products; its rounding is within Bounds' slack).
type Residual struct{ R, K float32 }

// Residual computes v's Residual under code c, in float64 in a fixed order
// with no fusable step (R rounded up with a margin for the float64 sum's
// own rounding), so that R never understates ‖e‖ and both are the same
// bits on every machine (an index stores them). c and v must have Dim
// components.
func (q *Quantizer) Residual(v []float32, c []int8) Residual {
	var s, k float64
	for d, x := range c {
		xh := q.decoded(d, x)
		e := float64(float64(v[d]) - xh)
		s += float64(e * e)
		k += float64(xh * e)
	}
	r := float64(math.Sqrt(s) * (1 + 1e-12))
	return Residual{R: up32(r), K: float32(k)}
}

// decoded is component d of the vector code component x stands for, in
// float64: the product is exact (a float32 times a 9-bit integer), so the
// value is the same with or without fusion.
func (q *Quantizer) decoded(d int, x int8) float64 {
	return float64(q.min[d]) + float64(float64(q.scale[d])*float64(int32(x)+128))
}

// DecodedNorm2 is ‖x̂‖², the squared norm of the vector code c stands
// for (Query.Bounds under inner products), computed in float64 in a fixed
// order.
func (q *Quantizer) DecodedNorm2(c []int8) float64 {
	var n float64
	for d, x := range c {
		xh := q.decoded(d, x)
		n += float64(xh * xh)
	}
	return n
}

// MarshalBinary encodes the parameters (they travel in records, so that
// every replica quantizes identically):
//
//	version (1) | range (1) | dim (4) | min (4·dim) | scale (4·dim)
//
// little-endian IEEE 754 floats.
func (q *Quantizer) MarshalBinary() ([]byte, error) {
	b := make([]byte, 0, 6+8*len(q.min))
	b = append(b, 1, byte(q.rng))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(q.min)))
	for _, x := range q.min {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(x))
	}
	for _, x := range q.scale {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(x))
	}
	return b, nil
}

// Unmarshal decodes parameters written by MarshalBinary. It never panics;
// bad bytes get ErrCorrupt.
func Unmarshal(b []byte) (*Quantizer, error) {
	if len(b) < 6 || b[0] != 1 || (Range(b[1]) != Global && Range(b[1]) != PerDimension) {
		return nil, fmt.Errorf("%w: header", ErrCorrupt)
	}
	dim := binary.LittleEndian.Uint32(b[2:])
	if dim < 1 || dim > MaxDim || uint64(len(b)) != 6+8*uint64(dim) {
		return nil, fmt.Errorf("%w: dimension %d in %d bytes", ErrCorrupt, dim, len(b))
	}
	lo, scale := make([]float32, dim), make([]float32, dim)
	for d := range lo {
		lo[d] = math.Float32frombits(binary.LittleEndian.Uint32(b[6+4*d:]))
		scale[d] = math.Float32frombits(binary.LittleEndian.Uint32(b[6+4*(int(dim)+d):]))
	}
	return newQuantizer(Range(b[1]), lo, scale)
}
