//go:build goexperiment.simd

package quant

import "simd/archsimd"

// AVX2 kernels through Go's experimental SIMD package, used when the build
// has GOEXPERIMENT=simd and the CPU has AVX2 (and, for the asymmetric
// kernels, AVX-512 variants with sixteen lanes when the CPU has it). Integer kernels widen 16
// codes to int16 and multiply-add pairs into eight int32 lanes (VPMADDWD);
// float kernels fuse multiply and add over eight lanes. Tails run the
// portable loop.

func init() {
	selectKernels = selectSIMD
	selectSIMD()
}

func selectSIMD() {
	if !archsimd.X86.AVX2() || !archsimd.X86.FMA() {
		return
	}
	l2Int8, dotInt8 = l2Int8AVX2, dotInt8AVX2
	l2F32Int8, weightedL2F32Int8, dotF32Int8 = l2F32Int8AVX2, weightedL2F32Int8AVX2, dotF32Int8AVX2
	l2F32, dotF32 = l2F32AVX2, dotF32AVX2
	dotI16Int8 = dotI16Int8AVX2
	wl2Int8, wdotInt8 = wl2Int8AVX2, wdotInt8AVX2
	Impl = "avx2"
	if archsimd.X86.AVX512() {
		// Sixteen float lanes for the asymmetric kernels of search and build.
		l2F32Int8, weightedL2F32Int8, dotF32Int8 = l2F32Int8AVX512, weightedL2F32Int8AVX512, dotF32Int8AVX512
		dotI16Int8 = dotI16Int8AVX512
		l2F32, dotF32 = l2F32AVX512, dotF32AVX512
		wl2Int8, wdotInt8 = wl2Int8AVX512, wdotInt8AVX512
		Impl = "avx2+avx512"
	}
}

func sumF32x16(v archsimd.Float32x16) float32 {
	var a [16]float32
	v.Store(&a)
	archsimd.ClearAVXUpperBits()
	var s float32
	for i := 0; i < 16; i += 4 {
		s += (a[i] + a[i+1]) + (a[i+2] + a[i+3])
	}
	return s
}

// codes16x converts c[i:i+16] to sixteen float32 lanes.
func codes16x(c []int8, i int) archsimd.Float32x16 {
	return archsimd.LoadInt8x16Slice(c[i:]).ExtendToInt32().ConvertToFloat32()
}

func l2F32Int8AVX512(q []float32, c []int8) float32 {
	c = c[:len(q)]
	var acc archsimd.Float32x16
	i := 0
	for ; i+16 <= len(q); i += 16 {
		d := archsimd.LoadFloat32x16Slice(q[i:]).Sub(codes16x(c, i))
		acc = d.MulAdd(d, acc)
	}
	return sumF32x16(acc) + l2F32Int8Generic(q[i:], c[i:])
}

func weightedL2F32Int8AVX512(q, w []float32, c []int8) float32 {
	c, w = c[:len(q)], w[:len(q)]
	var acc archsimd.Float32x16
	i := 0
	for ; i+16 <= len(q); i += 16 {
		d := archsimd.LoadFloat32x16Slice(q[i:]).Sub(codes16x(c, i))
		acc = d.Mul(d).MulAdd(archsimd.LoadFloat32x16Slice(w[i:]), acc)
	}
	return sumF32x16(acc) + weightedL2F32Int8Generic(q[i:], w[i:], c[i:])
}

func dotF32Int8AVX512(u []float32, c []int8) float32 {
	c = c[:len(u)]
	var acc archsimd.Float32x16
	i := 0
	for ; i+16 <= len(u); i += 16 {
		acc = archsimd.LoadFloat32x16Slice(u[i:]).MulAdd(codes16x(c, i), acc)
	}
	return sumF32x16(acc) + dotF32Int8Generic(u[i:], c[i:])
}

func sumI32(v archsimd.Int32x8) int32 {
	var a [8]int32
	v.Store(&a)
	archsimd.ClearAVXUpperBits()
	return a[0] + a[1] + a[2] + a[3] + a[4] + a[5] + a[6] + a[7]
}

// sumF32 adds v's lanes. It clears the upper halves of the vector
// registers first: the scalar (SSE) float code after a 256-bit kernel would
// otherwise pay for false dependencies on them, which on Intel cost more
// than a 128-dim kernel itself (the compiler does not yet emit VZEROUPPER).
func sumF32(v archsimd.Float32x8) float32 {
	var a [8]float32
	v.Store(&a)
	archsimd.ClearAVXUpperBits()
	return (a[0] + a[1]) + (a[2] + a[3]) + (a[4] + a[5]) + (a[6] + a[7])
}

func l2Int8AVX2(a, b []int8) int32 {
	b = b[:len(a)]
	var acc archsimd.Int32x8
	i := 0
	for ; i+16 <= len(a); i += 16 {
		d := archsimd.LoadInt8x16Slice(a[i:]).ExtendToInt16().Sub(archsimd.LoadInt8x16Slice(b[i:]).ExtendToInt16())
		acc = acc.Add(d.DotProductPairs(d))
	}
	return sumI32(acc) + l2Int8Generic(a[i:], b[i:])
}

func dotInt8AVX2(a, b []int8) int32 {
	b = b[:len(a)]
	var acc archsimd.Int32x8
	i := 0
	for ; i+16 <= len(a); i += 16 {
		x := archsimd.LoadInt8x16Slice(a[i:]).ExtendToInt16()
		acc = acc.Add(x.DotProductPairs(archsimd.LoadInt8x16Slice(b[i:]).ExtendToInt16()))
	}
	return sumI32(acc) + dotInt8Generic(a[i:], b[i:])
}

// codes16 converts c[i:i+16] to two float32 vectors (lanes 0-7, 8-15).
func codes16(c []int8, i int) (archsimd.Float32x8, archsimd.Float32x8) {
	w := archsimd.LoadInt8x16Slice(c[i:]).ExtendToInt16()
	return w.GetLo().ExtendToInt32().ConvertToFloat32(), w.GetHi().ExtendToInt32().ConvertToFloat32()
}

func l2F32Int8AVX2(q []float32, c []int8) float32 {
	c = c[:len(q)]
	var acc0, acc1 archsimd.Float32x8
	i := 0
	for ; i+16 <= len(q); i += 16 {
		lo, hi := codes16(c, i)
		d0 := archsimd.LoadFloat32x8Slice(q[i:]).Sub(lo)
		d1 := archsimd.LoadFloat32x8Slice(q[i+8:]).Sub(hi)
		acc0 = d0.MulAdd(d0, acc0)
		acc1 = d1.MulAdd(d1, acc1)
	}
	return sumF32(acc0.Add(acc1)) + l2F32Int8Generic(q[i:], c[i:])
}

func weightedL2F32Int8AVX2(q, w []float32, c []int8) float32 {
	c, w = c[:len(q)], w[:len(q)]
	var acc0, acc1 archsimd.Float32x8
	i := 0
	for ; i+16 <= len(q); i += 16 {
		lo, hi := codes16(c, i)
		d0 := archsimd.LoadFloat32x8Slice(q[i:]).Sub(lo)
		d1 := archsimd.LoadFloat32x8Slice(q[i+8:]).Sub(hi)
		acc0 = d0.Mul(d0).MulAdd(archsimd.LoadFloat32x8Slice(w[i:]), acc0)
		acc1 = d1.Mul(d1).MulAdd(archsimd.LoadFloat32x8Slice(w[i+8:]), acc1)
	}
	return sumF32(acc0.Add(acc1)) + weightedL2F32Int8Generic(q[i:], w[i:], c[i:])
}

func dotF32Int8AVX2(u []float32, c []int8) float32 {
	c = c[:len(u)]
	var acc0, acc1 archsimd.Float32x8
	i := 0
	for ; i+16 <= len(u); i += 16 {
		lo, hi := codes16(c, i)
		acc0 = archsimd.LoadFloat32x8Slice(u[i:]).MulAdd(lo, acc0)
		acc1 = archsimd.LoadFloat32x8Slice(u[i+8:]).MulAdd(hi, acc1)
	}
	return sumF32(acc0.Add(acc1)) + dotF32Int8Generic(u[i:], c[i:])
}

func l2F32AVX2(a, b []float32) float32 {
	b = b[:len(a)]
	var acc0, acc1 archsimd.Float32x8
	i := 0
	for ; i+16 <= len(a); i += 16 {
		d0 := archsimd.LoadFloat32x8Slice(a[i:]).Sub(archsimd.LoadFloat32x8Slice(b[i:]))
		d1 := archsimd.LoadFloat32x8Slice(a[i+8:]).Sub(archsimd.LoadFloat32x8Slice(b[i+8:]))
		acc0 = d0.MulAdd(d0, acc0)
		acc1 = d1.MulAdd(d1, acc1)
	}
	return sumF32(acc0.Add(acc1)) + l2F32Generic(a[i:], b[i:])
}

func dotF32AVX2(a, b []float32) float32 {
	b = b[:len(a)]
	var acc0, acc1 archsimd.Float32x8
	i := 0
	for ; i+16 <= len(a); i += 16 {
		acc0 = archsimd.LoadFloat32x8Slice(a[i:]).MulAdd(archsimd.LoadFloat32x8Slice(b[i:]), acc0)
		acc1 = archsimd.LoadFloat32x8Slice(a[i+8:]).MulAdd(archsimd.LoadFloat32x8Slice(b[i+8:]), acc1)
	}
	return sumF32(acc0.Add(acc1)) + dotF32Generic(a[i:], b[i:])
}

// dotI16Int8AVX2 widens sixteen codes to int16 and multiply-adds them with
// the int16 query in pairs into eight int32 lanes (VPMADDWD), two steps
// per iteration. Integer sums are exact, so it equals the portable kernel
// bit for bit.
func dotI16Int8AVX2(q []int16, c []int8) int32 {
	c = c[:len(q)]
	var acc0, acc1 archsimd.Int32x8
	for len(q) >= 32 && len(c) >= 32 {
		acc0 = acc0.Add(archsimd.LoadInt16x16((*[16]int16)(q)).DotProductPairs(archsimd.LoadInt8x16((*[16]int8)(c)).ExtendToInt16()))
		acc1 = acc1.Add(archsimd.LoadInt16x16((*[16]int16)(q[16:])).DotProductPairs(archsimd.LoadInt8x16((*[16]int8)(c[16:])).ExtendToInt16()))
		q, c = q[32:], c[32:]
	}
	if len(q) >= 16 && len(c) >= 16 {
		acc0 = acc0.Add(archsimd.LoadInt16x16((*[16]int16)(q)).DotProductPairs(archsimd.LoadInt8x16((*[16]int8)(c)).ExtendToInt16()))
		q, c = q[16:], c[16:]
	}
	acc := acc0.Add(acc1)
	var a [4]int32
	acc.GetLo().Add(acc.GetHi()).Store(&a)
	archsimd.ClearAVXUpperBits()
	return a[0] + a[1] + a[2] + a[3] + dotI16Int8Generic(q, c)
}

// dotI16Int8AVX512 is dotI16Int8AVX2 over 32 components per step, two
// steps per iteration into two accumulators, then a 16-component step.
// The loops advance the slices (array-pointer loads) so that an iteration
// carries one length check rather than index arithmetic per load.
func dotI16Int8AVX512(q []int16, c []int8) int32 {
	c = c[:len(q)]
	var acc0, acc1 archsimd.Int32x16
	for len(q) >= 64 && len(c) >= 64 {
		acc0 = acc0.Add(archsimd.LoadInt16x32((*[32]int16)(q)).DotProductPairs(archsimd.LoadInt8x32((*[32]int8)(c)).ExtendToInt16()))
		acc1 = acc1.Add(archsimd.LoadInt16x32((*[32]int16)(q[32:])).DotProductPairs(archsimd.LoadInt8x32((*[32]int8)(c[32:])).ExtendToInt16()))
		q, c = q[64:], c[64:]
	}
	if len(q) >= 32 && len(c) >= 32 {
		acc0 = acc0.Add(archsimd.LoadInt16x32((*[32]int16)(q)).DotProductPairs(archsimd.LoadInt8x32((*[32]int8)(c)).ExtendToInt16()))
		q, c = q[32:], c[32:]
	}
	acc := acc0.Add(acc1)
	acc8 := acc.GetLo().Add(acc.GetHi())
	if len(q) >= 16 && len(c) >= 16 {
		acc8 = acc8.Add(archsimd.LoadInt16x16((*[16]int16)(q)).DotProductPairs(archsimd.LoadInt8x16((*[16]int8)(c)).ExtendToInt16()))
		q, c = q[16:], c[16:]
	}
	var a [4]int32
	acc8.GetLo().Add(acc8.GetHi()).Store(&a)
	// Clear the upper halves before any scalar code (see sumF32).
	archsimd.ClearAVXUpperBits()
	return a[0] + a[1] + a[2] + a[3] + dotI16Int8Generic(q, c)
}

// sumI32x8Wide adds the eight lanes as int64 (the weighted kernels' sums
// can pass int32; no lane does).
func sumI32x8Wide(v archsimd.Int32x8) int64 {
	var a [8]int32
	v.Store(&a)
	archsimd.ClearAVXUpperBits()
	var s int64
	for _, x := range a {
		s += int64(x)
	}
	return s
}

// wl2Int8AVX2: per sixteen components, d = a-b and t = w·d in int16, then
// t·d multiply-added in pairs into eight int32 lanes.
func wl2Int8AVX2(w []int16, a, b []int8) int64 {
	a, b = a[:len(w)], b[:len(w)]
	var acc archsimd.Int32x8
	for len(w) >= 16 && len(a) >= 16 && len(b) >= 16 {
		d := archsimd.LoadInt8x16((*[16]int8)(a)).ExtendToInt16().Sub(archsimd.LoadInt8x16((*[16]int8)(b)).ExtendToInt16())
		acc = acc.Add(archsimd.LoadInt16x16((*[16]int16)(w)).Mul(d).DotProductPairs(d))
		w, a, b = w[16:], a[16:], b[16:]
	}
	return sumI32x8Wide(acc) + wl2Int8Generic(w, a, b)
}

// wdotInt8AVX2: per sixteen components, t = w·a in int16, then t·b
// multiply-added in pairs.
func wdotInt8AVX2(w []int16, a, b []int8) int64 {
	a, b = a[:len(w)], b[:len(w)]
	var acc archsimd.Int32x8
	for len(w) >= 16 && len(a) >= 16 && len(b) >= 16 {
		t := archsimd.LoadInt16x16((*[16]int16)(w)).Mul(archsimd.LoadInt8x16((*[16]int8)(a)).ExtendToInt16())
		acc = acc.Add(t.DotProductPairs(archsimd.LoadInt8x16((*[16]int8)(b)).ExtendToInt16()))
		w, a, b = w[16:], a[16:], b[16:]
	}
	return sumI32x8Wide(acc) + wdotInt8Generic(w, a, b)
}

// wl2Int8AVX512 is wl2Int8AVX2 over 32 components per step (its lanes each
// take half as many terms as the AVX2 kernel's, within WMaxL2's bound).
func wl2Int8AVX512(w []int16, a, b []int8) int64 {
	a, b = a[:len(w)], b[:len(w)]
	var acc archsimd.Int32x16
	for len(w) >= 32 && len(a) >= 32 && len(b) >= 32 {
		d := archsimd.LoadInt8x32((*[32]int8)(a)).ExtendToInt16().Sub(archsimd.LoadInt8x32((*[32]int8)(b)).ExtendToInt16())
		acc = acc.Add(archsimd.LoadInt16x32((*[32]int16)(w)).Mul(d).DotProductPairs(d))
		w, a, b = w[32:], a[32:], b[32:]
	}
	return sumI32x8Wide(acc.GetLo().Add(acc.GetHi())) + wl2Int8AVX2(w, a, b)
}

func wdotInt8AVX512(w []int16, a, b []int8) int64 {
	a, b = a[:len(w)], b[:len(w)]
	var acc archsimd.Int32x16
	for len(w) >= 32 && len(a) >= 32 && len(b) >= 32 {
		t := archsimd.LoadInt16x32((*[32]int16)(w)).Mul(archsimd.LoadInt8x32((*[32]int8)(a)).ExtendToInt16())
		acc = acc.Add(t.DotProductPairs(archsimd.LoadInt8x32((*[32]int8)(b)).ExtendToInt16()))
		w, a, b = w[32:], a[32:], b[32:]
	}
	return sumI32x8Wide(acc.GetLo().Add(acc.GetHi())) + wdotInt8AVX2(w, a, b)
}

// l2F32AVX512 and dotF32AVX512 are the re-ranking kernels over sixteen
// lanes, two accumulators, advancing the slices (array-pointer loads).
func l2F32AVX512(a, b []float32) float32 {
	b = b[:len(a)]
	var acc0, acc1 archsimd.Float32x16
	for len(a) >= 32 && len(b) >= 32 {
		d0 := archsimd.LoadFloat32x16((*[16]float32)(a)).Sub(archsimd.LoadFloat32x16((*[16]float32)(b)))
		d1 := archsimd.LoadFloat32x16((*[16]float32)(a[16:])).Sub(archsimd.LoadFloat32x16((*[16]float32)(b[16:])))
		acc0 = d0.MulAdd(d0, acc0)
		acc1 = d1.MulAdd(d1, acc1)
		a, b = a[32:], b[32:]
	}
	return sumF32x16(acc0.Add(acc1)) + l2F32Generic(a, b)
}

func dotF32AVX512(a, b []float32) float32 {
	b = b[:len(a)]
	var acc0, acc1 archsimd.Float32x16
	for len(a) >= 32 && len(b) >= 32 {
		acc0 = archsimd.LoadFloat32x16((*[16]float32)(a)).MulAdd(archsimd.LoadFloat32x16((*[16]float32)(b)), acc0)
		acc1 = archsimd.LoadFloat32x16((*[16]float32)(a[16:])).MulAdd(archsimd.LoadFloat32x16((*[16]float32)(b[16:])), acc1)
		a, b = a[32:], b[32:]
	}
	return sumF32x16(acc0.Add(acc1)) + dotF32Generic(a, b)
}
