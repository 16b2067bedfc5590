package db

import (
	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
)

// PebbleOptions returns the Pebble tuning Open gives a store whose block
// cache is cacheSize bytes (0 for Options.CacheSize's default, 128 MiB; it
// must not be negative): a new block cache, the newest format major
// version, memtables of a quarter of the cache (between 4 and 64 MiB) and
// bloom filters on every level. Open adds what ties Pebble to one store:
// its file system, lock, logger, read-only flag and corruption listener.
// Benchmarks open raw Pebble with these options to compare like with like.
//
// The caller holds a reference to the returned Cache: Unref it once
// Pebble is open (Pebble takes its own).
func PebbleOptions(cacheSize int64) *pebble.Options {
	if cacheSize == 0 {
		o, _ := (&Options{}).withDefaults()
		cacheSize = o.CacheSize
	}
	po := &pebble.Options{
		Cache:              pebble.NewCache(cacheSize),
		FormatMajorVersion: pebble.FormatNewest,
		// Pebble reserves memtable memory out of the block cache, so the
		// memtables (one active, one flushing) must stay well below it.
		MemTableSize: memTableSize(cacheSize),
	}
	// Bloom filters make point reads (applying queue records reads tasks by
	// id) skip the tables that cannot hold the key.
	for i := range po.Levels {
		po.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	return po
}
