"""GPU figures for benchmarks/gpu_check.sh: CLAP clips/s, training s/epoch and 5-fold wall time, ensemble.

On one CUDA device (``--device``, default ``cuda``):

- CLAP audio embedding of 10 s clips at batch 32 and 64 (the real laion_clap fusion model with
  random weights and the test suite's tiny RoBERTa files, offline, as ``bench_clap.py``);
- HATR training at BSD10k size (10,956 items, 512 + 512, batch 64, ``both``): seconds per epoch
  (epochs 2.. of fold 1, training + validation) and the wall time of a full default-protocol
  5-fold ``cross_validate`` (≤ 100 epochs, patience 10) in this process, with its hF;
- the 5-model ensemble predicting 3,246 items (fp32 and bf16), best of 3.

Run: ``python benchmarks/bench_gpu.py [--device cuda] [--skip-full]``. Exits 2 without CUDA.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

from bench_training import EVALUATION_ITEMS, ensemble_seconds, synthetic_corpus  # noqa: E402


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)


def clap_rates(device: str, batch_sizes: tuple[int, ...] = (32, 64), batches: int = 2) -> None:
    from clap_fixtures import tone, write_random_checkpoint, write_tiny_roberta_files

    from bst_core.encoders.clap import ClapEncoder

    with tempfile.TemporaryDirectory() as tmp:
        text_dir = write_tiny_roberta_files(Path(tmp) / "roberta-base")
        checkpoint = Path(tmp) / "random-clap.pt"
        write_random_checkpoint(checkpoint, text_dir)
        started = time.perf_counter()
        encoder = ClapEncoder(checkpoint=checkpoint, text_files=text_dir, device=device)
        print(f"CLAP model load: {time.perf_counter() - started:.1f} s on {device}", flush=True)
    clips = [tone(10.0, freq=220.0 + 5 * k, seed=k) for k in range(max(batch_sizes) * batches)]
    for batch_size in batch_sizes:
        encoder.embed_audio(clips[:batch_size])  # warm-up
        _sync(device)
        started = time.perf_counter()
        for start in range(0, len(clips), batch_size):
            encoder.embed_audio(clips[start:start + batch_size])
        _sync(device)
        elapsed = time.perf_counter() - started
        print(f"CLAP audio, batch {batch_size}: {len(clips) / elapsed:.1f} clips/s "
              f"({len(clips)} clips of 10 s in {elapsed:.1f} s, decoding/resampling included)", flush=True)


def training(device: str, full: bool) -> None:
    from bst_core.config import TrainConfig
    from bst_core.jobs import Job, Progress
    from bst_core.training import cross_validate

    corpus = synthetic_corpus()
    events: list[Progress] = []
    with tempfile.TemporaryDirectory() as tmp:
        cross_validate(corpus, Path(tmp) / "one", TrainConfig(epochs=4, patience=None, only_fold=1, device=device),
                       Job(events.append))
    stamps = [e.elapsed_s for e in events if "epoch" in e.data]
    per_epoch = (stamps[-1] - stamps[0]) / (len(stamps) - 1)
    print(f"training on {device}: {per_epoch:.2f} s/epoch (7,011 training + 2,190 validation items, batch 64), "
          f"{7011 / per_epoch:,.0f} training samples/s", flush=True)
    if full:
        started = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            result = cross_validate(corpus, Path(tmp) / "full", TrainConfig(device=device))
        seconds = time.perf_counter() - started
        hf_mean, hf_std = result.summary["hF"]
        print(f"full default 5-fold run on {device}: {seconds:.0f} s; best epochs {result.best_epochs}; "
              f"hF {100 * hf_mean:.2f} ± {100 * hf_std:.2f} (synthetic data)", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--skip-full", action="store_true", help="no full 5-fold run")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("CUDA is not available here: nothing to measure (the GPU tests skip with that reason).")
        return 2
    index = torch.device(args.device).index or 0
    print(f"device: {torch.cuda.get_device_name(index)}, torch {torch.__version__}, CUDA {torch.version.cuda}")
    clap_rates(args.device)
    training(args.device, full=not args.skip_full)
    for precision in ("fp32", "bf16"):
        print(f"ensemble of 5 fold models on {EVALUATION_ITEMS} items on {args.device}, {precision}: "
              f"{ensemble_seconds(precision=precision, device=args.device):.3f} s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
