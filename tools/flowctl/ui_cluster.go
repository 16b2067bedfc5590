package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"

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

// nodePeers holds each running node's other members' admin addresses
// (--peers: *raftsm.Node -> map[uint64]string), set by runNode for its
// lifetime and read by MembersApplied, so that nodeCluster stays the
// one-field adapter serve.go builds.
var nodePeers sync.Map

// MembersApplied gives the cluster page every member's applied index per
// shard (ui.AppliedLister): this node's from its own replicas, the others'
// from GET /v1/status on their admin addresses (--peers, nodePeers), all at once
// within ctx, with the node's FLOWDB_TOKEN as bearer token if it is set
// (the endpoint needs server:cluster:admin when the peer has tokens).
// Dragonboat exposes no follower progress, so there is no other source.
func (c nodeCluster) MembersApplied(ctx context.Context) map[uint64]ui.MemberApplied {
	out := map[uint64]ui.MemberApplied{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	peers, _ := nodePeers.Load(c.n)
	addrs, _ := peers.(map[uint64]string)
	for id, addr := range addrs {
		if id == c.n.ReplicaID() {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			applied, err := peerApplied(ctx, addr)
			mu.Lock()
			out[id] = ui.MemberApplied{Applied: applied, Err: err}
			mu.Unlock()
		}()
	}
	self := ui.MemberApplied{Applied: map[uint32]uint64{}}
	if st, err := c.n.Status(ctx); err != nil {
		self.Err = err
	} else {
		for _, s := range st {
			self.Applied[s.Shard] = s.Applied
		}
	}
	wg.Wait()
	out[c.n.ReplicaID()] = self
	return out
}

// peerApplied asks the node at addr (its --admin address) for its applied
// index per shard.
func peerApplied(ctx context.Context, addr string) (map[uint32]uint64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, nodeURL(addr)+"/v1/status", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	// The token goes only over TLS or to a loopback peer: never in clear
	// across a network.
	if tok := os.Getenv("FLOWDB_TOKEN"); tok != "" && (req.URL.Scheme == "https" || isLoopbackHost(req.URL.Hostname())) {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: HTTP %d: %s", addr, resp.StatusCode, strings.TrimSpace(string(b)))
	}
	var st statusJSON
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("%s: bad status: %w", addr, err)
	}
	applied := make(map[uint32]uint64, len(st.Shards))
	for _, s := range st.Shards {
		applied[s.Shard] = s.Applied
	}
	return applied, nil
}

// isLoopbackHost reports whether host (no port) is localhost or a
// loopback IP literal.
func isLoopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
