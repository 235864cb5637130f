"""How well `bst issues` finds wrong labels: a synthetic corpus with a known fraction of flipped
labels, cross-validated, then cleanlab's confident learning on the out-of-fold probabilities.

Flips ``--flip`` of the labels (default 5 %) deterministically to another class
(``bst_core.synthetic.flip_labels``), cross-validates HATR with a short config through
``pipeline.cross_validate``, runs ``bst_core.label_issues.run_issues`` on the run and prints the
precision and recall of the flagged set (and of the top-N, N = the number of flips), the chance
precision, and the time of the issue search alone. ``--oof-rows`` also times the search on that many
synthetic out-of-fold rows (the README's "issues on 10k OOF rows").

Run: ``python benchmarks/bench_label_issues.py [--n-per-class 40] [--flip 0.05] [--folds 5] [--epochs 20]``
(``--oof-only``: just the 10k-row timing, no training).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from bst_core import pipeline
from bst_core.config import TrainConfig
from bst_core.label_issues import find_issues, flag_metrics, run_issues
from bst_core.synthetic import flip_labels, make_corpus
from bst_core.taxonomy import CLASS_KEYS


def _flip_benchmark(args: argparse.Namespace) -> None:
    corpus, flipped = flip_labels(make_corpus(n_per_class=args.n_per_class, seed=args.seed), args.flip,
                                  seed=args.seed)
    config = TrainConfig(mode=args.mode, folds=args.folds, epochs=args.epochs, patience=None, seed=args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        result = pipeline.cross_validate(corpus, Path(tmp) / "run", config)
        train_s = time.perf_counter() - start
        start = time.perf_counter()
        found = run_issues(result)
        issues_s = time.perf_counter() - start
    flagged = found.issues["id"].tolist()
    every = flag_metrics(flagged, flipped, len(corpus))
    top = flag_metrics(flagged[:len(flipped)], flipped, len(corpus))
    print(f"synthetic corpus: {len(corpus)} items ({args.n_per_class} per class), {len(flipped)} labels flipped "
          f"({args.flip:.0%}); {args.folds}-fold CV, {args.epochs} epochs, mode {args.mode}: {train_s:.1f} s; "
          f"OOF leaf accuracy against the given labels {result.report.leaf_accuracy:.2%}")
    print(f"flagged {int(every['flagged'])}: precision {every['precision']:.1%}, recall {every['recall']:.1%} "
          f"(chance precision {every['chance_precision']:.1%}); top {len(flipped)}: precision "
          f"{top['precision']:.1%}, recall {top['recall']:.1%}; issue search {issues_s * 1000:.0f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n-per-class", type=int, default=40)
    parser.add_argument("--flip", type=float, default=0.05)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--mode", default="both")
    parser.add_argument("--seed", type=int, default=7, help="seed of the corpus and of the flips")
    parser.add_argument("--oof-rows", type=int, default=10_000)
    parser.add_argument("--oof-only", action="store_true", help="only time the issue search on --oof-rows rows")
    args = parser.parse_args()

    if not args.oof_only:
        _flip_benchmark(args)

    if args.oof_rows:
        rng = np.random.default_rng(0)
        labels = rng.integers(0, len(CLASS_KEYS), args.oof_rows)
        probs = rng.dirichlet(np.full(len(CLASS_KEYS), 0.3), args.oof_rows)
        probs[np.arange(args.oof_rows), labels] += 1.0
        probs /= probs.sum(axis=1, keepdims=True)
        ids = [str(i) for i in range(args.oof_rows)]
        given = [CLASS_KEYS[c] for c in labels]
        times = []
        for _ in range(3):
            start = time.perf_counter()
            find_issues(ids, given, probs)
            times.append(time.perf_counter() - start)
        print(f"issue search on {args.oof_rows} OOF rows: median {np.median(times) * 1000:.0f} ms, "
              f"min {min(times) * 1000:.0f} ms (3 runs)")


if __name__ == "__main__":
    main()
