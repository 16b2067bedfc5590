//go:build goexperiment.simd

package quant

import (
	"math/rand/v2"
	"testing"

	"simd/archsimd"
)

// TestSIMDVariants holds every SIMD variant this CPU can run (not only the
// one in use) to the portable kernels.
func TestSIMDVariants(t *testing.T) {
	type asym struct {
		name string
		fn   func([]float32, []int8) float32
		ok   bool
	}
	avx2 := archsimd.X86.AVX2() && archsimd.X86.FMA()
	avx512 := archsimd.X86.AVX512()
	l2s := []asym{{"l2F32Int8AVX2", l2F32Int8AVX2, avx2}, {"l2F32Int8AVX512", l2F32Int8AVX512, avx512}}
	dots := []asym{{"dotF32Int8AVX2", dotF32Int8AVX2, avx2}, {"dotF32Int8AVX512", dotF32Int8AVX512, avx512}}
	rng := rand.New(rand.NewPCG(9, 9))
	for n := 0; n <= 70; n++ {
		q, w, c := make([]float32, n), make([]float32, n), make([]int8, n)
		for i := range q {
			q[i], w[i], c[i] = float32(rng.NormFloat64()*40), float32(rng.Float64()), int8(rng.IntN(256)-128)
		}
		for _, k := range l2s {
			if k.ok && !approx(float64(k.fn(q, c)), float64(l2F32Int8Generic(q, c))) {
				t.Fatalf("%s n=%d differs", k.name, n)
			}
		}
		for _, k := range dots {
			if k.ok && !approx(float64(k.fn(q, c)), float64(dotF32Int8Generic(q, c))) {
				t.Fatalf("%s n=%d differs", k.name, n)
			}
		}
		for _, k := range []struct {
			fn func(q, w []float32, c []int8) float32
			ok bool
		}{{weightedL2F32Int8AVX2, avx2}, {weightedL2F32Int8AVX512, avx512}} {
			if k.ok && !approx(float64(k.fn(q, w, c)), float64(weightedL2F32Int8Generic(q, w, c))) {
				t.Fatalf("weighted n=%d differs", n)
			}
		}
	}
	if avx512 {
		for n := 0; n <= 100; n++ {
			a, b := make([]float32, n), make([]float32, n)
			for i := range a {
				a[i], b[i] = float32(rng.NormFloat64()), float32(rng.NormFloat64())
			}
			if !approx(float64(l2F32AVX512(a, b)), float64(l2F32Generic(a, b))) || !approx(float64(dotF32AVX512(a, b)), float64(dotF32Generic(a, b))) {
				t.Fatalf("float32 AVX-512 kernels n=%d differ", n)
			}
		}
	}
	// The integer kernel is exact: every variant equals the portable one
	// bit for bit, which is what makes Query distances (and so graphs) the
	// same on every CPU.
	for n := 0; n <= 100; n++ {
		q, c := make([]int16, n), make([]int8, n)
		lim := I16Max(n)
		for i := range q {
			q[i], c[i] = int16(rng.Int32N(2*lim+1)-lim), int8(rng.IntN(256)-128)
		}
		a, wl, wd := make([]int8, n), make([]int16, n), make([]int16, n)
		for i := range a {
			a[i], wl[i], wd[i] = int8(rng.IntN(256)-128), int16(rng.Int32N(WMaxL2(n)+1)), int16(rng.Int32N(WMaxDot(n)+1))
		}
		for _, k := range []struct {
			name string
			fn   func([]int16, []int8, []int8) int64
			ref  func([]int16, []int8, []int8) int64
			w    []int16
			ok   bool
		}{{"wl2Int8AVX2", wl2Int8AVX2, wl2Int8Generic, wl, avx2}, {"wl2Int8AVX512", wl2Int8AVX512, wl2Int8Generic, wl, avx512},
			{"wdotInt8AVX2", wdotInt8AVX2, wdotInt8Generic, wd, avx2}, {"wdotInt8AVX512", wdotInt8AVX512, wdotInt8Generic, wd, avx512}} {
			if k.ok && k.fn(k.w, a, c) != k.ref(k.w, a, c) {
				t.Fatalf("%s n=%d: %d, want %d", k.name, n, k.fn(k.w, a, c), k.ref(k.w, a, c))
			}
		}
		want := dotI16Int8Generic(q, c)
		if avx2 && dotI16Int8AVX2(q, c) != want {
			t.Fatalf("dotI16Int8AVX2 n=%d: %d, want %d", n, dotI16Int8AVX2(q, c), want)
		}
		if avx512 && dotI16Int8AVX512(q, c) != want {
			t.Fatalf("dotI16Int8AVX512 n=%d: %d, want %d", n, dotI16Int8AVX512(q, c), want)
		}
	}
	t.Logf("AVX2 %v, AVX-512 %v, in use: %s", avx2, avx512, Impl)
}
