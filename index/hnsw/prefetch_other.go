//go:build !amd64

package hnsw

import "unsafe"

// prefetch is a no-op where no prefetch instruction is wired up (see
// prefetch_amd64.go).
func prefetch(p unsafe.Pointer, n uintptr) {}
