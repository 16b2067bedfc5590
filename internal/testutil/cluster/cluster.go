// Package cluster starts, for tests, a three-replica flowdb cluster in one
// process with a server on each member. Like testutil, only tests import
// it.
package cluster

import (
	"context"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/flowdb/flowdb/db"
	"github.com/flowdb/flowdb/index/hnsw"
	"github.com/flowdb/flowdb/internal/testutil"
	"github.com/flowdb/flowdb/queue"
	"github.com/flowdb/flowdb/raftsm"
	"github.com/flowdb/flowdb/registry"
	"github.com/flowdb/flowdb/server"
)

// Member is one replica: its node, the subsystems attached to its store,
// and the server over them, listening at URL.
type Member struct {
	Node     *raftsm.Node
	DB       *db.DB
	Queues   *queue.Manager
	Registry *registry.Registry
	Vectors  *hnsw.Manager
	Server   *server.Server
	URL      string
}

// Start runs three replicas (two data shards, fast Raft timing) with a
// server on each, mount (nil: none) adding handlers to a member's server
// before it serves, and returns them once every node is ready. Everything
// stops when the test ends.
func Start(t *testing.T, mount func(*Member) error) []*Member {
	t.Helper()
	members := map[uint64]string{}
	for id := uint64(1); id <= 3; id++ {
		members[id] = testutil.FreeAddr(t)
	}
	var out []*Member
	for id := uint64(1); id <= 3; id++ {
		m := &Member{}
		cfg := raftsm.Config{Dir: filepath.Join(t.TempDir(), "node"), ReplicaID: id, RaftAddress: members[id], Members: members, DataShards: 2,
			RTTMillisecond: 5, ElectionRTT: 10, HeartbeatRTT: 1, LogDB: "tiny", Logger: testutil.Quiet(), Store: testutil.StoreOptions(nil, nil),
			Attach: func(d *db.DB) (err error) {
				m.DB = d
				if m.Queues, err = queue.Attach(d, nil); err != nil {
					return err
				}
				if m.Registry, err = registry.Attach(d, nil); err != nil {
					return err
				}
				m.Vectors, err = hnsw.Attach(d)
				return err
			}}
		n, err := raftsm.Open(t.Context(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		m.Node = n
		if m.Server, err = server.New(server.Options{DB: m.DB, Queues: m.Queues, Registry: m.Registry, Vectors: m.Vectors, Logger: testutil.Quiet()}); err != nil {
			t.Fatal(err)
		}
		if mount != nil {
			if err := mount(m); err != nil {
				t.Fatal(err)
			}
		}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		hs := server.HTTPServer(m.Server.Handler(), nil)
		go hs.Serve(l)
		m.URL = "http://" + l.Addr().String()
		t.Cleanup(func() { hs.Close(); m.Registry.Close(); m.Queues.Close(); n.Close() })
		out = append(out, m)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	for _, m := range out {
		if err := m.Node.WaitReady(ctx); err != nil {
			t.Fatal(err)
		}
	}
	return out
}
