package server

import (
	"context"
	"fmt"

	"connectrpc.com/connect"
	v1 "github.com/flowdb/flowdb/api/flowdb/v1"
	"github.com/flowdb/flowdb/index/hnsw"
	"github.com/flowdb/flowdb/quant"
	"github.com/flowdb/flowdb/server/auth"
)

// vectorService serves flowdb.v1.VectorService over the collections.
type vectorService struct{ s *Server }

func (v *vectorService) Create(ctx context.Context, req *connect.Request[v1.CreateCollectionRequest]) (*connect.Response[v1.CreateCollectionResponse], error) {
	c := req.Msg.Config
	if err := need("config", c != nil); err != nil {
		return nil, err
	}
	if err := v.s.allow(ctx, auth.Vec, c.Name, auth.Admin); err != nil {
		return nil, err
	}
	metric := quant.L2
	if c.Metric != "" {
		var err error
		if metric, err = quant.ParseMetric(c.Metric); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrBadRequest, err)
		}
	}
	cfg := hnsw.Config{Name: c.Name, Dim: int(c.Dim), Metric: metric, M: int(c.M), EfConstruction: int(c.EfConstruction),
		Ef: int(c.Ef), TrainSize: int(c.TrainSize), Float: c.Float}
	if err := v.s.o.Vectors.Create(ctx, cfg); err != nil {
		return nil, err
	}
	return connect.NewResponse(&v1.CreateCollectionResponse{}), nil
}

func (v *vectorService) List(ctx context.Context, req *connect.Request[v1.ListCollectionsRequest]) (*connect.Response[v1.ListCollectionsResponse], error) {
	tok := caller(ctx)
	resp := &v1.ListCollectionsResponse{}
	for _, n := range v.s.o.Vectors.Collections() {
		if tok.Allows(auth.Vec, n, auth.Read) {
			resp.Names = append(resp.Names, n)
		}
	}
	return connect.NewResponse(resp), nil
}

func (v *vectorService) Drop(ctx context.Context, req *connect.Request[v1.DropCollectionRequest]) (*connect.Response[v1.DropCollectionResponse], error) {
	if err := v.s.allow(ctx, auth.Vec, req.Msg.Name, auth.Admin); err != nil {
		return nil, err
	}
	if err := v.s.o.Vectors.Drop(ctx, req.Msg.Name); err != nil {
		return nil, err
	}
	return connect.NewResponse(&v1.DropCollectionResponse{}), nil
}

func (v *vectorService) Upsert(ctx context.Context, req *connect.Request[v1.UpsertRequest]) (*connect.Response[v1.UpsertResponse], error) {
	m := req.Msg
	if err := v.s.allow(ctx, auth.Vec, m.Collection, auth.Write); err != nil {
		return nil, err
	}
	vs := make([]hnsw.Vector, len(m.Vectors))
	for i, x := range m.Vectors {
		if x == nil {
			return nil, fmt.Errorf("%w: vector %d is empty", ErrBadRequest, i)
		}
		vs[i] = hnsw.Vector{ID: x.Id, Values: x.Values, Tags: x.Tags}
	}
	if err := v.s.o.Vectors.Upsert(ctx, m.Collection, vs); err != nil {
		return nil, err
	}
	return connect.NewResponse(&v1.UpsertResponse{}), nil
}

func (v *vectorService) Search(ctx context.Context, req *connect.Request[v1.SearchRequest]) (*connect.Response[v1.SearchResponse], error) {
	m := req.Msg
	if err := v.s.allow(ctx, auth.Vec, m.Collection, auth.Read); err != nil {
		return nil, err
	}
	if err := v.s.nameBarrier(ctx, m.Collection); err != nil {
		return nil, err
	}
	hits, err := v.s.o.Vectors.Search(ctx, m.Collection, m.Query, int(m.K), hnsw.SearchOptions{Ef: int(m.Ef), Tags: m.Tags, Rerank: int(m.Rerank)})
	if err != nil {
		return nil, err
	}
	resp := &v1.SearchResponse{Hits: make([]*v1.Hit, len(hits))}
	for i, h := range hits {
		resp.Hits[i] = &v1.Hit{Id: h.ID, Distance: h.Distance, Tags: h.Tags}
	}
	return connect.NewResponse(resp), nil
}

func (v *vectorService) Get(ctx context.Context, req *connect.Request[v1.GetVectorRequest]) (*connect.Response[v1.GetVectorResponse], error) {
	m := req.Msg
	if err := v.s.allow(ctx, auth.Vec, m.Collection, auth.Read); err != nil {
		return nil, err
	}
	if err := v.s.nameBarrier(ctx, m.Collection); err != nil {
		return nil, err
	}
	x, err := v.s.o.Vectors.Get(m.Collection, m.Id)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&v1.GetVectorResponse{Vector: &v1.Vector{Id: x.ID, Values: x.Values, Tags: x.Tags}}), nil
}

func (v *vectorService) Delete(ctx context.Context, req *connect.Request[v1.DeleteVectorsRequest]) (*connect.Response[v1.DeleteVectorsResponse], error) {
	m := req.Msg
	if err := v.s.allow(ctx, auth.Vec, m.Collection, auth.Write); err != nil {
		return nil, err
	}
	n, err := v.s.o.Vectors.Delete(ctx, m.Collection, m.Ids)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&v1.DeleteVectorsResponse{Deleted: int32(n)}), nil
}

func (v *vectorService) Stats(ctx context.Context, req *connect.Request[v1.CollectionStatsRequest]) (*connect.Response[v1.CollectionStatsResponse], error) {
	m := req.Msg
	if err := v.s.allow(ctx, auth.Vec, m.Collection, auth.Read); err != nil {
		return nil, err
	}
	if err := v.s.nameBarrier(ctx, m.Collection); err != nil {
		return nil, err
	}
	st, err := v.s.o.Vectors.Stats(m.Collection)
	if err != nil {
		return nil, err
	}
	c := st.Config
	return connect.NewResponse(&v1.CollectionStatsResponse{
		Config: &v1.CollectionConfig{Name: c.Name, Dim: int32(c.Dim), Metric: c.Metric.String(), M: int32(c.M),
			EfConstruction: int32(c.EfConstruction), Ef: int32(c.Ef), TrainSize: int32(c.TrainSize), Float: c.Float},
		Vectors: int64(st.Vectors), Trained: st.Trained}), nil
}
