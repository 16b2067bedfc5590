package queue

import (
	"bytes"
	"testing"
)

// FuzzDecodeTask: arbitrary bytes never panic the task decoder, and whatever
// decodes re-encodes to the same bytes (decode-reencode-decode).
func FuzzDecodeTask(f *testing.F) {
	f.Add((&task{state: stateReady, prio: 3, payload: []byte("x"), requires: [][]byte{[]byte("gpu")}}).encode(nil))
	f.Add((&task{state: stateDead, attempts: 5, lastErr: []byte("boom"), doneAt: -1}).encode(nil))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		tk, ok := decodeTask(b)
		if !ok {
			return
		}
		re := tk.encode(nil)
		tk2, ok := decodeTask(re)
		if !ok || !bytes.Equal(re, tk2.encode(nil)) {
			t.Fatalf("re-encode of %x differs", b)
		}
		_, _ = decodeMeta(b)
		_, _ = decodeConfig(b)
		_, _, _ = decodeReadyValue(b)
	})
}
