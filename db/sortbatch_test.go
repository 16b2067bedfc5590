package db

import (
	"bytes"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// TestBatchSorterKeepsState applies random batches of sets and deletions
// (many writes to few keys, keys of every length around the group prefix,
// up to more groups than the sorter takes, sometimes a range deletion) to
// one store as written and to another as batchSorter reorders them, and
// requires both stores to hold the same keys and values after every batch,
// and every reordered batch to be in key order.
func TestBatchSorterKeepsState(t *testing.T) {
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
	key := func(groups int) []byte {
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
	var reordered, kept int
	for round := range 1500 {
		groups := 1 + rng.IntN(10)
		ops := rng.IntN(70)
		a, b := as.NewBatch(), sorted.NewBatch()
		for i := range ops {
			k := key(groups)
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
			var prev []byte
			for r := nb.Reader(); ; {
				_, k, _, ok, err := r.Next()
				if err != nil {
					t.Fatal(err)
				}
				if !ok {
					break
				}
				if prev != nil && bytes.Compare(prev, k) > 0 {
					t.Fatalf("round %d: sorted batch has %x after %x", round, k, prev)
				}
				prev = k
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
	t.Logf("reordered %d batches, kept %d", reordered, kept)
	if reordered < 500 || kept < 100 {
		t.Fatalf("reordered %d batches and kept %d: the test does not exercise both", reordered, kept)
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
