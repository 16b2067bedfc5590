package hnsw

import (
	"encoding/binary"
	"fmt"
	"sync"

	"github.com/RoaringBitmap/roaring/v2/roaring64"
	"github.com/flowdb/flowdb/db"
	"github.com/flowdb/flowdb/internal/histo"
	"github.com/flowdb/flowdb/internal/keys"
	"github.com/flowdb/flowdb/quant"
	"github.com/flowdb/flowdb/wal"
)

// Record kinds of vector collections (wal kinds 300-399). Their values are
// part of the log format.
const (
	KindCreate wal.Kind = 300
	KindInsert wal.Kind = 301
	KindDelete wal.Kind = 302
	KindTrain  wal.Kind = 303
	KindDrop   wal.Kind = 304
)

// Table tags of vector collections (allocated in internal/keys).
const (
	TableDef  = keys.TableVecDef
	TableVec  = keys.TableVecVector
	TableNode = keys.TableVecNode
	TableCode = keys.TableVecCode
	TableTag  = keys.TableVecTag
)

// Limits.
const (
	MaxNameSize = 128
	MaxTags     = 32
	MaxTagSize  = 128
	MaxBatch    = 10_000
)

// Config describes a collection. Zero fields take the defaults.
type Config struct {
	Name   string       `json:"name"`
	Dim    int          `json:"dim"`
	Metric quant.Metric `json:"metric"`
	// M (default 16) and EfConstruction (default 200): see Params.
	M              int `json:"m"`
	EfConstruction int `json:"ef_construction"`
	// Ef is the default search ef (default 64).
	Ef int `json:"ef"`
	// TrainSize is how many vectors the quantizer is trained on: the graph
	// is built once the collection holds that many (default 1,000); until
	// then search is exact over the stored vectors.
	TrainSize int `json:"train_size"`
	// Float turns quantization off: the graph keeps the float32 vectors in
	// RAM (4·Dim bytes per vector instead of Dim), its distances are exact
	// so nothing is re-ranked, and it is built from the first insert (no
	// quantizer, TrainSize unused). Default false: int8 codes.
	Float bool `json:"float,omitempty"`
}

func (c Config) withDefaults() Config {
	p := Params{Dim: c.Dim, Metric: c.Metric, M: c.M, EfConstruction: c.EfConstruction}.withDefaults()
	c.M, c.EfConstruction = p.M, p.EfConstruction
	if c.Ef == 0 {
		c.Ef = 64
	}
	if c.TrainSize == 0 {
		c.TrainSize = 1000
	}
	return c
}

func (c Config) params() Params {
	return Params{Dim: c.Dim, Metric: c.Metric, M: c.M, EfConstruction: c.EfConstruction}
}

func (c Config) validate() error {
	if c.Name == "" || len(c.Name) > MaxNameSize {
		return fmt.Errorf("%w: collection name of %d bytes", ErrInvalid, len(c.Name))
	}
	if c.Ef < 1 || c.Ef > 10_000 || c.TrainSize < 1 || c.TrainSize > 1_000_000 {
		return fmt.Errorf("%w: ef %d, train size %d", ErrInvalid, c.Ef, c.TrainSize)
	}
	return c.params().validate()
}

// coll is one collection's in-memory state, kept by apply.
type coll struct {
	cfg   Config
	shard uint32
	g     *Graph // nil until the quantizer is trained
	qb    []byte // quantizer parameters (MarshalBinary), nil until trained
	count int    // stored (live) vectors
	coded uint32 // slots below this have their code stored (a code never changes)
	tags  map[string]*roaring64.Bitmap
}

func (c *coll) tag(t string) *roaring64.Bitmap {
	if c.tags == nil {
		c.tags = map[string]*roaring64.Bitmap{}
	}
	b := c.tags[t]
	if b == nil {
		b = roaring64.New()
		c.tags[t] = b
	}
	return b
}

func tagKey(shard uint32, name string, tag []byte, id uint64) []byte {
	return ckey(shard, TableTag, name, binary.BigEndian.AppendUint64(append([]byte{byte(len(tag))}, tag...), id))
}

// setTags replaces id's tags (old -> new) in the index and the bitmaps.
// REQUIRES: m.mu held for writing.
func (c *coll) setTags(tx *db.Tx, id uint64, old []string, new [][]byte) error {
	for _, t := range old {
		if err := tx.Delete(tagKey(c.shard, c.cfg.Name, []byte(t), id)); err != nil {
			return err
		}
		if b := c.tags[t]; b != nil {
			b.Remove(id)
			if b.IsEmpty() {
				delete(c.tags, t)
			}
		}
	}
	for _, t := range new {
		if err := tx.Set(tagKey(c.shard, c.cfg.Name, t, id), nil); err != nil {
			return err
		}
		c.tag(string(t)).Add(id)
	}
	return nil
}

// Manager owns the vector collections of one DB. It is safe for concurrent
// use.
type Manager struct {
	d     *db.DB
	mu    sync.RWMutex // guards colls and each coll's fields (the graph has its own lock)
	colls map[string]*coll

	// lat holds each collection's search latency (Stats.Search), apart
	// from the applied state: apply never touches it.
	lat struct {
		sync.RWMutex
		m map[string]*histo.Histogram // by collection name
	}
}

// applyErrors are the errors vector records are rejected with.
var applyErrors = []error{ErrNoCollection, ErrExists, ErrZeroVector, ErrInvalid, ErrNotFound, ErrDimension, ErrNotFinite, ErrCorrupt}

// Attach attaches the vector collections' state machine to d
// (db.DB.Attach: its record kinds and tables, every collection, graph
// included, loaded from Pebble). Call it once per DB.
func Attach(d *db.DB) (*Manager, error) {
	m := &Manager{d: d, colls: map[string]*coll{}}
	m.lat.m = map[string]*histo.Histogram{}
	err := d.Attach(db.Machine{
		Name: "vec",
		Kinds: []db.KindSpec{
			{Kind: KindCreate, Name: "vec.create", Reads: true, Apply: m.applyCreate, Route: db.RouteByName},
			{Kind: KindInsert, Name: "vec.insert", Reads: true, Apply: m.applyInsert, Route: db.RouteByName, Txn: true},
			{Kind: KindDelete, Name: "vec.delete", Reads: true, Apply: m.applyDelete, Route: db.RouteByName, Txn: true},
			{Kind: KindTrain, Name: "vec.train", Reads: true, Apply: m.applyTrain, Route: db.RouteByName},
			{Kind: KindDrop, Name: "vec.drop", Apply: m.applyDrop, Route: db.RouteByName},
		},
		Errors:  applyErrors,
		Tables:  tableSpecs(),
		Check:   m.check,
		Load:    m.loadShard,
		Reload:  m.reloadShard,
		TxnLock: &m.mu,
	})
	if err != nil {
		return nil, err
	}
	return m, nil
}

func tableSpecs() []db.TableSpec {
	ok := func(k, v []byte) error { return nil }
	return []db.TableSpec{
		{Table: TableDef, Name: "vec.def", Check: func(k, v []byte) error {
			if _, _, _, err := decodeDef(v); err != nil {
				return err
			}
			return nil
		}},
		{Table: TableVec, Name: "vec.vector", Check: ok},
		{Table: TableNode, Name: "vec.node", Check: ok},
		{Table: TableCode, Name: "vec.code", Check: ok},
		{Table: TableTag, Name: "vec.tag", Check: ok},
	}
}

// ckey builds shard | table | len(name) | name | suffix.
func ckey(shard uint32, table byte, name string, suffix []byte) []byte {
	return keys.NameKey(shard, table, name, suffix)
}

func be32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }
func be64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }
