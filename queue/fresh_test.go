package queue

import (
	"bytes"
	"testing"
)

// TestFreshTaskMatchesStoredState checks that the state freshTask derives
// from a body is the state the enqueue path used to store for a task made
// ready (so a store written before the state was dropped and one written
// after read the same), and that it refuses a body that does not decode.
func TestFreshTaskMatchesStoredState(t *testing.T) {
	for _, st := range []task{
		{prio: 0, enq: 1, payload: []byte{}},
		{prio: 9, enq: 1767225600000000000, requires: [][]byte{[]byte("gpu"), []byte("py")}, tags: [][]byte{[]byte("t")},
			idem: []byte("k1"), affinity: []byte("a1"), payload: bytes.Repeat([]byte{7}, 300)},
	} {
		const id = 41
		st.size, st.hasBody = int64(len(st.payload)), true
		// What applyEnqueue and makeReady stored before: state ready at
		// seq id+1, attempts 0, nothing else.
		st.state, st.seq = stateReady, id+1
		want := st.encodeState(nil)
		got, ok := freshTask(id, st.encodeBody(nil))
		if !ok {
			t.Fatalf("prio %d: freshTask refused its body", st.prio)
		}
		if g := got.encodeState(nil); !bytes.Equal(g, want) {
			t.Errorf("prio %d: state from body %x, stored state %x", st.prio, g, want)
		}
		if !bytes.Equal(got.payload, st.payload) || got.enq != st.enq || !got.hasBody {
			t.Errorf("prio %d: body fields lost: %+v", st.prio, got)
		}
	}
	for _, bad := range [][]byte{nil, {}, {MaxPriority + 1, 0, 0, 0, 0, 0, 0}, {1, 0xff}} {
		if _, ok := freshTask(1, bad); ok {
			t.Errorf("freshTask accepted %x", bad)
		}
	}
}
