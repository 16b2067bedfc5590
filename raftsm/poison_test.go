package raftsm

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/flowdb/flowdb/db"
	"github.com/flowdb/flowdb/queue"
	"github.com/flowdb/flowdb/wal"
)

// TestPoisonRecordsReplicated proposes malformed records of every kind the
// test cluster knows (key-value and queue; and kinds it does not know)
// through the nodes of a three-replica cluster. Each must come back as a
// typed rejection (or apply, for a random body that happens to decode),
// never stop a replica: afterwards every node still takes writes, and
// every shard is byte-identical on all three (converge).
func TestPoisonRecordsReplicated(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts three NodeHosts")
	}
	ns, _ := startCluster(t, 3)
	ctx := t.Context()
	if err := ns[0].q.Create(ctx, queue.Config{Name: "q", HotCapacity: 4}); err != nil {
		t.Fatal(err)
	}
	if _, err := ns[1].q.Enqueue(ctx, "q", queue.Task{Payload: []byte("t")}); err != nil {
		t.Fatal(err)
	}
	typed := []error{db.ErrBadRecord, db.ErrUnknownKind, db.ErrOutcomeUnknown, queue.ErrNotFound, queue.ErrFull, queue.ErrLeaseLost,
		queue.ErrCanceled, queue.ErrExists}
	rng := rand.New(rand.NewPCG(32, 29))
	var kinds []wal.Kind
	kinds = append(kinds, db.KindKVBatch, db.KindKVExpire)
	for k := queue.KindCreate; k <= queue.KindRelease; k++ {
		kinds = append(kinds, k)
	}
	kinds = append(kinds, 200, 300, 999) // not attached on this cluster
	rejected, applied := 0, 0
	for i, k := range kinds {
		bodies := [][]byte{nil, {0xff}, []byte("\x01q"), []byte("\x01q\xff\xff\xff\xff\xff\xff\xff\xff\xff")}
		for range 6 {
			b := append([]byte("\x01q"), make([]byte, rng.IntN(24))...)
			for j := 2; j < len(b); j++ {
				b[j] = byte(rng.IntN(256))
			}
			bodies = append(bodies, b)
		}
		d := ns[i%3].n.DB()
		for _, body := range bodies {
			pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			res, err := d.Propose(pctx, wal.Record{Kind: k, Body: body})
			cancel()
			if err == nil {
				err = res.Err
			}
			if err == nil {
				applied++
				continue
			}
			ok := false
			for _, e := range typed {
				ok = ok || errors.Is(err, e)
			}
			if !ok {
				t.Fatalf("kind %d body %x on node %d: untyped error %v", k, body, i%3+1, err)
			}
			rejected++
		}
	}
	// Every replica still applies: a write through each node, read back on
	// another.
	for i, n := range ns {
		key := fmt.Appendf(nil, "after-%d", i)
		if err := n.n.DB().Set(ctx, "ns", key, key); err != nil {
			t.Fatalf("node %d refused a write after the poison records: %v", n.id, err)
		}
		if v, err := ns[(i+1)%3].n.DB().Get(ctx, "ns", key); err != nil || string(v) != string(key) {
			t.Fatalf("node %d: read %q %v", ns[(i+1)%3].id, v, err)
		}
		if _, err := n.q.Enqueue(ctx, "q", queue.Task{Payload: key}); err != nil {
			t.Fatalf("node %d refused an enqueue after the poison records: %v", n.id, err)
		}
	}
	converge(t, ns)
	t.Logf("%d kinds: %d records rejected with typed errors, %d applied; all replicas identical", len(kinds), rejected, applied)
}
