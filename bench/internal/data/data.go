// Package data loads the real data sets the benchmarks measure on.
package data

import (
	"log"
	"math"
	"path/filepath"

	"github.com/flowdb/flowdb/internal/vecio"
	"github.com/flowdb/flowdb/quant"
)

// FashionDir is where Debian's dataset-fashion-mnist package puts the files.
const FashionDir = "/usr/share/datasets/fashion-mnist"

// IDX reads up to limit vectors (0: all) of the IDX file name in dir (for
// example Fashion-MNIST's train-images-idx3-ubyte.gz), exiting the program
// with a hint on how to install the data if it cannot.
func IDX(dir, name string, limit int) [][]float32 {
	r, err := vecio.Open(filepath.Join(dir, name))
	if err != nil {
		log.Fatalf("%v (apt-get install dataset-fashion-mnist)", err)
	}
	defer r.Close()
	vs, err := vecio.ReadIDX(r, limit)
	if err != nil {
		log.Fatal(err)
	}
	return vs
}

// Normalize returns v scaled to unit length (the norm from quant.DotF32),
// as the benchmarks prepare vectors for cosine.
func Normalize(v []float32) []float32 {
	n := math.Sqrt(float64(quant.DotF32(v, v)))
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = float32(float64(x) / n)
	}
	return out
}

// NormalizeAll normalizes every vector of vs (Normalize).
func NormalizeAll(vs [][]float32) [][]float32 {
	out := make([][]float32, len(vs))
	for i, v := range vs {
		out[i] = Normalize(v)
	}
	return out
}
