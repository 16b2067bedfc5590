package quant

import (
	"fmt"
	"math"
)

// Metric is a distance; smaller is closer for every metric.
type Metric uint8

const (
	// L2 is the squared Euclidean distance.
	L2 Metric = iota
	// InnerProduct is the negated inner product.
	InnerProduct
	// Cosine is 1 - inner product of unit vectors: callers normalize
	// vectors before encoding them (the index does), so cosine reduces to
	// the inner product.
	Cosine
)

func (m Metric) String() string {
	switch m {
	case InnerProduct:
		return "ip"
	case Cosine:
		return "cosine"
	}
	return "l2"
}

// ParseMetric parses "l2", "ip" or "cosine".
func ParseMetric(s string) (Metric, error) {
	switch s {
	case "l2":
		return L2, nil
	case "ip":
		return InnerProduct, nil
	case "cosine":
		return Cosine, nil
	}
	return 0, fmt.Errorf("quant: unknown metric %q (want l2, ip or cosine)", s)
}

// FromDot turns an inner product into the metric's distance.
func (m Metric) FromDot(dot float32) float32 {
	if m == Cosine {
		return 1 - dot
	}
	return -dot
}

// Exact is the metric's distance between two float32 vectors (the
// re-ranking distance).
func (m Metric) Exact(a, b []float32) float32 {
	if m == L2 {
		return L2F32(a, b)
	}
	return m.FromDot(DotF32(a, b))
}

// Side is what the symmetric inner product of two codes needs besides the
// codes themselves; compute it once per code (Quantizer.Side) and keep it
// with the code.
type Side struct {
	Sum int32   // Σ c_d
	Off float32 // Σ min_d·(c_d + 128)
}

// Side computes c's side values.
func (q *Quantizer) Side(c []int8) Side {
	s := Side{Sum: SumInt8(c)}
	for d, x := range c {
		s.Off += q.min[d] * float32(int32(x)+128)
	}
	return s
}

// Distance is the metric's distance between the vectors two codes stand
// for (symmetric: both sides quantized). With one scale for every
// dimension (Global) it is computed from the int32 kernels: the squared L2
// is scale²·L2Int8, and the inner product
//
//	Σ (m_d + s(a_d+128))(m_d + s(b_d+128))
//	  = Σm_d² + s(Off_a + Off_b) + s²(DotInt8(a,b) + 128(Sum_a + Sum_b) + 128²·dim)
//
// With a scale per dimension it falls back to a weighted float loop.
func (q *Quantizer) Distance(m Metric, a []int8, sa Side, b []int8, sb Side) float32 {
	if q.uniform {
		s := q.scale[0]
		if m == L2 {
			return s * s * float32(L2Int8(a, b))
		}
		n := int64(len(a))
		ints := int64(DotInt8(a, b)) + 128*(int64(sa.Sum)+int64(sb.Sum)) + 16384*n
		return m.FromDot(q.m2 + s*(sa.Off+sb.Off) + s*s*float32(ints))
	}
	var acc float32
	if m == L2 {
		for d := range a {
			x := q.scale[d] * float32(int32(a[d])-int32(b[d]))
			acc += x * x
		}
		return acc
	}
	for d := range a {
		acc += (q.min[d] + q.scale[d]*float32(int32(a[d])+128)) * (q.min[d] + q.scale[d]*float32(int32(b[d])+128))
	}
	return m.FromDot(acc)
}

// Term is the per-code value the graph keeps beside a code: under L2 its
// Norm (for the asymmetric Query), for inner products its own part of the
// symmetric product, Σ min_d·scale_d·(c_d+128) + 128·Σ scale_d²·c_d.
func (q *Quantizer) Term(m Metric, c []int8) float64 {
	if m == L2 {
		return q.Norm(c)
	}
	var p, pw float64
	for d, x := range c {
		p += float64(q.ms[d] * float64(int32(x)+128))
		pw += float64(q.w2[d]) * float64(x) // exact
	}
	return p + float64(128*pw)
}

// SymDistance is the metric's distance between the vectors two codes stand
// for (symmetric), given their Terms, with the scale² weights as integers
// (L2: 7 bits, inner products: 8 bits at 784 dims): one exact integer
// kernel, no preparation.
//
//	L2:            step·Σ W_d (a_d - b_d)²
//	inner product: constant + Term(a) + Term(b) + step·Σ W_d·a_d·b_d
//
// A dimension whose weight is below half a step counts for nothing in the
// integer sum; its share of any distance is under 1/256 of the largest
// dimension's. Used between graph nodes (neighbor selection), where
// queries use the exact asymmetric Query.
func (q *Quantizer) SymDistance(m Metric, a []int8, ta float64, b []int8, tb float64) float32 {
	if m == L2 {
		return float32(q.sl2 * float64(WeightedL2Int8(q.wl2, a, b)))
	}
	x := float64(q.sdot * float64(WeightedDotInt8(q.wdot, a, b)))
	return m.FromDot(float32(q.symConstant + ta + tb + x))
}

// Query is a float32 query prepared for asymmetric distances to codes (the
// query is not quantized to int8). Its per-component multipliers are held
// as int16 at a step s of max|multiplier|/I16Max(Dim) (a relative error
// below 5e-5 of the largest), so the distance is one exact integer kernel,
// DotI16Int8, plus scalar float64 arithmetic in a fixed order:
//
//	L2 (code space, w_d = scale_d², x_d the query's code-space value):
//	  Σ w_d (x_d - c_d)² = Σ w_d x_d² + Norm(c) - 2·s·DotI16Int8(round(w·x/s), c)
//	inner product (u_d = v_d·scale_d):
//	  Σ v_d·dec_d = Σ v_d·min_d + 128·Σ u_d + s·DotI16Int8(round(u/s), c)
//
// Every implementation of the kernel returns the same integer, and the
// float steps are written so that no compiler may fuse them (explicit
// conversions), so a distance is the same on every CPU and build: graphs
// built from the same records are identical across replicas. A Query is
// immutable after Prepare and safe for concurrent use.
type Query struct {
	m  Metric
	q  []int16
	s  float64   // the multipliers' step
	a  float64   // L2: Σ w_d x_d²; inner product: Σ v_d·min_d + 128·Σ u_d
	w2 []float32 // L2 weights (Norm of codes passed without one)
	// For Bounds: the error the int16 multipliers may add to a distance,
	// the query's norm, and the largest norm of a decoded vector.
	ek, vn, xmax float64
}

// quantize sets qq.q and qq.s from the multipliers.
func (qq *Query) quantize(mult []float64) {
	var mx float64 // the multipliers are finite: a plain comparison will do
	for _, x := range mult {
		if a := math.Abs(x); a > mx {
			mx = a
		}
	}
	qq.q = make([]int16, len(mult))
	if mx == 0 {
		return
	}
	lim := float64(I16Max(len(mult)))
	qq.s = mx / lim
	for d, x := range mult {
		qq.q[d] = int16(max(-lim, min(lim, math.Round(x/qq.s))))
	}
}

// Prepare prepares v (of Dim components, finite) for asymmetric distances.
func (q *Quantizer) Prepare(m Metric, v []float32) (*Query, error) {
	if len(v) != len(q.min) {
		return nil, fmt.Errorf("%w: %d components, want %d", ErrDimension, len(v), len(q.min))
	}
	if err := CheckFinite(v); err != nil {
		return nil, err
	}
	qq := &Query{m: m, w2: q.w2, xmax: q.xmax}
	// The sums run in local variables (registers), not in qq's fields:
	// the same operations in the same order, without a store and a load
	// per component.
	var vn, a float64
	for _, x := range v {
		vn += float64(x) * float64(x)
	}
	qq.vn = math.Sqrt(vn)
	mult := make([]float64, len(v))
	if m == L2 {
		for d, x := range v {
			// x in code space, rounded before each step (no fusion).
			xd := float64(float64(float64(x)-float64(q.min[d]))*float64(q.inv[d])) - 128
			wx := float64(float64(q.w2[d]) * xd)
			mult[d] = wx
			a += float64(wx * xd)
		}
	} else {
		var su float64
		for d, x := range v {
			u := float64(float64(x) * float64(q.scale[d]))
			mult[d] = u
			su += u
			a += float64(float64(x) * float64(q.min[d]))
		}
		a += float64(128 * su)
	}
	qq.a = a
	qq.quantize(mult)
	// Each multiplier is within s/2 of its int16 value times s, and
	// |c_d| ≤ 128: the dot product errs by at most 64·s per component,
	// counted twice under L2.
	qq.ek = 64 * qq.s * float64(len(v))
	if m == L2 {
		qq.ek *= 2
	}
	return qq, nil
}

// u32 is float32's unit roundoff.
const u32 = 1.0 / (1 << 24)

// Bounds returns an interval holding the exact distance, as Metric.Exact
// computes it in float32, from the query to a vector x whose code's
// asymmetric distance is d (DistanceNorm, given the code's Norm n, which
// may have been rounded to a float32), whose decoded vector's squared norm
// is xn (DecodedNorm2, maybe rounded to a float32; inner products only)
// and whose Residual is res. Re-ranking needs the exact distances of only
// the candidates whose lower bound is at most the k-th smallest upper
// bound: no other can be among the k nearest. An R of +Inf (unknown)
// gives an unbounded interval.
//
// The interval adds up: the int16 multipliers' error (ek), the float32
// roundings of d, n, xn and K, the residual, and Exact's own rounding (at
// most (Dim+2)·2⁻²⁴ of the sum of its terms' magnitudes for any order of
// summation, taken twice over). Under L2 the residual enters by the
// triangle inequality, ‖v − x‖ within R of ‖v − x̂‖. For inner products
// ⟨v, x⟩ = ⟨v, x̂⟩ + K + ⟨v − x̂, e⟩, and the last term is at most
// ‖v − x̂‖·R: small for the near candidates that matter, where the plain
// |⟨v, e⟩| ≤ ‖v‖·R would not be (the interval is the intersection of
// both).
func (qq *Query) Bounds(d float32, n, xn float64, res Residual) (lo, hi float32) {
	if math.IsInf(float64(res.R), 1) {
		return float32(math.Inf(-1)), float32(math.Inf(1))
	}
	dim := float64(len(qq.q))
	gamma := 2 * (dim + 2) * u32
	rf := float64(res.R)
	dd := float64(d)
	if qq.m == L2 {
		// d and n were rounded to float32; the float64 sums behind d err
		// by far less than one float32 rounding of their terms.
		ek := qq.ek + u32*(math.Abs(dd)+math.Abs(n)+math.Abs(qq.a))
		a := math.Max(0, math.Sqrt(math.Max(0, dd-ek))-rf)
		b := math.Sqrt(dd+ek) + rf
		return down32(a * a * (1 - gamma)), up32(b * b * (1 + gamma))
	}
	dot := -dd // ⟨v, x̂⟩, within ek of it
	if qq.m == Cosine {
		dot = 1 - dd
	}
	ek := qq.ek + 2*u32*(math.Abs(dd)+1)
	far2 := qq.vn*qq.vn + xn*(1+u32) - 2*(dot-ek) // ≥ ‖v − x̂‖²
	far := math.Sqrt(math.Max(0, far2)) * (1 + 1e-12)
	kf := float64(res.K)
	slack := gamma * qq.vn * (qq.xmax + rf)
	e := ek + u32*math.Abs(kf) + far*rf + slack
	mid := dd - kf // the distance falls as ⟨v, x⟩ grows by K
	// |⟨v, e⟩| ≤ ‖v‖·R holds too, and is the narrower of the two where
	// the vector is far from the query: take both.
	e2 := ek + qq.vn*rf + slack
	return down32(max(mid-e, dd-e2)), up32(min(mid+e, dd+e2))
}

// down32 and up32 round x to a float32 toward -Inf and +Inf.
func down32(x float64) float32 {
	f := float32(x)
	if float64(f) > x {
		f = math.Nextafter32(f, float32(math.Inf(-1)))
	}
	return f
}

func up32(x float64) float32 {
	f := float32(x)
	if float64(f) < x {
		f = math.Nextafter32(f, float32(math.Inf(1)))
	}
	return f
}

// PrepareCode prepares the vector a code stands for as a query: the
// asymmetric distance from it to another code is the distance between the
// two decoded vectors (the symmetric distance), through the asymmetric
// kernel. The code must have Dim components.
func (q *Quantizer) PrepareCode(m Metric, c []int8) *Query {
	qq := &Query{m: m, w2: q.w2}
	mult := make([]float64, len(c))
	if m == L2 {
		// In code space a decoded vector is its code exactly.
		for d, x := range c {
			mult[d] = float64(q.w2[d]) * float64(x) // exact
		}
		qq.a = q.Norm(c)
	} else {
		var su float64
		for d, x := range c {
			v := q.decoded(d, x)
			u := float64(v * float64(q.scale[d]))
			mult[d] = u
			su += u
			qq.a += float64(v * float64(q.min[d]))
		}
		qq.a += float64(128 * su)
	}
	qq.quantize(mult)
	return qq
}

// Norm is Σ scale_d²·c_d², the code's own term of the L2 distance in code
// space; a graph keeps it per code and passes it to DistanceNorm. Each
// product is exact in float64, so the sum is the same everywhere.
func (q *Quantizer) Norm(c []int8) float64 { return norm(q.w2, c) }

func norm(w2 []float32, c []int8) float64 {
	var n float64
	for d, x := range c {
		n += float64(w2[d]) * float64(int32(x)*int32(x))
	}
	return n
}

// Distance is the metric's distance from the query to the vector code c
// stands for (under L2 it computes c's Norm; DistanceNorm takes it).
func (qq *Query) Distance(c []int8) float32 {
	var n float64
	if qq.m == L2 {
		n = norm(qq.w2, c)
	}
	return qq.DistanceNorm(c, n)
}

// DistanceNorm is Distance given the code's Norm (ignored unless L2).
func (qq *Query) DistanceNorm(c []int8, norm float64) float32 {
	dot := float64(qq.s * float64(DotI16Int8(qq.q, c)))
	if qq.m == L2 {
		return float32(qq.a + norm - float64(2*dot))
	}
	return qq.m.FromDot(float32(qq.a + dot))
}
