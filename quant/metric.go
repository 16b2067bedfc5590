package quant

import "fmt"

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

// Query is a float32 query prepared for asymmetric distances to codes (the
// query is not quantized). It is not safe for concurrent use.
type Query struct {
	m Metric
	// L2: the query in code space, x_d = (v_d - min_d)/scale_d - 128, and
	// the weights scale_d² (a single factor when uniform).
	x, w   []float32
	factor float32
	// Inner product: u_d = v_d·scale_d and the constant Σ v_d·min_d + 128·Σu_d.
	u []float32
	c float32
}

// Prepare prepares v (of Dim components, finite) for asymmetric distances.
func (q *Quantizer) Prepare(m Metric, v []float32) (*Query, error) {
	if len(v) != len(q.min) {
		return nil, fmt.Errorf("%w: %d components, want %d", ErrDimension, len(v), len(q.min))
	}
	if err := CheckFinite(v); err != nil {
		return nil, err
	}
	qq := &Query{m: m}
	if m == L2 {
		qq.x = make([]float32, len(v))
		for d, x := range v {
			qq.x[d] = (x-q.min[d])*q.inv[d] - 128
		}
		if q.uniform {
			qq.factor = q.scale[0] * q.scale[0]
		} else {
			qq.w = q.w2
		}
		return qq, nil
	}
	qq.u = make([]float32, len(v))
	var su float32
	for d, x := range v {
		qq.u[d] = x * q.scale[d]
		su += qq.u[d]
		qq.c += x * q.min[d]
	}
	qq.c += 128 * su
	return qq, nil
}

// PrepareCode prepares the vector a code stands for as a query: the
// asymmetric distance from it to another code is the distance between the
// two decoded vectors (the symmetric distance), through the faster
// asymmetric kernels. The code must have Dim components.
func (q *Quantizer) PrepareCode(m Metric, c []int8) *Query {
	qq := &Query{m: m}
	if m == L2 {
		// In code space a decoded vector is its code exactly.
		qq.x = make([]float32, len(c))
		for d, x := range c {
			qq.x[d] = float32(x)
		}
		if q.uniform {
			qq.factor = q.scale[0] * q.scale[0]
		} else {
			qq.w = q.w2
		}
		return qq
	}
	qq.u = make([]float32, len(c))
	var su float32
	for d, x := range c {
		v := q.min[d] + q.scale[d]*float32(int32(x)+128)
		qq.u[d] = v * q.scale[d]
		su += qq.u[d]
		qq.c += v * q.min[d]
	}
	qq.c += 128 * su
	return qq
}

// Distance is the metric's distance from the query to the vector code c
// stands for.
func (qq *Query) Distance(c []int8) float32 {
	switch {
	case qq.m != L2:
		return qq.m.FromDot(qq.c + DotF32Int8(qq.u, c))
	case qq.w == nil:
		return qq.factor * L2F32Int8(qq.x, c)
	}
	return WeightedL2F32Int8(qq.x, qq.w, c)
}
