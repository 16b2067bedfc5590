package db

import (
	"bytes"
	"slices"

	"github.com/cockroachdb/pebble/v2"
)

// batchSorter reorders a frame's point writes by key before the frame is
// handed to Pebble.
//
// Pebble inserts a batch into the memtable's skiplist one key after the
// other, and its inserter remembers where the last key went: a key that
// lands next to the previous one (or near it) skips the search from the
// top of the list. Records write their keys interleaved across tables (a
// task's body, then its ready entry, then the next task's body ...), so
// almost every insert searched the whole list; sorted, the bodies, ready
// entries and lease entries of one frame each land in a run. The sort is
// stable, so writes to one key keep their order and the last one wins as
// before: the batch holds the same final state.
//
// A batch that holds anything but point sets and deletions (range
// deletions, whose effect on point writes depends on their order) is left
// as it is.
//
// Records write each table's keys mostly in order (task ids and sequence
// numbers grow), so the sort is a bucketing: writes are grouped by their
// first groupPrefix bytes (shard and table, internal/keys) in one pass, in
// their order, and a group is sorted only when it is nearly in order
// already. Sorting keys that came in random order (a key-value batch of
// random keys) would not help: the keys between them in the memtable
// still make each insert search from the top. Such a group keeps its
// order, and a batch whose groups all keep theirs and come one after the
// other in key order goes to Pebble as it is.
//
// A batchSorter belongs to one goroutine (the commit goroutine).
type batchSorter struct {
	ents   []sortEntry
	groups []sortGroup
}

type sortEntry struct {
	kind       pebble.InternalKeyKind
	key, value []byte
}

type sortGroup struct {
	prefix   []byte
	ents     []int32 // indexes into ents, in batch order
	descents int     // writes whose key is below the previous one's in the group
}

// sortIt reports whether the group is out of order but near enough to
// order that sorting it makes its inserts land next to each other.
func (g *sortGroup) sortIt() bool { return g.descents > 0 && g.descents <= len(g.ents)/8 }

// groupPrefix is the length of a key's shard and table (internal/keys).
const groupPrefix = 5

// maxSortGroups bounds the groups a batch may have to be sorted: more
// means records wrote across many tables, where grouping stops paying.
const maxSortGroups = 16

// minSortedWrites is the smallest batch worth sorting.
const minSortedWrites = 8

// sort returns a new batch holding b's writes grouped and ordered as
// described above and closes b, or returns b unchanged when it is small,
// would not change, or holds writes other than point sets and deletions.
func (s *batchSorter) sort(pdb *pebble.DB, b *pebble.Batch) *pebble.Batch {
	if b.Count() < minSortedWrites {
		return b
	}
	defer s.reset()
	r := b.Reader()
	switches := 0
	var last *sortGroup
	for {
		kind, key, value, ok, err := r.Next()
		if !ok {
			if err != nil {
				return b // Pebble reads its own batch back; leave it to Pebble to complain
			}
			break
		}
		switch kind {
		case pebble.InternalKeyKindSet, pebble.InternalKeyKindDelete:
		default:
			return b
		}
		p := key[:min(len(key), groupPrefix)]
		g := last
		if g == nil || !bytes.Equal(g.prefix, p) {
			g = nil
			for i := range s.groups {
				if bytes.Equal(s.groups[i].prefix, p) {
					g = &s.groups[i]
					break
				}
			}
			if g == nil {
				if len(s.groups) == maxSortGroups {
					return b
				}
				// A new group, in a slot whose ents array is kept from
				// earlier batches when there is one.
				if len(s.groups) < cap(s.groups) {
					s.groups = s.groups[:len(s.groups)+1]
				} else {
					s.groups = append(s.groups, sortGroup{})
				}
				g = &s.groups[len(s.groups)-1]
				g.prefix, g.ents, g.descents = p, g.ents[:0], 0
			}
			if last != nil {
				switches++
			}
			last = g
		}
		if n := len(g.ents); n > 0 && bytes.Compare(s.ents[g.ents[n-1]].key, key) > 0 {
			g.descents++
		}
		g.ents = append(g.ents, int32(len(s.ents)))
		s.ents = append(s.ents, sortEntry{kind, key, value})
	}
	// Groups in first-appearance order; the batch is left alone when each
	// came in one run, the runs in key order, and none is to be sorted.
	keep := switches == len(s.groups)-1
	for i := range s.groups {
		if s.groups[i].sortIt() || (i > 0 && bytes.Compare(s.groups[i-1].prefix, s.groups[i].prefix) > 0) {
			keep = false
		}
	}
	if keep {
		return b
	}
	slices.SortFunc(s.groups, func(x, y sortGroup) int { return bytes.Compare(x.prefix, y.prefix) })
	nb := pdb.NewBatchWithSize(len(b.Repr()))
	for i := range s.groups {
		g := &s.groups[i]
		if g.sortIt() {
			slices.SortStableFunc(g.ents, func(x, y int32) int { return bytes.Compare(s.ents[x].key, s.ents[y].key) })
		}
		for _, j := range g.ents {
			e := &s.ents[j]
			var err error
			if e.kind == pebble.InternalKeyKindSet {
				err = nb.Set(e.key, e.value, nil)
			} else {
				err = nb.Delete(e.key, nil)
			}
			if err != nil {
				nb.Close()
				return b
			}
		}
	}
	b.Close()
	return nb
}

// reset drops the references into the last batch's buffer.
func (s *batchSorter) reset() {
	clear(s.ents)
	s.ents = s.ents[:0]
	for i := range s.groups {
		s.groups[i].prefix = nil
	}
	s.groups = s.groups[:0]
}
