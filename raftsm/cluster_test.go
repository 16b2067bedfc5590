package raftsm

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/flowdb/flowdb/db"
	"github.com/flowdb/flowdb/internal/testutil"
)

// within runs fn with a deadline of d and fails the test unless fn ends
// with an error matching want within d plus one second.
func within(t *testing.T, what string, d time.Duration, want error, fn func(ctx context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), d)
	defer cancel()
	start := time.Now()
	err := fn(ctx)
	if el := time.Since(start); el > d+time.Second {
		t.Errorf("%s: took %v with a deadline of %v", what, el, d)
	}
	if !errors.Is(err, want) {
		t.Errorf("%s: got %v, want %v", what, err, want)
	}
}

// TestClusterOps: every membership operation that cannot be done ends
// within its deadline with a typed error: an existing id at a new address
// and a member's address are already members, a typo'd remove is not a
// member (and uses up no id), a removed id cannot return, a transfer to a
// stranger or of an unknown shard is refused, and without a quorum status
// and changes fail with ErrNoQuorum. A removed node refuses every call and
// refuses to start again.
func TestClusterOps(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three NodeHosts")
	}
	ns, _ := startCluster(t, 3)
	n1 := ns[0].n
	const d = 5 * time.Second
	within(t, "add an existing id at a new address", d, ErrAlreadyMember, func(ctx context.Context) error {
		return n1.AddReplica(ctx, 2, testutil.FreeAddr(t))
	})
	within(t, "add an existing id at its address", d, ErrAlreadyMember, func(ctx context.Context) error {
		return n1.AddReplica(ctx, 2, ns[1].addr)
	})
	within(t, "add a new id at a member's address", d, ErrAlreadyMember, func(ctx context.Context) error {
		return n1.AddReplica(ctx, 9, ns[1].addr)
	})
	within(t, "remove a stranger", d, ErrNotMember, func(ctx context.Context) error { return n1.RemoveReplica(ctx, 9) })
	within(t, "transfer to a stranger", d, ErrNotMember, func(ctx context.Context) error {
		return n1.TransferLeader(ctx, n1.Shards()[1], 9)
	})
	within(t, "transfer an unknown shard", d, ErrUnknownShard, func(ctx context.Context) error { return n1.TransferLeader(ctx, 77, 2) })
	// The typo'd remove used up nothing: 9 can be added, then removed, and
	// only then can it never return.
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := n1.AddReplica(ctx, 9, testutil.FreeAddr(t)); err != nil {
		t.Fatalf("add 9 after a remove of 9 that was refused: %v", err)
	}
	if err := n1.RemoveReplica(ctx, 9); err != nil {
		t.Fatal(err)
	}
	within(t, "add a removed id", d, ErrRemovedID, func(ctx context.Context) error { return n1.AddReplica(ctx, 9, testutil.FreeAddr(t)) })
	within(t, "remove a removed id", d, ErrNotMember, func(ctx context.Context) error { return n1.RemoveReplica(ctx, 9) })

	// Node 3 is removed while running: it notices, refuses calls, and
	// refuses to start again.
	if err := n1.RemoveReplica(ctx, 3); err != nil {
		t.Fatal(err)
	}
	for !ns[2].n.Removed() {
		if ctx.Err() != nil {
			t.Fatal("node 3 never learned it was removed")
		}
		time.Sleep(10 * time.Millisecond)
	}
	within(t, "status of a removed node", d, ErrRemoved, func(ctx context.Context) error { _, err := ns[2].n.Status(ctx); return err })
	within(t, "write on a removed node", d, ErrRemoved, func(ctx context.Context) error {
		return ns[2].n.DB().Set(ctx, "kv", []byte("k"), []byte("v"))
	})
	within(t, "read on a removed node", d, ErrRemoved, func(ctx context.Context) error {
		_, err := ns[2].n.DB().Get(ctx, "kv", []byte("k"))
		return err
	})
	if err := ns[2].n.DB().Set(ctx, "kv", []byte("k"), []byte("v")); errors.Is(err, db.ErrOutcomeUnknown) {
		t.Fatalf("a write refused by a removed node is not of unknown outcome: %v", err)
	}
	ns[2].stop()
	cfg := testConfig(3, ns[2].dir, ns[2].addr, nil)
	cfg.Members, cfg.Join = nil, true
	if _, err := Open(t.Context(), cfg); !errors.Is(err, ErrRemoved) {
		t.Fatalf("restart of a removed node: %v, want ErrRemoved", err)
	}

	// Without a quorum (node 2 of {1, 2} down), status and changes end
	// at their deadline with ErrNoQuorum.
	ns[1].stop()
	within(t, "status without a quorum", 2*time.Second, ErrNoQuorum, func(ctx context.Context) error { _, err := n1.Status(ctx); return err })
	within(t, "add without a quorum", 2*time.Second, ErrNoQuorum, func(ctx context.Context) error {
		return n1.AddReplica(ctx, 10, testutil.FreeAddr(t))
	})
	within(t, "remove without a quorum", 2*time.Second, ErrNoQuorum, func(ctx context.Context) error { return n1.RemoveReplica(ctx, 2) })
}

// TestOpenRefusesStranger: a replica id not among the initial members is
// refused before anything is created (a new member starts with Join).
func TestOpenRefusesStranger(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "node")
	cfg := testConfig(4, dir, testutil.FreeAddr(t), map[uint64]string{1: "127.0.0.1:1", 2: "127.0.0.1:2"})
	if _, err := Open(t.Context(), cfg); !errors.Is(err, ErrConfig) {
		t.Fatalf("id 4 among members 1, 2: %v, want ErrConfig", err)
	}
}
