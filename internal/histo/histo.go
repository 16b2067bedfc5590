package histo

import (
	"encoding/json"
	"math"
	"math/bits"
	"sync/atomic"
	"time"
)

const (
	// SubBuckets is the number of linear buckets per power of two.
	SubBuckets = 8
	subBits    = 3 // log2(SubBuckets)
	// maxExp is the last power of two with buckets of its own; larger
	// values go to the last bucket.
	maxExp = 41
	// NumBuckets is the number of buckets of a histogram.
	NumBuckets = SubBuckets + (maxExp-subBits+1)*SubBuckets
)

// Histogram counts durations in log-spaced buckets. The zero value is
// ready to use; it must not be copied after first use.
type Histogram struct {
	counts [NumBuckets]atomic.Uint64
	sum    atomic.Uint64 // nanoseconds
}

// bucket returns the bucket of v nanoseconds.
func bucket(v uint64) int {
	if v < SubBuckets {
		return int(v)
	}
	e := bits.Len64(v) - 1
	if e > maxExp {
		return NumBuckets - 1
	}
	m := int(v>>(e-subBits)) & (SubBuckets - 1)
	return SubBuckets + (e-subBits)*SubBuckets + m
}

// Bounds returns bucket i's range [lower, upper) in nanoseconds. The last
// bucket also holds every value above its upper bound.
func Bounds(i int) (lower, upper uint64) {
	if i < SubBuckets {
		return uint64(i), uint64(i) + 1
	}
	e := (i-SubBuckets)/SubBuckets + subBits
	m := uint64((i - SubBuckets) % SubBuckets)
	shift := e - subBits
	return (SubBuckets + m) << shift, (SubBuckets + m + 1) << shift
}

// Record counts one duration. It does not allocate and takes no lock.
func (h *Histogram) Record(d time.Duration) {
	v := uint64(max(d, 0))
	h.counts[bucket(v)].Add(1)
	h.sum.Add(v)
}

// Since records the time elapsed since t0.
func (h *Histogram) Since(t0 time.Time) { h.Record(time.Since(t0)) }

// Snapshot returns the current counts.
func (h *Histogram) Snapshot() Snapshot {
	var s Snapshot
	h.SnapshotInto(&s)
	return s
}

// SnapshotInto writes the current counts into s (no allocation).
func (h *Histogram) SnapshotInto(s *Snapshot) {
	s.Sum = time.Duration(h.sum.Load())
	s.Count = 0
	for i := range h.counts {
		c := h.counts[i].Load()
		s.Counts[i] = c
		s.Count += c
	}
}

// Snapshot is a histogram's counts at one moment (or a window's, from
// Sub). Count is the sum of Counts.
// Its JSON form is MarshalJSON's (the tags name the fields it writes).
type Snapshot struct {
	Counts [NumBuckets]uint64 `json:"buckets"`
	Count  uint64             `json:"count"`
	// Sum of the recorded durations (read separately from the counts: a
	// snapshot taken during Records may be off by the ones in flight).
	Sum time.Duration `json:"sum_ns"`
}

// Sub returns what was recorded between older and s (both snapshots of the
// same histogram, older taken first).
func (s *Snapshot) Sub(older *Snapshot) Snapshot {
	var d Snapshot
	for i := range s.Counts {
		c := s.Counts[i] - min(older.Counts[i], s.Counts[i])
		d.Counts[i] = c
		d.Count += c
	}
	d.Sum = max(s.Sum-older.Sum, 0)
	return d
}

// Add merges o into s.
func (s *Snapshot) Add(o *Snapshot) {
	for i := range s.Counts {
		s.Counts[i] += o.Counts[i]
	}
	s.Count += o.Count
	s.Sum += o.Sum
}

// Mean is Sum/Count (0 for an empty snapshot).
func (s *Snapshot) Mean() time.Duration {
	if s.Count == 0 {
		return 0
	}
	return s.Sum / time.Duration(s.Count)
}

// Quantile returns the q-quantile (0 <= q <= 1) of the recorded durations,
// interpolated linearly inside the bucket that holds rank q×Count: within
// one bucket's width (12.5%) of the true value. It returns -1 for an empty
// snapshot.
func (s *Snapshot) Quantile(q float64) time.Duration {
	if s.Count == 0 {
		return -1
	}
	q = min(max(q, 0), 1)
	rank := q * float64(s.Count)
	var cum float64
	for i, c := range s.Counts {
		if c == 0 {
			continue
		}
		if cum+float64(c) >= rank {
			lo, hi := Bounds(i)
			f := (rank - cum) / float64(c)
			return time.Duration(float64(lo) + f*float64(hi-lo))
		}
		cum += float64(c)
	}
	lo, _ := Bounds(NumBuckets - 1)
	return time.Duration(lo) // rounding: rank beyond the last count
}

// CountBelow returns how many recorded durations were below d: exact when
// d is a bucket boundary (every power of two of nanoseconds is one),
// otherwise it counts the buckets that end at or below d.
func (s *Snapshot) CountBelow(d time.Duration) uint64 {
	var n uint64
	for i, c := range s.Counts {
		if _, hi := Bounds(i); hi > uint64(max(d, 0)) {
			break
		}
		n += c
	}
	return n
}

// CountsBelow appends to dst, for each of bounds (ascending), what
// CountBelow returns for it, in one pass over the buckets.
func (s *Snapshot) CountsBelow(dst []uint64, bounds []time.Duration) []uint64 {
	var n uint64
	i := 0
	for _, b := range bounds {
		for ; i < NumBuckets; i++ {
			if _, hi := Bounds(i); hi > uint64(max(b, 0)) {
				break
			}
			n += s.Counts[i]
		}
		dst = append(dst, n)
	}
	return dst
}

// Bucket is one non-empty bucket of a snapshot, in nanoseconds.
type Bucket struct {
	Lower uint64 `json:"lower_ns"`
	Upper uint64 `json:"upper_ns"`
	Count uint64 `json:"count"`
}

// Buckets returns the non-empty buckets in order.
func (s *Snapshot) Buckets() []Bucket {
	var out []Bucket
	for i, c := range s.Counts {
		if c > 0 {
			lo, hi := Bounds(i)
			out = append(out, Bucket{Lower: lo, Upper: hi, Count: c})
		}
	}
	return out
}

// MarshalJSON writes the count, sum, mean, p50, p90, p99, p999 and max
// bucket bound in nanoseconds (-1 quantiles when empty), and the non-empty
// buckets.
func (s Snapshot) MarshalJSON() ([]byte, error) {
	type out struct {
		Count   uint64   `json:"count"`
		SumNs   int64    `json:"sum_ns"`
		MeanNs  int64    `json:"mean_ns"`
		P50Ns   int64    `json:"p50_ns"`
		P90Ns   int64    `json:"p90_ns"`
		P99Ns   int64    `json:"p99_ns"`
		P999Ns  int64    `json:"p999_ns"`
		Buckets []Bucket `json:"buckets"`
	}
	b := s.Buckets()
	if b == nil {
		b = []Bucket{}
	}
	return json.Marshal(out{Count: s.Count, SumNs: int64(s.Sum), MeanNs: int64(s.Mean()), P50Ns: int64(s.Quantile(0.5)),
		P90Ns: int64(s.Quantile(0.9)), P99Ns: int64(s.Quantile(0.99)), P999Ns: int64(s.Quantile(0.999)), Buckets: b})
}

// UnmarshalJSON reads what MarshalJSON wrote (the buckets; quantiles are
// derived again).
func (s *Snapshot) UnmarshalJSON(b []byte) error {
	var in struct {
		SumNs   int64    `json:"sum_ns"`
		Buckets []Bucket `json:"buckets"`
	}
	if err := json.Unmarshal(b, &in); err != nil {
		return err
	}
	*s = Snapshot{Sum: time.Duration(in.SumNs)}
	for _, bk := range in.Buckets {
		i := bucket(bk.Lower)
		s.Counts[i] += bk.Count
		s.Count += bk.Count
	}
	return nil
}

// Seconds converts a quantile to seconds, NaN for an empty snapshot's -1.
func Seconds(d time.Duration) float64 {
	if d < 0 {
		return math.NaN()
	}
	return d.Seconds()
}
