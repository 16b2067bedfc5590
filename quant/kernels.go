package quant

// Distance kernels. The exported functions call the fastest implementation
// this CPU and build have (simd_amd64.go, with GOEXPERIMENT=simd on an
// AVX2 machine); the portable ones below, four components per step, are the
// default and the reference every test holds the others to.

var (
	l2Int8            = l2Int8Generic
	dotInt8           = dotInt8Generic
	l2F32Int8         = l2F32Int8Generic
	weightedL2F32Int8 = weightedL2F32Int8Generic
	dotF32Int8        = dotF32Int8Generic
	l2F32             = l2F32Generic
	dotF32            = dotF32Generic
	dotI16Int8        = dotI16Int8Generic
	wl2Int8           = wl2Int8Generic
	wdotInt8          = wdotInt8Generic
)

// L2Int8 returns Σ (a_i - b_i)², accumulated in int32 (exact for
// len ≤ MaxDim). a and b must have the same length.
func L2Int8(a, b []int8) int32 { return l2Int8(a, b) }

// DotInt8 returns Σ a_i·b_i, accumulated in int32. a and b must have the
// same length.
func DotInt8(a, b []int8) int32 { return dotInt8(a, b) }

// L2F32Int8 returns Σ (q_i - c_i)² for a float32 query already mapped to
// code space (asymmetric distance). q and c must have the same length.
func L2F32Int8(q []float32, c []int8) float32 { return l2F32Int8(q, c) }

// WeightedL2F32Int8 returns Σ w_i (q_i - c_i)².
func WeightedL2F32Int8(q, w []float32, c []int8) float32 { return weightedL2F32Int8(q, w, c) }

// DotF32Int8 returns Σ u_i·c_i.
func DotF32Int8(u []float32, c []int8) float32 { return dotF32Int8(u, c) }

// DotI16Int8 returns Σ q_i·c_i, accumulated in int32: exact, so every
// implementation returns the same value, provided |q_i| ≤ I16Max(len(q))
// (then no partial sum can overflow). q and c must have the same length.
// It is the kernel of Query.Distance.
func DotI16Int8(q []int16, c []int8) int32 { return dotI16Int8(q, c) }

// I16Max is the largest |q_i| DotI16Int8 accepts at dim components:
// 32,767, or less where dim·128·|q_i| could pass 2³¹-1 (21,399 at 784
// dims, 10,922 at 1,536).
func I16Max(dim int) int32 { return int32(min(32767, (1<<31-1)/(128*max(dim, 1)))) }

// WeightedL2Int8 returns Σ w_i·(a_i - b_i)², exact (int64), for weights
// 0 ≤ w_i ≤ WMaxL2(len(a)). It is the symmetric (code to code) L2 kernel.
func WeightedL2Int8(w []int16, a, b []int8) int64 { return wl2Int8(w, a, b) }

// WeightedDotInt8 returns Σ w_i·a_i·b_i, exact (int64), for weights
// 0 ≤ w_i ≤ WMaxDot(len(a)). It is the symmetric inner-product kernel.
func WeightedDotInt8(w []int16, a, b []int8) int64 { return wdotInt8(w, a, b) }

// WMaxL2 bounds WeightedL2Int8's weights at dim components: w·(a-b) must
// fit int16 (so w ≤ 128), and no int32 lane of a SIMD implementation (dim/8
// terms of at most w·255²) may overflow.
func WMaxL2(dim int) int32 { return int32(min(128, (1<<31-1)/(65025*max(dim/8, 1)))) }

// WMaxDot bounds WeightedDotInt8's weights: w·a must fit int16 (w ≤ 255),
// and no int32 lane may overflow (dim/8 terms of at most w·128²).
func WMaxDot(dim int) int32 { return int32(min(255, (1<<31-1)/(16384*max(dim/8, 1)))) }

func wl2Int8Generic(w []int16, a, b []int8) int64 {
	a, b = a[:len(w)], b[:len(w)]
	var s int64
	for i := range w {
		d := int64(a[i]) - int64(b[i])
		s += int64(w[i]) * d * d
	}
	return s
}

func wdotInt8Generic(w []int16, a, b []int8) int64 {
	a, b = a[:len(w)], b[:len(w)]
	var s int64
	for i := range w {
		s += int64(w[i]) * int64(a[i]) * int64(b[i])
	}
	return s
}

func dotI16Int8Generic(q []int16, c []int8) int32 {
	c = c[:len(q)]
	var s0, s1, s2, s3 int32
	i := 0
	for ; i+4 <= len(q); i += 4 {
		s0 += int32(q[i]) * int32(c[i])
		s1 += int32(q[i+1]) * int32(c[i+1])
		s2 += int32(q[i+2]) * int32(c[i+2])
		s3 += int32(q[i+3]) * int32(c[i+3])
	}
	for ; i < len(q); i++ {
		s0 += int32(q[i]) * int32(c[i])
	}
	return s0 + s1 + s2 + s3
}

// L2F32 returns the squared L2 distance of two float32 vectors (the
// re-ranking kernel).
func L2F32(a, b []float32) float32 { return l2F32(a, b) }

// DotF32 returns the inner product of two float32 vectors.
func DotF32(a, b []float32) float32 { return dotF32(a, b) }

// Impl names the kernel implementation in use: "generic", "avx2" or
// "avx2+avx512".
var Impl = "generic"

// UsePortable switches every kernel to the portable implementation (true)
// or back to the fastest this CPU and build have (false); it returns the
// previous Impl. For tests and benchmarks that compare implementations:
// it must not run concurrently with any kernel call.
func UsePortable(on bool) string {
	prev := Impl
	if on {
		l2Int8, dotInt8, dotI16Int8 = l2Int8Generic, dotInt8Generic, dotI16Int8Generic
		wl2Int8, wdotInt8 = wl2Int8Generic, wdotInt8Generic
		l2F32Int8, weightedL2F32Int8, dotF32Int8 = l2F32Int8Generic, weightedL2F32Int8Generic, dotF32Int8Generic
		l2F32, dotF32 = l2F32Generic, dotF32Generic
		Impl = "generic"
		return prev
	}
	selectKernels()
	return prev
}

// selectKernels installs the fastest kernels (simd_amd64.go replaces it).
var selectKernels = func() {}

func l2Int8Generic(a, b []int8) int32 {
	b = b[:len(a)]
	var s0, s1, s2, s3 int32
	i := 0
	for ; i+4 <= len(a); i += 4 {
		d0 := int32(a[i]) - int32(b[i])
		d1 := int32(a[i+1]) - int32(b[i+1])
		d2 := int32(a[i+2]) - int32(b[i+2])
		d3 := int32(a[i+3]) - int32(b[i+3])
		s0 += d0 * d0
		s1 += d1 * d1
		s2 += d2 * d2
		s3 += d3 * d3
	}
	for ; i < len(a); i++ {
		d := int32(a[i]) - int32(b[i])
		s0 += d * d
	}
	return s0 + s1 + s2 + s3
}

func dotInt8Generic(a, b []int8) int32 {
	b = b[:len(a)]
	var s0, s1, s2, s3 int32
	i := 0
	for ; i+4 <= len(a); i += 4 {
		s0 += int32(a[i]) * int32(b[i])
		s1 += int32(a[i+1]) * int32(b[i+1])
		s2 += int32(a[i+2]) * int32(b[i+2])
		s3 += int32(a[i+3]) * int32(b[i+3])
	}
	for ; i < len(a); i++ {
		s0 += int32(a[i]) * int32(b[i])
	}
	return s0 + s1 + s2 + s3
}

// SumInt8 returns Σ a_i.
func SumInt8(a []int8) int32 {
	var s int32
	for _, x := range a {
		s += int32(x)
	}
	return s
}

func l2F32Int8Generic(q []float32, c []int8) float32 {
	c = c[:len(q)]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= len(q); i += 4 {
		d0 := q[i] - float32(c[i])
		d1 := q[i+1] - float32(c[i+1])
		d2 := q[i+2] - float32(c[i+2])
		d3 := q[i+3] - float32(c[i+3])
		s0 += d0 * d0
		s1 += d1 * d1
		s2 += d2 * d2
		s3 += d3 * d3
	}
	for ; i < len(q); i++ {
		d := q[i] - float32(c[i])
		s0 += d * d
	}
	return s0 + s1 + s2 + s3
}

func weightedL2F32Int8Generic(q, w []float32, c []int8) float32 {
	c, w = c[:len(q)], w[:len(q)]
	var s0, s1 float32
	i := 0
	for ; i+2 <= len(q); i += 2 {
		d0 := q[i] - float32(c[i])
		d1 := q[i+1] - float32(c[i+1])
		s0 += w[i] * d0 * d0
		s1 += w[i+1] * d1 * d1
	}
	for ; i < len(q); i++ {
		d := q[i] - float32(c[i])
		s0 += w[i] * d * d
	}
	return s0 + s1
}

func dotF32Int8Generic(u []float32, c []int8) float32 {
	c = c[:len(u)]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= len(u); i += 4 {
		s0 += u[i] * float32(c[i])
		s1 += u[i+1] * float32(c[i+1])
		s2 += u[i+2] * float32(c[i+2])
		s3 += u[i+3] * float32(c[i+3])
	}
	for ; i < len(u); i++ {
		s0 += u[i] * float32(c[i])
	}
	return s0 + s1 + s2 + s3
}

func l2F32Generic(a, b []float32) float32 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= len(a); i += 4 {
		d0 := a[i] - b[i]
		d1 := a[i+1] - b[i+1]
		d2 := a[i+2] - b[i+2]
		d3 := a[i+3] - b[i+3]
		s0 += d0 * d0
		s1 += d1 * d1
		s2 += d2 * d2
		s3 += d3 * d3
	}
	for ; i < len(a); i++ {
		d := a[i] - b[i]
		s0 += d * d
	}
	return s0 + s1 + s2 + s3
}

func dotF32Generic(a, b []float32) float32 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= len(a); i += 4 {
		s0 += a[i] * b[i]
		s1 += a[i+1] * b[i+1]
		s2 += a[i+2] * b[i+2]
		s3 += a[i+3] * b[i+3]
	}
	for ; i < len(a); i++ {
		s0 += a[i] * b[i]
	}
	return s0 + s1 + s2 + s3
}
