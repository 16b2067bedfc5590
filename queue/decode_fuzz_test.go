package queue

import (
	"bytes"
	"testing"
)

// FuzzDecodeTask: arbitrary bytes never panic the task decoders (state,
// body, and a body read as a fresh task's state), and whatever decodes re-encodes to the same bytes
// (decode-reencode-decode).
func FuzzDecodeTask(f *testing.F) {
	f.Add((&task{state: stateReady, prio: 3, size: 1}).encodeState(nil))
	f.Add((&task{state: stateDead, attempts: 5, lastErr: []byte("boom"), doneAt: -1}).encodeState(nil))
	f.Add((&task{prio: 3, payload: []byte("x"), requires: [][]byte{[]byte("gpu")}}).encodeBody(nil))
	f.Add(appendReadyValue(nil, 7, 2, [][]byte{[]byte("gpu")}, []byte("session-9")))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		if tk, ok := decodeState(b); ok {
			re := tk.encodeState(nil)
			tk2, ok := decodeState(re)
			if !ok || !bytes.Equal(re, tk2.encodeState(nil)) {
				t.Fatalf("state re-encode of %x differs", b)
			}
		}
		var body task
		if body.decodeBody(b) {
			re := body.encodeBody(nil)
			var b2 task
			if !b2.decodeBody(re) || !bytes.Equal(re, b2.encodeBody(nil)) {
				t.Fatalf("body re-encode of %x differs", b)
			}
		}
		// A body read as a task without a state record yields a state
		// that decodeState accepts back unchanged.
		if ft, ok := freshTask(1, b); ok {
			st := ft.encodeState(nil)
			if back, ok := decodeState(st); !ok || !bytes.Equal(back.encodeState(nil), st) {
				t.Fatalf("state implied by body %x does not round-trip", b)
			}
		}
		_, _ = decodeMeta(b)
		_, _ = decodeConfig(b)
		if re, ok := decodeReadyValue(b); ok {
			rb := make([][]byte, len(re.requires))
			for i, r := range re.requires {
				rb[i] = []byte(r)
			}
			if !bytes.Equal(appendReadyValue(nil, re.id, re.attempts, rb, []byte(re.affinity)), b) {
				t.Fatalf("ready value re-encode of %x differs", b)
			}
		}
	})
}
