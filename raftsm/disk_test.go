//go:build linux

package raftsm

import (
	"context"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/flowdb/flowdb/internal/testutil"
)

// allocated returns the bytes the files under dir occupy on disk
// (preallocated blocks included, as du counts them).
func allocated(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			n += st.Blocks * 512
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestIdleDiskUse: with the default LogDB size, each node of an idle
// three-node cluster with three Raft shards keeps its Raft directory under
// 64 MiB (Dragonboat's own default, "large", preallocates 141 MiB of log
// per shard).
func TestIdleDiskUse(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts three NodeHosts")
	}
	sizes := map[string]int64{}
	for _, size := range []string{"", "large"} {
		sizes[size] = idleRaftDir(t, func(c *Config) { c.LogDB = size })
	}
	t.Logf("largest Raft directory of an idle node, 3 shards: default %.1f MiB, large %.1f MiB", float64(sizes[""])/(1<<20), float64(sizes["large"])/(1<<20))
	if sizes[""] >= 64<<20 {
		t.Fatalf("an idle node's Raft directory takes %.1f MiB, want under 64", float64(sizes[""])/(1<<20))
	}
}

// idleRaftDir starts an idle three-node cluster (configs changed by set),
// writes one key, and returns the allocated size of the largest node's
// Raft directory.
func idleRaftDir(t *testing.T, set func(*Config)) int64 {
	t.Helper()
	members := map[uint64]string{1: testutil.FreeAddr(t), 2: testutil.FreeAddr(t), 3: testutil.FreeAddr(t)}
	var nodes []*Node
	for id := uint64(1); id <= 3; id++ {
		cfg := testConfig(id, filepath.Join(t.TempDir(), "node"), members[id], members)
		set(&cfg)
		n, err := Open(t.Context(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer n.Close()
		nodes = append(nodes, n)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	for _, n := range nodes {
		if err := n.WaitReady(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := nodes[0].DB().Set(ctx, "kv", []byte("k"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	var most int64
	for _, n := range nodes {
		most = max(most, allocated(t, filepath.Join(n.cfg.Dir, "raft")))
	}
	return most
}

// TestFailedStartLeavesNothing: a start that fails after creating the
// store (the Raft port is taken) removes what it created from a new
// directory, and leaves an existing directory's own files alone.
func TestFailedStartLeavesNothing(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	dir := filepath.Join(t.TempDir(), "node")
	cfg := testConfig(1, dir, l.Addr().String(), nil)
	if _, err := Open(t.Context(), cfg); err == nil {
		t.Fatal("a node started on a taken port")
	}
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a failed start left %s behind: %v", dir, err)
	}
	// An empty directory the caller made stays, empty.
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(t.Context(), cfg); err == nil {
		t.Fatal("a node started on a taken port")
	}
	if ents, err := os.ReadDir(dir); err != nil || len(ents) != 0 {
		t.Fatalf("a failed start in an empty directory left %d entries (%v)", len(ents), err)
	}
}
