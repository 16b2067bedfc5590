// Package hnsw is flowdb's vector index: an HNSW graph (Malkov & Yashunin)
// over int8 codes (package quant).
//
// # Collections
//
// A Manager (Attach) keeps named collections through db's one write path.
// Create, Upsert (a batch: all or none) and Delete are records; apply
// stores each float32 vector and its tags in Pebble and changes the graph,
// and writes back exactly the graph nodes the record changed. Until a
// collection holds TrainSize vectors (default 1,000) it has no graph and
// Search is exact over the stored vectors; then the proposer trains the
// quantizer on the first TrainSize vectors by id and proposes a train
// record carrying its parameters, whose apply builds the graph from the
// stored vectors in id order. Search traverses the graph on int8 codes with
// Graph.Beam(ef, k) candidates and re-ranks the best SearchOptions.Rerank
// of them (default 2·k) with the float32 vectors read from Pebble,
// returning exact distances and tags. On open the graph is loaded
// from its node and code tables, without a rebuild.
//
// # Quantized recall: beam and re-rank width
//
// Contract: a quantized collection's recall@10 stays within 0.001 of the
// same data in a float32 graph (Config.Float) at every ef, measured on
// Fashion-MNIST (784 dims) and scikit-learn's digits (64 dims) under L2 and
// cosine (bench/recallgap). Three things keep it there:
//
//   - The links. Neighbor selection compares codes by quant.SymDistance;
//     with sound quantizer parameters the int8 graph's links, searched
//     with float32 distances, recall as the float32 graph does
//     (recallgap's "links" column). (A quantizer that gave a constant
//     dimension scale 1 rounded every other symmetric weight to 0, and
//     that was most of the gap; see quant's doc.)
//   - The traversal's distance. Under L2 and cosine the beam is ordered by
//     the int8 estimate corrected by each code's residual (R² under L2,
//     K + R² under cosine: what the quantization error is known to add),
//     whose remaining error shrinks with the candidate's distance to the
//     query; under inner products by the plain asymmetric distance.
//   - The beam width. Graph.Beam(ef, k) is max(ef, k) plus ⌈k/4⌉ places on
//     a quantized graph: the int8 estimates still misorder candidates
//     whose exact distances are close, which at ef near k costs a beam of
//     exactly ef a few true neighbors. The extra places cost most at small
//     ef, where they are most of the gain.
//
// The re-rank depth is not what decides: re-ranking 2·k, 3·k, 4·k or every
// candidate gave the same recall at every ef, so the default stays 2·k.
//
// Re-ranking reads only what can rank. Each code keeps its quantization
// error's quant.Residual (R = ‖x − x̂‖, K = ⟨x̂, x − x̂⟩), so the graph
// returns with every candidate an interval [Lo, Hi] that holds its exact
// distance (quant.Query.Bounds). Rerank reads the candidates in ascending
// order of Lo, and stops at the first whose Lo exceeds the k-th smallest of
// the upper bounds, where each candidate read counts with its exact
// distance (so the threshold falls as it reads) and one found deleted
// meanwhile does not count: every candidate left has k others nearer. The
// results are exactly those of re-ranking every candidate
// (TestRerankBounds, and TestRerank on random intervals). On synthetic
// clustered data it reads 12.3 of 20 candidates, against 14.6 for the
// fixed threshold (the k-th smallest Hi alone) it replaced; on
// Fashion-MNIST (bench/vecbench) about 10 under L2, whose pixels quantize
// almost exactly, and 14 under cosine (from 15.4-17.8), where the residual
// is wide against the gaps between neighbors.
//
// Compaction: each re-rank read is a prefix seek, which probes every level
// whose tables may hold the key. (The reads of one search share one Pebble
// iterator, which keeps the tables' index blocks between reads: a few
// percent faster than a Get per read, more when every block is cached.) A
// bulk load leaves the vectors spread over L0, L5 and L6, and Pebble does
// not merge them further while the store only reads. Manager.Compact
// (which `flowctl vec import` runs when it ends) moves the collection's
// tables to the last level, which speeds up searches by about a tenth on
// Fashion-MNIST and takes about a second for 60,000 vectors.
//
// Speed against memory: a search costs the walk over int8 codes plus a
// Pebble read per re-ranked candidate (about 10 under L2 on Fashion-MNIST,
// 14 under cosine), each about 2 µs of seek with its block cached and
// several times that without. Under cosine at recall 0.95-0.98 that keeps
// a collection below hnswlib's queries/s with db's default block cache,
// and near it only with twice that cache. A cache of decoded vectors in
// front of Pebble was tried and not kept: at equal memory it was no faster
// than the block cache alone.
//
// The measurements behind these statements, with their dates and
// commands, are in bench/RESULTS.md (index/hnsw), and the peer comparisons
// with hnswlib in bench/BENCHMARKS.md.
//
// Filters: each tag keeps a roaring bitmap of the ids that carry it
// (github.com/RoaringBitmap/roaring/v2, rebuilt on open from the tag
// index). A filtered search intersects the bitmaps; an allowed set of at
// most ExactFilterMax ids is scanned exactly, a larger one searched through
// the graph with ef widened by the selectivity, falling back to the exact
// scan if the graph yields fewer than min(k, allowed). TestFilteredSearch
// covers filters matching 0.1% to 100% against brute force.
//
// Quantization off (Config.Float): the graph keeps the float32 vectors
// themselves, so its distances are exact and Search reads only the k
// results' tags from Pebble; there is no quantizer and no training step
// (the graph is built from the first insert), and no code table (on open
// the vectors load from the vector table). It costs 4·Dim bytes per vector
// in RAM instead of Dim: the choice for small collections, or for data the
// int8 codes describe badly.
//
// # Transactions
//
// TxUpsert and TxDelete add the same records as Upsert and Delete to a
// db.Txn (db/doc.go states the contract). Inside a transaction they are
// validated in order (collection, dimension, finite values, tags) where
// they stand, and their changes (vectors, tags, counts, graph links) are
// applied with db.Tx.Defer once every operation of the transaction passed:
// a graph insert cannot be taken back cheaply, so a refused transaction
// never touches the graph. Training follows a committed TxUpsert as it
// follows Upsert. Creation, training and drop are not transactional.
//
// # Tables (a collection's data shard, placed by name)
//
//	0x40 def   name             -> config | quantizer parameters | entry slot
//	0x41 vec   name | id (8)    -> float32 vector (LE, normalized under cosine) | tags
//	0x42 node  name | slot (4)  -> id | level | deleted | links per level
//	0x43 code  name | slot (4)  -> int8 code | residual R, K (float32 LE) (live nodes; none with quantization off)
//	0x44 tag   name | len(tag) | tag | id (8)  (tag index)
//
// A code stored without its residual (by a build before residuals were
// kept) loads with an unbounded interval: such a vector is always read.
//
// # Graph invariants
//
//   - Deterministic: a node's level is floor(-ln(u)/ln(M)) with u drawn from
//     the xxhash of its id; the quantizer is fixed before the first insert;
//     candidate order breaks distance ties on slot number; no map order or
//     clock enters a decision. Two graphs that apply the same operations in
//     the same order marshal to identical bytes (TestDeterministic), on any
//     CPU and build: a quantized graph's distances come from an exact
//     integer kernel and scalar float64 steps (see quant's doc), and apply
//     normalizes cosine vectors with a scalar sum, so the portable, AVX2 and
//     AVX-512 builds agree (TestDeterministicAcrossKernels,
//     TestCollectionDeterministicAcrossKernels). A graph with quantization
//     off uses the float32 kernels, whose summation order differs between
//     implementations: its replicas must run the same build on CPUs with
//     the same features.
//   - Neighbors per node: at most M above level 0 and 2·M at level 0,
//     chosen by the HNSW heuristic (a candidate is kept only if it is closer
//     to the node than to every neighbor kept so far).
//   - Delete repairs: the deleted node's neighbors, and their neighbors
//     that linked to it, are offered the deleted node's neighbors and
//     re-select with the heuristic, so recall does not decay under churn
//     (TestChurn). A delete costs O(M²) distance evaluations, not a scan; a
//     link that repair misses is stepped over by every search. A deleted
//     node's slot is not reused.
//   - Search never returns a deleted vector or the same id twice.
//   - Every live vector is reachable from the entry point by links, after
//     any sequence of inserts, updates and deletes (reach.go): a node that
//     loses its last incoming level-0 link, or a new node no neighbor kept,
//     gets one from the nearest node a search for it reaches, at once; a
//     set cut off together is reattached by a full walk every
//     max(1,024, live/4) operations. Both are deterministic.
//     Graph.Unreachable (and so db.Check) reports any node a walk misses.
//
// # Memory
//
// Per slot (live or deleted): its code (Dim bytes), Term (4 bytes) and
// Residual (8 bytes; under inner products also ‖x̂‖², 4 bytes), its
// level-0 link record (a count and 2·M slots: 4·(2·M+1) bytes), its count
// of incoming level-0 links (4 bytes, for reachability), a node (48
// bytes: id, level, upper-level links header); per node above level 0
// (1/M of them), M links per level; per live vector a map entry from id to
// slot (about 40 bytes). Codes, vectors and link records live in chunked
// slabs of 1,024 slots, so growth neither copies them nor leaves more than
// half a chunk unused. At 784 dims and M = 16: 784 + 4 + 8 + 132 + 48 +
// 40 + about 8 ≈ 1,024 bytes (1,028 under cosine); bench/vecbench measured
// 1,058 bytes per vector of Go heap on Fashion-MNIST under L2 and 1,068
// under cosine (float32 alone would be 3,136; those stay in Pebble). With quantization off the code is
// replaced by the float32 vector: 4·Dim + about 230 bytes.
//
// Codes are read at random, one per distance: a search first collects a
// node's unvisited neighbors, asks the CPU to fetch all their codes
// (PREFETCHT0 on amd64, nothing elsewhere), then measures them in link
// order, so the fetches overlap instead of each distance waiting on
// memory. The prefetch is a hint: results are the same with or without it.
//
// # Concurrency
//
// A Graph is safe for concurrent use: Insert, InsertBatch and Delete take
// its write lock, Search its read lock, so searches run in parallel with
// each other and never see a half-made change. InsertBatch, holding the
// write lock, searches each 128-vector sub-batch's neighbor candidates on
// GOMAXPROCS goroutines against the graph as it stood before the
// sub-batch (read-only), then links the vectors in order; the result does
// not depend on the number of goroutines (TestInsertBatch), and its recall
// equals one-at-a-time inserts. Collections insert through it.
//
// # Figures
//
// Manager.Stats reports a collection's size and, in Stats.Search, the
// distribution (internal/histo) of this Manager's Search latency on it:
// one sample per search that answered, timed from after its checks (the
// collection found, the query valid) to its hits; refused searches (wrong
// dimension, unknown collection) are not counted.
// The histograms live beside the applied state, not in it: apply never
// reads or writes them, Drop forgets a collection's, and a reopened store
// starts them empty.
package hnsw
