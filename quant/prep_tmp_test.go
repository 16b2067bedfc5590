package quant

import (
	"math/rand/v2"
	"testing"
)

func BenchmarkPrepareTmp(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	const dim = 784
	var sample [][]float32
	for range 2000 {
		v := make([]float32, dim)
		for i := range v {
			v[i] = r.Float32()
		}
		sample = append(sample, v)
	}
	q, err := Train(sample, Options{})
	if err != nil {
		b.Fatal(err)
	}
	for _, m := range []Metric{L2, Cosine} {
		b.Run(m.String(), func(b *testing.B) {
			for b.Loop() {
				q.Prepare(m, sample[0])
			}
		})
	}
	b.Run("checkfinite", func(b *testing.B) {
		for b.Loop() {
			CheckFinite(sample[0])
		}
	})
}
