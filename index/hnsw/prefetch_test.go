package hnsw

import (
	"bytes"
	"testing"
	"unsafe"
)

// TestPrefetchHarmless runs prefetch over ranges of every awkward length
// (none, under a line, line edges, a whole code) at every alignment: it
// must return and change nothing.
func TestPrefetchHarmless(t *testing.T) {
	buf := make([]byte, 4096+64)
	for i := range buf {
		buf[i] = byte(i * 7)
	}
	want := bytes.Clone(buf)
	for off := range 64 {
		for _, n := range []int{0, 1, 63, 64, 65, 784, 3136, 4096} {
			prefetch(unsafe.Pointer(&buf[off]), uintptr(n))
		}
	}
	if !bytes.Equal(buf, want) {
		t.Fatal("prefetch changed memory")
	}
}
