"""CLAP audio embedding speed: 10 s clips per second at batch sizes 1, 8 and 32.

Uses the real laion_clap fusion model (HTSAT-tiny audio branch, the same compute as the official
checkpoint) with random weights and the test suite's tiny RoBERTa files, so it runs offline. Each
batch size embeds the same number of clips through :meth:`ClapEncoder.embed_audio` after one
warm-up batch. The audio branch does not depend on the text branch's size. CPU seconds per clip are
printed too: on a shared machine they stay meaningful when the wall-clock rate does not.

Run: ``python benchmarks/bench_clap.py [--clips 32] [--device cpu] [--threads N]``
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from clap_fixtures import tone, write_random_checkpoint, write_tiny_roberta_files

from bst_core.encoders.clap import ClapEncoder

BATCH_SIZES = (1, 8, 32)
CLIP_SECONDS = 10.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=32,
                        help="clips embedded per batch size (at least the largest batch, 32)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        text_dir = write_tiny_roberta_files(Path(tmp) / "roberta-base")
        checkpoint = Path(tmp) / "random-clap.pt"
        write_random_checkpoint(checkpoint, text_dir)
        started = time.perf_counter()
        encoder = ClapEncoder(checkpoint=checkpoint, text_files=text_dir, device=args.device)
        print(f"model load: {time.perf_counter() - started:.1f} s on {args.device}, "
              f"{torch.get_num_threads()} CPU threads")
    count = max(args.clips, *BATCH_SIZES)
    clips = [tone(CLIP_SECONDS, freq=220.0 + 10 * k, seed=k) for k in range(count)]
    for batch_size in BATCH_SIZES:
        encoder.embed_audio(clips[:batch_size])   # warm-up
        started, cpu_started = time.perf_counter(), time.process_time()
        for start in range(0, len(clips), batch_size):
            encoder.embed_audio(clips[start:start + batch_size])
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        print(f"batch {batch_size:>2}: {len(clips) / elapsed:6.2f} clips/s "
              f"({len(clips)} clips of {CLIP_SECONDS:.0f} s in {elapsed:.1f} s; "
              f"{cpu / len(clips):.2f} CPU-s per clip)")
    print(f"load average: {' '.join(f'{x:.1f}' for x in os.getloadavg())} (other processes slow the wall clock)")


if __name__ == "__main__":
    main()
