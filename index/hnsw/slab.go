package hnsw

// slab holds one fixed-width record per slot in chunks of 1<<slabShift
// slots, so that growing never copies the whole array (at 784 dims the
// codes of 100,000 vectors are 78 MB) and spare capacity is bounded by
// half of the last chunk, not a quarter of everything as with append.
type slab[T any] struct {
	width  int
	chunks [][]T
	n      int // slots
}

const slabShift = 10

func newSlab[T any](width int) slab[T] { return slab[T]{width: width} }

// at returns slot i's record (aliasing the slab).
func (s *slab[T]) at(i uint32) []T {
	c := s.chunks[i>>slabShift]
	o := int(i&(1<<slabShift-1)) * s.width
	return c[o : o+s.width : o+s.width]
}

// add appends a zeroed slot and returns its record.
func (s *slab[T]) add() []T {
	full := (1 << slabShift) * s.width
	if len(s.chunks) == 0 || len(s.chunks[len(s.chunks)-1]) == full {
		s.chunks = append(s.chunks, make([]T, 0, min(full, 16*s.width)))
	}
	last := &s.chunks[len(s.chunks)-1]
	if cap(*last)-len(*last) < s.width {
		grown := make([]T, len(*last), min(full, 2*cap(*last)))
		copy(grown, *last)
		*last = grown
	}
	*last = (*last)[:len(*last)+s.width]
	s.n++
	return s.at(uint32(s.n - 1))
}

// alloc makes n zeroed slots in an empty slab, exactly sized.
func (s *slab[T]) alloc(n int) {
	per := 1 << slabShift
	for left := n; left > 0; left -= per {
		s.chunks = append(s.chunks, make([]T, min(left, per)*s.width))
	}
	s.n = n
}
