"""Extraction throughput, local engine against the Ray engine on this machine (clips/s).

    python benchmarks/bench_ray_extract.py                       # offline encoder, 200 clips of 10 s
    python benchmarks/bench_ray_extract.py --encoder clap --clips 32   # random-weight CLAP (test files)
    python benchmarks/bench_ray_extract.py --address HOST:6379   # the Ray engine on a running cluster

Both engines extract the same folder of ``--clips`` WAV files (``--seconds`` long, 48 kHz mono
noise-and-tone) into a fresh store; the Ray engine starts a local Ray instance (``--workers``
actors, default one per CPU) unless ``--address`` is given. Reported: the whole call (Ray start-up
and workers loading their encoder included) and the computing rate (clips/s from the moment the
encoders are loaded, Ray's workers included, to the last saved batch: what a long extraction sees).
CLAP uses the random-weight model of ``tests/clap_fixtures.py`` (real laion_clap code, same cost
per clip as the real weights).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from bst_core.extraction import extract  # noqa: E402
from bst_core.jobs import Job, Progress  # noqa: E402
from bst_core.ray_extract import EncoderSpec, RayOptions, extract_on_ray  # noqa: E402
from bst_core.sources.folder import read_audio_folder  # noqa: E402


def make_clips(folder: Path, count: int, seconds: float) -> None:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * 48_000)) / 48_000
    for k in range(count):
        clip = 0.2 * np.sin(2 * np.pi * (100 + 10 * k) * t) + 0.05 * rng.standard_normal(len(t))
        sf.write(folder / f"clip_{k:04d}.wav", clip.astype(np.float32), 48_000)


class Rate:
    """Progress sink: when the computing began (after the Ray workers were up) and the last batch was saved."""

    def __init__(self) -> None:
        self.began: float | None = None
        self.last: tuple[float, int] = (0.0, 0)

    def __call__(self, progress: Progress) -> None:
        now = time.perf_counter()
        if progress.stage == "extract" and progress.done == 0 and self.began is None:
            self.began = now
        if progress.stage == "start Ray workers" and progress.done == progress.total:
            self.began = now           # the workers are up: computing starts now
        if progress.stage == "extract" and progress.message == "batch saved":
            self.last = (now, progress.done)

    def steady(self) -> float:
        """Clips per second once computing began (encoder loads and Ray start-up left out)."""
        end, done = self.last
        return done / (end - self.began) if self.began is not None and end > self.began else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--encoder", choices=("offline", "clap"), default="offline")
    parser.add_argument("--clips", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--workers", type=int)
    parser.add_argument("--address")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bst-ray-bench-") as tmp:
        base = Path(tmp)
        make_clips(base / "clips", args.clips, args.seconds)
        corpus = read_audio_folder(base / "clips")
        if args.encoder == "clap":
            from clap_fixtures import write_random_checkpoint, write_tiny_roberta_files

            from bst_core.encoders.clap import ClapEncoder

            text_dir = write_tiny_roberta_files(base / "roberta-base")
            checkpoint = base / "random-clap.pt"
            write_random_checkpoint(checkpoint, text_dir)
            spec = EncoderSpec("clap", str(checkpoint), str(text_dir))
            started = time.perf_counter()
            local_encoder = ClapEncoder(checkpoint=checkpoint, text_files=text_dir)
            load_s = time.perf_counter() - started
        else:
            from bst_core.encoders.offline import OfflineEncoder

            spec, load_s = EncoderSpec("offline"), 0.0
            local_encoder = OfflineEncoder()
        print(f"{args.clips} clips of {args.seconds:g} s, encoder {args.encoder}, batch {args.batch_size} "
              "(timings under whatever else runs on this machine)")

        rate = Rate()
        started = time.perf_counter()
        local = extract(corpus, base / "local", local_encoder, batch_size=args.batch_size, job=Job(rate))
        whole = time.perf_counter() - started + load_s
        print(f"local engine: {whole:7.1f} s in all ({args.clips / whole:6.2f} clips/s, encoder load "
              f"{load_s:.1f} s included), computing {rate.steady():6.2f} clips/s  [{local.line}]")

        rate = Rate()
        options = RayOptions(address=args.address, workers=args.workers)
        started = time.perf_counter()
        on_ray = extract_on_ray(corpus, base / "ray", spec, options, batch_size=args.batch_size, job=Job(rate))
        whole = time.perf_counter() - started
        workers = next((n for n in on_ray.notes if "Ray workers" in n), "")
        print(f"ray engine:   {whole:7.1f} s in all ({args.clips / whole:6.2f} clips/s, Ray start and "
              f"worker loads included), computing {rate.steady():6.2f} clips/s  [{on_ray.line}; {workers}]")


if __name__ == "__main__":
    main()
