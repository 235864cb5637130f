"""What the app's jobs do, as plain functions over ``bst_core`` (no Qt: testable, reusable).

Each function is one job body: it takes ``job`` (progress + cancel) and returns a value the main
window shows. Embedding stores made by the app live in the user cache, one per (source, encoder),
so nothing is written into the user's folders; the demo keeps the CLI's layout (``<demo>/stores``).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from bst_core import jobs, paths
from bst_core.corpus import Corpus
from bst_core.errors import BadInputError
from bst_core.jobs import Job
from bst_core.taxonomy import CLASS_KEYS
from bst_core.workspace import Workspace

ENCODERS: tuple[str, ...] = ("clap", "offline")

PathLike = str | os.PathLike[str]


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)[:40] or "source"


def default_store_path(source: PathLike, encoder: str) -> Path:
    """The embedding store the app uses for ``source`` and ``encoder``.

    ``<parent>/stores/<name>-<encoder>`` when that exists (the layout ``bst demo`` writes), else
    ``cache_dir()/stores/<name>-<hash of the absolute path>-<encoder>``.
    """
    source = Path(source).expanduser().absolute()
    beside = source.parent / "stores" / f"{source.name}-{encoder}"
    if (beside / "manifest.json").is_file():
        return beside
    digest = hashlib.sha1(str(source).encode("utf-8")).hexdigest()[:12]
    return paths.cache_dir() / "stores" / f"{_slug(source.name)}-{digest}-{encoder}"


def default_run_dir(source: PathLike | None) -> Path:
    """A fresh run folder under the user data folder, named after the source and the time."""
    name = _slug(Path(source).name) if source else "run"
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return paths.data_dir() / "runs" / f"{name}-{stamp}"


@dataclass
class Opened:
    """A source opened by :func:`open_with_embeddings`."""

    corpus: Corpus
    path: Path
    store: Path | None = None
    notes: list[str] = field(default_factory=list)
    workspace: Workspace | None = None


def open_with_embeddings(path: PathLike, job: Job | None = None, *, workspace: bool = True) -> Opened:
    """Open any source; without shipped embeddings, attach the app's store for it if one exists.

    With ``workspace``, the source's label-edit database is opened too (here, off the UI thread:
    creating it syncs to disk); when it cannot be, a note says why and ``workspace`` stays None.
    """
    from bst_core.sources import attach_store, open_source

    path = Path(path).expanduser().absolute()
    if not path.exists():
        raise BadInputError(f"{path} does not exist. Choose an existing folder or .csv file.")
    corpus = open_source(path, job=job)
    opened = Opened(corpus, path)
    if corpus.audio is None and corpus.text is None:
        for encoder in ENCODERS:
            store = default_store_path(path, encoder)
            if not (store / "manifest.json").is_file():
                continue
            try:
                opened.corpus = attach_store(corpus, store)
            except BadInputError as exc:
                opened.notes.append(f"The {encoder} embeddings in {store} do not cover this source ({exc}).")
                continue
            opened.store = store
            break
    if workspace:
        try:
            opened.workspace = Workspace.for_source(path)
        except BadInputError as exc:
            opened.notes.append(f"Label edits cannot be saved: {exc}")
    return opened


def extract_embeddings(opened: Opened, encoder: str = "offline", *, checkpoint: PathLike | None = None,
                       allow_download: bool = False, store: PathLike | None = None,
                       job: Job | None = None) -> tuple[Opened, object]:
    """Compute the source's embeddings into its store and attach them; (opened, ExtractSummary).

    ``store`` defaults to :func:`default_store_path`; a finished part of it is reused.
    """
    from bst_core.encoders import make_encoder
    from bst_core.extraction import extract
    from bst_core.sources import attach_store

    model = make_encoder(encoder, checkpoint=checkpoint, allow_download=allow_download, job=job)
    store = Path(store) if store else default_store_path(opened.path, encoder)
    summary = extract(opened.corpus, store, model, job=job)
    corpus = attach_store(opened.corpus, store)
    return Opened(corpus, opened.path, store, list(opened.notes), opened.workspace), summary


def prepare_demo(out_dir: PathLike | None = None, job: Job | None = None, *, workspace: bool = True) -> Opened:
    """Write the offline demo corpus (if needed), open it and give it offline embeddings."""
    from bst_core.demo import make_demo

    root = Path(out_dir) if out_dir else paths.data_dir() / "demo"
    demo = make_demo(root, job=job)
    opened = open_with_embeddings(demo.dataset, job=job, workspace=workspace)
    if opened.corpus.audio is None and opened.corpus.text is None:
        store = demo.root / "stores" / f"{demo.dataset.name}-offline"
        opened, _summary = extract_embeddings(opened, "offline", store=store, job=job)
    return opened


@dataclass
class LoadedRun:
    """A run folder's results for the window: metrics and out-of-fold predictions."""

    path: Path
    metrics: dict
    oof: pd.DataFrame | None
    run: object   # bst_core.runs.RunFolder


def load_run(path: PathLike, job: Job | None = None) -> LoadedRun:
    from bst_core.runs import RunFolder

    run = RunFolder(path)
    jobs.report(job, "read run", 0, 2)
    metrics = run.metrics()
    jobs.report(job, "read run", 1, 2)
    try:
        oof = run.oof()
    except BadInputError:
        oof = None
    jobs.report(job, "read run", 2, 2)
    return LoadedRun(Path(path), metrics, oof, run)


def oof_predictions(oof: pd.DataFrame) -> tuple[list[str], list[str], np.ndarray, np.ndarray | None]:
    """(ids, labels, scores, probabilities or None) of an out-of-fold table."""
    probs = (oof.loc[:, list(CLASS_KEYS)].to_numpy(dtype=np.float64)
             if all(k in oof.columns for k in CLASS_KEYS) else None)
    return (oof["id"].astype(str).tolist(), oof["prediction"].astype(str).tolist(),
            pd.to_numeric(oof["score"], errors="coerce").to_numpy(dtype=np.float64), probs)


def predict(run_dir: PathLike, corpus: Corpus, job: Job | None = None):
    """The ensemble of ``run_dir`` over the open source (a ``bst_core.pipeline.Prediction``)."""
    from bst_core.pipeline import predict as predict_with_run

    return predict_with_run(run_dir, corpus, job=job)


def export_package(predicted, out_dir: PathLike, label: str, *, authors: list[dict] | None = None) -> Path:
    """Write and validate the challenge package of an ensemble prediction (``pipeline.write_submission``)."""
    from bst_core.pipeline import write_submission

    return write_submission(predicted, label, out_dir, authors=authors)


def probe_durations(audio_paths: np.ndarray, job: Job | None = None, batch: int = 256) -> np.ndarray:
    """Durations in seconds from the file headers (NaN where unreadable); reports ``positions``."""
    from bst_core.audio import probe

    out = np.full(len(audio_paths), np.nan)
    for start in range(0, len(audio_paths), batch):
        jobs.check(job)
        for k in range(start, min(start + batch, len(audio_paths))):
            if audio_paths[k]:
                with contextlib.suppress(BadInputError):
                    out[k] = probe(audio_paths[k]).duration_s
        stop = min(start + batch, len(audio_paths))
        jobs.report(job, "durations", stop, len(audio_paths), positions=(start, stop),
                    seconds=out[start:stop].copy())
    return out
