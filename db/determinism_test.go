package db

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/flowdb/flowdb/wal"
)

// randomFrames builds a seeded sequence of frames over every kv record kind:
// sets with and without TTL, deletes, prefix deletes, expiry records, and
// malformed records. Frame times jitter backwards as well as forwards.
func randomFrames(seed uint64, n int) []*wal.Frame {
	rng := rand.New(rand.NewPCG(seed, 99))
	key := func() []byte { return fmt.Appendf(nil, "k%02d", rng.IntN(40)) }
	ns := func() string { return []string{"", "a", "b", "agents"}[rng.IntN(4)] }
	t := int64(1_000_000_000)
	var frames []*wal.Frame
	for i := 0; i < n; i++ {
		t += rng.Int64N(2e9) - 5e8 // may go back: apply must clamp
		f := &wal.Frame{Time: t}
		for r := 0; r < 1+rng.IntN(4); r++ {
			switch rng.IntN(10) {
			case 0:
				f.Records = append(f.Records, wal.Record{Kind: KindKVBatch, Body: []byte{0xff, 0x00}}) // malformed
			case 1:
				var es []expireEntry
				for j := 0; j < 1+rng.IntN(3); j++ {
					es = append(es, expireEntry{ns: []byte(ns()), key: key(), expiry: t - rng.Int64N(4e9)})
				}
				f.Records = append(f.Records, expireRecord(es))
			default:
				var b Batch
				for j := 0; j < 1+rng.IntN(5); j++ {
					switch rng.IntN(6) {
					case 0:
						b.Delete(ns(), key())
					case 1:
						b.DeletePrefix(ns(), key()[:2])
					default:
						b.SetTTL(ns(), key(), fmt.Appendf(nil, "v%d", rng.Int()), rngTTL(rng))
					}
				}
				f.Records = append(f.Records, wal.Record{Kind: KindKVBatch, Body: bytes.Clone(b.body)})
			}
		}
		frames = append(frames, f)
	}
	return frames
}

func rngTTL(rng *rand.Rand) time.Duration {
	if rng.IntN(2) == 0 {
		return 0
	}
	return time.Duration(rng.Int64N(5e9))
}

// applyAll applies frames to a fresh store through the applier (as the commit
// pipeline and the replicated state machine do) and returns a dump of every
// key and value.
func applyAll(t *testing.T, frames []*wal.Frame, retention int) []byte {
	t.Helper()
	d := openTestStore(t, "/det", vfs.NewMem())
	defer d.Close()
	// Drive a private applier over the same Pebble store, bypassing the
	// commit loop, which has applied nothing.
	a := applier{reg: &d.reg, shard: 0, placement: d.placement, retention: retention}
	results := make([]wal.Result, 8)
	for i, f := range frames {
		var enc []byte
		if retention > 0 {
			var err error
			enc, _, err = wal.AppendFrame(nil, f, wal.EncodeOptions{}, nil)
			if err != nil {
				t.Fatal(err)
			}
		}
		// As the commit loop does: no index until a record reads.
		b, hooks, err := a.applyFrame(d.pdb.NewBatch(), d.pdb, uint64(i+1), f, enc, results[:len(f.Records)])
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Commit(pebble.NoSync); err != nil {
			t.Fatal(err)
		}
		a.committed()
		for _, h := range hooks {
			h()
		}
	}
	var dump bytes.Buffer
	it, _ := d.pdb.NewIter(nil)
	for ok := it.First(); ok; ok = it.Next() {
		fmt.Fprintf(&dump, "%x=%x\n", it.Key(), it.Value())
	}
	it.Close()
	return dump.Bytes()
}

// TestApplyIsDeterministic applies the same frames to two independent stores
// and requires byte-identical contents, over many seeds: this is what lets
// replicas and crash recovery agree.
func TestApplyIsDeterministic(t *testing.T) {
	for seed := uint64(0); seed < 30; seed++ {
		frames := randomFrames(seed, 200)
		a := applyAll(t, frames, 16)
		b := applyAll(t, frames, 16)
		if !bytes.Equal(a, b) {
			t.Fatalf("seed %d: two stores applying the same frames differ", seed)
		}
		if len(a) == 0 {
			t.Fatalf("seed %d: nothing applied", seed)
		}
	}
}
