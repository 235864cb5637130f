"""Speed of the challenge metric at BSD35k-CS size (goal: a few milliseconds, not seconds).

Run: ``python benchmarks/bench_metrics.py [n]``
"""

from __future__ import annotations

import sys
import time

import numpy as np

from bst_core import metrics
from bst_core.taxonomy import CLASS_KEYS


def main(n: int = 35_000, repeats: int = 20) -> None:
    rng = np.random.default_rng(0)
    truth = [str(x) for x in rng.choice(CLASS_KEYS, size=n)]
    pred = [t if rng.random() < 0.8 else str(rng.choice(CLASS_KEYS)) for t in truth]
    for name, call in [
        ("evaluate", lambda: metrics.evaluate(truth, pred)),
        ("evaluate strict", lambda: metrics.evaluate(truth, pred, absent="strict")),
        ("confusion_matrix", lambda: metrics.confusion_matrix(truth, pred)),
    ]:
        call()
        start = time.perf_counter()
        for _ in range(repeats):
            call()
        print(f"{name:18s} n={n}: {(time.perf_counter() - start) / repeats * 1000:.2f} ms per call")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 35_000)
