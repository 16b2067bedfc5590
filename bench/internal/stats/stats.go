// Package stats holds the order statistics the benchmark programs report:
// the median of repeated runs and the percentiles of latency samples. Every
// program picks elements the same way, so their figures compare: the median
// of n values is the element at n/2 in sorted order (the upper middle for
// an even n), the p-th percentile the element at n*p/100.
package stats

import (
	"cmp"
	"slices"
)

// Median returns the median of xs (the zero value for none). xs is not
// changed.
func Median[T cmp.Ordered](xs []T) T {
	if len(xs) == 0 {
		var zero T
		return zero
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

// MedianOf returns the median of key over xs: for results with several
// fields, each field's median is taken on its own.
func MedianOf[T any, K cmp.Ordered](xs []T, key func(T) K) K {
	ks := make([]K, len(xs))
	for i, x := range xs {
		ks[i] = key(x)
	}
	return Median(ks)
}

// MedianBy returns the element of xs whose key is the median (the zero
// value for none): the run to report whole, as the median run by
// throughput. xs is not changed.
func MedianBy[T any, K cmp.Ordered](xs []T, key func(T) K) T {
	if len(xs) == 0 {
		var zero T
		return zero
	}
	s := slices.Clone(xs)
	slices.SortStableFunc(s, func(a, b T) int { return cmp.Compare(key(a), key(b)) })
	return s[len(s)/2]
}

// Sorted returns the samples of every part (one per goroutine, say) in one
// new slice, in ascending order, ready for Pct.
func Sorted[T cmp.Ordered](parts ...[]T) []T {
	all := slices.Concat(parts...)
	slices.Sort(all)
	return all
}

// Pct returns the p-th percentile of sorted, which must be in ascending
// order: the element at len(sorted)*p/100, for p in [0, 100) (the zero
// value for none).
func Pct[T any](sorted []T, p int) T {
	if len(sorted) == 0 {
		var zero T
		return zero
	}
	return sorted[len(sorted)*p/100]
}
