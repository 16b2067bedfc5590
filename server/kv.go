package server

import (
	"bytes"
	"context"
	"fmt"

	"connectrpc.com/connect"
	v1 "github.com/flowdb/flowdb/api/flowdb/v1"
	"github.com/flowdb/flowdb/db"
	"github.com/flowdb/flowdb/server/auth"
)

// kvService serves flowdb.v1.KVService over the DB's key-value space.
type kvService struct{ s *Server }

func (k *kvService) Get(ctx context.Context, req *connect.Request[v1.GetRequest]) (*connect.Response[v1.GetResponse], error) {
	m := req.Msg
	if err := k.s.allow(ctx, auth.KV, m.Namespace, auth.Read); err != nil {
		return nil, err
	}
	e, err := k.s.o.DB.GetEntry(ctx, m.Namespace, m.Key)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&v1.GetResponse{Value: e.Value, ExpiresUnixNano: toNano(e.ExpiresAt)}), nil
}

func (k *kvService) Set(ctx context.Context, req *connect.Request[v1.SetRequest]) (*connect.Response[v1.SetResponse], error) {
	m := req.Msg
	if err := k.s.allow(ctx, auth.KV, m.Namespace, auth.Write); err != nil {
		return nil, err
	}
	ttl, err := ms("ttl_ms", m.TtlMs)
	if err != nil {
		return nil, err
	}
	if err := k.s.o.DB.SetTTL(ctx, m.Namespace, m.Key, m.Value, ttl); err != nil {
		return nil, err
	}
	return connect.NewResponse(&v1.SetResponse{}), nil
}

func (k *kvService) Delete(ctx context.Context, req *connect.Request[v1.DeleteRequest]) (*connect.Response[v1.DeleteResponse], error) {
	m := req.Msg
	if err := k.s.allow(ctx, auth.KV, m.Namespace, auth.Write); err != nil {
		return nil, err
	}
	var err error
	if m.Prefix {
		err = k.s.o.DB.DeletePrefix(ctx, m.Namespace, m.Key)
	} else {
		err = k.s.o.DB.Delete(ctx, m.Namespace, m.Key)
	}
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&v1.DeleteResponse{}), nil
}

// Scan returns one page. A page token is the last key of the previous page:
// a forward scan resumes just after it (its immediate successor, key+0x00),
// a reverse one just before it (the exclusive upper bound).
func (k *kvService) Scan(ctx context.Context, req *connect.Request[v1.ScanRequest]) (*connect.Response[v1.ScanResponse], error) {
	m := req.Msg
	if err := k.s.allow(ctx, auth.KV, m.Namespace, auth.Read); err != nil {
		return nil, err
	}
	limit := int(m.Limit)
	if limit <= 0 || limit > k.s.o.ScanPageSize {
		limit = k.s.o.ScanPageSize
	}
	o := db.ScanOptions{Prefix: m.Prefix, Start: m.Start, End: m.End, Reverse: m.Reverse, Limit: limit + 1}
	if len(m.PageToken) > 0 {
		if m.Reverse {
			if o.End == nil || bytes.Compare(m.PageToken, o.End) < 0 {
				o.End = m.PageToken
			}
		} else {
			next := append(append([]byte(nil), m.PageToken...), 0)
			if o.Start == nil || bytes.Compare(next, o.Start) > 0 {
				o.Start = next
			}
		}
		if o.Start != nil && o.End != nil && bytes.Compare(o.Start, o.End) > 0 {
			o.Start = o.End // an exhausted range, not an invalid one
		}
	}
	resp := &v1.ScanResponse{}
	for e, err := range k.s.o.DB.Scan(ctx, m.Namespace, o) {
		if err != nil {
			return nil, err
		}
		if len(resp.Entries) == limit {
			resp.NextPageToken = resp.Entries[limit-1].Key
			break
		}
		resp.Entries = append(resp.Entries, &v1.Entry{Key: e.Key, Value: e.Value, ExpiresUnixNano: toNano(e.ExpiresAt)})
	}
	return connect.NewResponse(resp), nil
}

func (k *kvService) Batch(ctx context.Context, req *connect.Request[v1.BatchRequest]) (*connect.Response[v1.BatchResponse], error) {
	b := k.s.o.DB.NewBatch()
	for i, op := range req.Msg.Ops {
		if op == nil {
			return nil, fmt.Errorf("%w: op %d is empty", ErrBadRequest, i)
		}
		if err := k.s.allow(ctx, auth.KV, op.Namespace, auth.Write); err != nil {
			return nil, err
		}
		switch op.Op {
		case v1.BatchOp_OP_SET:
			ttl, err := ms("ttl_ms", op.TtlMs)
			if err != nil {
				return nil, err
			}
			b.SetTTL(op.Namespace, op.Key, op.Value, ttl)
		case v1.BatchOp_OP_DELETE:
			b.Delete(op.Namespace, op.Key)
		case v1.BatchOp_OP_DELETE_PREFIX:
			b.DeletePrefix(op.Namespace, op.Key)
		default:
			return nil, fmt.Errorf("%w: op %d: unknown operation %v", ErrBadRequest, i, op.Op)
		}
	}
	if err := k.s.o.DB.Commit(ctx, b); err != nil {
		return nil, err
	}
	return connect.NewResponse(&v1.BatchResponse{}), nil
}
