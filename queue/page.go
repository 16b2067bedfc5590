package queue

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
	"github.com/flowdb/flowdb/internal/keys"
)

// PageStates are the states Page lists, each in its index's order:
// "leased" by lease expiry (soonest first), "delayed" by due time,
// "dead" and "done" by the time they got there (oldest first).
var PageStates = []string{"leased", "delayed", "dead", "done"}

// MaxPage bounds a Page's limit.
const MaxPage = 1000

// Page lists up to limit tasks of queue in state (one of PageStates), in
// that state's index order, starting after cursor ("" for the first page).
// It returns the cursor of the next page ("" after the last). A page reads
// only its own entries, however long the index: callers page through a
// million tasks one page at a time. A bad state, limit or cursor gets
// ErrInvalid.
func (m *Manager) Page(ctx context.Context, queue, state, cursor string, limit int) ([]TaskInfo, string, error) {
	var table byte
	switch state {
	case "leased":
		table = keys.TableQueueLease
	case "delayed":
		table = keys.TableQueueDelayed
	case "dead":
		table = keys.TableQueueDead
	case "done":
		table = keys.TableQueueDone
	default:
		return nil, "", fmt.Errorf("%w: state %q (want leased, delayed, dead or done)", ErrInvalid, state)
	}
	if limit <= 0 || limit > MaxPage {
		return nil, "", fmt.Errorf("%w: page limit %d (want 1-%d)", ErrInvalid, limit, MaxPage)
	}
	after, err := hex.DecodeString(cursor)
	if err != nil || (len(after) != 0 && len(after) != 16) {
		return nil, "", fmt.Errorf("%w: cursor %q", ErrInvalid, cursor)
	}
	shard := m.d.Placement().ShardFor(queue)
	if err := m.d.ReadBarrier(ctx, shard); err != nil {
		return nil, "", err
	}
	if err := m.exists(ctx, queue); err != nil {
		return nil, "", err
	}
	prefix := keys.NameKey(shard, table, queue)
	lower := prefix
	if len(after) != 0 {
		// Every key of the index has a 16-byte suffix (time, id): the
		// smallest key after the cursor's is the cursor's plus a zero byte.
		lower = append(append(append([]byte(nil), prefix...), after...), 0)
	}
	it, err := m.d.Pebble().NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: keys.PrefixEnd(prefix)})
	if err != nil {
		return nil, "", err
	}
	defer it.Close()
	var out []TaskInfo
	var last []byte
	more := false
	for ok := it.First(); ok; ok = it.Next() {
		if len(out) == limit {
			more = true
			break
		}
		k := it.Key()
		if len(k) != len(prefix)+16 {
			continue
		}
		id := binary.BigEndian.Uint64(k[len(k)-8:])
		t, found, err := m.readTask(shard, queue, id)
		if err != nil {
			return nil, "", err
		}
		last = append(last[:0], k[len(prefix):]...)
		if found {
			out = append(out, info(id, t))
		}
	}
	if err := it.Error(); err != nil {
		return nil, "", err
	}
	if !more {
		return out, "", nil
	}
	return out, hex.EncodeToString(last), nil
}
