package mcp

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"strconv"

	"github.com/flowdb/flowdb/db"
	"github.com/flowdb/flowdb/index/hnsw"
	"github.com/flowdb/flowdb/quant"
)

// memoryNamespace is the key-value namespace of memory texts (on a
// replicated store, memoNamespace may pick memoryNamespace{N}): key
// collection | 0x00 | id (8 B big-endian), value the JSON of memoryRecord.
// kv tools refuse namespaces that start with reservedPrefix.
const (
	memoryNamespace = "flowdb.mcp.memory"
	reservedPrefix  = "flowdb."
	MaxTextSize     = 64 << 10
)

// memoNamespace returns the namespace of coll's memory texts: one on the
// collection's shard, so that a memory's vector and text commit in one
// transaction on a replicated store with several data shards (a
// transaction lives on one shard). It is memoryNamespace whenever that
// lands on the collection's shard (always on a standalone store, whose
// data is one shard), else memoryNamespace{N} for the smallest N that
// does. The choice depends only on the names and the store's fixed shard
// count, so every replica and every restart finds the same namespace.
func (s *server) memoNamespace(coll string) string {
	p := s.st.DB.Placement()
	want := p.ShardFor(coll)
	if p.ShardFor(memoryNamespace) == want {
		return memoryNamespace
	}
	for i := 0; ; i++ {
		if ns := memoryNamespace + "{" + strconv.Itoa(i) + "}"; p.ShardFor(ns) == want {
			return ns
		}
	}
}

// memoryRecord is what a memory stores beside its vector.
type memoryRecord struct {
	Text     string         `json:"text,omitempty"`
	Metadata map[string]any `json:"metadata,omitempty"`
	Tags     []string       `json:"tags,omitempty"`
}

func memoryKey(coll string, id uint64) []byte {
	k := make([]byte, 0, len(coll)+9)
	k = append(k, coll...)
	k = append(k, 0)
	return binary.BigEndian.AppendUint64(k, id)
}

type memoryIn struct {
	Collection string         `json:"collection" jsonschema:"memory collection (created on first use)"`
	Text       string         `json:"text,omitempty" jsonschema:"the text to remember; it is embedded into a vector unless vector is given"`
	Vector     []float64      `json:"vector,omitempty" jsonschema:"an embedding you computed yourself (its length must match the collection's dimension)"`
	Metadata   map[string]any `json:"metadata,omitempty" jsonschema:"any JSON object stored with the memory and returned by memory_recall (up to 16 KiB)"`
	Tags       []string       `json:"tags,omitempty" jsonschema:"labels to filter memory_recall by"`
	ID         uint64         `json:"id,omitempty" jsonschema:"your own id for the memory (below 2^53); remembering the same id again replaces it. Default: a new id"`
}

type rememberOut struct {
	Collection string `json:"collection"`
	ID         uint64 `json:"id" jsonschema:"the memory's id (memory_forget takes it)"`
}

type recallIn struct {
	Collection string    `json:"collection" jsonschema:"memory collection"`
	Text       string    `json:"text,omitempty" jsonschema:"find memories similar to this text"`
	Vector     []float64 `json:"vector,omitempty" jsonschema:"or: find memories near this embedding"`
	K          int       `json:"k,omitempty" jsonschema:"how many memories to return (default 5, at most 100)"`
	Tags       []string  `json:"tags,omitempty" jsonschema:"only memories carrying every one of these tags"`
}

type recallOut struct {
	Memories []recalled `json:"memories" jsonschema:"closest first"`
}

type recalled struct {
	ID       uint64         `json:"id"`
	Distance float32        `json:"distance" jsonschema:"cosine distance: 0 is identical, 1 unrelated"`
	Text     string         `json:"text,omitempty"`
	Metadata map[string]any `json:"metadata,omitempty"`
	Tags     []string       `json:"tags,omitempty"`
}

type forgetIn struct {
	Collection string   `json:"collection" jsonschema:"memory collection"`
	IDs        []uint64 `json:"ids" jsonschema:"ids of the memories to delete"`
}

type forgetOut struct {
	Deleted int `json:"deleted"`
}

// preparedMemory is a memory ready to go into a transaction.
type preparedMemory struct {
	coll string
	vec  hnsw.Vector
	rec  []byte
}

// prepare validates and embeds memories, and makes sure their collections
// exist. Texts without a vector are embedded in one batch.
func (s *server) prepare(ctx context.Context, ins []memoryIn) ([]preparedMemory, error) {
	out := make([]preparedMemory, len(ins))
	var texts []string
	var at []int
	for i, in := range ins {
		if err := s.authorize(ctx, "collection", in.Collection, true); err != nil {
			return nil, err
		}
		if in.Collection == "" || len(in.Collection) > 128 {
			return nil, invalid("collection name must be 1..128 bytes")
		}
		if len(in.Text) > MaxTextSize {
			return nil, invalid("text of %d bytes, at most %d", len(in.Text), MaxTextSize)
		}
		if in.Text == "" && len(in.Vector) == 0 {
			return nil, invalid("give text, vector, or both")
		}
		if err := checkTags(in.Tags); err != nil {
			return nil, err
		}
		if in.ID >= 1<<53 {
			return nil, invalid("id %d must be below 2^53", in.ID)
		}
		rec, err := json.Marshal(memoryRecord{Text: in.Text, Metadata: in.Metadata, Tags: in.Tags})
		if err != nil {
			return nil, invalid("metadata: %v", err)
		}
		if len(rec)-len(in.Text) > MaxMetadataSize {
			return nil, invalid("metadata of about %d bytes, at most %d", len(rec)-len(in.Text), MaxMetadataSize)
		}
		id := in.ID
		if id == 0 {
			id = newID()
		}
		out[i] = preparedMemory{coll: in.Collection, vec: hnsw.Vector{ID: id, Tags: in.Tags}, rec: rec}
		if len(in.Vector) > 0 {
			if out[i].vec.Values, err = vector(in.Vector); err != nil {
				return nil, err
			}
		} else {
			texts = append(texts, in.Text)
			at = append(at, i)
		}
	}
	if len(texts) > 0 {
		vs, err := s.o.Embedder.Embed(ctx, texts)
		if err != nil {
			return nil, err
		}
		for j, i := range at {
			out[i].vec.Values = vs[j]
		}
	}
	for _, m := range out {
		if err := s.ensureCollection(ctx, m.coll, len(m.vec.Values)); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// ensureCollection creates a cosine collection of dimension dim if none
// is named coll.
func (s *server) ensureCollection(ctx context.Context, coll string, dim int) error {
	st, err := s.st.Vectors.Stats(coll)
	if errors.Is(err, hnsw.ErrNoCollection) {
		// On a replica another member may have created it: look again
		// after a read barrier before creating it.
		if err := s.barrier(ctx, coll); err != nil {
			return err
		}
		st, err = s.st.Vectors.Stats(coll)
	}
	if err == nil {
		if st.Config.Dim != dim {
			return errors.Join(hnsw.ErrDimension, invalid("collection %s holds %d-dimensional vectors, got %d", coll, st.Config.Dim, dim))
		}
		return nil
	}
	if !errors.Is(err, hnsw.ErrNoCollection) {
		return err
	}
	if err := s.authorizeAccess(ctx, Access{Kind: "collection", Name: coll, Write: true, Create: true}); err != nil {
		return err
	}
	err = s.st.Vectors.Create(ctx, hnsw.Config{Name: coll, Dim: dim, Metric: quant.Cosine})
	if errors.Is(err, hnsw.ErrExists) {
		return s.ensureCollection(ctx, coll, dim) // created meanwhile
	}
	return err
}

// txRemember adds prepared memories to tx.
func (s *server) txRemember(tx *db.Txn, ms []preparedMemory) {
	for _, m := range ms {
		s.st.Vectors.TxUpsert(tx, m.coll, m.vec)
		tx.Set(s.memoNamespace(m.coll), memoryKey(m.coll, m.vec.ID), m.rec)
	}
}

// newID draws a random memory id in 1..2^53-1 (exact in every JSON
// reader).
func newID() uint64 {
	var b [8]byte
	for {
		rand.Read(b[:])
		if id := binary.BigEndian.Uint64(b[:]) >> 11; id != 0 {
			return id
		}
	}
}

func (s *server) addMemoryTools() {
	addTool(s, "memory_remember", "Store a memory: a text (embedded into a vector) or your own vector, with optional metadata and tags, in a collection. It is durable when this returns. Find it again with memory_recall.", false,
		func(ctx context.Context, in memoryIn) (rememberOut, error) {
			ms, err := s.prepare(ctx, []memoryIn{in})
			if err != nil {
				return rememberOut{}, err
			}
			tx := s.st.DB.NewTxn()
			s.txRemember(tx, ms)
			if err := s.st.DB.CommitTxn(ctx, tx); err != nil {
				return rememberOut{}, err
			}
			return rememberOut{Collection: in.Collection, ID: ms[0].vec.ID}, nil
		})

	addTool(s, "memory_recall", "Find the memories closest to a text or a vector, optionally only those with given tags. Returns each memory's text, metadata, tags and distance, closest first.", true,
		func(ctx context.Context, in recallIn) (recallOut, error) {
			if err := s.authorize(ctx, "collection", in.Collection, false); err != nil {
				return recallOut{}, err
			}
			k := in.K
			if k == 0 {
				k = 5
			}
			if k < 0 || k > MaxRecallK {
				return recallOut{}, invalid("k %d outside 1..%d", in.K, MaxRecallK)
			}
			if err := checkTags(in.Tags); err != nil {
				return recallOut{}, err
			}
			if len(in.Text) > MaxTextSize {
				return recallOut{}, invalid("text of %d bytes, at most %d", len(in.Text), MaxTextSize)
			}
			if err := s.barrier(ctx, in.Collection); err != nil {
				return recallOut{}, err
			}
			if _, err := s.st.Vectors.Stats(in.Collection); errors.Is(err, hnsw.ErrNoCollection) {
				return recallOut{}, errors.Join(errUnknownCollection, err)
			}
			var q []float32
			var err error
			switch {
			case len(in.Vector) > 0 && in.Text != "":
				return recallOut{}, invalid("give text or vector, not both")
			case len(in.Vector) > 0:
				q, err = vector(in.Vector)
			case in.Text != "":
				var vs [][]float32
				vs, err = s.o.Embedder.Embed(ctx, []string{in.Text})
				if err == nil {
					q = vs[0]
				}
			default:
				return recallOut{}, invalid("give text or vector")
			}
			if err != nil {
				return recallOut{}, err
			}
			hits, err := s.st.Vectors.Search(ctx, in.Collection, q, k, hnsw.SearchOptions{Tags: in.Tags})
			if err != nil {
				return recallOut{}, err
			}
			out := recallOut{Memories: []recalled{}}
			memo := s.memoNamespace(in.Collection)
			for _, h := range hits {
				r := recalled{ID: h.ID, Distance: h.Distance, Tags: h.Tags}
				raw, err := s.st.DB.Get(ctx, memo, memoryKey(in.Collection, h.ID))
				if err == nil {
					var rec memoryRecord
					if json.Unmarshal(raw, &rec) == nil {
						r.Text, r.Metadata = rec.Text, rec.Metadata
					}
				} else if !errors.Is(err, db.ErrNotFound) {
					return recallOut{}, err
				}
				out.Memories = append(out.Memories, r)
			}
			return out, nil
		})

	addTool(s, "memory_forget", "Delete memories by id from a collection.", false,
		func(ctx context.Context, in forgetIn) (forgetOut, error) {
			if err := s.authorize(ctx, "collection", in.Collection, true); err != nil {
				return forgetOut{}, err
			}
			if len(in.IDs) == 0 || len(in.IDs) > MaxScanLimit {
				return forgetOut{}, invalid("ids: 1..%d of them", MaxScanLimit)
			}
			if err := s.barrier(ctx, in.Collection); err != nil {
				return forgetOut{}, err
			}
			if _, err := s.st.Vectors.Stats(in.Collection); errors.Is(err, hnsw.ErrNoCollection) {
				return forgetOut{}, errors.Join(errUnknownCollection, err)
			}
			n := 0
			for _, id := range in.IDs {
				if _, err := s.st.Vectors.Get(in.Collection, id); err == nil {
					n++
				}
			}
			tx := s.st.DB.NewTxn()
			memo := s.memoNamespace(in.Collection)
			s.st.Vectors.TxDelete(tx, in.Collection, in.IDs...)
			for _, id := range in.IDs {
				tx.Delete(memo, memoryKey(in.Collection, id))
			}
			if err := s.st.DB.CommitTxn(ctx, tx); err != nil {
				return forgetOut{}, err
			}
			return forgetOut{Deleted: n}, nil
		})
}
