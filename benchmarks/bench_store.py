"""Embedding store speed at BSD35k scale: build, open (memory-map), load, consolidate, reopen a dataset.

    python benchmarks/bench_store.py                # 35,000 × 512 × 2 store, 5,000-sound npy folders
    python benchmarks/bench_store.py --npy 35000 --bsd 1471   # full-size consolidation + BSD reader

Goal: opening a consolidated 35k × 512 × 2 store and loading every row takes well under a second.
Numbers are wall-clock seconds on a warm page cache (files were just written).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from bst_core.corpus import CLAP_ENCODER
from bst_core.store import EmbeddingStore, consolidate_npy_folders


def _timed(label: str, action: Callable[[], Any], repeat: int = 1) -> Any:
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = action()
        best = min(best, time.perf_counter() - start)
    print(f"{label:<58s} {best:8.3f} s" + (f"  (best of {repeat})" if repeat > 1 else ""))
    return result


def bench_store(folder: Path, n: int, dim: int) -> None:
    encoder = replace(CLAP_ENCODER, audio_dim=dim, text_dim=dim)
    rng = np.random.default_rng(0)
    ids = [str(100_000 + i) for i in range(n)]
    audio = rng.standard_normal((n, dim)).astype(np.float32)
    text = rng.standard_normal((n, dim)).astype(np.float32)
    path = folder / "store"

    def build() -> None:
        store = EmbeddingStore.open(path, create_with=encoder)
        for start in range(0, n, 1024):
            stop = min(n, start + 1024)
            k = stop - start
            store.append(ids[start:stop], audio[start:stop], text[start:stop], ["ok"] * k, [""] * k,
                         [1000] * k, [1.7e9] * k)
        store.compact()

    _timed(f"build: {n} × {dim} × 2 in chunks of 1024 + compact", build)
    store = _timed("open (memory-map, validate index)", lambda: EmbeddingStore.open(path), repeat=5)
    got = _timed(f"load all {n} ids (copy into memory)", lambda: store.load(ids), repeat=5)
    assert np.array_equal(got[0], audio) and got[2].all()
    picked = [ids[i] for i in rng.choice(n, 1000, replace=False)]
    _timed("load 1,000 random ids", lambda: store.load(picked), repeat=5)
    _timed("open + load all (what a reader does)", lambda: EmbeddingStore.open(path).load(ids), repeat=5)
    _timed("up_to_date over all ids", lambda: store.up_to_date(ids, [1000] * n, [1.7e9] * n), repeat=5)
    size_mb = sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1e6
    print(f"{'store size on disk':<58s} {size_mb:8.1f} MB")


def bench_consolidate(folder: Path, n: int, dim: int) -> None:
    encoder = replace(CLAP_ENCODER, audio_dim=dim, text_dim=dim)
    rng = np.random.default_rng(1)
    ids = [str(i) for i in range(n)]
    dirs = [folder / "npy" / "audio", folder / "npy" / "text"]

    def write() -> None:
        for d in dirs:
            d.mkdir(parents=True)
            for i in ids:
                np.save(d / f"{i}.npy", rng.standard_normal(dim).astype(np.float32))

    _timed(f"write {2 * n} per-sound .npy files (setup)", write)
    _timed(f"consolidate_npy_folders: first read of {2 * n} files",
           lambda: consolidate_npy_folders(ids, dirs[0], dirs[1], folder / "npy-store", encoder))
    _timed("consolidate_npy_folders again (stat only, nothing read)",
           lambda: consolidate_npy_folders(ids, dirs[0], dirs[1], folder / "npy-store", encoder))


def bench_bsd(folder: Path, n_per_class: int, dim: int) -> None:
    from bst_core.sources import read_bsd_dataset
    from bst_core.synthetic import write_bsd_dataset

    os.environ["BST_CACHE_DIR"] = str(folder / "cache")
    root = _timed(f"write synthetic BSD, {23 * n_per_class} sounds, no audio (setup)",
                  lambda: write_bsd_dataset(folder / "bsd", n_per_class=n_per_class, dim=dim,
                                            with_audio=False))
    _timed("read_bsd_dataset, first open (reads every .npy)", lambda: read_bsd_dataset(root))
    _timed("read_bsd_dataset, later opens (cached store)", lambda: read_bsd_dataset(root), repeat=3)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=35_000, help="store rows (default 35000)")
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--npy", type=int, default=5_000, help="sounds for the .npy consolidation (0: skip)")
    parser.add_argument("--bsd", type=int, default=0, help="sounds per class for the BSD reader (0: skip)")
    parser.add_argument("--dir", type=Path, default=None, help="scratch folder (default: a temp folder)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(dir=args.dir) as scratch:
        bench_store(Path(scratch), args.n, args.dim)
        if args.npy:
            bench_consolidate(Path(scratch), args.npy, args.dim)
        if args.bsd:
            bench_bsd(Path(scratch), args.bsd, args.dim)


if __name__ == "__main__":
    main()
