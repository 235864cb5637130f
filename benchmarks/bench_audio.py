"""Decoding and offline-encoder speed.

    python benchmarks/bench_audio.py                 # 40 WAV files of 10 s, 100 clips for the encoder
    python benchmarks/bench_audio.py --files 200 --clips 500 --threads 2

Measures, on 44.1 kHz mono 16-bit WAV files of 10 s (best of ``--repeat`` runs, warm page cache):

- decode + resample real-time factor (seconds of audio per second of wall time) to 48 kHz (CLAP's
  rate) and to 22.05 kHz (the offline encoder's rate), one file after another in one thread;
- the offline encoder's throughput in clips/s on decoded 10 s clips (goal: ≥ 50 clips/s on 2 cores),
  and decode + encode together (what extraction does per file).

Each line gives wall-clock throughput and throughput per CPU second of this process; on a shared
machine the wall clock includes waiting for the CPU, the CPU figure does not.

``--threads`` caps the BLAS/OpenMP threads (set before numpy loads) to model a small machine.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _best(action: Callable[[], Any], repeat: int) -> tuple[float, float]:
    """Best wall-clock and best CPU seconds (this process, all threads) over ``repeat`` runs."""
    wall, cpu = float("inf"), float("inf")
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        action()
        wall = min(wall, time.perf_counter() - start)
        cpu = min(cpu, time.process_time() - start_cpu)
    return wall, cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=40, help="number of 10 s WAV files to decode")
    parser.add_argument("--clips", type=int, default=100, help="number of 10 s clips to encode")
    parser.add_argument("--seconds", type=float, default=10.0, help="clip length")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="cap BLAS/OpenMP threads (e.g. 2)")
    args = parser.parse_args(argv)
    if args.threads:
        for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[name] = str(args.threads)

    import numpy as np
    import soundfile as sf

    from bst_core.audio import decode
    from bst_core.encoders.offline import OfflineEncoder

    sr = 44_100
    rng = np.random.default_rng(0)
    n = int(args.seconds * sr)
    t = np.arange(n) / sr
    print(f"python {sys.version.split()[0]}, numpy {np.__version__}, soundfile {sf.__version__} "
          f"(libsndfile {sf.__libsndfile_version__}), cpus {os.cpu_count()}, threads cap {args.threads}")
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for k in range(args.files):
            signal = 0.3 * np.sin(2 * np.pi * (200 + 20 * k) * t) + 0.05 * rng.standard_normal(n)
            path = Path(tmp) / f"clip_{k:03d}.wav"
            sf.write(path, signal.astype(np.float32), sr, subtype="PCM_16")
            paths.append(path)
        audio_s = args.files * args.seconds

        print(f"{'':44s} {'wall clock':>14s} {'per CPU second':>16s}")

        def show(label: str, amount: float, unit: str, timing: tuple[float, float]) -> None:
            wall, cpu = timing
            print(f"{label:44s} {amount / wall:9.0f}{unit:5s} {amount / cpu:11.0f}{unit:5s}")

        for target in (48_000, 22_050):
            show(f"decode + resample 44.1 → {target / 1000:g} kHz (RTF)", audio_s, "×",
                 _best(lambda target=target: [decode(p, target) for p in paths], args.repeat))
        show("decode only, 44.1 kHz (RTF)", audio_s, "×", _best(lambda: [decode(p, sr) for p in paths], args.repeat))

        encoder = OfflineEncoder()
        clips = [decode(paths[k % len(paths)], encoder.sample_rate).samples for k in range(args.clips)]
        encoder.embed_audio(clips[:2])   # warm-up
        show(f"offline encoder, audio ({args.seconds:g} s clips/s)", args.clips, "/s",
             _best(lambda: encoder.embed_audio(clips), args.repeat))

        def decode_and_encode() -> None:
            for start in range(0, len(paths), 16):
                encoder.embed_audio([decode(p, encoder.sample_rate).samples for p in paths[start:start + 16]])

        show("decode + resample + encode (clips/s)", args.files, "/s", _best(decode_and_encode, args.repeat))

        texts = [f"dog barking number {k} in the park, field recording zoom h4n <b>loud</b>" for k in range(1000)]
        show("offline encoder, text (texts/s)", len(texts), "/s", _best(lambda: encoder.embed_text(texts), args.repeat))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
