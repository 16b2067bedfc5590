package server

import (
	"context"
	"fmt"

	"connectrpc.com/connect"
	v1 "github.com/flowdb/flowdb/api/flowdb/v1"
	"github.com/flowdb/flowdb/registry"
	"github.com/flowdb/flowdb/server/auth"
)

// serverService serves flowdb.v1.ServerService.
type serverService struct{ s *Server }

// Health is open to callers without a token (load balancers and probes
// hold none); it tells whether the store serves, nothing else.
func (h *serverService) Health(ctx context.Context, req *connect.Request[v1.HealthRequest]) (*connect.Response[v1.HealthResponse], error) {
	d := h.s.o.DB
	resp := &v1.HealthResponse{Ready: true, Replicated: d.Replicated(), AppliedIndex: d.AppliedIndex()}
	if h.s.o.Cluster != nil {
		shards, err := h.s.o.Cluster.Shards(ctx)
		if err != nil {
			resp.Ready, resp.Detail = false, err.Error()
		}
		for _, sh := range shards {
			if !sh.HasLeader {
				resp.Ready, resp.Detail = false, fmt.Sprintf("shard %d has no leader", sh.Shard)
				break
			}
		}
	}
	return connect.NewResponse(resp), nil
}

func (h *serverService) Stats(ctx context.Context, req *connect.Request[v1.ServerStatsRequest]) (*connect.Response[v1.ServerStatsResponse], error) {
	if err := h.s.allow(ctx, auth.Server, "stats", auth.Read); err != nil {
		return nil, err
	}
	m := h.s.o.DB.Metrics()
	return connect.NewResponse(&v1.ServerStatsResponse{AppliedIndex: m.AppliedIndex, Frames: m.Frames, Records: m.Records,
		RecordsPerFrame: m.RecordsPerFrame, MeanCommitNs: int64(m.MeanCommit), Rejected: m.Rejected, DiskBytes: m.DiskBytes,
		Durability: m.Durability, Queues: h.s.o.Queues.Queues(), Collections: h.s.o.Vectors.Collections(),
		Agents: int32(len(h.s.o.Registry.List(registry.Filter{})))}), nil
}
