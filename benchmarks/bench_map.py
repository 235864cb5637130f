"""Time and peak memory of the map of the sounds (bst_core.embedding_map) on a large synthetic source.

Builds an in-memory corpus of ``--n`` items (default 35,000; synthetic class-structured 512-d unit
vectors from ``bst_core.synthetic.make_embeddings``, 23 classes) with a source folder so it is
cacheable, then, each method in a fresh child process (so its peak RSS is its own):

- ``pca``:  ``compute_map(method="pca")`` (cache bypassed), then the cache write/read path;
- ``umap``: ``compute_map(method="umap")`` (cache bypassed; umap-learn single-threaded because
  ``random_state`` is fixed), then ``cached_map`` (what a second open of the same store costs).

The vectors are generated once by the parent and saved; each child loads them, so its peak RSS
(``ru_maxrss``: Python, numpy, numba and the corpus itself, reported as the baseline before the
map) is that of the map computation. The first UMAP run on a machine also compiles
umap-learn's numba kernels (cached on disk afterwards); run twice and quote the second.

Run: ``python benchmarks/bench_map.py [--n 35000] [--dim 512] [--space audio] [--methods pca umap]``
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(n: int, space: str, method: str, cache: str) -> dict[str, float]:
    import os

    import numpy as np

    os.environ["BST_CACHE_DIR"] = cache
    from bst_core.corpus import CLAP_ENCODER, Corpus, empty_table
    from bst_core.embedding_map import cached_map, compute_map, content_key
    from bst_core.taxonomy import CLASS_KEYS

    audio, text = np.load(Path(cache) / "audio.npy"), np.load(Path(cache) / "text.npy")
    table = empty_table(n)
    table["id"] = [str(i) for i in range(n)]
    table["label"] = [CLASS_KEYS[i % len(CLASS_KEYS)] for i in range(n)]
    corpus = Corpus(table, audio, text, CLAP_ENCODER, Path(cache) / "source", "synthetic", [], synthetic=True)
    start = time.perf_counter()
    compute_map(corpus.subset(np.arange(n) < 200), space, method, use_cache=False)   # imports, numba JIT
    warm_s = time.perf_counter() - start
    baseline = _rss_mb()
    start = time.perf_counter()
    result = compute_map(corpus, space, method, use_cache=False)
    compute_s = time.perf_counter() - start
    peak = _rss_mb()
    start = time.perf_counter()
    content_key(corpus, space, method)
    key_s = time.perf_counter() - start
    compute_map(corpus, space, method)            # computes again and writes the cache
    start = time.perf_counter()
    again = cached_map(corpus, space, method)
    cached_s = time.perf_counter() - start
    assert again is not None and again.method == result.method
    return {"warm_s": warm_s, "compute_s": compute_s, "key_s": key_s, "cached_s": cached_s, "baseline_mb": baseline,
            "peak_mb": peak}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=35_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--space", default="audio", choices=("audio", "text", "both"))
    parser.add_argument("--methods", nargs="+", default=["pca", "umap"], choices=("pca", "umap"))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        method, cache = args.child.split(":", 1)
        print(json.dumps(child(args.n, args.space, method, cache)))
        return
    print(f"{args.n} items x {args.dim} dims, space {args.space}")
    with tempfile.TemporaryDirectory() as cache:
        import numpy as np

        from bst_core.synthetic import make_embeddings
        from bst_core.taxonomy import CLASS_KEYS

        audio, text = make_embeddings([CLASS_KEYS[i % len(CLASS_KEYS)] for i in range(args.n)], dim=args.dim, seed=0)
        np.save(Path(cache) / "audio.npy", audio)
        np.save(Path(cache) / "text.npy", text)
        del audio, text
        for method in args.methods:
            out = subprocess.run([sys.executable, __file__, "--n", str(args.n), "--space", args.space,
                                  "--child", f"{method}:{cache}"],
                                 check=True, capture_output=True, text=True)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"{method:>4}: compute {r['compute_s']:7.2f} s (first call in a process, on 200 items: imports and "
                  f"JIT {r['warm_s']:.1f} s); cache key {r['key_s'] * 1000:6.0f} ms; cached "
                  f"read {r['cached_s'] * 1000:6.0f} ms; peak RSS {r['peak_mb']:6.0f} MB "
                  f"(corpus loaded: {r['baseline_mb']:.0f} MB)")


if __name__ == "__main__":
    main()
