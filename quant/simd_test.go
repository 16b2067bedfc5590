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
	t.Logf("AVX2 %v, AVX-512 %v, in use: %s", avx2, avx512, Impl)
}
