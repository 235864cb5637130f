"""Effect of masking the audio attention of items without decoded audio (synthetic corpus).

A labelled synthetic corpus (``bst_core.synthetic.make_corpus``: class-informative audio and text
embeddings) gets 5 % of its items' audio replaced by zero vectors, marked "text only", as for
undecodable files. The same 5-fold cross-validation runs twice: ``missing_audio="mask"`` (the
default: those items get attention [0, 1], the text alone decides) and ``"seed"`` (the seed
system: the zero vector is fed like any other). Printed: pooled out-of-fold hF over all items and
over the text-only items, and the mean audio attention the model claims for them.

Run: ``python benchmarks/bench_missing_audio.py [--per-class 60] [--fraction 0.05] [--seeds 3]``
"""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from bst_core import pipeline
from bst_core.config import TrainConfig
from bst_core.metrics import evaluate
from bst_core.predictions import has_audio, text_only
from bst_core.synthetic import make_corpus


def run(per_class: int, fraction: float, seed: int) -> dict[str, tuple[float, float, float]]:
    corpus = make_corpus(n_per_class=per_class, dim=512, seed=seed)
    rng = np.random.default_rng(seed)
    missing = rng.choice(len(corpus), size=round(fraction * len(corpus)), replace=False)
    corpus.audio = np.array(corpus.audio, copy=True)
    corpus.audio[missing] = 0.0
    status = ["ok"] * len(corpus)
    for k in missing:
        status[k] = text_only("empty file")
    corpus.table["audio_status"] = status
    out = {}
    base = TrainConfig(epochs=40, patience=8)
    for mode in ("mask", "seed"):
        with tempfile.TemporaryDirectory() as tmp:
            result = pipeline.cross_validate(corpus, Path(tmp) / "run", replace(base, missing_audio=mode))
            oof = result.oof
            lost = ~has_audio(oof["audio_status"].tolist())
            sub = evaluate(oof.loc[lost, "truth"].tolist(), oof.loc[lost, "prediction"].tolist())
            predictions = pipeline.predict(Path(tmp) / "run", corpus)
            attention = predictions.attention[~has_audio(predictions.audio_status), 0].mean()
            out[mode] = (result.report.hF, sub.hF, float(attention))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-class", type=int, default=60)
    parser.add_argument("--fraction", type=float, default=0.05)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = {"mask": [], "seed": []}
    for seed in range(args.seeds):
        for mode, values in run(args.per_class, args.fraction, seed).items():
            rows[mode].append(values)
            print(f"seed {seed} {mode:4s}: hF all {values[0] * 100:.2f}, hF text-only items {values[1] * 100:.2f}, "
                  f"audio attention claimed on them {values[2] * 100:.1f} %", flush=True)
    for mode, values in rows.items():
        arr = np.array(values)
        print(f"{mode:4s} mean over {len(values)} seeds: hF all {arr[:, 0].mean() * 100:.2f}, "
              f"text-only items {arr[:, 1].mean() * 100:.2f}, audio attention on them {arr[:, 2].mean() * 100:.1f} %")


if __name__ == "__main__":
    main()
