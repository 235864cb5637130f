"""Latency of "more like this" (exact numpy cosine search, bst_core.similar) on a large source.

Builds an in-memory corpus of ``--n`` random unit vectors (default 35,000 x 512 per modality; the
search cost does not depend on the values), then times the index build once and ``--queries``
single-item queries per space (median and 95th percentile).

Run: ``python benchmarks/bench_similar.py [--n 35000] [--dim 512] [--k 10] [--queries 50]``
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from bst_core.corpus import CLAP_ENCODER, Corpus, empty_table
from bst_core.similar import SPACES, SimilarityIndex


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=35_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--queries", type=int, default=50)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    table = empty_table(args.n)
    table["id"] = [str(i) for i in range(args.n)]
    audio = rng.standard_normal((args.n, args.dim)).astype(np.float32)
    text = rng.standard_normal((args.n, args.dim)).astype(np.float32)
    corpus = Corpus(table, audio, text, CLAP_ENCODER, None, "synthetic", [], synthetic=True)
    queries = [str(i) for i in rng.choice(args.n, size=args.queries, replace=False)]
    print(f"{args.n} items x {args.dim} dims, k={args.k}, {args.queries} queries")
    for space in SPACES:
        start = time.perf_counter()
        index = SimilarityIndex(corpus, space)
        build = time.perf_counter() - start
        index.neighbours(queries[0], args.k)  # warm-up
        times = []
        for q in queries:
            start = time.perf_counter()
            index.neighbours(q, args.k)
            times.append(time.perf_counter() - start)
        ms = np.array(times) * 1000
        print(f"{space:>5}: build {build * 1000:7.1f} ms; query median {np.median(ms):6.2f} ms, "
              f"p95 {np.percentile(ms, 95):6.2f} ms, max {ms.max():6.2f} ms")


if __name__ == "__main__":
    main()
