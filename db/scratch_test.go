package db

import (
	"bytes"
	"testing"
)

// TestScratch checks that scratch slices handed out within a frame never
// overlap, even across chunk growth, and that appending past a slice's
// capacity leaves its neighbours alone.
func TestScratch(t *testing.T) {
	var tx Tx
	var got [][]byte
	for i := range 2000 {
		n := 1 + i%97
		b := tx.Scratch(n)
		if len(b) != 0 || cap(b) != n {
			t.Fatalf("Scratch(%d): len %d cap %d", n, len(b), cap(b))
		}
		for j := range n {
			b = append(b, byte(i+j))
		}
		if i%5 == 0 {
			b = append(b, 0xEE) // past the capacity: must reallocate
		}
		got = append(got, b)
	}
	for i, b := range got {
		n := 1 + i%97
		for j := range n {
			if b[j] != byte(i+j) {
				t.Fatalf("slice %d byte %d = %d, want %d: overwritten by a later slice", i, j, b[j], byte(i+j))
			}
		}
	}
	// The next frame reuses the last chunk; an oversized one is dropped.
	a := reuseArena(tx.arena)
	if len(a) != 0 || cap(a) != cap(tx.arena) {
		t.Fatalf("reuseArena: len %d cap %d, want 0 and %d", len(a), cap(a), cap(tx.arena))
	}
	if reuseArena(make([]byte, 10, 2<<20)) != nil {
		t.Fatal("reuseArena kept a 2 MiB chunk")
	}
	if !bytes.Equal(got[0][:1], []byte{0}) {
		t.Fatal("first slice changed")
	}
}
