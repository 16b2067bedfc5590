package raftsm

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/flowdb/flowdb/internal/testutil"
)

// TestLogStoreKept: a node keeps the log store it was created with. Asking
// for the other one is refused with ErrLogStoreChanged (neither reads the
// other's log: starting anyway would start from an empty log); an empty
// LogStore reopens with the node's own, and every write made before is
// there, across snapshots and log compaction (SnapshotEntries 40). A node
// whose Raft directory predates the choice (no marker) used Pebble.
func TestLogStoreKept(t *testing.T) {
	for _, tc := range []struct {
		created, other string
		dropMarker     bool
	}{
		{LogStoreTan, LogStorePebble, false},
		{LogStorePebble, LogStoreTan, false},
		{LogStorePebble, LogStoreTan, true},
	} {
		t.Run(fmt.Sprintf("%s-then-%s-nomarker-%v", tc.created, tc.other, tc.dropMarker), func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "node")
			addr := testutil.FreeAddr(t)
			open := func(store string) (*Node, error) {
				cfg := testConfig(1, dir, addr, nil)
				cfg.LogStore = store
				n, err := Open(t.Context(), cfg)
				if err != nil {
					return nil, err
				}
				ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
				defer cancel()
				if err := n.WaitReady(ctx); err != nil {
					n.Close()
					t.Fatal(err)
				}
				return n, nil
			}
			n, err := open(tc.created)
			if err != nil {
				t.Fatal(err)
			}
			if got := n.LogStore(); got != tc.created {
				t.Fatalf("LogStore() = %q, want %q", got, tc.created)
			}
			const keys = 120
			for i := range keys {
				if err := n.DB().Set(t.Context(), "kv", fmt.Appendf(nil, "k%03d", i), []byte("v")); err != nil {
					t.Fatal(err)
				}
			}
			n.Close()
			if tc.dropMarker {
				if err := os.Remove(filepath.Join(dir, "raft", logStoreMarker)); err != nil {
					t.Fatal(err)
				}
			}
			if n, err := open(tc.other); !errors.Is(err, ErrLogStoreChanged) {
				if n != nil {
					n.Close()
				}
				t.Fatalf("reopened a %s node with %s: %v, want ErrLogStoreChanged", tc.created, tc.other, err)
			}
			n, err = open("")
			if err != nil {
				t.Fatal(err)
			}
			defer n.Close()
			if got := n.LogStore(); got != tc.created {
				t.Fatalf("reopened with an empty LogStore: %q, want %q", got, tc.created)
			}
			for i := range keys {
				k := fmt.Appendf(nil, "k%03d", i)
				if v, err := n.DB().Get(t.Context(), "kv", k); err != nil || string(v) != "v" {
					t.Fatalf("after reopening, %s = %q, %v", k, v, err)
				}
			}
			// It still takes writes.
			if err := n.DB().Set(t.Context(), "kv", []byte("after"), []byte("v")); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestIdleDiskUseTan: with the tan log store, each node of an idle
// three-node cluster with three Raft shards keeps its Raft directory under
// 64 MiB (tan would preallocate 64 MiB per shard's log file; raftsm turns
// that off).
func TestIdleDiskUseTan(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three NodeHosts")
	}
	most := idleRaftDir(t, func(c *Config) { c.LogDB, c.LogStore = "", LogStoreTan })
	t.Logf("largest Raft directory of an idle node, 3 shards, tan: %.1f MiB", float64(most)/(1<<20))
	if most >= 64<<20 {
		t.Fatalf("an idle tan node's Raft directory takes %.1f MiB, want under 64", float64(most)/(1<<20))
	}
}
