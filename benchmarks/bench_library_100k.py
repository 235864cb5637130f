"""A 100k-file library: scan (progress, Cancel), open from the cached store, one search keystroke, memory.

    python benchmarks/bench_library_100k.py                  # 100,000 files in a temporary folder
    python benchmarks/bench_library_100k.py --files 20000 --keep /tmp/lib   # smaller, folder kept
    python benchmarks/bench_library_100k.py --profile        # + cProfile of the open (top functions)
    QT_QPA_PLATFORM=offscreen python benchmarks/bench_library_100k.py --gui   # + the real window

Goals (issue 10 §5): scanning shows progress and stops on Cancel; opening the folder again, with its
embeddings from the cached store, takes under 3 s; one keystroke in the search box under 100 ms.

The folder: ``--files`` hard links (no disk space) of six real files (WAV, FLAC, an M4A through
FFmpeg), in folders of 1,000, named with words from a small vocabulary ("dog bark close 004211.wav")
so the search has something to find. Its store: made with the offline encoder's vectors of the six
files, written through :class:`bst_core.store.EmbeddingStore` with each item's real key (size,
mtime, head/tail hash), text hash and status, exactly what ``bst extract`` writes for these files; a
real extraction of 100k files would take the encoder's time (``--extract N`` times it on the first N).

What is timed (wall clock, best of ``--repeat`` where it says so):

- scan: ``pipeline.open_source`` of the folder with no store yet (walk, tags and duration of every
  file); the progress reports it made; and Cancel: a second scan cancelled after 1 s, the time from
  ``Job.cancel()`` until ``Cancelled`` is raised.
- open from the cached store: ``pipeline.open_source`` again once the store exists (walk, tags,
  checking every file against the store, loading the vectors); best of ``--repeat``.
- search: :func:`bst_core.library_query.query_mask` per keystroke of a query typed letter by letter
  into a fresh :class:`~bst_core.library_query.TextIndex` (what the library view does per keystroke
  before Qt repaints); with ``--gui`` also the real MainWindow as benchmarks/bench_gui.py times it.
- memory: the peak RSS (``VmHWM``) of the process that opens and searches (a fresh one, as the
  app), and of the one that made the folder and wrote the store.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import os
import pstats
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bst_core import pipeline
from bst_core.jobs import Cancelled, Job, Progress

WORDS = ("dog bark", "door slam", "rain loop", "drum loop", "bird song", "car pass", "wind ambience",
         "glass break", "piano note", "crowd cheer", "engine idle", "water drip")
FOLDER_SIZE = 1000


def peak_mb() -> float:
    """This process's peak resident memory (VmHWM: unlike ru_maxrss, not inherited across fork + exec)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_base_files(folder: Path) -> list[Path]:
    """Six real, tiny sounds (0.3 s): four WAV, a FLAC, an M4A (AAC, decoded by FFmpeg). Kept when they
    exist (``--keep``): rewriting them would change every hard link of them."""
    existing = sorted(folder.glob("base_*"))
    if len(existing) == 6:
        return existing
    folder.mkdir(parents=True, exist_ok=True)
    sr = 22_050
    t = np.arange(int(0.3 * sr)) / sr
    files = []
    for k, freq in enumerate((220, 440, 880, 1760)):
        path = folder / f"base_{k}.wav"
        sf.write(path, (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), sr)
        files.append(path)
    path = folder / "base_4.flac"
    sf.write(path, (0.2 * np.random.default_rng(0).standard_normal(len(t))).astype(np.float32), sr)
    files.append(path)
    import av

    path = folder / "base_5.m4a"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("aac", rate=sr)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray((0.3 * np.sin(2 * np.pi * 330 * t)).astype(np.float32)[None],
                                           format="fltp", layout="mono")
        frame.sample_rate = sr
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            out.mux(packet)
    files.append(path)
    return files


def make_library(root: Path, files: int, base: list[Path]) -> float:
    """``files`` hard links of the base files under ``root``; returns the seconds it took."""
    start = time.perf_counter()
    for k in range(files):
        source = base[k % len(base)]
        folder = root / f"batch_{k // FOLDER_SIZE:03d}"
        if k % FOLDER_SIZE == 0:
            folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"{WORDS[k * 7 % len(WORDS)].replace(' ', '_')}_{k:06d}{source.suffix}"
        if not target.exists():
            os.link(source, target)
    return time.perf_counter() - start


def fill_store(corpus, store_path: Path) -> float:
    """Write the store ``bst extract --encoder offline`` would write, computing each distinct file once."""
    from bst_core.encoders.offline import OfflineEncoder
    from bst_core.extraction import Batch, _file_state, compute_batch, text_hash
    from bst_core.store import EmbeddingStore
    from bst_core.text import text_for

    start = time.perf_counter()
    encoder = OfflineEncoder()
    table = corpus.table
    paths = table["audio_path"].astype(str).tolist()
    ids = corpus.ids   # (a property that builds the list)
    by_inode: dict[int, tuple[np.ndarray, str, str]] = {}
    for path in paths:
        inode = os.stat(path).st_ino
        if inode not in by_inode:
            result = compute_batch(encoder, Batch(0, np.array([0]), [path], [""]))
            by_inode[inode] = (result.audio[0], result.status[0], result.reasons[0])
    texts = [text_for(*row) for row in table[["title", "tags", "description"]].fillna("").astype(str)
             .itertuples(index=False, name=None)]
    store = EmbeddingStore.open(store_path, create_with=encoder.info, source=str(corpus.root))
    with store.writing():
        step = 8192
        for begin in range(0, len(paths), step):
            rows = range(begin, min(begin + step, len(paths)))
            states = [_file_state(paths[r]) for r in rows]
            known = [by_inode[os.stat(paths[r]).st_ino] for r in rows]
            store.append([ids[r] for r in rows], np.stack([a for a, _, _ in known]),
                         encoder.embed_text([texts[r] for r in rows]), [s for _, s, _ in known],
                         [w for _, _, w in known], [s for s, _, _ in states], mtime_ns=[m for _, m, _ in states],
                         keys=[key for _, _, key in states], text_hashes=[text_hash(texts[r]) for r in rows])
        store.compact()
    return time.perf_counter() - start


def timed_scan(root: Path) -> tuple[float, object, list[Progress]]:
    seen: list[Progress] = []
    start = time.perf_counter()
    corpus = pipeline.open_source(root, job=Job(seen.append))
    return time.perf_counter() - start, corpus, seen


def cancel_scan(root: Path, after_s: float = 1.0) -> tuple[float, str]:
    """Seconds from Cancel to the scan stopping, and at which stage it was."""
    seen: list[Progress] = []
    job = Job(seen.append)
    outcome: dict[str, float] = {}

    def work() -> None:
        try:
            pipeline.open_source(root, job=job)
        except Cancelled:
            outcome["stopped"] = time.perf_counter()

    thread = threading.Thread(target=work)
    thread.start()
    time.sleep(after_s)
    cancelled = time.perf_counter()
    job.cancel()
    thread.join()
    stage = f"{seen[-1].stage} {seen[-1].done}/{seen[-1].total}" if seen else "before the first report"
    if "stopped" not in outcome:
        return float("nan"), f"finished before Cancel ({stage})"
    return outcome["stopped"] - cancelled, stage


def search_keystrokes(corpus, query: str) -> list[float]:
    from bst_core.library_query import TextIndex, library_frame, query_mask

    frame = library_frame(corpus.table, corpus.audio_status())
    index = TextIndex(frame)
    times = []
    for k in range(1, len(query) + 1):
        start = time.perf_counter()
        mask = query_mask(frame, query[:k], index)
        np.flatnonzero(mask)
        times.append(time.perf_counter() - start)
    return times


def gui_search(corpus, query: str) -> None:
    from PySide6.QtWidgets import QApplication

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_gui import _settle, _window

    app = QApplication.instance() or QApplication([])
    with tempfile.TemporaryDirectory() as tmp:
        window = _window(Path(tmp))
        _settle(app)
        table = window.library_view.table
        start = time.perf_counter()
        window.session.open(corpus)
        table.viewport().repaint()
        print(f"  GUI: open {len(corpus):,} sounds → rows painted            {(time.perf_counter() - start):8.2f} s")
        window.background.cancel()
        times = []
        for k in range(1, len(query) + 1):
            start = time.perf_counter()
            window.library_view.search.setText(query[:k])
            table.viewport().repaint()
            times.append(time.perf_counter() - start)
        print(f"  GUI: search while typing {query!r}: median {statistics.median(times) * 1000:.1f} ms, "
              f"max {max(times) * 1000:.1f} ms ({window.library.rowCount():,} rows shown)")
        window.close()


def open_and_search(root: Path, args: argparse.Namespace) -> None:
    """The second half, in a fresh process: open from the cached store, search, peak memory."""
    opens = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        opened = pipeline.open_source(root)
        opens.append(time.perf_counter() - start)
    assert opened.audio is not None, "the store was not attached"
    print(f"open from the cached store (best of {args.repeat})             {min(opens):8.2f} s   "
          f"(all: {', '.join(f'{t:.2f}' for t in opens)})  peak RSS {peak_mb():7.0f} MB   goal < 3 s")
    if args.profile:
        profile = cProfile.Profile()
        profile.enable()
        pipeline.open_source(root)
        profile.disable()
        text = io.StringIO()
        pstats.Stats(profile, stream=text).sort_stats("cumulative").print_stats(25)
        print(text.getvalue())
    times = search_keystrokes(opened, args.query)
    print(f"search while typing {args.query!r} ({len(times)} keystrokes, {len(opened):,} rows): median "
          f"{statistics.median(times) * 1000:.1f} ms, max {max(times) * 1000:.1f} ms   goal < 100 ms")
    print(f"peak RSS of the process that opened and searched         {peak_mb():7.0f} MB")
    if args.gui:
        gui_search(opened, args.query)
        print(f"peak RSS with the window                                 {peak_mb():7.0f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--keep", type=Path, help="make (or reuse) the library here instead of a temporary folder")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--query", default="drum loop -ambience")
    parser.add_argument("--profile", action="store_true", help="cProfile the open from the cached store")
    parser.add_argument("--extract", type=int, default=0, metavar="N",
                        help="also time a real offline extraction of the first N files")
    parser.add_argument("--gui", action="store_true", help="also open and search in the real window (offscreen)")
    parser.add_argument("--open-only", type=Path, help=argparse.SUPPRESS)   # the child process
    args = parser.parse_args()

    if args.open_only:
        open_and_search(args.open_only, args)
        return
    cache = tempfile.mkdtemp(prefix="bst-bench-cache-")
    os.environ["BST_CACHE_DIR"] = cache
    tmp = tempfile.TemporaryDirectory(prefix="bst-100k-")
    base_dir = (args.keep or Path(tmp.name)) / "base"
    root = (args.keep or Path(tmp.name)) / "library"
    print(f"library: {args.files:,} files under {root} (CPU count {os.cpu_count()}; other work on the machine "
          "slows every figure)")
    made = make_library(root, args.files, make_base_files(base_dir))
    print(f"made the folder (hard links)                        {made:8.2f} s   peak RSS {peak_mb():7.0f} MB")

    took, corpus, seen = timed_scan(root)
    stages = sorted({p.stage for p in seen})
    print(f"scan, no store yet: {len(corpus):,} sounds               {took:8.2f} s   peak RSS {peak_mb():7.0f} MB")
    print(f"  {len(seen):,} progress reports in stages {', '.join(stages)}; notes: {corpus.notes}")
    delay, stage = cancel_scan(root)
    print(f"Cancel 1 s into a scan → stopped after             {delay * 1000:8.1f} ms  (at {stage})")

    store_path = pipeline.store_path_for(root, "offline")
    filled = fill_store(corpus, store_path)
    print(f"store written ({store_path.name})                  {filled:8.2f} s   peak RSS {peak_mb():7.0f} MB")
    if args.extract:
        from bst_core.encoders.offline import OfflineEncoder
        from bst_core.extraction import extract

        part = corpus.subset(corpus.table.index < args.extract)
        start = time.perf_counter()
        extract(part, Path(tmp.name) / "extract-store", OfflineEncoder(), batch_size=32)
        spent = time.perf_counter() - start
        print(f"real offline extraction of {len(part):,} files         {spent:8.2f} s  "
              f"({len(part) / spent:.0f} files/s)")

    # Opening and searching run in a fresh process, as the app opens a library: its own time and memory.
    command = [sys.executable, __file__, "--open-only", str(root), "--repeat", str(args.repeat), "--query",
               args.query, *(["--profile"] if args.profile else []), *(["--gui"] if args.gui else [])]
    subprocess.run(command, check=True, env={**os.environ, "BST_CACHE_DIR": cache})
    print(f"peak RSS of this process (folder, scan, store writing)  {peak_mb():7.0f} MB")
    shutil.rmtree(cache, ignore_errors=True)
    tmp.cleanup()


if __name__ == "__main__":
    main()
