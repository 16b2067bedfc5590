package quant

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

var sink float32
var isink int32
var i64sink int64

// BenchmarkKernels: ns/op of each kernel at 128, 384, 784 and 1,536
// dimensions (go test -bench Kernels ./quant).
func BenchmarkKernels(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 1))
	for _, dim := range []int{128, 384, 784, 1536} {
		a, c := make([]int8, dim), make([]int8, dim)
		x, y, w := make([]float32, dim), make([]float32, dim), make([]float32, dim)
		for i := range a {
			a[i], c[i] = int8(rng.IntN(256)-128), int8(rng.IntN(256)-128)
			x[i], y[i], w[i] = float32(rng.NormFloat64()), float32(rng.NormFloat64()), 1
		}
		b.Run(fmt.Sprintf("L2Int8/%d", dim), func(b *testing.B) {
			for b.Loop() {
				isink = L2Int8(a, c)
			}
		})
		b.Run(fmt.Sprintf("DotInt8/%d", dim), func(b *testing.B) {
			for b.Loop() {
				isink = DotInt8(a, c)
			}
		})
		b.Run(fmt.Sprintf("L2F32Int8/%d", dim), func(b *testing.B) {
			for b.Loop() {
				sink = L2F32Int8(x, c)
			}
		})
		b.Run(fmt.Sprintf("DotF32Int8/%d", dim), func(b *testing.B) {
			for b.Loop() {
				sink = DotF32Int8(x, c)
			}
		})
		b.Run(fmt.Sprintf("WeightedL2F32Int8/%d", dim), func(b *testing.B) {
			for b.Loop() {
				sink = WeightedL2F32Int8(x, w, c)
			}
		})
		qi := make([]int16, dim)
		for i := range qi {
			qi[i] = int16(rng.Int32N(2*I16Max(dim)+1) - I16Max(dim))
		}
		b.Run(fmt.Sprintf("DotI16Int8/%d", dim), func(b *testing.B) {
			for b.Loop() {
				isink = DotI16Int8(qi, c)
			}
		})
		wl, wd := make([]int16, dim), make([]int16, dim)
		for i := range wl {
			wl[i], wd[i] = int16(rng.Int32N(WMaxL2(dim)+1)), int16(rng.Int32N(WMaxDot(dim)+1))
		}
		b.Run(fmt.Sprintf("WeightedL2Int8/%d", dim), func(b *testing.B) {
			for b.Loop() {
				i64sink = WeightedL2Int8(wl, a, c)
			}
		})
		b.Run(fmt.Sprintf("WeightedDotInt8/%d", dim), func(b *testing.B) {
			for b.Loop() {
				i64sink = WeightedDotInt8(wd, a, c)
			}
		})
		b.Run(fmt.Sprintf("L2F32/%d", dim), func(b *testing.B) {
			for b.Loop() {
				sink = L2F32(x, y)
			}
		})
		b.Run(fmt.Sprintf("DotF32/%d", dim), func(b *testing.B) {
			for b.Loop() {
				sink = DotF32(x, y)
			}
		})
	}
}
