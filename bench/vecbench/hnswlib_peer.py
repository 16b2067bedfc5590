#!/usr/bin/python3
"""hnswlib on the same data as vecbench, in the same run.

Usage: hnswlib_peer.py DATA_DIR BASE QUERIES M EF_CONSTRUCTION THREADS METRIC EFS
  BASE: base vectors to index (0: all).
  METRIC: l2 (raw) or cosine (hnswlib normalizes); EFS: comma-separated.
Prints one JSON object: build seconds, bytes per vector, and per ef the
single-threaded queries/s and recall@10 against numpy brute force.
"""
import gzip, json, sys, time, resource
import numpy as np
import hnswlib

def idx(path, limit=None):
    with gzip.open(path, "rb") as f:
        data = f.read()
    n, rows, cols = np.frombuffer(data[4:16], dtype=">u4")
    n = int(n) if limit is None else min(int(n), limit)
    return np.frombuffer(data[16:16 + n * rows * cols], dtype=np.uint8).reshape(n, rows * cols).astype(np.float32)

def main():
    d, nb, nq, m, efc, threads, metric, efs = sys.argv[1:9]
    base = idx(d + "/train-images-idx3-ubyte.gz", int(nb) or None)
    queries = idx(d + "/t10k-images-idx3-ubyte.gz", int(nq))
    if metric == "cosine":
        bn = base / np.linalg.norm(base, axis=1, keepdims=True)
        qn = queries / np.linalg.norm(queries, axis=1, keepdims=True)
        gt = np.argsort(-(qn @ bn.T), axis=1)[:, :10]
        space = "cosine"
    else:
        d2 = (queries ** 2).sum(1)[:, None] - 2 * queries @ base.T + (base ** 2).sum(1)[None, :]
        gt = np.argsort(d2, axis=1)[:, :10]
        space = "l2"
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    index = hnswlib.Index(space=space, dim=base.shape[1])
    index.init_index(max_elements=base.shape[0], M=int(m), ef_construction=int(efc), random_seed=100)
    index.set_num_threads(int(threads))
    t0 = time.perf_counter()
    index.add_items(base, np.arange(base.shape[0]))
    build = time.perf_counter() - t0
    # hnswlib's own accounting: per element, the data (4 B per dim), level-0
    # links (2M + 1 ints), the label, plus upper-level links.
    size_data = base.shape[1] * 4 + (2 * int(m) + 1) * 4 + 8
    index.set_num_threads(1)
    out = {"build_s": build, "bytes_per_vector_level0": size_data, "runs": []}
    # An untimed pass first, as vecbench makes one for flowdb (warmSweep).
    index.set_ef(int(efs.split(",")[0]))
    index.knn_query(queries[:200], k=10, num_threads=1)
    for ef in [int(x) for x in efs.split(",")]:
        index.set_ef(ef)
        t0 = time.perf_counter()
        labels, _ = index.knn_query(queries, k=10, num_threads=1)
        el = time.perf_counter() - t0
        hits = sum(len(set(labels[i]) & set(gt[i])) for i in range(queries.shape[0]))
        out["runs"].append({"ef": ef, "qps": queries.shape[0] / el, "recall": hits / (10.0 * queries.shape[0])})
    print(json.dumps(out))

main()
