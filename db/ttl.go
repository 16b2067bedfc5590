package db

import (
	"context"
	"errors"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/flowdb/flowdb/internal/keys"
)

// reapLoop reclaims expired keys every TTLReapInterval until Close.
func (d *DB) reapLoop() {
	defer close(d.reaperDone)
	t := time.NewTicker(d.opts.TTLReapInterval)
	defer t.Stop()
	for {
		select {
		case <-d.reaperStop:
			return
		case <-t.C:
			if _, err := d.ReapExpired(context.Background()); err != nil &&
				!errors.Is(err, ErrClosed) {
				d.opts.Logger.Warn("flowdb: ttl reaper", "err", err)
			}
		}
	}
}

// ReapExpired reclaims keys whose TTL has passed, in records of at most
// TTLReapBatch keys, and returns how many it deleted. The background reaper
// calls it; tests and tools may call it directly. On a replica it reaps the
// shards this replica leads (DB.Leads).
func (d *DB) ReapExpired(ctx context.Context) (int, error) {
	total := 0
	for shard := range d.placement.Data() {
		if !d.Leads(shard) {
			continue
		}
		for {
			entries, err := d.expiredEntries(shard)
			if err != nil {
				return total, err
			}
			if len(entries) == 0 {
				break
			}
			res, err := d.Propose(ctx, expireRecord(entries))
			if err != nil {
				return total, err
			}
			total += int(res.N)
			if len(entries) < d.opts.TTLReapBatch {
				break
			}
		}
	}
	return total, nil
}

// expiredEntries lists up to TTLReapBatch TTL index entries of shard whose
// expiry has passed.
func (d *DB) expiredEntries(shard uint32) ([]expireEntry, error) {
	if err := d.enter(); err != nil {
		return nil, err
	}
	defer d.leave()
	lower := keys.Prefix(shard, keys.TableKVTTL)
	upper := keys.AppendInt64(keys.Prefix(shard, keys.TableKVTTL), d.opts.Now().UnixNano()+1)
	it, err := d.pdb.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return nil, err
	}
	var out []expireEntry
	for ok := it.First(); ok && len(out) < d.opts.TTLReapBatch; ok = it.Next() {
		k := it.Key()[keys.PrefixLen:]
		if len(k) < 8 {
			continue
		}
		ns, key, ok := splitNSKey(k[8:])
		if !ok || len(key) == 0 {
			continue
		}
		out = append(out, expireEntry{
			ns: append([]byte(nil), ns...), key: append([]byte(nil), key...), expiry: keys.Int64(k[:8]),
		})
	}
	if err := it.Close(); err != nil {
		return nil, err
	}
	return out, nil
}
