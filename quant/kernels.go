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

// L2F32 returns the squared L2 distance of two float32 vectors (the
// re-ranking kernel).
func L2F32(a, b []float32) float32 { return l2F32(a, b) }

// DotF32 returns the inner product of two float32 vectors.
func DotF32(a, b []float32) float32 { return dotF32(a, b) }

// Impl names the kernel implementation in use: "generic" or "avx2".
var Impl = "generic"

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
