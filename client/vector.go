package client

import (
	"context"

	"connectrpc.com/connect"
	v1 "github.com/flowdb/flowdb/api/flowdb/v1"
)

// CollectionConfig describes a vector collection, as hnsw.Config (Metric by
// name: "l2", "cosine", "dot").
type CollectionConfig struct {
	Name           string
	Dim            int
	Metric         string
	M              int
	EfConstruction int
	Ef             int
	TrainSize      int
	Float          bool
}

// Vector is a vector to insert, as hnsw.Vector.
type Vector struct {
	ID     uint64
	Values []float32
	Tags   []string
}

// Hit is a search result.
type Hit struct {
	ID       uint64
	Distance float32
	Tags     []string
}

// SearchOptions tune Search, as hnsw.SearchOptions.
type SearchOptions struct {
	Ef     int
	Tags   []string
	Rerank int
}

// CreateCollection creates a collection (idempotent for the same config).
func (c *Client) CreateCollection(ctx context.Context, cc CollectionConfig) error {
	cfg := &v1.CollectionConfig{Name: cc.Name, Dim: int32(cc.Dim), Metric: cc.Metric, M: int32(cc.M), EfConstruction: int32(cc.EfConstruction),
		Ef: int32(cc.Ef), TrainSize: int32(cc.TrainSize), Float: cc.Float}
	_, err := call(ctx, c, idempotent, func(ctx context.Context) (*connect.Response[v1.CreateCollectionResponse], error) {
		return c.vec.Create(ctx, connect.NewRequest(&v1.CreateCollectionRequest{Config: cfg}))
	})
	return err
}

// Collections lists the collections the caller may read.
func (c *Client) Collections(ctx context.Context) ([]string, error) {
	m, err := call(ctx, c, idempotent, func(ctx context.Context) (*connect.Response[v1.ListCollectionsResponse], error) {
		return c.vec.List(ctx, connect.NewRequest(&v1.ListCollectionsRequest{}))
	})
	if err != nil {
		return nil, err
	}
	return m.Names, nil
}

// DropCollection deletes a collection and everything in it.
func (c *Client) DropCollection(ctx context.Context, name string) error {
	_, err := call(ctx, c, idempotent, func(ctx context.Context) (*connect.Response[v1.DropCollectionResponse], error) {
		return c.vec.Drop(ctx, connect.NewRequest(&v1.DropCollectionRequest{Name: name}))
	})
	return err
}

// Upsert inserts or replaces vectors atomically.
func (c *Client) Upsert(ctx context.Context, collection string, vs []Vector) error {
	req := &v1.UpsertRequest{Collection: collection, Vectors: make([]*v1.Vector, len(vs))}
	for i, v := range vs {
		req.Vectors[i] = &v1.Vector{Id: v.ID, Values: v.Values, Tags: v.Tags}
	}
	_, err := call(ctx, c, idempotent, func(ctx context.Context) (*connect.Response[v1.UpsertResponse], error) {
		return c.vec.Upsert(ctx, connect.NewRequest(req))
	})
	return err
}

// Search returns the k nearest vectors to query.
func (c *Client) Search(ctx context.Context, collection string, query []float32, k int, o SearchOptions) ([]Hit, error) {
	m, err := call(ctx, c, idempotent, func(ctx context.Context) (*connect.Response[v1.SearchResponse], error) {
		return c.vec.Search(ctx, connect.NewRequest(&v1.SearchRequest{Collection: collection, Query: query, K: int32(k), Ef: int32(o.Ef),
			Tags: o.Tags, Rerank: int32(o.Rerank)}))
	})
	if err != nil {
		return nil, err
	}
	out := make([]Hit, len(m.Hits))
	for i, h := range m.Hits {
		out[i] = Hit{ID: h.Id, Distance: h.Distance, Tags: h.Tags}
	}
	return out, nil
}

// GetVector returns a stored vector.
func (c *Client) GetVector(ctx context.Context, collection string, id uint64) (Vector, error) {
	m, err := call(ctx, c, idempotent, func(ctx context.Context) (*connect.Response[v1.GetVectorResponse], error) {
		return c.vec.Get(ctx, connect.NewRequest(&v1.GetVectorRequest{Collection: collection, Id: id}))
	})
	if err != nil {
		return Vector{}, err
	}
	return Vector{ID: m.Vector.GetId(), Values: m.Vector.GetValues(), Tags: m.Vector.GetTags()}, nil
}

// DeleteVectors removes vectors by id and returns how many it removed.
func (c *Client) DeleteVectors(ctx context.Context, collection string, ids []uint64) (int, error) {
	m, err := call(ctx, c, idempotent, func(ctx context.Context) (*connect.Response[v1.DeleteVectorsResponse], error) {
		return c.vec.Delete(ctx, connect.NewRequest(&v1.DeleteVectorsRequest{Collection: collection, Ids: ids}))
	})
	if err != nil {
		return 0, err
	}
	return int(m.Deleted), nil
}

// CollectionStats returns a collection's config and size.
func (c *Client) CollectionStats(ctx context.Context, collection string) (*v1.CollectionStatsResponse, error) {
	return call(ctx, c, idempotent, func(ctx context.Context) (*connect.Response[v1.CollectionStatsResponse], error) {
		return c.vec.Stats(ctx, connect.NewRequest(&v1.CollectionStatsRequest{Collection: collection}))
	})
}

// Health reports whether the server's store serves (no token needed).
func (c *Client) Health(ctx context.Context) (*v1.HealthResponse, error) {
	return call(ctx, c, idempotent, func(ctx context.Context) (*connect.Response[v1.HealthResponse], error) {
		return c.srv.Health(ctx, connect.NewRequest(&v1.HealthRequest{}))
	})
}

// Stats returns the server's engine figures.
func (c *Client) Stats(ctx context.Context) (*v1.ServerStatsResponse, error) {
	return call(ctx, c, idempotent, func(ctx context.Context) (*connect.Response[v1.ServerStatsResponse], error) {
		return c.srv.Stats(ctx, connect.NewRequest(&v1.ServerStatsRequest{}))
	})
}
