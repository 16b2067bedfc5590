// Package quant is flowdb's int8 scalar quantizer and its distance kernels.
//
// # Quantizer
//
// Train fits a quantizer to a sample: per dimension d an offset min_d and a
// step scale_d = (max_d - min_d)/255, so that
//
//	code_d = clamp(round((x_d - min_d)/scale_d) - 128, -128, 127)
//
// and decoding is min_d + scale_d·(code_d + 128), within scale_d/2 of every
// component inside the range. The range is the sample's min and max, or
// with Options.Clip its Clip and 1-Clip quantiles (outliers then saturate).
// The parameters travel in records (MarshalBinary / Unmarshal), so every
// replica encodes identically; Unmarshal never panics and rejects bad bytes
// with ErrCorrupt.
//
// # Stored format (wire format)
//
// Quantizer parameters (MarshalBinary, Unmarshal) travel in index/hnsw's
// train record and are kept in the collection's definition, so every
// replica and every reopen decodes the same bytes to the same quantizer.
// Integers and floats are little-endian; floats are IEEE 754 float32:
//
//	offset     size    field
//	0          1       version: 1
//	1          1       range: 0 PerDimension, 1 Global
//	2          4       dim: 1..MaxDim (uint32)
//	6          4·dim   min_d for d = 0..dim-1
//	6+4·dim    4·dim   scale_d for d = 0..dim-1
//	                   total: exactly 6 + 8·dim bytes
//
// Under Global, Train makes every min_d and every scale_d equal; they are
// still written once per dimension. Unmarshal rejects with ErrCorrupt any other version
// or range, a dim outside 1..MaxDim, any other length, a NaN or infinite
// min_d, and a scale_d that is not positive or whose inverse or range end
// (min_d + 255·scale_d) is not finite; it never panics (FuzzUnmarshal).
//
// Other packages store these values of this package, so they are wire
// format too:
//
//	value       stored by                    encoding
//	Metric      index/hnsw collection config L2 0, InnerProduct 1, Cosine 2 (uvarint)
//	code        index/hnsw code table        dim int8 components, code_d as above (two's complement)
//	Residual    index/hnsw code table        R then K, float32 each
//
// Changing a field's order or width, or the meaning of a number, needs a
// new version byte and a decoder that still reads version 1.
//
// # Per-dimension ranges, and why
//
// The default Range is PerDimension, chosen by measurement on Fashion-MNIST
// (bench/quantbench: 60,000 base vectors, 784 dims, 200 test queries,
// quantizer trained on 10,000; recall@10 of a brute-force ranking by the
// asymmetric int8 distance against the exact float32 ranking):
//
//	data                    range          clip   recall@10   after re-ranking 40
//	raw pixels, L2          global         0      1.0000      1.0000
//	raw pixels, L2          per-dimension  0      1.0000      1.0000
//	L2-normalized, cosine   global         0      0.9125      1.0000
//	L2-normalized, cosine   global         0.001  0.9510      0.9950
//	L2-normalized, cosine   per-dimension  0      0.9735      1.0000
//	L2-normalized, cosine   per-dimension  0.001  0.9745      0.9995
//
// A dimension constant in the sample (a corner pixel that is 0 in every
// training image) gets min_d = its value and the widest step of the other
// dimensions, so it encodes that value exactly and a later vector's larger
// value at the others' resolution. (A step of 1, as Train once gave it,
// dwarfed every other scale_d²: SymDistance's integer weights are scaled to
// the largest, and the others rounded to 0, which left neighbor selection
// on scikit-learn's digits under cosine choosing links at random and cost
// the int8 graph 0.02-0.08 of recall@10 against the float32 graph;
// quantizers trained before keep their parameters.)
//
// Raw pixels are integers 0-255, which both modes encode exactly. After
// normalization the dimensions' ranges differ widely (border pixels are
// nearly always 0), and one global range spends most of its 256 levels on
// values a dimension never takes: per-dimension ranges keep 6 points more
// recall before re-ranking, so the index needs less oversampling. Its cost:
// with unequal scales the symmetric code-to-code distance needs a weight per
// dimension (a float loop) instead of the pure int32 kernel; the search path
// is asymmetric (float32 query × int8 code) and costs the same either way
// for inner product and one extra multiply per component for L2. Clipping
// is off by default: it helped a global range but cost recall after
// re-ranking.
//
// # Kernels
//
// L2Int8 and DotInt8 accumulate in int32 (exact up to MaxDim components);
// DotI16Int8 (int16 × int8, int32 accumulation, exact) is the kernel of the
// asymmetric Query; L2F32Int8, WeightedL2F32Int8 and DotF32Int8 are float32
// query × int8 code kernels (a query already mapped to code space); L2F32
// and DotF32 re-rank with the float32 originals. Quantizer.Distance
// (symmetric) and Query.Distance (asymmetric) turn them into the metric's
// distance: squared L2, negated inner product, or 1 - inner product for
// cosine (vectors normalized by the caller before encoding).
//
// # The asymmetric query, and determinism
//
// A Query is not quantized to int8: its per-dimension multipliers (the
// L2 weights times the query in code space, or the query times the scales
// for inner products) are held as int16 at a step of max|m_d|/I16Max(Dim)
// (15 bits, or fewer where Dim·128·32,767 would pass 2³¹), and the distance
// is one DotI16Int8 plus scalar float64 terms (the query's own term, and
// under L2 the code's Norm, kept per code by the graph). The int16 step adds
// at most step/2 per unit of Σ|c_d| (TestDistancesMatchDecoded checks the
// bound), far below the int8 codes' own error. Two reasons for it:
//
//   - Speed: at 784 dims DotI16Int8 with AVX-512 takes about a fifth of the
//     time of the float32-query WeightedL2F32Int8 it replaced.
//   - Determinism: integer sums are exact, so every implementation returns
//     the same value, and the float64 steps are written so that no compiler
//     may fuse them. Distances, and so HNSW graphs, are the same bits on
//     every CPU and build (TestDeterministicAcrossKernels in index/hnsw),
//     which replication needs. The float32 kernels (L2F32, DotF32, and the
//     F32Int8 ones) sum in an order that differs between implementations:
//     they serve re-ranking and search, never a stored decision.
//
// The portable kernels (kernels.go) are the default. Built with
// GOEXPERIMENT=simd on a CPU with AVX2 and FMA, simd_amd64.go replaces them
// with kernels written with Go's experimental simd/archsimd package, and on
// a CPU with AVX-512 the asymmetric ones with sixteen-lane variants (Impl
// says which are in use); the tests hold every variant the CPU can run to
// the same plain-loop reference in that build. BenchmarkKernels (go test
// -bench Kernels ./quant; add GOEXPERIMENT=simd for the AVX2 and AVX-512
// kernels) measures every kernel at 128, 384, 784 and 1,536 dims: the
// vectorized integer kernels run several times as fast as the portable
// ones, the float32 re-ranking kernels gain less. Figures, dated, are in
// bench/RESULTS.md (quant).
//
// The AVX2 kernels clear the vector registers' upper halves before they
// return (archsimd.ClearAVXUpperBits): without it the caller's scalar float
// code paid a penalty on every call (bench/RESULTS.md) on Intel machines.
//
// # Bounds on the exact distance
//
// An index that ranks by codes and re-ranks with the float32 originals
// need not read every candidate's original. Residual gives a vector's
// quantization error e = x − x̂ as two numbers, R = ‖e‖ (rounded up) and
// K = ⟨x̂, e⟩, computed in float64 with no fusable step so that they are
// the same bits everywhere. Query.Bounds turns a code's asymmetric
// distance into an interval that holds the exact float32 distance: the
// int16 multipliers' error, the residual (under L2, ‖v − x‖ is within R
// of ‖v − x̂‖; under inner products ⟨v, x⟩ = ⟨v, x̂⟩ + K + ⟨v − x̂, e⟩,
// the last term at most ‖v − x̂‖·R, or ‖v‖·R, whichever is smaller), and
// the float32 kernels' own rounding, (Dim+2)·2⁻²⁴ of the sum of the
// terms' magnitudes whatever their order, taken twice. TestBounds checks
// the interval on random data with and without clipping, at 3, 40 and
// 784 dims, and fails when any term is halved or dropped (the rounding
// term excepted: it is a margin that these data never need).
//
// # Errors
//
// Wrong dimensions get ErrDimension, NaN or infinite components
// ErrNotFinite, bad training samples ErrSample, bad parameters ErrCorrupt.
//
// # Concurrency
//
// A Quantizer and a prepared Query are immutable and safe for concurrent
// use. UsePortable swaps the kernels and must not race with kernel calls.
package quant
