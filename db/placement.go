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
// Placement groups: when a name holds a part in braces, such as
// "{agent-7}.tasks", only the text between its first '{' and the next '}'
// is hashed (as Redis Cluster's hash tags), so that "{agent-7}.tasks",
// "{agent-7}.memory" and the namespace "{agent-7}" live on one shard and a
// transaction may write all of them (a replicated store refuses a
// transaction whose operations live on different shards, ErrCrossShard).
// A name without braces, or with "{}", is hashed whole.
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
	return keys.FirstData + uint32(xxhash.Sum64String(groupOf(name))%uint64(n))
}

// groupOf returns the part of name that places it: its placement group
// (the text inside its first braces) or the whole name.
func groupOf[S ~string | ~[]byte](name S) S {
	for i := 0; i < len(name); i++ {
		if name[i] != '{' {
			continue
		}
		for j := i + 1; j < len(name); j++ {
			if name[j] == '}' {
				if j > i+1 {
					return name[i+1 : j]
				}
				return name
			}
		}
		return name
	}
	return name
}

// ShardForBytes is ShardFor for a name held as bytes.
func (p Placement) ShardForBytes(name []byte) uint32 {
	n := p.DataShards
	if n <= 1 {
		return keys.FirstData
	}
	return keys.FirstData + uint32(xxhash.Sum64(groupOf(name))%uint64(n))
}
