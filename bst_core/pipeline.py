"""The workflow layer: every step a person takes, once. The CLI, the demo and the GUI call only this.

Each function takes and returns the plain objects of the core (:class:`Corpus`,
:class:`CrossValResult`, :class:`Predictions`) and never re-opens a source it was handed:

``open_source`` → ``extract`` → ``cross_validate`` / ``load_run`` → ``predict`` → ``score`` →
``write_predictions_csv`` / ``export``.

Embedding stores a source has no place for are looked up in one place, :func:`store_path_for`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from bst_core import jobs, paths
from bst_core.config import DEFAULT_ENCODER, DEFAULT_PRECISION, ENCODER_NAMES, TrainConfig
from bst_core.corpus import Corpus
from bst_core.errors import BadInputError
from bst_core.jobs import Job
from bst_core.metrics import MetricReport, evaluate
from bst_core.predictions import Predictions
from bst_core.runs import CrossValResult, RunFolder

if TYPE_CHECKING:
    from bst_core.ensemble import Ensemble
    from bst_core.extraction import ExtractSummary
    from bst_core.ray_extract import RayOptions
    from bst_core.store import EmbeddingStore
    from bst_core.training import FoldEngine

PathLike = str | os.PathLike[str]


# --- sources and their embeddings ------------------------------------------------------------------

def store_path_for(source: PathLike, encoder: str) -> Path:
    """The embedding store of ``source`` made with ``encoder`` when no store is named.

    ``<parent>/stores/<name>-<encoder>`` when that exists (the layout ``bst demo`` writes), else
    ``cache_dir()/stores/<name>-<12 hex of the path>-<encoder>`` (nothing is written into the source).
    """
    if encoder not in ENCODER_NAMES:
        raise BadInputError(f"Unknown encoder {encoder!r}: choose one of {', '.join(ENCODER_NAMES)}.")
    source = Path(source).expanduser().absolute()
    beside = source.parent / "stores" / f"{source.name}-{encoder}"
    if (beside / "manifest.json").is_file():
        return beside
    return paths.cache_dir() / "stores" / f"{paths.folder_key(source)}-{encoder}"


def open_source(path: PathLike, *, store: PathLike | None = None, require_embeddings: bool = False,
                truth_from_subfolders: bool = False, job: Job | None = None) -> Corpus:
    """Open a dataset, evaluation folder, folder of sounds or metadata CSV, with its embeddings.

    Embeddings come from the source itself (shipped ``.npy`` files), from ``store`` when given, or
    from the source's store at :func:`store_path_for` (the first encoder that has one).
    ``require_embeddings`` refuses a source without any, saying what to run.
    ``truth_from_subfolders``: a folder of sounds takes its truth from class-named subfolders
    (``sounds/fx-o/*.wav``, :mod:`bst_core.sources.folder`).
    """
    from bst_core.sources import attach_store
    from bst_core.sources import open_source as read_source
    from bst_core.store import EmbeddingStore

    source = Path(path).expanduser().absolute()
    if not source.exists():
        raise BadInputError(f"{source} does not exist: give a dataset folder, evaluation folder, "
                            "folder of sounds or metadata CSV.")
    corpus = read_source(source, truth_from_subfolders=truth_from_subfolders, job=job)
    if store is not None:
        opened = EmbeddingStore.open(store)
        problem = _store_problem(corpus, opened)
        if problem:
            raise StoreOutOfDate(source, Path(store), problem,
                                 f"{problem} Run `bst extract {source} --out {store}` to bring it up to date.")
        corpus = attach_store(corpus, opened)
        corpus.store = Path(store)
    elif corpus.audio is None and corpus.text is None:
        for encoder in ENCODER_NAMES:
            candidate = store_path_for(source, encoder)
            if not (candidate / "manifest.json").is_file():
                continue
            opened = EmbeddingStore.open(candidate)
            problem = _store_problem(corpus, opened)
            if problem:   # never attach vectors of other files: open without, and say why
                corpus.notes.append(f"{problem} Extract the embeddings again to use them.")
                continue
            corpus = attach_store(corpus, opened)
            corpus.store = candidate
            break
    if require_embeddings and corpus.audio is None and corpus.text is None:
        why = [n for n in corpus.notes if "embedding" in n.lower() or ".npy" in n]
        detail = f" ({' '.join(why)})" if why else ""
        raise NoEmbeddingsError(source, detail,
            f"{source} has no usable embeddings{detail}. Compute them first: "
            f"`bst extract {source}` (add --encoder clap for the challenge's CLAP embeddings).")
    return corpus


def _store_problem(corpus: Corpus, store: EmbeddingStore) -> str:
    """Why the store cannot supply ``corpus``'s embeddings ("" when it can): sounds it lacks, or
    sounds whose file or text changed since they were embedded."""
    from bst_core.extraction import stale_items
    from bst_core.sources.bsd import examples

    store_path = store.path
    missing, changed = stale_items(corpus, store)
    parts = []
    if missing:
        parts.append(f"{len(missing)} of {len(corpus)} sounds are not in it (e.g. {examples(missing)})")
    if changed:
        parts.append(f"{len(changed)} sounds changed since they were embedded (e.g. {examples(changed)})")
    return f"The embedding store {store_path} is out of date: {'; '.join(parts)}." if parts else ""


@dataclass
class Extracted:
    """A source with its freshly computed embeddings, and what the extraction did."""

    corpus: Corpus
    summary: ExtractSummary


def extract(corpus: Corpus, *, encoder: str = DEFAULT_ENCODER, store: PathLike | None = None,
            checkpoint: PathLike | None = None, device: str = "cpu", allow_download: bool = False,
            batch_size: int = 16, job: Job | None = None, engine: str = "local",
            ray_options: RayOptions | None = None) -> Extracted:
    """Compute (or complete) the embeddings of ``corpus`` into its store and attach them.

    ``store`` defaults to :func:`store_path_for`; items already stored and unchanged are reused.
    ``engine="ray"`` decodes and embeds on Ray (:mod:`bst_core.ray_extract`; ``ray_options`` says
    where), this process still being the store's one writer.
    """
    from bst_core.encoders import make_encoder
    from bst_core.extraction import extract as run_extraction
    from bst_core.sources import attach_store

    if corpus.root is None:
        raise BadInputError("This corpus has no source folder or file; extraction needs the audio files.")
    if engine not in ("local", "ray"):
        raise BadInputError(f"Unknown engine {engine!r}: choose local or ray.")
    target = Path(store) if store is not None else store_path_for(corpus.root, encoder)
    if engine == "ray":
        from bst_core.ray_extract import RayOptions, encoder_spec, extract_on_ray

        options = ray_options or RayOptions()
        if device != "cpu" and not options.gpus_per_worker:
            raise BadInputError(f"With the Ray engine, ask for GPUs per worker (--gpus-per-worker 1) instead of "
                                f"--device {device}.")
        spec = encoder_spec(encoder, checkpoint=checkpoint, device="cuda" if options.gpus_per_worker else "cpu",
                            allow_download=allow_download, job=job)
        summary = extract_on_ray(corpus, target, spec, options, batch_size=batch_size, job=job)
    else:
        model = make_encoder(encoder, checkpoint=checkpoint, device=device, allow_download=allow_download, job=job)
        summary = run_extraction(corpus, target, model, batch_size=batch_size, job=job)
    attached = attach_store(corpus, target)
    attached.store = target
    return Extracted(attached, summary)


# --- runs ------------------------------------------------------------------------------------------

def default_run_dir(source: PathLike | None) -> Path:
    """A fresh run folder under the user data folder, named after the source and the time."""
    name = paths.folder_key(source).rsplit("-", 1)[0] if source else "run"
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return paths.data_dir() / "runs" / f"{name}-{stamp}"


def cross_validate(corpus: Corpus, run_dir: PathLike, config: TrainConfig | None = None, *,
                   job: Job | None = None, engine: FoldEngine | None = None,
                   labelled_only: bool = False) -> CrossValResult:
    """Cross-validate HATR on a labelled corpus into ``run_dir`` (resumes the same run). ``engine``
    (:func:`bst_core.fold_engines.make_engine`: local processes, Ray) trains the folds elsewhere,
    with the same numbers; None trains them in this process. ``labelled_only``: the items without
    a label are left out (a sorted folder with sounds not sorted yet) instead of refused."""
    from bst_core.training import cross_validate as train

    if labelled_only:
        corpus = corpus.subset((corpus.labels.fillna("").astype(str) != "").to_numpy())

    return train(corpus, run_dir, config or TrainConfig(), job=job, engine=engine)


def load_run(run_dir: PathLike, job: Job | None = None) -> CrossValResult:
    """A run folder's results, as :func:`cross_validate` returned them."""
    jobs.report(job, "read run", 0, 1, Path(run_dir).name)
    result = RunFolder(run_dir).result()
    jobs.report(job, "read run", 1, 1, f"{len(result.folds)} fold(s)")
    return result


def run_belongs_to(result: CrossValResult, corpus: Corpus) -> bool:
    """True when ``result`` was trained on this very source (same folder or file, same ids)."""
    if not result.dataset_root or corpus.root is None:
        return False
    if Path(result.dataset_root).resolve() != Path(corpus.root).resolve():
        return False
    return set(result.oof["id"].astype(str)) <= set(corpus.ids)


# --- predictions -----------------------------------------------------------------------------------

def load_ensemble(run_dir: PathLike, *, allow_partial: bool = True, device: str = "cpu") -> Ensemble:
    """The fold models of a run as one ensemble; with ``allow_partial=False`` a run with missing
    folds is refused, naming them."""
    from bst_core.ensemble import Ensemble

    run = RunFolder(run_dir)
    missing = run.missing_folds()
    if missing and not allow_partial:
        done = run.fold_numbers()
        raise PartialRunError(run.path, len(done), run.config.folds, missing,
            f"{run.path} is a partial run: {len(done)} of {run.config.folds} folds finished (missing "
            f"{', '.join(map(str, missing))}; status {run.status!r}). Finish it with `bst train` into the same "
            "folder, or pass --allow-partial (the package then says how many fold models it used).")
    return Ensemble.from_run(run.path, device=device)


class StoreOutOfDate(BadInputError):
    """The embedding store given for a source does not fit it (``problem`` says how)."""

    def __init__(self, source: Path, store: Path, problem: str, message: str) -> None:
        super().__init__(message)
        self.source, self.store, self.problem = source, store, problem


class NoEmbeddingsError(BadInputError):
    """A source with no usable embeddings where a job needs them (``detail``: why, or "")."""

    def __init__(self, source: Path, detail: str, message: str) -> None:
        super().__init__(message)
        self.source, self.detail = source, detail


class PartialRunError(BadInputError):
    """A run with unfinished folds where a full one is needed (``missing``: fold numbers)."""

    def __init__(self, run_dir: Path, done: int, folds: int, missing: list[int], message: str) -> None:
        super().__init__(message)
        self.run_dir, self.done, self.folds, self.missing = run_dir, done, folds, missing


def predict(run: PathLike | Ensemble, corpus: Corpus, *, precision: str = DEFAULT_PRECISION,
            job: Job | None = None) -> Predictions:
    """The ensemble of a run folder (or a loaded :class:`Ensemble`) over every item of ``corpus``."""
    ensemble = load_ensemble(run) if isinstance(run, str | os.PathLike) else run
    jobs.check(job)
    return ensemble.predict(corpus, job=job, precision=precision)


def zero_shot(corpus: Corpus, *, checkpoint: PathLike | None = None, device: str = "cpu",
              job: Job | None = None) -> Predictions:
    """Zero-shot labels of every item of ``corpus`` from its CLAP embeddings (no run): loads the
    joint encoder that made them (refused first, without loading, for other embeddings) and scores
    each sound against the 23 class descriptions (:mod:`bst_core.zero_shot`)."""
    from bst_core.text_search import joint_encoder_for
    from bst_core.zero_shot import zero_shot_predictions

    encoder = joint_encoder_for(corpus, checkpoint=checkpoint, device=device, job=job, what="Zero-shot labels")
    jobs.check(job)
    return zero_shot_predictions(corpus, encoder, job=job)


def truth_of(corpus: Corpus) -> pd.Series:
    """The corpus's labels indexed by id ("" where unlabelled)."""
    return pd.Series(corpus.labels.astype(str).to_numpy(), index=corpus.table["id"].astype(str))


def score(predictions: Predictions, truth: pd.Series, *, lam: float = 0.75, absent: str = "reference",
          source: str = "the truth") -> MetricReport:
    """The challenge metric of ``predictions`` against ``truth`` (labels indexed by id).

    Only labelled ids count; every one of them must have a prediction (BadInputError otherwise).
    """
    truth = truth[truth.astype(str) != ""]
    if truth.empty:
        raise BadInputError(f"{source} has no labelled items: nothing to score.")
    if truth.index.duplicated().any():
        raise BadInputError(f"{source}: id {truth.index[truth.index.duplicated()][0]!r} appears more than once; "
                            "each id needs exactly one true class.")
    by_id = dict(zip(predictions.ids, predictions.labels, strict=True))
    missing = [i for i in truth.index if i not in by_id]
    if missing:
        raise BadInputError(f"{len(missing)} labelled id(s) of {source} have no prediction "
                            f"(e.g. {', '.join(map(str, missing[:3]))}); predict every id.")
    return evaluate(truth.astype(str).tolist(), [by_id[i] for i in truth.index], lam=lam,
                    absent=absent)  # type: ignore[arg-type]


def write_predictions_csv(predictions: Predictions, out: PathLike, *, probabilities: bool = False,
                          abstain: float | None = None) -> Path:
    """The submission's three columns, then ``audio_status``; with ``abstain`` (a threshold T) also
    ``top_level,top_level_score,decision`` (:mod:`bst_core.abstain`); the 23 probabilities if asked."""
    from bst_core.atomic import atomic_open

    if abstain is None:
        frame = predictions.submission_frame(probabilities=probabilities)
    else:
        from bst_core.abstain import with_abstain

        frame = with_abstain(predictions, abstain, probabilities=probabilities)
    out = Path(out)
    with atomic_open(out, "w", newline="") as handle:
        frame.to_csv(handle, index=False, float_format="%.6f")
    return out


# --- the challenge package -------------------------------------------------------------------------

def export(run_dir: PathLike, corpus: Corpus, label: str, out_dir: PathLike, *, allow_partial: bool = False,
           precision: str = DEFAULT_PRECISION, authors: list[dict] | None = None,
           job: Job | None = None, predictions: Predictions | None = None) -> Path:
    """Predict the evaluation corpus with the run's ensemble (or use ``predictions`` of it) and write
    the validated package. A partial run is refused unless ``allow_partial``."""
    from bst_core.submission import check_label, write_validated_package

    check_label(label)  # before any prediction work: nothing is written for a refused label
    if corpus.kind != "evaluation":
        raise BadInputError(
            f"{corpus.root} is not an evaluation folder (it was read as a {corpus.kind or 'corpus'} source): a "
            "challenge package needs the ids of the evaluation set's metadata (metadata/*_metadata.csv with an "
            "anonymous_id column). Choose the evaluation folder.")
    result = load_run(run_dir)
    ensemble = load_ensemble(run_dir, allow_partial=allow_partial)
    if predictions is None:
        predictions = predict(ensemble, corpus, precision=precision, job=job)
    elif predictions.run_dir is None or Path(predictions.run_dir).resolve() != Path(run_dir).resolve():
        raise BadInputError(f"These predictions were not made by the run {run_dir}; predict again with it.")
    return write_validated_package(out_dir, label, predictions, corpus, result, authors=authors)
