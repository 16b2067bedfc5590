package quant

import (
	"errors"
	"math"
	"math/rand/v2"
	"testing"
)

func randVecs(rng *rand.Rand, n, dim int, spread func(d int) float32) [][]float32 {
	vs := make([][]float32, n)
	for i := range vs {
		vs[i] = make([]float32, dim)
		for d := range vs[i] {
			vs[i][d] = float32(rng.NormFloat64()) * spread(d)
		}
	}
	return vs
}

func naiveL2(a, b []int8) int32 {
	var s int32
	for i := range a {
		d := int32(a[i]) - int32(b[i])
		s += d * d
	}
	return s
}

func naiveDot(a, b []int8) int32 {
	var s int32
	for i := range a {
		s += int32(a[i]) * int32(b[i])
	}
	return s
}

// TestKernelsMatchReference: every kernel equals a plain loop, on random
// codes and on the extremes, at every length up to 67 (all tails).
func TestKernelsMatchReference(t *testing.T) {
	t.Logf("kernels: %s", Impl)
	rng := rand.New(rand.NewPCG(1, 2))
	for n := 0; n <= 67; n++ {
		for trial := range 20 {
			a, b := make([]int8, n), make([]int8, n)
			q, u := make([]float32, n), make([]float32, n)
			for i := range a {
				switch trial {
				case 0:
					a[i], b[i] = -128, 127
				case 1:
					a[i], b[i] = -128, -128
				default:
					a[i], b[i] = int8(rng.IntN(256)-128), int8(rng.IntN(256)-128)
				}
				q[i], u[i] = float32(rng.NormFloat64()*50), float32(rng.NormFloat64())
			}
			// The active implementation (AVX2 under GOEXPERIMENT=simd) and
			// the portable one, both against plain loops.
			if got, want := L2Int8(a, b), naiveL2(a, b); got != want || l2Int8Generic(a, b) != want {
				t.Fatalf("L2Int8 n=%d: %d (generic %d), want %d", n, got, l2Int8Generic(a, b), want)
			}
			if got, want := DotInt8(a, b), naiveDot(a, b); got != want || dotInt8Generic(a, b) != want {
				t.Fatalf("DotInt8 n=%d: %d (generic %d), want %d", n, got, dotInt8Generic(a, b), want)
			}
			qi := make([]int16, n)
			lim := I16Max(n)
			var wantI int32
			for i := range qi {
				qi[i] = int16(rng.Int32N(2*lim+1) - lim)
				if trial == 0 {
					qi[i] = int16(-lim)
				}
				wantI += int32(qi[i]) * int32(b[i])
			}
			if got := DotI16Int8(qi, b); got != wantI || dotI16Int8Generic(qi, b) != wantI {
				t.Fatalf("DotI16Int8 n=%d: %d (generic %d), want %d", n, got, dotI16Int8Generic(qi, b), wantI)
			}
			wl, wd := make([]int16, n), make([]int16, n)
			var wantL2, wantDot int64
			for i := range wl {
				wl[i], wd[i] = int16(rng.Int32N(WMaxL2(n)+1)), int16(rng.Int32N(WMaxDot(n)+1))
				if trial == 0 {
					wl[i], wd[i] = int16(WMaxL2(n)), int16(WMaxDot(n))
				}
				dd := int64(a[i]) - int64(b[i])
				wantL2 += int64(wl[i]) * dd * dd
				wantDot += int64(wd[i]) * int64(a[i]) * int64(b[i])
			}
			if got := WeightedL2Int8(wl, a, b); got != wantL2 || wl2Int8Generic(wl, a, b) != wantL2 {
				t.Fatalf("WeightedL2Int8 n=%d: %d, want %d", n, got, wantL2)
			}
			if got := WeightedDotInt8(wd, a, b); got != wantDot || wdotInt8Generic(wd, a, b) != wantDot {
				t.Fatalf("WeightedDotInt8 n=%d: %d, want %d", n, got, wantDot)
			}
			var fl2, fdot float64
			for i := range q {
				d := float64(q[i]) - float64(u[i])
				fl2 += d * d
				fdot += float64(q[i]) * float64(u[i])
			}
			for _, f := range []func(a, b []float32) float32{L2F32, l2F32Generic} {
				if got := f(q, u); !approx(float64(got), fl2) {
					t.Fatalf("L2F32 n=%d: %v, want %v", n, got, fl2)
				}
			}
			for _, f := range []func(a, b []float32) float32{DotF32, dotF32Generic} {
				if got := f(q, u); !approx(float64(got), fdot) {
					t.Fatalf("DotF32 n=%d: %v, want %v", n, got, fdot)
				}
			}
			var l2, dot, wl2 float64
			for i := range a {
				d := float64(q[i]) - float64(b[i])
				l2 += d * d
				wl2 += float64(u[i]*u[i]) * d * d
				dot += float64(u[i]) * float64(b[i])
			}
			w := make([]float32, n)
			for i := range w {
				w[i] = u[i] * u[i]
			}
			for _, f := range []func([]float32, []int8) float32{L2F32Int8, l2F32Int8Generic} {
				if got := f(q, b); !approx(float64(got), l2) {
					t.Fatalf("L2F32Int8 n=%d: %v, want %v", n, got, l2)
				}
			}
			for _, f := range []func(q, w []float32, c []int8) float32{WeightedL2F32Int8, weightedL2F32Int8Generic} {
				if got := f(q, w, b); !approx(float64(got), wl2) {
					t.Fatalf("WeightedL2F32Int8 n=%d: %v, want %v", n, got, wl2)
				}
			}
			for _, f := range []func([]float32, []int8) float32{DotF32Int8, dotF32Int8Generic} {
				if got := f(u, b); !approx(float64(got), dot) {
					t.Fatalf("DotF32Int8 n=%d: %v, want %v", n, got, dot)
				}
			}
		}
	}
	// The int32 accumulators hold the worst case at MaxDim.
	a, b := make([]int8, MaxDim), make([]int8, MaxDim)
	for i := range a {
		a[i], b[i] = -128, 127
	}
	if got := L2Int8(a, b); got != int32(MaxDim)*255*255 {
		t.Fatalf("L2Int8 at MaxDim: %d", got)
	}
	wl, wd := make([]int16, MaxDim), make([]int16, MaxDim)
	for i := range wl {
		wl[i], wd[i] = int16(WMaxL2(MaxDim)), int16(WMaxDot(MaxDim))
	}
	if got := WeightedL2Int8(wl, a, b); got != int64(MaxDim)*int64(WMaxL2(MaxDim))*255*255 {
		t.Fatalf("WeightedL2Int8 at MaxDim: %d", got)
	}
	if got := WeightedDotInt8(wd, a, a); got != int64(MaxDim)*int64(WMaxDot(MaxDim))*128*128 {
		t.Fatalf("WeightedDotInt8 at MaxDim: %d", got)
	}
	qi := make([]int16, MaxDim)
	for i := range qi {
		qi[i] = int16(-I16Max(MaxDim))
		a[i] = -128
	}
	if got := DotI16Int8(qi, a); int64(got) != int64(MaxDim)*int64(I16Max(MaxDim))*128 {
		t.Fatalf("DotI16Int8 at MaxDim: %d", got)
	}
}

func approx(got, want float64) bool {
	return math.Abs(got-want) <= 1e-4*math.Max(1, math.Abs(want))
}

// TestEncodeDecode: decoding is within half a step of every in-range
// component; out-of-range components saturate.
func TestEncodeDecode(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, r := range []Range{Global, PerDimension} {
		sample := randVecs(rng, 500, 33, func(d int) float32 { return float32(1 + d) })
		q, err := Train(sample, Options{Range: r})
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range sample[:50] {
			c, err := q.Encode(nil, v)
			if err != nil {
				t.Fatal(err)
			}
			back, _ := q.Decode(nil, c)
			for d := range v {
				if diff := math.Abs(float64(back[d] - v[d])); diff > float64(q.scale[d])/2*1.0001 {
					t.Fatalf("%v dim %d: %v decoded as %v (step %v)", r, d, v[d], back[d], q.scale[d])
				}
			}
		}
		big := make([]float32, 33)
		for d := range big {
			big[d] = 1e6 * float32(1-2*(d%2))
		}
		c, _ := q.Encode(nil, big)
		for d, x := range c {
			if (d%2 == 0 && x != 127) || (d%2 == 1 && x != -128) {
				t.Fatalf("%v: out-of-range component %d encoded as %d", r, d, x)
			}
		}
	}
}

// TestDistancesMatchDecoded: symmetric and asymmetric distances equal the
// exact distances of the decoded vectors (up to float rounding), for every
// metric, with uniform and per-dimension scales.
func TestDistancesMatchDecoded(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, r := range []Range{Global, PerDimension} {
		sample := randVecs(rng, 300, 40, func(d int) float32 { return 0.1 + float32(d%5) })
		q, err := Train(sample, Options{Range: r, Clip: 0.001})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range []Metric{L2, InnerProduct, Cosine} {
			for i := 0; i+1 < 40; i += 2 {
				ca, _ := q.Encode(nil, sample[i])
				cb, _ := q.Encode(nil, sample[i+1])
				da, _ := q.Decode(nil, ca)
				db, _ := q.Decode(nil, cb)
				want := float64(m.Exact(da, db))
				got := float64(q.Distance(m, ca, q.Side(ca), cb, q.Side(cb)))
				if math.Abs(got-want) > 1e-3*math.Max(1, math.Abs(want)) {
					t.Fatalf("%v %v symmetric: %v, decoded vectors give %v", r, m, got, want)
				}
				// A Query's multipliers are int16 at step s: each of the
				// Σ|c_d| units of the kernel's sum is off by at most s/2
				// (twice that under L2's -2·dot), on top of float rounding.
				var l1 float64
				for _, x := range cb {
					l1 += math.Abs(float64(x))
				}
				bound := func(qq *Query) float64 { return qq.s*l1 + 1e-4*math.Max(1, math.Abs(want)) }
				// SymDistance: integer weights off by at most half a step
				// each, times Σ(a-b)² (L2) or Σ|a·b| (inner products).
				var sq, ab float64
				for d := range ca {
					x := float64(ca[d]) - float64(cb[d])
					sq += x * x
					ab += math.Abs(float64(ca[d]) * float64(cb[d]))
				}
				symBound := q.sl2/2*sq + 1e-4*math.Max(1, math.Abs(want))
				if m != L2 {
					symBound = q.sdot/2*ab + 1e-4*math.Max(1, math.Abs(want))
				}
				if got := float64(q.SymDistance(m, ca, q.Term(m, ca), cb, q.Term(m, cb))); math.Abs(got-want) > symBound {
					t.Fatalf("%v %v SymDistance: %v, decoded vectors give %v (bound %v)", r, m, got, want, symBound)
				}
				if qq := q.PrepareCode(m, ca); math.Abs(float64(qq.Distance(cb))-want) > bound(qq) {
					t.Fatalf("%v %v PrepareCode: %v, decoded vectors give %v", r, m, qq.Distance(cb), want)
				}
				qq, err := q.Prepare(m, sample[i])
				if err != nil {
					t.Fatal(err)
				}
				want = float64(m.Exact(sample[i], db))
				if got := float64(qq.Distance(cb)); math.Abs(got-want) > bound(qq) {
					t.Fatalf("%v %v asymmetric: %v, exact against the decoded vector %v (bound %v)", r, m, got, want, bound(qq))
				}
				if got := float64(qq.Distance(cb)); math.Abs(got-want) > 2e-3*math.Max(1, math.Abs(want)) {
					t.Fatalf("%v %v asymmetric: %v, exact against the decoded vector %v", r, m, got, want)
				}
			}
		}
	}
}

// TestBadInput: every rejected input has a typed error.
func TestBadInput(t *testing.T) {
	nan := float32(math.NaN())
	inf := float32(math.Inf(1))
	cases := []struct {
		name string
		err  error
		want error
	}{
		{"empty sample", trainErr(nil, Options{}), ErrSample},
		{"ragged sample", trainErr([][]float32{{1, 2}, {1}}, Options{}), ErrSample},
		{"bad clip", trainErr([][]float32{{1}}, Options{Clip: 0.5}), ErrSample},
		{"NaN in sample", trainErr([][]float32{{1, nan}}, Options{}), ErrNotFinite},
		{"zero dims", trainErr([][]float32{{}}, Options{}), ErrDimension},
	}
	q, err := Train([][]float32{{0, 1}, {1, 0}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, e1 := q.Encode(nil, []float32{1})
	_, e2 := q.Encode(nil, []float32{1, inf})
	_, e3 := q.Decode(nil, []int8{1, 2, 3})
	_, e4 := q.Prepare(L2, []float32{nan, 0})
	_, e5 := q.Prepare(Cosine, []float32{0})
	_, e6 := Unmarshal([]byte{1, 0, 2, 0, 0, 0})
	cases = append(cases, []struct {
		name string
		err  error
		want error
	}{{"encode dim", e1, ErrDimension}, {"encode inf", e2, ErrNotFinite}, {"decode dim", e3, ErrDimension},
		{"prepare NaN", e4, ErrNotFinite}, {"prepare dim", e5, ErrDimension}, {"short params", e6, ErrCorrupt}}...)
	for _, c := range cases {
		if !errors.Is(c.err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, c.err, c.want)
		}
	}
}

func trainErr(s [][]float32, o Options) error {
	_, err := Train(s, o)
	return err
}

// TestMarshalRoundTrip: parameters survive the record encoding exactly.
func TestMarshalRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for _, r := range []Range{Global, PerDimension} {
		q, err := Train(randVecs(rng, 100, 17, func(int) float32 { return 2 }), Options{Range: r})
		if err != nil {
			t.Fatal(err)
		}
		b, _ := q.MarshalBinary()
		q2, err := Unmarshal(b)
		if err != nil {
			t.Fatal(err)
		}
		b2, _ := q2.MarshalBinary()
		if string(b) != string(b2) || q2.Range() != r || q2.uniform != q.uniform {
			t.Fatalf("%v: round trip differs", r)
		}
	}
}

// FuzzUnmarshal: arbitrary bytes never panic Unmarshal; what decodes
// re-encodes to the same bytes and encodes vectors without error.
func FuzzUnmarshal(f *testing.F) {
	q, _ := Train([][]float32{{0, 1, 2}, {3, 4, 5}}, Options{Range: PerDimension})
	b, _ := q.MarshalBinary()
	f.Add(b)
	f.Add([]byte{1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 128, 63})
	f.Fuzz(func(t *testing.T, b []byte) {
		q, err := Unmarshal(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		b2, _ := q.MarshalBinary()
		if string(b2) != string(b) {
			t.Fatalf("re-encode differs")
		}
		v := make([]float32, q.Dim())
		if _, err := q.Encode(nil, v); err != nil {
			t.Fatal(err)
		}
	})
}

// TestBounds: the exact float32 distance from a query to a vector always
// lies within Query.Bounds of the code's asymmetric distance, given the
// vector's Residual, for every metric and range, with clipping (saturated
// components, large residuals) and without; the intervals are narrow
// enough to prune; and Residual never understates ‖v − x̂‖.
func TestBounds(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	norm := func(v []float32) []float32 {
		var s float64
		for _, x := range v {
			s += float64(x) * float64(x)
		}
		out := make([]float32, len(v))
		for i, x := range v {
			out[i] = float32(float64(x) / math.Sqrt(s))
		}
		return out
	}
	for _, dim := range []int{3, 40, 784} {
		for _, r := range []Range{Global, PerDimension} {
			for _, clip := range []float64{0, 0.01} {
				for _, m := range []Metric{L2, InnerProduct, Cosine} {
					vs := randVecs(rng, 200, dim, func(d int) float32 { return 0.1 + float32(d%7) })
					if m == Cosine {
						for i := range vs {
							vs[i] = norm(vs[i])
						}
					}
					q, err := Train(vs[:100], Options{Range: r, Clip: clip})
					if err != nil {
						t.Fatal(err)
					}
					var width, spread float64
					for i := 100; i < 200; i += 10 {
						qq, err := q.Prepare(m, vs[i])
						if err != nil {
							t.Fatal(err)
						}
						for _, x := range vs[:100] {
							c, _ := q.Encode(nil, x)
							res := q.Residual(x, c)
							var e2, k, xn float64 // against the decoded vector in float64
							for d := range x {
								xh := float64(q.min[d]) + float64(q.scale[d])*float64(int32(c[d])+128)
								e := float64(x[d]) - xh
								e2 += e * e
								k += xh * e
								xn += xh * xh
							}
							if float64(res.R) < math.Sqrt(e2) || math.Abs(float64(res.K)-k) > 1e-6*math.Max(1, math.Abs(k)) {
								t.Fatalf("dim %d %v clip %v: Residual %+v, want R ≥ %v, K %v", dim, r, clip, res, math.Sqrt(e2), k)
							}
							if got := q.DecodedNorm2(c); math.Abs(got-xn) > 1e-9*xn {
								t.Fatalf("DecodedNorm2 %v, want %v", got, xn)
							}
							n := float64(float32(q.Term(m, c)))
							d := qq.DistanceNorm(c, n)
							lo, hi := qq.Bounds(d, n, float64(float32(xn)), res)
							exact := m.Exact(vs[i], x)
							if !(lo <= exact && exact <= hi) {
								t.Fatalf("dim %d %v clip %v %v: exact %v outside [%v, %v] (asymmetric %v, residual %v)",
									dim, r, clip, m, exact, lo, hi, d, res)
							}
							width += float64(hi - lo)
							spread += math.Abs(float64(exact))
						}
					}
					// Unclipped, the intervals are a small part of the
					// distances themselves: pruning has something to work with.
					// Per dimension and unclipped (the defaults), L2 and cosine
					// intervals are a few percent of the distances: pruning
					// has something to work with.
					if r == PerDimension && clip == 0 && dim > 3 && m != InnerProduct && width > 0.05*spread {
						t.Errorf("dim %d %v: mean interval %.4g against mean |distance| %.4g", dim, m, width/1000, spread/1000)
					}
				}
			}
		}
	}
	qq, _ := func() (*Query, error) {
		q, _ := Train([][]float32{{0, 1}, {1, 0}}, Options{})
		return q.Prepare(InnerProduct, []float32{0, 0})
	}()
	if lo, hi := qq.Bounds(0, 0, 0, Residual{R: float32(math.Inf(1))}); !math.IsInf(float64(lo), -1) || !math.IsInf(float64(hi), 1) {
		t.Fatalf("unknown residual: [%v, %v], want unbounded", lo, hi)
	}
}

// TestSymDistanceSparse: on image-like data (non-negative, mostly zero,
// some components zero in the whole training sample) the symmetric
// distance stays within 1% of the largest distance between the decoded
// vectors, under every metric. Before Train gave a constant dimension the
// widest step of the others instead of 1, that one weight rounded every
// other symmetric weight to 0, and the error was as large as the
// distances themselves.
func TestSymDistanceSparse(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	const dim = 64
	vs := make([][]float32, 400)
	for i := range vs {
		vs[i] = make([]float32, dim)
		for d := 4; d < dim; d++ { // 0..3 stay 0: constant in the sample
			if rng.Float64() < 0.4 {
				vs[i][d] = float32(rng.IntN(17))
			}
		}
		if i%2 == 1 { // half of them normalized, as cosine stores them
			var n float64
			for _, x := range vs[i] {
				n += float64(x) * float64(x)
			}
			for d := range vs[i] {
				vs[i][d] = float32(float64(vs[i][d]) / math.Sqrt(max(n, 1)))
			}
		}
	}
	for _, m := range []Metric{L2, InnerProduct, Cosine} {
		start := 0 // raw vectors (even indexes); normalized under cosine
		if m == Cosine {
			start = 1
		}
		sample := make([][]float32, 0, 200)
		for i := start; i < len(vs); i += 2 {
			sample = append(sample, vs[i])
		}
		q, err := Train(sample, Options{})
		if err != nil {
			t.Fatal(err)
		}
		var worst, spread float64
		for i := 0; i+1 < len(sample); i += 2 {
			ca, _ := q.Encode(nil, sample[i])
			cb, _ := q.Encode(nil, sample[i+1])
			da, _ := q.Decode(nil, ca)
			db, _ := q.Decode(nil, cb)
			want := float64(m.Exact(da, db))
			got := float64(q.SymDistance(m, ca, q.Term(m, ca), cb, q.Term(m, cb)))
			worst = max(worst, math.Abs(got-want))
			spread = max(spread, math.Abs(want))
		}
		if worst > 1e-2*spread {
			t.Errorf("%v: SymDistance errs by up to %.4g against decoded distances of up to %.4g", m, worst, spread)
		}
	}
}
