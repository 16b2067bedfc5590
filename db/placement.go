package db

import (
	"iter"

	"github.com/cespare/xxhash/v2"
	"github.com/flowdb/flowdb/internal/keys"
)

// Placement assigns names (queues, collections, namespaces) to data shards
// by xxhash of the name, as the replicated engine does; with DataShards = 1
// every name lives on the first data shard. It is part of the extension API
// (KindSpec.Route, Tx.Placement, DB.Placement): a state machine keys each
// name's state on the shard Placement gives it, so that one name's state is
// in one shard's key range.
//
// Shard ids: 0 is a standalone store's local shard (its command log and
// applied index), 1 the catalog shard (the registry), data shards start at
// 2. Dragonboat shard ids are the same numbers.
type Placement struct {
	DataShards int
}

// Data yields the data shards' ids in order (one when DataShards <= 1).
func (p Placement) Data() iter.Seq[uint32] {
	return func(yield func(uint32) bool) {
		for s := 0; s < max(p.DataShards, 1); s++ {
			if !yield(keys.FirstData + uint32(s)) {
				return
			}
		}
	}
}

// ShardFor returns the data shard that owns name.
func (p Placement) ShardFor(name string) uint32 {
	n := p.DataShards
	if n <= 1 {
		return keys.FirstData
	}
	return keys.FirstData + uint32(xxhash.Sum64String(name)%uint64(n))
}

// ShardForBytes is ShardFor for a name held as bytes.
func (p Placement) ShardForBytes(name []byte) uint32 {
	n := p.DataShards
	if n <= 1 {
		return keys.FirstData
	}
	return keys.FirstData + uint32(xxhash.Sum64(name)%uint64(n))
}
