package main

import (
	"context"

	"github.com/flowdb/flowdb/internal/histo"
	"github.com/flowdb/flowdb/server/ui"
)

// Members gives the dashboard's cluster page each shard's members and
// leader (ui.MemberLister).
func (c nodeCluster) Members(ctx context.Context) (map[uint32]ui.ShardMembers, error) {
	st, err := c.n.Status(ctx)
	if err != nil {
		return nil, err
	}
	out := make(map[uint32]ui.ShardMembers, len(st))
	for _, s := range st {
		out[s.Shard] = ui.ShardMembers{Leader: s.Leader, Members: s.Members}
	}
	return out, nil
}

// RaftCommitLatency gives /metrics and the dashboard the node's Raft
// commit times per shard (server.RaftLatency).
func (c nodeCluster) RaftCommitLatency() map[uint32]histo.Snapshot { return c.n.CommitLatency() }
