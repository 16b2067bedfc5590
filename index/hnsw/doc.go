// Package hnsw is flowdb's vector index: an HNSW graph (Malkov & Yashunin)
// over int8 codes (package quant).
//
// # Status
//
// This package holds the in-memory graph: insert (and replace), delete
// with neighbor repair, k-nearest search by the asymmetric quantized
// distance with an optional id filter, and a canonical encoding (Marshal).
// Collections on top of it (records through the write path, persistence in
// Pebble with float32 re-ranking, roaring-bitmap filters, flowctl vec) are
// not built yet.
//
// # Invariants
//
//   - Deterministic: a node's level is floor(-ln(u)/ln(M)) with u drawn from
//     the xxhash of its id; the quantizer is fixed before the first insert;
//     candidate order breaks distance ties on slot number; no map order or
//     clock enters a decision. Two graphs that apply the same operations in
//     the same order marshal to identical bytes (TestDeterministic), on the
//     same build: the float kernels' summation order differs between the
//     portable and the AVX2 implementations, so replicas must run the same
//     build.
//   - Neighbors per node: at most M above level 0 and 2·M at level 0,
//     chosen by the HNSW heuristic (a candidate is kept only if it is closer
//     to the node than to every neighbor kept so far).
//   - Delete repairs: every live node that linked to the deleted one is
//     offered the deleted node's neighbors and re-selects with the
//     heuristic, so recall does not decay under churn (TestChurn). A
//     deleted node's slot is not reused.
//   - Search never returns a deleted vector or the same id twice.
//
// # Memory
//
// Per live vector: its code (Dim bytes), a node (about 64 bytes) and its
// links (4 bytes each: up to 2·M at level 0, M per level above; on average
// about 2·M + M/(M-1) links); a map entry from id to slot (about 40 bytes).
// At 784 dims and M = 16: about 784 + 64 + 4·33 + 40 ≈ 1,020 bytes.
//
// # Concurrency
//
// A Graph is safe for concurrent use: Insert and Delete take its write
// lock, Search its read lock, so searches run in parallel with each other
// and never see a half-made change.
package hnsw
