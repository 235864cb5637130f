"""Training speed at BSD10k size, ours against the organizers' baseline in the same run.

One command measures, on a BSD-layout synthetic folder of 10,956 sounds (512 + 512 dims, 23
classes with BSD10k-like imbalance, per-sound ``.npy`` files as the datasets ship them):

1. **Whole process, one fold × N epochs** (default 5), ``both`` mode, batch 64: ``bst train DATA
   --only-fold 1 --epochs N --patience 0`` against ``benchmarks/baseline_loop.py --dataset DATA
   --fold 1 --epochs N`` (the organizers' per-file DataLoader loop), run back to back, alternating
   which goes first, ``--repeats`` times; wall time from process start to exit. The ratio per
   pair is printed, then the median. Our process reads the dataset's embedding cache (built once
   before timing, as any second open does); the baseline reads its .npy files from the page cache.
2. **Per epoch** (training + validation) and training samples/s: ours from the progress events
   of an in-process ``cross_validate`` (epochs 2.., the first pays warm-up), the baseline's from
   its own per-epoch lines in the same pairs.
3. ``--full``: the wall time of a complete default-protocol 5-fold run (≤ 100 epochs, patience
   10) as one ``bst train`` process, with its hF, and the baseline's estimated time for as many
   epochs (its per-epoch time × our epochs; the baseline itself is not run for 5 × 100 epochs).
4. The ensemble of 5 fold models predicting 3,246 items (the evaluation-set size), fp32 and bf16.

Run: ``python benchmarks/bench_training.py`` (pairs + per-epoch + ensemble, ~5 min on a quiet
2-core machine), ``--full`` adds the 5-fold run, ``--quick`` is one pair of 2 epochs and no
ensemble (~1 min). ``--bst-pythonpath DIR`` times another checkout's ``bst_core`` (e.g. the
previous landing, unpacked with ``git archive``) instead of this one.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from bst_core.corpus import Corpus

REPO = Path(__file__).resolve().parents[1]
BSD10K_ITEMS = 10_956
EVALUATION_ITEMS = 3_246


def bsd10k_like_labels(n: int = BSD10K_ITEMS, seed: int = 0) -> list[str]:
    """Class keys with BSD10k-like imbalance (largest class ≈ 1,204, smallest ≈ 171 at full size)."""
    from bst_core.taxonomy import CLASS_KEYS

    weights = np.geomspace(1204, 171, len(CLASS_KEYS))
    counts = np.floor(weights / weights.sum() * n).astype(int)
    counts[: n - counts.sum()] += 1
    labels = np.repeat(np.array(CLASS_KEYS), counts)
    np.random.default_rng(seed).shuffle(labels)
    return labels.tolist()


def synthetic_corpus(n: int = BSD10K_ITEMS, dim: int = 512, seed: int = 0) -> Corpus:
    """The labelled corpus in memory (class-structured embeddings of bst_core.synthetic)."""
    from bst_core.corpus import CLAP_ENCODER, Corpus, empty_table
    from bst_core.synthetic import make_embeddings

    labels = bsd10k_like_labels(n, seed)
    audio, text = make_embeddings(labels, dim=dim, seed=seed)
    table = empty_table(n)
    table["id"] = [str(100_000 + i) for i in range(n)]
    table["label"] = labels
    return Corpus(table, audio, text, replace(CLAP_ENCODER, audio_dim=dim, text_dim=dim))


def write_dataset(root: Path, n: int = BSD10K_ITEMS) -> Path:
    """The corpus as a BSD-layout folder: metadata CSV and one .npy per sound and modality."""
    from bst_core import taxonomy
    from bst_core.corpus import SYNTHETIC_MARKER

    corpus = synthetic_corpus(n)
    (root / "metadata").mkdir(parents=True)
    (root / SYNTHETIC_MARKER).write_text("Synthetic benchmark data (benchmarks/bench_training.py).\n")
    pd.DataFrame({"sound_id": corpus.ids, "class": corpus.labels,
                  "class_idx": [taxonomy.BY_KEY[k].class_idx for k in corpus.labels],
                  "class_top": [taxonomy.top_of(k) for k in corpus.labels],
                  "title": [f"sound {i}" for i in corpus.ids], "tags": "", "description": ""}
                 ).to_csv(root / "metadata" / "BSD10k_metadata.csv", index=False)
    for name, matrix in (("clap_audio_embeddings", corpus.audio), ("clap_text_embeddings", corpus.text)):
        folder = root / "features" / name
        folder.mkdir(parents=True)
        for sound_id, vector in zip(corpus.ids, matrix, strict=True):
            np.save(folder / f"{sound_id}.npy", vector)
    return root


def _run(cmd: list[str], env: dict[str, str]) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return seconds, done.stdout


def whole_process_pairs(data: Path, tmp: Path, env: dict[str, str], *, epochs: int, repeats: int,
                        bst_env: dict[str, str]) -> tuple[list[float], list[float], list[float]]:
    """(ours, baseline) wall seconds per repeat, alternating the order; and the baseline's epochs."""
    ours, theirs, baseline_epochs = [], [], []
    bst = [sys.executable, "-m", "bst_core.cli", "train", str(data), "--only-fold", "1", "--epochs", str(epochs),
           "--patience", "0", "--quiet"]
    baseline = [sys.executable, str(REPO / "benchmarks" / "baseline_loop.py"), "--dataset", str(data),
                "--fold", "1", "--epochs", str(epochs)]
    for r in range(repeats):
        for which in ((0, 1) if r % 2 == 0 else (1, 0)):
            if which == 0:
                seconds, _ = _run([*bst, "--out", str(tmp / f"run-{r}")], bst_env)
                ours.append(seconds)
            else:
                seconds, out = _run(baseline, env)
                theirs.append(seconds)
                epoch_s = [float(x) for x in re.findall(r"baseline epoch \d+: ([\d.]+) s", out)]
                baseline_epochs.extend(epoch_s[1:] if len(epoch_s) > 1 else epoch_s)
        print(f"  pair {r + 1}: bst train {ours[-1]:.1f} s, baseline {theirs[-1]:.1f} s "
              f"→ {theirs[-1] / ours[-1]:.2f}x", flush=True)
    return ours, theirs, baseline_epochs


def our_epoch_seconds(corpus: Corpus, epochs: int) -> tuple[float, int]:
    """Mean seconds of epochs 2.. of fold 1 in this process (epoch 1 pays warm-up), and n_train."""
    from bst_core.config import TrainConfig
    from bst_core.jobs import Job, Progress
    from bst_core.runs import RunFolder
    from bst_core.training import cross_validate

    events: list[Progress] = []
    config = TrainConfig(epochs=max(epochs, 2), patience=None, only_fold=1)
    with tempfile.TemporaryDirectory() as tmp:
        cross_validate(corpus, Path(tmp) / "run", config, Job(events.append))
        n_train = int(RunFolder(Path(tmp) / "run").fold_metrics(1)["n_train"])
    stamps = [e.elapsed_s for e in events if "epoch" in e.data]
    return float(np.mean(np.diff(stamps))), n_train


def ensemble_seconds(n: int = EVALUATION_ITEMS, folds: int = 5, repeats: int = 3, precision: str = "fp32",
                     device: str = "cpu") -> float:
    """Best-of-``repeats`` time of a 5-model ensemble predicting ``n`` items (results back on the CPU)."""
    import torch

    from bst_core.corpus import CLAP_ENCODER
    from bst_core.ensemble import Ensemble
    from bst_core.model import HATR

    torch.manual_seed(0)
    ensemble = Ensemble([HATR("both", 512, 512).to(device) for _ in range(folds)], CLAP_ENCODER)
    corpus = synthetic_corpus(n, seed=1)
    ensemble.predict(corpus, precision=precision)  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        ensemble.predict(corpus, precision=precision)
        times.append(time.perf_counter() - start)
    return min(times)


def full_run(data: Path, tmp: Path, bst_env: dict[str, str], workers: int | None) -> tuple[float, str]:
    cmd = [sys.executable, "-m", "bst_core.cli", "train", str(data), "--out", str(tmp / "full"), "--json"]
    if workers:
        cmd += ["--workers", str(workers)]
    seconds, out = _run(cmd, bst_env)
    import json

    result = json.loads(out)
    hf = result["summary"]["hF"]
    epochs = [f["best_epoch"] for f in result["folds"]]
    return seconds, f"hF {100 * hf['mean']:.2f} ± {100 * hf['std']:.2f} (synthetic data), best epochs {epochs}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one pair of 2-epoch processes, no ensemble")
    parser.add_argument("--epochs", type=int, default=5, help="epochs of the one-fold processes (default 5)")
    parser.add_argument("--repeats", type=int, default=3, help="process pairs (default 3)")
    parser.add_argument("--full", action="store_true", help="also time a full default 5-fold `bst train`")
    parser.add_argument("--workers", type=int, help="--workers for the full run (default: bst's default)")
    parser.add_argument("--bst-pythonpath", type=Path, help="time the bst_core found here instead of this checkout's")
    args = parser.parse_args(argv)
    if args.quick:
        args.epochs, args.repeats = 2, 1
    sys.path.insert(0, str(REPO))
    import torch

    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        env = {**os.environ, "BST_CACHE_DIR": str(tmp / "cache"), "BST_DATA_DIR": str(tmp / "data"),
               "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "benchmarks")])}
        bst_env = dict(env)
        if args.bst_pythonpath:
            bst_env["PYTHONPATH"] = str(args.bst_pythonpath.resolve())
        data = write_dataset(tmp / "BSD10k")
        _run([sys.executable, "-m", "bst_core.cli", "train", str(data), "--out", str(tmp / "warm"), "--only-fold", "1",
              "--epochs", "1", "--quiet"], bst_env)  # builds the dataset's embedding cache, as a first open does
        print(f"dataset: {data} ({BSD10K_ITEMS} sounds, per-sound .npy files; embedding cache built)")

        print(f"whole process, 1 fold × {args.epochs} epochs, both, batch 64 (ours vs baseline, alternating):")
        ours, theirs, baseline_epochs = whole_process_pairs(data, tmp, env, epochs=args.epochs, repeats=args.repeats,
                                                            bst_env=bst_env)
        ratios = [t / o for o, t in zip(ours, theirs, strict=True)]
        print(f"  median: bst train {statistics.median(ours):.1f} s, baseline {statistics.median(theirs):.1f} s, "
              f"speed-up {statistics.median(ratios):.2f}x (per pair {', '.join(f'{r:.2f}' for r in ratios)})")

        corpus = synthetic_corpus()
        if args.bst_pythonpath:
            print("per epoch (in process): skipped with --bst-pythonpath")
            n_train = None
        else:
            seconds, n_train = our_epoch_seconds(corpus, 2 if args.quick else 3)
            print(f"per epoch (training {n_train} + validation): ours {seconds:.2f} s "
                  f"({n_train / seconds:,.0f} training samples/s)")
        if baseline_epochs:
            base = statistics.median(baseline_epochs)
            n = n_train or 7_011
            print(f"per epoch, baseline (its own lines in the pairs above, median): {base:.2f} s "
                  f"({n / base:,.0f} training samples/s)")
        if not args.quick:
            for precision in ("fp32", "bf16"):
                print(f"ensemble of 5 fold models on {EVALUATION_ITEMS} items, {precision}: "
                      f"{ensemble_seconds(precision=precision):.3f} s")
        if args.full:
            seconds, what = full_run(data, tmp, bst_env, args.workers)
            print(f"full default 5-fold run (≤ 100 epochs, patience 10), whole process: {seconds:.0f} s "
                  f"({seconds / 60:.1f} min); {what}")
            if baseline_epochs:
                import json

                epochs_run = sum(json.loads((tmp / "full" / f"fold_{k}" / "metrics.json").read_text())["epochs_run"]
                                 for k in range(1, 6))
                print(f"  baseline estimate for the same {epochs_run} epochs: "
                      f"{statistics.median(baseline_epochs) * epochs_run / 60:.1f} min (its per-epoch time × epochs)")
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
