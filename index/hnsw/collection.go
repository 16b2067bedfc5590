package hnsw

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"unsafe"

	"github.com/RoaringBitmap/roaring/v2/roaring64"
	"github.com/cockroachdb/pebble/v2"
	"github.com/flowdb/flowdb/db"
	"github.com/flowdb/flowdb/internal/codec"
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

// More errors.
var (
	// ErrNoCollection: an unknown collection.
	ErrNoCollection = errors.New("hnsw: no such collection")
	// ErrExists: a collection of that name exists with another config.
	ErrExists = errors.New("hnsw: collection exists")
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

func encodeConfig(c Config) codec.Enc {
	var float uint64
	if c.Float {
		float = 1
	}
	return codec.Enc(nil).S(c.Name).U(uint64(c.Dim)).U(uint64(c.Metric)).U(uint64(c.M)).U(uint64(c.EfConstruction)).
		U(uint64(c.Ef)).U(uint64(c.TrainSize)).U(float)
}

func decodeConfig(d *codec.Dec) Config {
	c := Config{Name: d.S(MaxNameSize), Dim: int(d.U()), Metric: quant.Metric(d.U()), M: int(d.U()),
		EfConstruction: int(d.U()), Ef: int(d.U()), TrainSize: int(d.U())}
	switch d.U() {
	case 0:
	case 1:
		c.Float = true
	default:
		d.OK = false
	}
	return c
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
}

// applyErrors are the errors vector records are rejected with.
var applyErrors = []error{ErrNoCollection, ErrExists, ErrZeroVector, ErrInvalid, ErrNotFound, ErrDimension, ErrNotFinite, ErrCorrupt}

// Attach attaches the vector collections' state machine to d
// (db.DB.Attach: its record kinds and tables, every collection, graph
// included, loaded from Pebble). Call it once per DB.
func Attach(d *db.DB) (*Manager, error) {
	m := &Manager{d: d, colls: map[string]*coll{}}
	err := d.Attach(db.Machine{
		Name: "vec",
		Kinds: []db.KindSpec{
			{Kind: KindCreate, Name: "vec.create", Reads: true, Apply: m.applyCreate, Route: db.RouteByName},
			{Kind: KindInsert, Name: "vec.insert", Reads: true, Apply: m.applyInsert, Route: db.RouteByName},
			{Kind: KindDelete, Name: "vec.delete", Reads: true, Apply: m.applyDelete, Route: db.RouteByName},
			{Kind: KindTrain, Name: "vec.train", Reads: true, Apply: m.applyTrain, Route: db.RouteByName},
			{Kind: KindDrop, Name: "vec.drop", Apply: m.applyDrop, Route: db.RouteByName},
		},
		Errors: applyErrors,
		Tables: tableSpecs(),
		Load:   m.loadShard,
		Reload: m.reloadShard,
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
	k := keys.AppendPrefix(make([]byte, 0, 16+len(name)+len(suffix)), shard, table)
	k = append(k, byte(len(name)))
	k = append(k, name...)
	return append(k, suffix...)
}

func be32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }
func be64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

// def value: config | quantizer bytes | entry point + 1.
func encodeDef(c *coll) []byte {
	e := encodeConfig(c.cfg).B(c.qb)
	entry := int64(-1)
	if c.g != nil {
		entry = int64(c.g.Entry())
	}
	return e.I(entry)
}

func decodeDef(v []byte) (Config, *quant.Quantizer, int32, error) {
	d := codec.NewDec(v)
	cfg := decodeConfig(d)
	qb := d.B(1 << 20)
	entry := d.I()
	if !d.Done() || cfg.validate() != nil || entry < -1 || entry > math.MaxInt32 {
		return cfg, nil, 0, fmt.Errorf("%w: collection definition", ErrCorrupt)
	}
	if len(qb) == 0 {
		return cfg, nil, int32(entry), nil
	}
	q, err := quant.Unmarshal(qb)
	if err != nil || q.Dim() != cfg.Dim {
		return cfg, nil, 0, fmt.Errorf("%w: quantizer of %q", ErrCorrupt, cfg.Name)
	}
	return cfg, q, int32(entry), nil
}

// encodeVec is a stored vector: dim float32 (LE) | tags.
func encodeVec(v []float32, tags [][]byte) []byte {
	b := make([]byte, 0, 4*len(v)+8)
	for _, x := range v {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(x))
	}
	return codec.Enc(b).List(tags)
}

// floats is the stored vector at the start of val: val's own bytes read
// as float32 where the layout allows it (little-endian, aligned), else
// decoded into scratch.
func floats(val []byte, scratch []float32) []float32 {
	dim := len(scratch)
	if nativeLE {
		if uintptr(unsafe.Pointer(unsafe.SliceData(val)))%4 == 0 {
			return unsafe.Slice((*float32)(unsafe.Pointer(unsafe.SliceData(val))), dim)
		}
		// A block's values are packed with no alignment: one memmove
		// rather than a float at a time.
		copy(unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(scratch))), 4*dim), val[:4*dim])
		return scratch
	}
	for i := range scratch {
		scratch[i] = math.Float32frombits(binary.LittleEndian.Uint32(val[4*i:]))
	}
	return scratch
}

// nativeLE is whether this machine stores a uint32 little-endian, the
// stored vectors' byte order.
var nativeLE = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

func decodeVec(b []byte, dim int) ([]float32, []string, bool) {
	if len(b) < 4*dim {
		return nil, nil, false
	}
	v := make([]float32, dim)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	d := codec.NewDec(b[4*dim:])
	tags := d.Strings(MaxTags, MaxTagSize)
	return v, tags, d.Done()
}

func (m *Manager) load() error {
	for shard := range m.d.Placement().Data() {
		if err := m.loadShard(shard); err != nil {
			return err
		}
	}
	return nil
}

// reloadShard rebuilds the collections of shard after a Raft snapshot
// replaced its keys (db.OnShardReload; every shard's apply is stopped).
func (m *Manager) reloadShard(shard uint32) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for name, c := range m.colls {
		if c.shard == shard {
			delete(m.colls, name)
		}
	}
	return m.loadShard(shard)
}

// loadShard loads the collections of one shard.
func (m *Manager) loadShard(shard uint32) error {
	p := m.d.Pebble()
	{
		lo, hi := keys.TableRange(shard, TableDef)
		it, err := p.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
		if err != nil {
			return err
		}
		for ok := it.First(); ok; ok = it.Next() {
			cfg, q, entry, err := decodeDef(it.Value())
			if err != nil {
				it.Close()
				return err
			}
			c := &coll{cfg: cfg, shard: shard}
			if q != nil || cfg.Float {
				if q != nil {
					c.qb, _ = q.MarshalBinary()
				}
				if c.g, err = m.loadGraph(p, c, q, entry); err != nil {
					it.Close()
					return err
				}
				c.coded = uint32(c.g.Slots())

				c.count = c.g.Len()
			} else {
				c.count, err = countPrefix(p, ckey(shard, TableVec, cfg.Name, nil))
				if err != nil {
					it.Close()
					return err
				}
			}
			if err := loadTags(p, c); err != nil {
				it.Close()
				return err
			}
			m.colls[cfg.Name] = c
		}
		if err := it.Close(); err != nil {
			return err
		}
	}
	return nil
}

// loadTags rebuilds the tag bitmaps from the tag index.
func loadTags(r pebble.Reader, c *coll) error {
	prefix := ckey(c.shard, TableTag, c.cfg.Name, nil)
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: keys.PrefixEnd(prefix)})
	if err != nil {
		return err
	}
	for ok := it.First(); ok; ok = it.Next() {
		k := it.Key()[len(prefix):]
		if len(k) < 1 || len(k) != 1+int(k[0])+8 {
			it.Close()
			return fmt.Errorf("%w: tag entry of %q", ErrCorrupt, c.cfg.Name)
		}
		c.tag(string(k[1 : 1+k[0]])).Add(binary.BigEndian.Uint64(k[1+k[0]:]))
	}
	return it.Close()
}

func countPrefix(r pebble.Reader, prefix []byte) (int, error) {
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: keys.PrefixEnd(prefix)})
	if err != nil {
		return 0, err
	}
	n := 0
	for ok := it.First(); ok; ok = it.Next() {
		n++
	}
	return n, it.Close()
}

// loadGraph reads the node and code tables, in slot order; with
// quantization off (nil q) the vectors come from the vector table instead
// of codes.
func (m *Manager) loadGraph(r pebble.Reader, c *coll, q *quant.Quantizer, entry int32) (*Graph, error) {
	read := func(table byte) ([][]byte, error) {
		prefix := ckey(c.shard, table, c.cfg.Name, nil)
		it, err := r.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: keys.PrefixEnd(prefix)})
		if err != nil {
			return nil, err
		}
		var out [][]byte
		for ok := it.First(); ok; ok = it.Next() {
			k := it.Key()[len(prefix):]
			if len(k) != 4 {
				it.Close()
				return nil, fmt.Errorf("%w: slot key of %q", ErrCorrupt, c.cfg.Name)
			}
			s := int(binary.BigEndian.Uint32(k))
			if s < len(out) || s > 1<<31 {
				it.Close()
				return nil, fmt.Errorf("%w: slot %d of %q", ErrCorrupt, s, c.cfg.Name)
			}
			for len(out) < s {
				out = append(out, nil)
			}
			out = append(out, slices.Clone(it.Value()))
		}
		return out, it.Close()
	}
	nodes, err := read(TableNode)
	if err != nil {
		return nil, err
	}
	var codes [][]byte
	if q != nil {
		codes, err = read(TableCode)
	} else {
		codes, err = m.liveVectors(r, c, nodes)
	}
	if err != nil {
		return nil, err
	}
	return Restore(c.cfg.params(), q, entry, nodes, codes)
}

// liveVectors returns, per slot, the stored float32 vector (4·Dim bytes)
// of each live node: the vector table read in one pass, matched to slots
// by id. Restore checks what is missing.
func (m *Manager) liveVectors(r pebble.Reader, c *coll, nodes [][]byte) ([][]byte, error) {
	slotOf := make(map[uint64]int, len(nodes))
	for s, b := range nodes {
		if len(b) >= 10 && b[9] == 0 {
			slotOf[binary.BigEndian.Uint64(b)] = s
		}
	}
	out := make([][]byte, len(nodes))
	prefix := ckey(c.shard, TableVec, c.cfg.Name, nil)
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: keys.PrefixEnd(prefix)})
	if err != nil {
		return nil, err
	}
	width := 4 * c.cfg.Dim
	for ok := it.First(); ok; ok = it.Next() {
		k := it.Key()[len(prefix):]
		if len(k) != 8 || len(it.Value()) < width {
			it.Close()
			return nil, fmt.Errorf("%w: vector entry of %q", ErrCorrupt, c.cfg.Name)
		}
		if s, ok := slotOf[binary.BigEndian.Uint64(k)]; ok {
			out[s] = slices.Clone(it.Value()[:width])
		}
	}
	return out, it.Close()
}

func rejected(err error) (wal.Result, error) { return wal.Result{Err: err}, nil }

var errBadRecord = fmt.Errorf("%w: vector record", db.ErrBadRecord)

// persist writes the graph nodes changed by the current record, their
// codes (new nodes) and the definition (entry point).
// REQUIRES: m.mu held for writing.
func (m *Manager) persist(tx *db.Tx, c *coll) error {
	if c.g != nil {
		for _, s := range c.g.TakeDirty() {
			nb := c.g.EncodeNode(s)
			if err := tx.Set(ckey(c.shard, TableNode, c.cfg.Name, be32(s)), nb); err != nil {
				return err
			}
			if !c.g.Quantized() {
				continue // the vector table holds its vector
			}
			ck := ckey(c.shard, TableCode, c.cfg.Name, be32(s))
			if nb[9] == 1 { // deleted: its code goes
				if err := tx.Delete(ck); err != nil {
					return err
				}
				continue
			}
			if s < c.coded {
				continue // its code is stored; only its links changed
			}
			if err := tx.Set(ck, c.g.StoredCode(s)); err != nil {
				return err
			}
		}
		c.coded = uint32(c.g.Slots())
	}
	return tx.Set(ckey(c.shard, TableDef, c.cfg.Name, nil), encodeDef(c))
}

func (m *Manager) applyCreate(tx *db.Tx, rec wal.Record) (wal.Result, error) {
	d := codec.NewDec(rec.Body)
	cfg := decodeConfig(d)
	if !d.Done() || cfg.validate() != nil {
		return rejected(errBadRecord)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if c := m.colls[cfg.Name]; c != nil {
		if c.cfg != cfg {
			return rejected(fmt.Errorf("%w: %q", ErrExists, cfg.Name))
		}
		return wal.Result{}, nil
	}
	c := &coll{cfg: cfg, shard: tx.Placement.ShardFor(cfg.Name)}
	if cfg.Float {
		g, err := NewGraph(cfg.params(), nil)
		if err != nil {
			return rejected(err)
		}
		c.g = g
	}
	if err := m.persist(tx, c); err != nil {
		return wal.Result{}, err
	}
	m.colls[cfg.Name] = c
	return wal.Result{N: 1}, nil
}

type insItem struct {
	id   uint64
	v    []float32
	tags [][]byte
}

func decodeInsert(body []byte) (string, []insItem, bool) {
	d := codec.NewDec(body)
	name, dim, n := d.S(MaxNameSize), d.U(), d.U()
	if !d.OK || dim == 0 || dim > quant.MaxDim || n == 0 || n > MaxBatch || n*dim*4 > uint64(len(d.P)) {
		return "", nil, false
	}
	items := make([]insItem, n)
	for i := range items {
		items[i].id = d.U64()
		raw := d.B(4 * int(dim))
		if len(raw) != 4*int(dim) {
			return "", nil, false
		}
		items[i].v = make([]float32, dim)
		for j := range items[i].v {
			items[i].v[j] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*j:]))
		}
		items[i].tags = d.List(MaxTags, MaxTagSize)
	}
	return name, items, d.Done()
}

func (m *Manager) applyInsert(tx *db.Tx, rec wal.Record) (wal.Result, error) {
	name, items, ok := decodeInsert(rec.Body)
	if !ok {
		return rejected(errBadRecord)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	c := m.colls[name]
	if c == nil {
		return rejected(fmt.Errorf("%w: %q", ErrNoCollection, name))
	}
	// Validate every vector before changing anything: a batch applies whole
	// or not at all.
	prepared := make([][]float32, len(items))
	for i, it := range items {
		v, err := prepare(c.cfg.Dim, c.cfg.Metric, it.v)
		if err != nil {
			return rejected(fmt.Errorf("vector %d (id %d): %w", i, it.id, err))
		}
		prepared[i] = v
	}
	for i, it := range items {
		vk := ckey(c.shard, TableVec, name, be64(it.id))
		old, cl, err := tx.Get(vk)
		var oldTags []string
		switch {
		case err == nil: // a replacement: the count is unchanged
			_, oldTags, _ = decodeVec(old, c.cfg.Dim)
			cl.Close()
		case errors.Is(err, pebble.ErrNotFound):
			c.count++
		default:
			return wal.Result{}, err
		}
		if err := tx.Set(vk, encodeVec(prepared[i], it.tags)); err != nil {
			return wal.Result{}, err
		}
		if err := c.setTags(tx, it.id, oldTags, it.tags); err != nil {
			return wal.Result{}, err
		}
	}
	if c.g != nil {
		ids := make([]uint64, len(items))
		for i, it := range items {
			ids[i] = it.id
		}
		if err := c.g.InsertBatch(ids, prepared); err != nil {
			return wal.Result{}, err
		}
	}
	return wal.Result{N: uint64(len(items))}, m.persist(tx, c)
}

func (m *Manager) applyDelete(tx *db.Tx, rec wal.Record) (wal.Result, error) {
	d := codec.NewDec(rec.Body)
	name, n := d.S(MaxNameSize), d.U()
	if !d.OK || n == 0 || n > MaxBatch || n > uint64(len(d.P)) {
		return rejected(errBadRecord)
	}
	ids := make([]uint64, n)
	for i := range ids {
		ids[i] = d.U64()
	}
	if !d.Done() {
		return rejected(errBadRecord)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	c := m.colls[name]
	if c == nil {
		return rejected(fmt.Errorf("%w: %q", ErrNoCollection, name))
	}
	var done uint64
	for _, id := range ids {
		vk := ckey(c.shard, TableVec, name, be64(id))
		old, cl, err := tx.Get(vk)
		if errors.Is(err, pebble.ErrNotFound) {
			continue // absent: nothing to delete
		}
		if err != nil {
			return wal.Result{}, err
		}
		_, oldTags, _ := decodeVec(old, c.cfg.Dim)
		cl.Close()
		if err := tx.Delete(vk); err != nil {
			return wal.Result{}, err
		}
		if err := c.setTags(tx, id, oldTags, nil); err != nil {
			return wal.Result{}, err
		}
		c.count--
		done++
		if c.g != nil {
			if err := c.g.Delete(id); err != nil {
				return wal.Result{}, err
			}
		}
	}
	return wal.Result{N: done}, m.persist(tx, c)
}

func (m *Manager) applyTrain(tx *db.Tx, rec wal.Record) (wal.Result, error) {
	d := codec.NewDec(rec.Body)
	name, qb := d.S(MaxNameSize), d.B(1<<20)
	if !d.Done() {
		return rejected(errBadRecord)
	}
	q, err := quant.Unmarshal(qb)
	if err != nil {
		return rejected(errBadRecord)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	c := m.colls[name]
	if c == nil {
		return rejected(fmt.Errorf("%w: %q", ErrNoCollection, name))
	}
	if c.g != nil {
		return wal.Result{}, nil // trained already: the first train record wins
	}
	if q.Dim() != c.cfg.Dim || c.cfg.Float {
		return rejected(errBadRecord)
	}
	g, err := NewGraph(c.cfg.params(), q)
	if err != nil {
		return rejected(err)
	}
	// Build from the stored vectors in id order.
	prefix := ckey(c.shard, TableVec, name, nil)
	it, err := tx.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: keys.PrefixEnd(prefix)})
	if err != nil {
		return wal.Result{}, err
	}
	var ids []uint64
	var vs [][]float32
	for ok := it.First(); ok; ok = it.Next() {
		id := binary.BigEndian.Uint64(it.Key()[len(prefix):])
		v, _, ok := decodeVec(it.Value(), c.cfg.Dim)
		if !ok {
			it.Close()
			return wal.Result{}, fmt.Errorf("%w: vector %d of %q", ErrCorrupt, id, name)
		}
		ids, vs = append(ids, id), append(vs, v)
	}
	if err := it.Close(); err != nil {
		return wal.Result{}, err
	}
	if err := g.InsertBatch(ids, vs); err != nil {
		return wal.Result{}, err
	}
	c.g, c.qb = g, qb
	return wal.Result{N: 1}, m.persist(tx, c)
}

// ---- the API ---------------------------------------------------------------

func (m *Manager) propose(ctx context.Context, kind wal.Kind, body []byte) (wal.Result, error) {
	return m.d.Propose(ctx, wal.Record{Kind: kind, Body: body})
}

// Create creates a collection (idempotent for the same config).
func (m *Manager) Create(ctx context.Context, c Config) error {
	c = c.withDefaults()
	if err := c.validate(); err != nil {
		return err
	}
	_, err := m.propose(ctx, KindCreate, encodeConfig(c))
	return err
}

func (m *Manager) get(name string) (*coll, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	c := m.colls[name]
	if c == nil {
		return nil, fmt.Errorf("%w: %q", ErrNoCollection, name)
	}
	return c, nil
}

// Vector is a vector to insert.
type Vector struct {
	ID     uint64
	Values []float32
	Tags   []string
}

// Upsert inserts vectors, replacing any with the same id, in one record (all
// or none). Once the collection holds TrainSize vectors, the quantizer is
// trained on the first TrainSize of them (by id) and the graph built.
func (m *Manager) Upsert(ctx context.Context, name string, vs []Vector) error {
	c, err := m.get(name)
	if err != nil {
		return err
	}
	if len(vs) == 0 || len(vs) > MaxBatch {
		return fmt.Errorf("%w: batch of %d", ErrInvalid, len(vs))
	}
	e := codec.Enc(nil).S(name).U(uint64(c.cfg.Dim)).U(uint64(len(vs)))
	for i, v := range vs {
		if _, err := prepare(c.cfg.Dim, c.cfg.Metric, v.Values); err != nil {
			return fmt.Errorf("vector %d (id %d): %w", i, v.ID, err)
		}
		if len(v.Tags) > MaxTags {
			return fmt.Errorf("%w: %d tags", ErrInvalid, len(v.Tags))
		}
		raw := make([]byte, 0, 4*len(v.Values))
		for _, x := range v.Values {
			raw = binary.LittleEndian.AppendUint32(raw, math.Float32bits(x))
		}
		tags := make([][]byte, len(v.Tags))
		for j, t := range v.Tags {
			if t == "" || len(t) > MaxTagSize {
				return fmt.Errorf("%w: tag of %d bytes", ErrInvalid, len(t))
			}
			tags[j] = []byte(t)
		}
		e = e.U64(v.ID).B(raw).List(tags)
	}
	if _, err := m.propose(ctx, KindInsert, e); err != nil {
		return err
	}
	return m.maybeTrain(ctx, name)
}

// maybeTrain trains the quantizer once the collection is big enough: the
// proposer reads the sample and trains; the parameters travel in a train
// record, so every replica builds the same graph.
func (m *Manager) maybeTrain(ctx context.Context, name string) error {
	m.mu.RLock()
	c := m.colls[name]
	need := c != nil && c.g == nil && c.count >= c.cfg.TrainSize
	m.mu.RUnlock()
	if !need {
		return nil
	}
	prefix := ckey(c.shard, TableVec, name, nil)
	it, err := m.d.Pebble().NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: keys.PrefixEnd(prefix)})
	if err != nil {
		return err
	}
	var sample [][]float32
	for ok := it.First(); ok && len(sample) < c.cfg.TrainSize; ok = it.Next() {
		if v, _, ok := decodeVec(it.Value(), c.cfg.Dim); ok {
			sample = append(sample, v)
		}
	}
	if err := it.Close(); err != nil {
		return err
	}
	q, err := quant.Train(sample, quant.Options{})
	if err != nil {
		return err
	}
	qb, _ := q.MarshalBinary()
	_, err = m.propose(ctx, KindTrain, codec.Enc(nil).S(name).B(qb))
	return err
}

// Delete removes vectors by id (absent ids are ignored); it returns how
// many it removed.
func (m *Manager) Delete(ctx context.Context, name string, ids []uint64) (int, error) {
	if _, err := m.get(name); err != nil {
		return 0, err
	}
	if len(ids) == 0 || len(ids) > MaxBatch {
		return 0, fmt.Errorf("%w: %d ids", ErrInvalid, len(ids))
	}
	e := codec.Enc(nil).S(name).U(uint64(len(ids)))
	for _, id := range ids {
		e = e.U64(id)
	}
	res, err := m.propose(ctx, KindDelete, e)
	return int(res.N), err
}

// Hit is a search result.
type Hit struct {
	ID       uint64   `json:"id"`
	Distance float32  `json:"distance"`
	Tags     []string `json:"tags,omitempty"`
}

// SearchOptions tune Search. Zero fields take the collection's defaults.
type SearchOptions struct {
	// Ef is the candidate list size (default the collection's Ef).
	Ef int
	// Tags, if set, restrict the search to vectors that carry every one
	// of them.
	Tags []string
	// Rerank is how many of the ef candidates, best first by the int8
	// distance, are re-ranked with the float32 vectors read from Pebble
	// (at least k, at most ef). Default 2·k: on Fashion-MNIST re-ranking
	// 2·k, 3·k or all ef candidates gave the same recall@10 to four
	// decimals at ef 16 to 128 (bench/vecbench -rerank). Of these, only
	// the candidates whose exact-distance bounds let them rank are read
	// (see the package doc), each a Pebble read.
	Rerank int
}

// ExactFilterMax is the largest filtered set searched by an exact scan
// (each allowed vector read and compared) rather than through the graph.
const ExactFilterMax = 2048

// Search returns the k nearest vectors to query, nearest first, with
// their exact distances and tags: the graph is traversed on int8 codes
// with max(ef, k) candidates, and the best Rerank of them (default 2·k)
// re-ranked with the float32 vectors stored in Pebble, reading only those
// whose bounds let them rank (Rerank). Before the quantizer is trained the
// search is exact. With a tag filter, a small
// allowed set (at most ExactFilterMax) is scanned exactly; a larger one is
// searched through the graph with ef widened by the filter's selectivity,
// and scanned exactly if that finds fewer than min(k, allowed) vectors. It never returns fewer than min(k, matching
// vectors) results, nor an id twice.
func (m *Manager) Search(ctx context.Context, name string, query []float32, k int, o SearchOptions) ([]Hit, error) {
	c, err := m.get(name)
	if err != nil {
		return nil, err
	}
	if k <= 0 {
		return nil, fmt.Errorf("%w: k %d", ErrInvalid, k)
	}
	qv, err := prepare(c.cfg.Dim, c.cfg.Metric, query)
	if err != nil {
		return nil, err
	}
	ef := o.Ef
	if ef == 0 {
		ef = c.cfg.Ef
	}
	m.mu.RLock()
	g, count := c.g, c.count
	var allowed *roaring64.Bitmap
	for i, t := range o.Tags {
		b := c.tags[t]
		switch {
		case b == nil:
			allowed = roaring64.New()
		case i == 0:
			allowed = b.Clone()
		default:
			allowed.And(b)
		}
		if allowed.IsEmpty() {
			break
		}
	}
	m.mu.RUnlock()
	r := m.d.Pebble()
	prefix := ckey(c.shard, TableVec, name, nil)
	// Candidates are ranked by the exact distance to their stored vector;
	// tags stay raw until the k results are known.
	type ranked struct {
		id   uint64
		d    float32
		tags []byte
	}
	var hits []ranked
	scratch := make([]float32, c.cfg.Dim)
	add := func(id uint64, val []byte) bool {
		if len(val) < 4*c.cfg.Dim {
			return false
		}
		// The value is the iterator's until it moves: keep a copy of the tags.
		hits = append(hits, ranked{id, c.cfg.Metric.Exact(qv, floats(val, scratch)), slices.Clone(val[4*c.cfg.Dim:])})
		return true
	}
	// The search's one iterator over the collection's vectors, opened on
	// first use (an empty filter reads nothing).
	var vit *pebble.Iterator
	vecs := func() (*pebble.Iterator, error) {
		var err error
		if vit == nil {
			vit, err = r.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: keys.PrefixEnd(prefix)})
		}
		return vit, err
	}
	defer func() {
		if vit != nil {
			vit.Close()
		}
	}()
	key := slices.Clone(prefix)
	// readOne reads the stored vector of id and ranks it; ok is false if
	// id was deleted since it was picked. The reads of one search share
	// the iterator and its prefix seeks, which skip tables by their bloom
	// filters as a point read does but keep the tables' index blocks
	// between reads. (Plain SeekGE in ascending id order measured slower:
	// its seeks loaded more blocks.)
	readOne := func(id uint64) (float32, bool, error) {
		it, err := vecs()
		if err != nil {
			return 0, false, err
		}
		key = binary.BigEndian.AppendUint64(key[:len(prefix)], id)
		if !it.SeekPrefixGE(key) || !bytes.Equal(it.Key(), key) {
			return 0, false, it.Error()
		}
		val, err := it.ValueAndErr()
		if err != nil {
			return 0, false, err
		}
		if !add(id, val) {
			return 0, false, nil
		}
		return hits[len(hits)-1].d, true, nil
	}
	rankIDs := func(ids []uint64) error {
		for _, id := range ids {
			if _, _, err := readOne(id); err != nil {
				return err
			}
		}
		return nil
	}
	exactOver := func(set *roaring64.Bitmap) error {
		hits = hits[:0]
		return rankIDs(set.ToArray())
	}
	switch {
	case allowed != nil && allowed.IsEmpty():
		return []Hit{}, nil
	case allowed != nil && (g == nil || allowed.GetCardinality() <= ExactFilterMax):
		if err := exactOver(allowed); err != nil {
			return nil, err
		}
	case g == nil:
		it, err := vecs()
		if err != nil {
			return nil, err
		}
		for ok := it.First(); ok; ok = it.Next() {
			add(binary.BigEndian.Uint64(it.Key()[len(prefix):]), it.Value())
		}
		if err := it.Error(); err != nil {
			return nil, err
		}
	default:
		width := max(ef, k)
		var allow func(uint64) bool
		if allowed != nil {
			allow = allowed.Contains
			// Widen by the selectivity: about width allowed vectors among
			// the candidates.
			width = min(width*count/max(int(allowed.GetCardinality()), 1)+width, 4*ExactFilterMax)
		}
		take := o.Rerank // int8 distances: re-rank the best
		if take <= 0 {
			take = 2 * k
		}
		take = min(max(take, k), width)
		if !g.Quantized() {
			take = k // exact already: read only the results' tags
		}
		cands, err := g.Search(qv, take, width, allow)
		if err != nil {
			return nil, err
		}
		if _, err := Rerank(cands, k, readOne); err != nil {
			return nil, err
		}
		if allowed != nil && uint64(len(hits)) < min(uint64(k), allowed.GetCardinality()) {
			if err := exactOver(allowed); err != nil { // the graph fell short: scan
				return nil, err
			}
		}
	}
	slices.SortFunc(hits, func(a, b ranked) int {
		switch {
		case a.d < b.d:
			return -1
		case a.d > b.d:
			return 1
		case a.id < b.id:
			return -1
		case a.id > b.id:
			return 1
		}
		return 0
	})
	out := make([]Hit, min(k, len(hits)))
	for i := range out {
		d := codec.NewDec(hits[i].tags)
		out[i] = Hit{ID: hits[i].id, Distance: hits[i].d, Tags: d.Strings(MaxTags, MaxTagSize)}
		if !d.Done() {
			return nil, fmt.Errorf("%w: vector %d of %q", ErrCorrupt, hits[i].id, name)
		}
	}
	return out, nil
}

// Rerank computes the exact distances (through exact) of the Graph.Search
// candidates that may be among the k nearest, in ascending order of their
// lower bounds, and returns how many it asked for. A candidate is asked for
// while its lower bound is at most tau, the k-th smallest of the others'
// upper bounds, where a candidate already asked for counts with its exact
// distance (at most the bound it replaces: each read can only lower tau)
// and one that exact reports gone (ok false: deleted since it was picked)
// does not count at all (which may raise tau). Every candidate left has a
// lower bound above tau: k others are nearer than it. A NaN bound is read.
func Rerank(cands []Result, k int, exact func(id uint64) (d float32, ok bool, err error)) (int, error) {
	order := slices.Clone(cands)
	slices.SortStableFunc(order, func(a, b Result) int { return cmp.Compare(a.Lo, b.Lo) }) // NaN first
	inf := float32(math.Inf(1))
	up := make([]float32, len(order))
	for i, c := range order {
		up[i] = c.Hi
		if c.Hi != c.Hi {
			up[i] = inf
		}
	}
	for i, c := range order {
		// c.Lo exceeds the k-th smallest upper value exactly when at least
		// k of them are below it (never for a NaN Lo).
		below := 0
		for _, u := range up {
			if u < c.Lo {
				below++
			}
		}
		if below >= k {
			return i, nil
		}
		d, ok, err := exact(c.ID)
		if err != nil {
			return i + 1, err
		}
		if up[i] = inf; ok {
			up[i] = d
		}
	}
	return len(order), nil
}

// Stats describes a collection.
type Stats struct {
	Config  Config `json:"config"`
	Vectors int    `json:"vectors"`
	Trained bool   `json:"trained"`
}

// Stats returns a collection's config and size.
func (m *Manager) Stats(name string) (Stats, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	c := m.colls[name]
	if c == nil {
		return Stats{}, fmt.Errorf("%w: %q", ErrNoCollection, name)
	}
	return Stats{Config: c.cfg, Vectors: c.count, Trained: c.g != nil}, nil
}

// Collections lists the collection names, sorted.
func (m *Manager) Collections() []string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make([]string, 0, len(m.colls))
	for n := range m.colls {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// graphBytes is the canonical encoding of a collection's graph (tests).
func (m *Manager) graphBytes(name string) []byte {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if c := m.colls[name]; c != nil && c.g != nil {
		return c.g.Marshal()
	}
	return nil
}

func (m *Manager) applyDrop(tx *db.Tx, rec wal.Record) (wal.Result, error) {
	d := codec.NewDec(rec.Body)
	name := d.S(MaxNameSize)
	if !d.Done() {
		return rejected(errBadRecord)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	c := m.colls[name]
	if c == nil {
		return rejected(fmt.Errorf("%w: %q", ErrNoCollection, name))
	}
	for _, table := range []byte{TableDef, TableVec, TableNode, TableCode, TableTag} {
		prefix := ckey(c.shard, table, name, nil)
		if table == TableDef {
			if err := tx.Delete(prefix); err != nil {
				return wal.Result{}, err
			}
			continue
		}
		if err := tx.DeleteRange(prefix, keys.PrefixEnd(prefix)); err != nil {
			return wal.Result{}, err
		}
	}
	delete(m.colls, name)
	return wal.Result{N: 1}, nil
}

// Compact compacts the collection's tables (vectors, graph nodes, codes,
// tags) into the LSM's last level (db.DB.Compact). Search reads a stored
// vector for every candidate it re-ranks; after a bulk load those are
// spread over tables in several levels, each a probe per read. Once
// compacted a read probes one table: on Fashion-MNIST (bench/vecbench)
// search ran faster by about a tenth (see the package doc). It changes no
// data; `flowctl vec import` calls it when the import ends.
func (m *Manager) Compact(ctx context.Context, name string) error {
	c, err := m.get(name)
	if err != nil {
		return err
	}
	for _, table := range []byte{TableVec, TableNode, TableCode, TableTag} {
		prefix := ckey(c.shard, table, name, nil)
		if err := m.d.Compact(ctx, prefix, keys.PrefixEnd(prefix)); err != nil {
			return err
		}
	}
	return nil
}

// Drop deletes a collection and everything in it.
func (m *Manager) Drop(ctx context.Context, name string) error {
	if _, err := m.get(name); err != nil {
		return err
	}
	_, err := m.propose(ctx, KindDrop, codec.Enc(nil).S(name))
	return err
}

// Get returns the stored vector (normalized under cosine) and tags of id.
func (m *Manager) Get(name string, id uint64) (Vector, error) {
	c, err := m.get(name)
	if err != nil {
		return Vector{}, err
	}
	val, cl, err := m.d.Pebble().Get(ckey(c.shard, TableVec, name, be64(id)))
	if errors.Is(err, pebble.ErrNotFound) {
		return Vector{}, fmt.Errorf("%w: vector %d in %q", ErrNotFound, id, name)
	}
	if err != nil {
		return Vector{}, err
	}
	defer cl.Close()
	v, tags, ok := decodeVec(val, c.cfg.Dim)
	if !ok {
		return Vector{}, fmt.Errorf("%w: vector %d of %q", ErrCorrupt, id, name)
	}
	return Vector{ID: id, Values: v, Tags: tags}, nil
}
