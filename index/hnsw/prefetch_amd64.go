package hnsw

import "unsafe"

// prefetch asks the CPU to bring the n bytes at p into its caches
// (PREFETCHT0 per 64-byte line) without waiting for them: a hint, never a
// fault, with no effect on results.
//
//go:noescape
func prefetch(p unsafe.Pointer, n uintptr)
