"""Speed of our training loop and ensemble inference at BSD10k size (synthetic embeddings).

Measures, through the public API (``cross_validate`` and ``Ensemble.predict``):

- seconds per epoch (training pass + validation) at batch 64 and training samples per second,
  with plain and with fused Adam, on one fold of a BSD10k-sized corpus (10,956 items, 512 + 512
  dims, 23 classes with BSD10k-like imbalance);
- ensemble inference of 5 fold models on 3,246 items (the evaluation-set size);
- with ``--full``: the wall time of a complete default-protocol 5-fold run.

Compare with ``benchmarks/baseline_loop.py`` (the organizers' per-file data path). Goal: our epoch
≤ 1/3 of the baseline's; ensemble inference < 1 s.

Run: ``python benchmarks/bench_training.py [--threads N] [--full]``
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from bst_core.config import TrainConfig
from bst_core.corpus import CLAP_ENCODER, Corpus, empty_table
from bst_core.ensemble import Ensemble
from bst_core.jobs import Job, Progress
from bst_core.model import HATR
from bst_core.runs import RunFolder
from bst_core.taxonomy import CLASS_KEYS
from bst_core.training import cross_validate

BSD10K_ITEMS = 10_956
EVALUATION_ITEMS = 3_246


def bsd10k_like_labels(n: int = BSD10K_ITEMS, seed: int = 0) -> list[str]:
    """Class keys with BSD10k-like imbalance (largest class ≈ 1,204, smallest ≈ 171 at full size)."""
    weights = np.geomspace(1204, 171, len(CLASS_KEYS))
    counts = np.floor(weights / weights.sum() * n).astype(int)
    counts[: n - counts.sum()] += 1
    labels = np.repeat(np.array(CLASS_KEYS), counts)
    np.random.default_rng(seed).shuffle(labels)
    return labels.tolist()


def synthetic_corpus(n: int = BSD10K_ITEMS, dim: int = 512, seed: int = 0) -> Corpus:
    """Labelled corpus with class-structured embeddings (bst_core.synthetic when available)."""
    labels = bsd10k_like_labels(n, seed)
    try:
        from bst_core.synthetic import make_embeddings

        audio, text = make_embeddings(labels, dim=dim, seed=seed)
    except ImportError:  # the generator is optional for this benchmark
        rng = np.random.default_rng(seed)
        audio = rng.standard_normal((n, dim)).astype(np.float32)
        text = rng.standard_normal((n, dim)).astype(np.float32)
    table = empty_table(n)
    table["id"] = [str(100_000 + i) for i in range(n)]
    table["label"] = labels
    return Corpus(table, audio, text, replace(CLAP_ENCODER, audio_dim=dim, text_dim=dim))


def epoch_seconds(corpus: Corpus, *, fused: bool, epochs: int = 3) -> tuple[float, int]:
    """Mean seconds of epochs 2.. of fold 1 (epoch 1 includes warm-up) and training items per epoch."""
    events: list[Progress] = []
    config = TrainConfig(epochs=epochs, patience=None, only_fold=1, fused_adam=fused)
    with tempfile.TemporaryDirectory() as tmp:
        cross_validate(corpus, Path(tmp) / "run", config, Job(events.append))
        n_train = int(RunFolder(Path(tmp) / "run").fold_metrics(1)["n_train"])
    stamps = [e.elapsed_s for e in events if "epoch" in e.data]
    per_epoch = float(np.mean(np.diff(stamps)))
    return per_epoch, n_train


def ensemble_seconds(n: int = EVALUATION_ITEMS, folds: int = 5, repeats: int = 3, precision: str = "fp32") -> float:
    """Best-of-``repeats`` time of a 5-model ensemble predicting ``n`` items."""
    torch.manual_seed(0)
    models = [HATR("both", 512, 512) for _ in range(folds)]
    ensemble = Ensemble(models, CLAP_ENCODER)
    corpus = synthetic_corpus(n, seed=1)
    ensemble.predict(corpus, precision=precision)  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        ensemble.predict(corpus, precision=precision)
        times.append(time.perf_counter() - start)
    return min(times)


def full_run_seconds(corpus: Corpus) -> float:
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        result = cross_validate(corpus, Path(tmp) / "run", TrainConfig())
    seconds = time.perf_counter() - start
    print(f"full 5-fold default protocol: {seconds:.1f} s; best epochs {result.best_epochs}; "
          f"hF {100 * result.summary['hF'][0]:.2f} ± {100 * result.summary['hF'][1]:.2f} (synthetic data)")
    return seconds


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs timed per optimizer (first is warm-up)")
    parser.add_argument("--full", action="store_true", help="also time a full 5-fold default run")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    corpus = synthetic_corpus()
    print(f"corpus: {len(corpus)} items, 512 + 512 dims, 23 classes")
    for fused in (False, True):
        seconds, n_train = epoch_seconds(corpus, fused=fused, epochs=args.epochs)
        name = "fused Adam" if fused else "plain Adam"
        print(f"our loop, {name:10s}: {seconds:.2f} s/epoch (train {n_train} + validation), "
              f"{n_train / seconds:,.0f} training samples/s")
    for precision in ("fp32", "bf16"):
        print(f"ensemble of 5 fold models on {EVALUATION_ITEMS} items, {precision}: "
              f"{ensemble_seconds(precision=precision):.3f} s")
    if args.full:
        full_run_seconds(corpus)


if __name__ == "__main__":
    main()
