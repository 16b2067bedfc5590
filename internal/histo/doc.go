// Package histo is a fixed-bucket, lock-free latency histogram: the
// engine's commit and apply times, a node's Raft commit times and a vector
// collection's search times are recorded into one each, and /metrics and
// the dashboard read quantiles from their snapshots.
//
// # Buckets
//
// Values are durations in nanoseconds. Buckets are log-spaced with
// SubBuckets (8) linear sub-buckets per power of two, as in HdrHistogram
// with one significant octal digit:
//
//	value v (ns)            bucket                      width
//	0 <= v < 8              v                           1 ns
//	2^e <= v < 2^(e+1)      8 + (e-3)*8 + (v>>(e-3))&7  2^(e-3) ns   (3 <= e <= 41)
//	v >= 2^42 (73 min)      NumBuckets-1 (clamped)
//
// A bucket's width is at most an eighth of its lower bound, so a quantile
// read from a snapshot is within 12.5% of the true one (Quantile
// interpolates linearly inside the bucket that holds the rank). Every power
// of two is a bucket boundary, so cumulative counts at powers of two (the
// buckets /metrics exports, CountBelow) are exact.
//
// # Contract
//
//  1. Record is safe for concurrent use, takes no lock and does not
//     allocate: one atomic add to a bucket and one to the sum.
//  2. Snapshot copies the counters one by one without stopping writers: a
//     snapshot taken during Records may hold some of them and not others,
//     but its Count is always the sum of its buckets, and counts never go
//     down between two snapshots of the same histogram.
//  3. A Snapshot is a plain value (NumBuckets counters, about 2.5 KiB):
//     Sub of an older snapshot gives the distribution of what was recorded
//     in between (a window), Add merges histograms (shards, collections).
//  4. The zero Histogram is ready to use. Negative durations count as 0.
package histo
