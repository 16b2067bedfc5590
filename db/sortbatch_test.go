package db

import (
	"bytes"
	"fmt"
	"iter"
	"log/slog"
	"math/rand/v2"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// TestBatchSorterKeepsState applies random batches of sets and deletions
// (many writes to few keys, keys of every length around the group prefix,
// up to more groups than the sorter takes, sometimes a range deletion; in
// half the batches each group's keys come nearly in order, as records
// write them, in the other half at random) to one store as written and to
// another as batchSorter reorders them, and requires both stores to hold
// the same keys and values after every batch, every reordered batch to
// have its groups in key order, and nearly ordered groups to come out
// sorted.
func TestBatchSorterKeepsState(t *testing.T) {
	t.Parallel()
	open := func() *pebble.DB {
		p, err := pebble.Open("", &pebble.Options{FS: vfs.NewMem(), Logger: pebbleLogger{slog.New(slog.DiscardHandler)}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.Close() })
		return p
	}
	as, sorted := open(), open()
	var s batchSorter
	rng := rand.New(rand.NewPCG(7, 11))
	var next [256]byte // per group: the next key's byte in nearly ordered batches
	key := func(groups int, ordered bool) []byte {
		if ordered && rng.IntN(32) != 0 {
			g := byte(rng.IntN(groups))
			if rng.IntN(4) != 0 {
				next[g]++ // else: the same key again
			}
			return []byte{0, 0, 0, 1, g, next[g] / 16, next[g] % 16}
		}
		n := groupPrefix + rng.IntN(4)
		if rng.IntN(16) == 0 {
			n = rng.IntN(groupPrefix) // shorter than the group prefix
		}
		k := make([]byte, n)
		for i := range k {
			k[i] = byte(rng.IntN(3))
		}
		if n >= groupPrefix {
			// shard and table: up to 2 x groups prefixes
			copy(k, []byte{0, 0, 0, byte(rng.IntN(2)), byte(rng.IntN(groups))})
		}
		return k
	}
	var reordered, kept, sortedGroups int
	for round := range 1500 {
		groups := 1 + rng.IntN(10)
		ops := rng.IntN(70)
		ordered := round%2 == 0
		a, b := as.NewBatch(), sorted.NewBatch()
		for i := range ops {
			k := key(groups, ordered)
			switch r := rng.IntN(20); {
			case r == 0 && round%7 == 0:
				end := append(k[:len(k):len(k)], 0xff)
				a.DeleteRange(k, end, nil)
				b.DeleteRange(k, end, nil)
			case r < 7:
				a.Delete(k, nil)
				b.Delete(k, nil)
			default:
				v := fmt.Appendf(nil, "%d/%d", round, i)
				a.Set(k, v, nil)
				b.Set(k, v, nil)
			}
		}
		nb := s.sort(sorted, b)
		if nb != b {
			reordered++
			if nb.Count() != a.Count() {
				t.Fatalf("round %d: sorted batch holds %d writes, the batch %d", round, nb.Count(), a.Count())
			}
			// Groups that came nearly in order must come out sorted.
			want := nearlyOrdered(t, a)
			var prev []byte
			outOfOrder := map[string]bool{}
			for _, k := range writes(t, nb) {
				if prev != nil {
					p, q := prev[:min(len(prev), groupPrefix)], k[:min(len(k), groupPrefix)]
					if bytes.Compare(p, q) > 0 {
						t.Fatalf("round %d: sorted batch has group %x after %x", round, q, p)
					}
					if bytes.Equal(p, q) && bytes.Compare(prev, k) > 0 {
						outOfOrder[string(p)] = true
					}
				}
				prev = k
			}
			for g := range want {
				if outOfOrder[g] {
					t.Fatalf("round %d: group %x came nearly in order and was not sorted", round, g)
				}
				sortedGroups++
			}
		} else {
			kept++
		}
		if err := a.Commit(pebble.NoSync); err != nil {
			t.Fatal(err)
		}
		if err := nb.Commit(pebble.NoSync); err != nil {
			t.Fatal(err)
		}
		a.Close()
		nb.Close()
		if got, want := dump(t, sorted), dump(t, as); got != want {
			t.Fatalf("round %d: state after the sorted batch differs:\nsorted %s\nas written %s", round, got, want)
		}
	}
	t.Logf("reordered %d batches (%d nearly ordered groups sorted), kept %d", reordered, sortedGroups, kept)
	if reordered < 500 || kept < 100 || sortedGroups < 100 {
		t.Fatalf("reordered %d batches and kept %d: the test does not exercise both", reordered, kept)
	}
}

// nearlyOrdered returns the groups of b whose keys are out of order at
// most once in eight writes, and at least once.
func nearlyOrdered(t *testing.T, b *pebble.Batch) map[string]bool {
	t.Helper()
	type stat struct {
		n, descents int
		last        []byte
	}
	st := map[string]*stat{}
	for kind, k := range writes(t, b) {
		if kind == pebble.InternalKeyKindRangeDelete {
			return nil // the sorter leaves such batches alone
		}
		g := string(k[:min(len(k), groupPrefix)])
		x := st[g]
		if x == nil {
			x = &stat{}
			st[g] = x
		}
		if x.last != nil && bytes.Compare(x.last, k) > 0 {
			x.descents++
		}
		x.n++
		x.last = k
	}
	out := map[string]bool{}
	for g, x := range st {
		if x.descents > 0 && x.descents <= x.n/8 {
			out[g] = true
		}
	}
	return out
}

// writes yields the kind and key of each of b's writes, in order.
func writes(t *testing.T, b *pebble.Batch) iter.Seq2[pebble.InternalKeyKind, []byte] {
	return func(yield func(pebble.InternalKeyKind, []byte) bool) {
		for r := b.Reader(); ; {
			kind, k, _, ok, err := r.Next()
			if err != nil {
				t.Fatal(err)
			}
			if !ok || !yield(kind, k) {
				return
			}
		}
	}
}

func dump(t *testing.T, p *pebble.DB) string {
	t.Helper()
	it, err := p.NewIter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	var buf bytes.Buffer
	for it.First(); it.Valid(); it.Next() {
		fmt.Fprintf(&buf, "%x=%s ", it.Key(), it.Value())
	}
	return buf.String()
}
