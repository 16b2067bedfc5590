package queue

import (
	"bytes"
	"testing"

	"github.com/flowdb/flowdb/db"
	"github.com/flowdb/flowdb/internal/keys"
)

// TestScratchKeys checks that the keys apply builds in the frame's scratch
// memory are byte for byte the documented on-disk keys (keys.NameKey), so that the
// allocation-free path changed no format.
func TestScratchKeys(t *testing.T) {
	o := &op{tx: &db.Tx{}, q: &qstate{shard: 7}, name: "jobs-queue"}
	want := func(table byte, parts ...[]byte) []byte { return keys.NameKey(7, table, o.name, parts...) }
	agent := []byte("agent-12")
	cases := []struct {
		name      string
		got, want []byte
	}{
		{"meta", o.key(keys.TableQueueMeta, 0), want(keys.TableQueueMeta)},
		{"body", o.bodyKey(1 << 40), want(keys.TableQueueTask, be64(1<<40))},
		{"state", o.stateKey(42), want(keys.TableQueueState, be64(42))},
		{"ready", o.readyKey(rank{prio: 9, seq: 77}), want(keys.TableQueueReady, rank{prio: 9, seq: 77}.suffix())},
		{"delayed", o.timeKey(keys.TableQueueDelayed, -5, 3), want(keys.TableQueueDelayed, ts(-5), be64(3))},
		{"lease", o.timeKey(keys.TableQueueLease, 1<<50, 9), want(keys.TableQueueLease, ts(1<<50), be64(9))},
	}
	for _, c := range cases {
		if !bytes.Equal(c.got, c.want) {
			t.Errorf("%s key %x, want %x", c.name, c.got, c.want)
		}
	}
	// Values: the scratch encodings equal the allocating ones.
	tk := task{state: stateLeased, prio: 3, attempts: 2, seq: 5, leaseExp: 99, token: 1234, size: 3,
		agent: agent, result: []byte("ok"), lastErr: []byte("boom"), requires: [][]byte{[]byte("gpu")},
		tags: [][]byte{[]byte("a"), []byte("b")}, idem: []byte("k"), payload: []byte("abc")}
	if got, w := tk.encodeState(o.tx.Scratch(tk.stateSize())), tk.encodeState(nil); !bytes.Equal(got, w) || len(got) > tk.stateSize() {
		t.Errorf("state %x (bound %d), want %x", got, tk.stateSize(), w)
	}
	if got, w := tk.encodeBody(o.tx.Scratch(tk.bodySize())), tk.encodeBody(nil); !bytes.Equal(got, w) || len(got) > tk.bodySize() {
		t.Errorf("body %x (bound %d), want %x", got, tk.bodySize(), w)
	}
	m := meta{nextSeq: 1 << 62, ready: -1, delayed: 1 << 40, enqueued: 1 << 63}
	if got := m.encode(o.tx.Scratch(metaSize)); len(got) > metaSize {
		t.Errorf("meta encoding of %d bytes, bound %d", len(got), metaSize)
	}
	if got, w := appendReadyValue(o.tx.Scratch(32), 5, 2, tk.requires, nil), appendReadyValue(nil, 5, 2, tk.requires, nil); !bytes.Equal(got, w) {
		t.Errorf("ready value %x, want %x", got, w)
	}
}
