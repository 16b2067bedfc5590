package raftsm_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/flowdb/flowdb/raftsm"
)

// A one-replica node: its DB is the same API as an embedded store, with
// every write committed through Raft (add replicas with AddReplica, or
// start three nodes with the same Members).
func Example() {
	dir, err := os.MkdirTemp("", "flowdb-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	l, err := net.Listen("tcp", "127.0.0.1:0") // a free port for Raft
	if err != nil {
		log.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n, err := raftsm.Open(ctx, raftsm.Config{
		Dir:         dir,
		ReplicaID:   1,
		RaftAddress: addr, // Members default to this replica alone
		Logger:      slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		log.Fatal(err)
	}
	defer n.Close()
	d := n.DB()
	if err := d.Set(ctx, "agents", []byte("a1"), []byte("planner")); err != nil {
		log.Fatal(err)
	}
	v, err := d.Get(ctx, "agents", []byte("a1")) // a linearizable read
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("a1 = %s; shards: %d (catalog and one data shard)\n", v, len(n.Shards()))
	// Output:
	// a1 = planner; shards: 2 (catalog and one data shard)
}
