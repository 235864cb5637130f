"""Stratified k-fold cross-validation of HATR on a labelled corpus (the seed report's protocol).

Protocol (defaults = seed report, section 5):

- ``StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)`` on the class codes; inside
  each fold's training part a stratified validation split of ``val_fraction``
  (``train_test_split(..., stratify=..., random_state=seed)``).
- Adam (lr 1e-3, fused where the device supports it), batch 64, reshuffled every epoch by a
  generator seeded from (seed, fold); a trailing batch of a single item is skipped (BatchNorm
  cannot train on one). Up to ``epochs`` epochs, early stopping on validation hF
  (``absent="reference"``, the organizers' behaviour) after ``patience`` epochs without gain;
  the best epoch's weights are kept.
- Off by default, as in the report: ``augment`` (Gaussian noise, std :data:`AUGMENT_NOISE_STD`,
  then each dimension zeroed with probability :data:`AUGMENT_MASK_FRACTION`) and
  ``label_smoothing``.

Embeddings live in memory as tensors: batches are slices of a permutation, never per-item reads.
Folds are numbered from 1 everywhere (folders ``fold_1``..., the ``fold`` column, ``only_fold``).
Same seed, same data, same device → the same numbers (deterministic algorithms, private RNG state,
one intra-op thread per fold: whatever the core count and wherever a fold runs, see
:mod:`bst_core.train_step` and :mod:`bst_core.fold_engines`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
import torch
from sklearn.model_selection import StratifiedKFold, train_test_split
from torch import nn

from bst_core import jobs, runs
from bst_core.config import AUGMENT_MASK_FRACTION, AUGMENT_NOISE_STD, TrainConfig
from bst_core.corpus import Corpus
from bst_core.errors import BadInputError
from bst_core.jobs import Cancelled, Job
from bst_core.metrics import evaluate
from bst_core.model import HATR, count_parameters, hatr_for_loading, predict_probs, seeded_hatr
from bst_core.predictions import has_audio
from bst_core.runs import CrossValResult, RunWriter
from bst_core.taxonomy import CLASS_INDEX, CLASS_KEYS
from bst_core.train_step import Inputs, Stepper, branch_parallel_default, freed_memory_kept, make_optimizer, one_thread

CHECK_EVERY_BATCHES = 20
"""``job.check()`` is called every this many training batches (and between epochs)."""
EVAL_BATCH = 8192

_CLASS_KEY_ARRAY = np.array(CLASS_KEYS, dtype=object)
_NOT_IN_FINGERPRINT = ("only_fold", "device", "fused_adam")
"""Config fields that choose what/where to run, not what a fold model is."""


# --- checks ------------------------------------------------------------------------------------

def _where(corpus: Corpus) -> str:
    return f"the corpus from {corpus.root}" if corpus.root else "the corpus"


def _examples(values: pd.Series, limit: int = 3) -> str:
    shown = ", ".join(repr(str(v)) for v in values.iloc[:limit])
    return shown + (", ..." if len(values) > limit else "")


def check_trainable(corpus: Corpus, config: TrainConfig) -> None:
    """Raise BadInputError (saying what to do) unless ``corpus`` can be cross-validated.

    Checked before any training: options, an empty corpus, unlabelled rows, labels that are not
    target classes, a single class, a class with fewer items than folds, missing or malformed
    embeddings for the mode, and whether the stratified splits can be made.
    """
    config.validate()
    where = _where(corpus)
    n = len(corpus)
    if n == 0:
        raise BadInputError(f"{where.capitalize()} has no items: open a labelled dataset to train.")
    labels = corpus.labels.fillna("").astype(str)
    unlabelled = labels == ""
    if unlabelled.any():
        ids = corpus.table.loc[unlabelled.to_numpy(), "id"]
        raise BadInputError(
            f"{int(unlabelled.sum())} of {n} items in {where} have no label ({_examples(ids)}). "
            "Label them or leave them out before training.")
    not_target = ~labels.isin(CLASS_INDEX)
    if not_target.any():
        bad = labels[not_target].value_counts()
        shown = ", ".join(f"{k!r} ×{v}" for k, v in bad.iloc[:5].items())
        raise BadInputError(
            f"{int(not_target.sum())} items in {where} have labels that are not one of the 23 BST "
            f"second-level classes ({shown}). Relabel them or leave them out before training.")
    counts = labels.value_counts()
    if len(counts) < 2:
        raise BadInputError(f"All {n} items in {where} are labelled {counts.index[0]!r}: "
                            "training needs at least two classes.")
    small = counts[counts < config.folds]
    if len(small):
        listed = ", ".join(f"{k} has {v}" for k, v in small.items())
        raise BadInputError(
            f"Too few items for {config.folds}-fold cross-validation in {where}: {listed} "
            f"(each class needs at least {config.folds}). Add items, merge the data, or use fewer folds.")
    _check_embeddings(corpus, config)
    codes = labels.map(CLASS_INDEX).to_numpy(np.int64)
    try:
        fold_splits(codes, folds=config.folds, seed=config.seed, val_fraction=config.val_fraction)
    except ValueError as exc:
        raise BadInputError(
            f"The stratified validation split cannot be made for {where} ({exc}). Each class needs a "
            "few more items, or use fewer folds or a larger validation fraction.") from exc


def _check_embeddings(corpus: Corpus, config: TrainConfig) -> None:
    where = _where(corpus)
    if corpus.encoder is None:
        raise BadInputError(f"{where.capitalize()} does not say which encoder made its embeddings; "
                            "open it through a source reader or set Corpus.encoder.")
    needed = {"both": ("audio", "text"), "audio": ("audio",), "text": ("text",)}[config.mode]
    for name in needed:
        matrix = getattr(corpus, name)
        if matrix is None:
            other = "text" if name == "audio" else "audio"
            raise BadInputError(
                f"{where.capitalize()} has no {name} embeddings, which mode {config.mode!r} needs. "
                f"Extract embeddings first (bst extract) or train with mode={other!r}.")
        if matrix.ndim != 2 or matrix.shape[0] != len(corpus):
            raise BadInputError(f"The {name} embeddings of {where} have shape {matrix.shape}, not "
                                f"({len(corpus)}, dim): one row per item is needed. Re-extract them.")
        bad_rows = ~np.isfinite(matrix).all(axis=1)
        if bad_rows.any():
            ids = corpus.table.loc[bad_rows, "id"]
            raise BadInputError(f"{int(bad_rows.sum())} {name} embeddings in {where} contain NaN or "
                                f"infinity ({_examples(ids)}). Re-extract them.")


def fold_splits(codes: np.ndarray, *, folds: int, seed: int,
                val_fraction: float) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """``(train, validation, test)`` row indices per fold, the seed report's split.

    Stratified k-fold on ``codes``; each training part then loses a stratified ``val_fraction``
    to validation. Raises ValueError when a split cannot be stratified.
    """
    codes = np.asarray(codes)
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    out = []
    for trainval, test in splitter.split(np.zeros(len(codes)), codes):
        train, val = train_test_split(trainval, test_size=val_fraction, stratify=codes[trainval],
                                      random_state=seed)
        out.append((np.asarray(train), np.asarray(val), np.asarray(test)))
    return out


# --- the run -----------------------------------------------------------------------------------

@dataclass
class _Data:
    codes: np.ndarray             # (n,) int64 class codes
    audio: torch.Tensor | None    # (n, audio_dim) float32 on the device
    text: torch.Tensor | None
    audio_dim: int
    text_dim: int
    audio_status: list[str]       # per item "ok" or "text only: <reason>"
    audio_present: torch.Tensor | None   # (n,) bool, given to the model when masking, else None


@dataclass
class FoldTask:
    """One fold to train: its number (from 1) and its row indices."""

    fold: int
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray


@dataclass
class FoldInputs:
    """What any fold of a run needs, as plain arrays (sent once to a pool process or Ray worker)."""

    config: TrainConfig
    codes: np.ndarray
    audio: np.ndarray | None
    text: np.ndarray | None
    audio_present: np.ndarray | None
    audio_dim: int
    text_dim: int

    def to_data(self, device: torch.device) -> _Data:
        def tensor(matrix: np.ndarray | None) -> torch.Tensor | None:
            return None if matrix is None else torch.from_numpy(np.array(matrix, dtype=np.float32)).to(device)

        return _Data(codes=np.array(self.codes), audio=tensor(self.audio), text=tensor(self.text),
                     audio_dim=self.audio_dim, text_dim=self.text_dim, audio_status=[],
                     audio_present=None if self.audio_present is None   # copies: Ray's arrays are read-only
                     else torch.as_tensor(np.array(self.audio_present), device=device))


@dataclass
class FoldOutcome:
    """A trained fold: test probabilities, history, metrics and the best epoch's weights."""

    fold: int
    test: np.ndarray
    probs: np.ndarray             # (n_test, 23) float64
    best_epoch: int
    history: list[dict[str, Any]]
    metrics: dict[str, Any]
    state: dict[str, torch.Tensor]   # the model's state dict (best epoch), on the CPU


@dataclass
class _FoldResult:
    fold: int
    test: np.ndarray
    probs: np.ndarray             # (n_test, 23) float64
    best_epoch: int
    reused: bool


def cross_validate(corpus: Corpus, run_dir: str | Path, config: TrainConfig | None = None,
                   job: Job | None = None, engine: FoldEngine | None = None) -> CrossValResult:
    """Cross-validate HATR on ``corpus``; write the run folder ``run_dir``; return the results.

    Finished folds already in ``run_dir`` with the same configuration and data are reused; a
    folder holding another run (or other files) is refused. Progress: ``job.progress("fold k/K",
    epoch, epochs, fold=, epoch=, loss=, val_hf=, lr=, attn_audio=, attn_text=)`` every epoch.
    On cancel, finished folds stay on disk, run.json says "cancelled", and Cancelled propagates.

    ``engine`` (:mod:`bst_core.fold_engines`) trains the folds elsewhere (pool processes, Ray
    tasks) with the same numbers; None trains them here one after another. Each fold runs on one
    intra-op thread (two encoder threads in ``both`` mode on a CPU with two free cores), so the
    numbers do not depend on the engine or the core count.
    """
    config = config or TrainConfig()
    check_trainable(corpus, config)
    device = torch.device(config.device)
    encoder = corpus.encoder
    assert encoder is not None  # checked above
    data = _to_tensors(corpus, config, device)
    fingerprint = run_fingerprint(corpus, config)
    writer = RunWriter.start(
        run_dir, config=config, encoder=encoder, fingerprint=fingerprint, audio_dim=data.audio_dim,
        text_dim=data.text_dim, n_items=len(corpus), dataset_root=str(corpus.root) if corpus.root else "",
        dataset=corpus.dataset, synthetic=corpus.synthetic)
    splits = fold_splits(data.codes, folds=config.folds, seed=config.seed, val_fraction=config.val_fraction)

    results: dict[int, _FoldResult] = {}
    try:
        todo = []
        for k, (train, val, test) in enumerate(splits, start=1):
            done = _reuse_fold(writer.path, k, data, test, fingerprint, device)
            if done is not None:
                results[k] = done
                jobs.report(job, f"fold {k}/{config.folds}", config.epochs, config.epochs,
                            "reused", fold=k, reused=True, best_epoch=done.best_epoch)
            elif config.only_fold is None or config.only_fold == k:
                todo.append(FoldTask(k, train, val, test))
        if engine is None or engine.in_process:
            for task in todo:
                if (done := _reuse_fold(writer.path, task.fold, data, task.test, fingerprint, device)) is not None:
                    results[task.fold] = done  # another process (--only-fold) finished it meanwhile
                    continue
                with writer.fold_lock(task.fold):
                    outcome = train_fold(task, data, config, device, job=job)
                    results[task.fold] = _write(writer, outcome, data, config)
        elif todo:
            with contextlib.ExitStack() as locks:
                for task in todo:  # held until written: another process cannot train these folds
                    locks.enter_context(writer.fold_lock(task.fold))
                for outcome in engine.run(todo, _inputs(corpus, data, config), job):
                    results[outcome.fold] = _write(writer, outcome, data, config)
        while True:  # folds another process (--only-fold) finished meanwhile are included
            unusable = []
            for k, (_train, _val, test) in enumerate(splits, start=1):
                if k in results:
                    continue
                if (done := _reuse_fold(writer.path, k, data, test, fingerprint, device)) is not None:
                    results[k] = done
                elif (runs.fold_dir(writer.path, k) / runs.MODEL_FILE).is_file():
                    unusable.append(k)
            result = _aggregate(corpus, data, [results[k] for k in sorted(results)], config, writer)
            if writer.finish(result, unusable):
                return result
    except Cancelled:
        writer.set_status("cancelled")
        raise
    except BaseException:
        writer.set_status("failed")
        raise


class FoldEngine(Protocol):
    """Where the folds of a run are trained (see :mod:`bst_core.fold_engines`)."""

    in_process: bool
    """True: :func:`cross_validate` trains the folds itself, one after another."""

    def run(self, tasks: list[FoldTask], inputs: FoldInputs, job: Job | None) -> Iterator[FoldOutcome]:
        """Train every task; yield each outcome as it is ready. Raises Cancelled (stopping the
        work not yet done) when ``job`` is cancelled, and the error of a fold that failed."""
        ...


def _inputs(corpus: Corpus, data: _Data, config: TrainConfig) -> FoldInputs:
    def array(t: torch.Tensor | None) -> np.ndarray | None:
        return None if t is None else t.cpu().numpy()

    return FoldInputs(config=config, codes=data.codes, audio=array(data.audio), text=array(data.text),
                      audio_present=array(data.audio_present), audio_dim=data.audio_dim, text_dim=data.text_dim)


def _write(writer: RunWriter, outcome: FoldOutcome, data: _Data, config: TrainConfig) -> _FoldResult:
    model = hatr_for_loading(config.mode, data.audio_dim, data.text_dim, config.hidden, config.dropout)
    model.load_state_dict(outcome.state, assign=True)
    writer.write_fold(outcome.fold, model, history=outcome.history, best_epoch=outcome.best_epoch,
                      metrics=outcome.metrics)
    return _FoldResult(outcome.fold, outcome.test, outcome.probs, outcome.best_epoch, reused=False)


def run_fingerprint(corpus: Corpus, config: TrainConfig) -> str:
    """Hash of the configuration and the data (ids, labels, embeddings used, encoder)."""
    digest = hashlib.blake2b(digest_size=16)
    core = {k: v for k, v in config.to_dict().items() if k not in _NOT_IN_FINGERPRINT}
    digest.update(json.dumps(core, sort_keys=True).encode())
    digest.update(json.dumps(corpus.encoder.to_dict() if corpus.encoder else None, sort_keys=True).encode())
    digest.update("\0".join(corpus.ids).encode())
    digest.update(b"\1" + "\0".join(corpus.labels.astype(str)).encode())
    if config.missing_audio == "mask" and config.mode == "both":
        digest.update(b"\2" + "\0".join(corpus.audio_status()).encode())
    for name in ("audio", "text"):
        matrix = getattr(corpus, name)
        if matrix is not None and (config.mode == "both" or config.mode == name):
            digest.update(name.encode())
            digest.update(np.ascontiguousarray(matrix, dtype=np.float32).tobytes())
    return digest.hexdigest()


def _to_tensors(corpus: Corpus, config: TrainConfig, device: torch.device) -> _Data:
    def tensor(matrix: np.ndarray | None, used: bool) -> torch.Tensor | None:
        if matrix is None or not used:
            return None
        return torch.from_numpy(np.array(matrix, dtype=np.float32, copy=True)).to(device)

    audio = tensor(corpus.audio, config.mode in ("both", "audio"))
    text = tensor(corpus.text, config.mode in ("both", "text"))
    encoder = corpus.encoder
    assert encoder is not None
    status = corpus.audio_status()
    present = None
    audio_ok = has_audio(status)
    if config.mode == "both" and config.missing_audio == "mask" and not audio_ok.all():
        present = torch.as_tensor(audio_ok, device=device)   # no mask needed when every item has audio
    return _Data(
        codes=np.array(corpus.labels.astype(str).map(CLASS_INDEX), dtype=np.int64),
        audio=audio, text=text,
        audio_dim=audio.shape[1] if audio is not None else encoder.audio_dim,
        text_dim=text.shape[1] if text is not None else encoder.text_dim,
        audio_status=status, audio_present=present,
    )


@contextlib.contextmanager
def _reproducible() -> Iterator[None]:
    """Deterministic kernels, one intra-op thread, freed memory kept for reuse
    (:func:`bst_core.train_step.freed_memory_kept`); the caller's settings are restored. The
    random numbers are the model's own (:func:`bst_core.model.seeded_hatr`) and the fold's
    shuffle and noise generators."""
    was_on = torch.are_deterministic_algorithms_enabled()
    was_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    with one_thread(), freed_memory_kept():
        torch.use_deterministic_algorithms(True, warn_only=True)
        try:
            yield
        finally:
            torch.use_deterministic_algorithms(was_on, warn_only=was_warn)


def _fold_seed(seed: int, fold: int) -> int:
    return seed * 1000 + fold


def warm_up(device: str = "cpu") -> None:
    """One tiny training step and one prediction, so torch's first-call costs (lazy imports and
    kernel set-up that hold the GIL for ~0.1 s) are paid now rather than inside a job. Leaves the
    global random state untouched. The GUI calls this in a background thread at start-up."""
    with torch.random.fork_rng(devices=[]):
        model = HATR("both", 8, 8, hidden=8).to(device)
        optimizer = make_optimizer(list(model.parameters()), TrainConfig(device=device), torch.device(device))
        logits, _ = model(torch.randn(4, 8, device=device), torch.randn(4, 8, device=device))
        nn.CrossEntropyLoss()(logits, torch.zeros(4, dtype=torch.long, device=device)).backward()
        optimizer.step()
        predict_probs(model, torch.randn(2, 8, device=device), torch.randn(2, 8, device=device))


def train_fold(task: FoldTask, data: _Data | FoldInputs, config: TrainConfig, device: torch.device | None = None, *,
               parallel: bool | None = None, job: Job | None = None) -> FoldOutcome:
    """Train one fold and predict its test rows; writes nothing (the caller writes the outcome).

    ``parallel``: two encoder threads (None: when :func:`branch_parallel_default` says so). Any
    choice gives the same numbers.
    """
    device = device or torch.device(config.device)
    if isinstance(data, FoldInputs):
        data = data.to_data(device)
    if parallel is None:
        parallel = branch_parallel_default(config.mode, device)
    k, train, val, test = task.fold, task.train, task.val, task.test
    stage = f"fold {k}/{config.folds}"
    jobs.report(job, stage, 0, config.epochs, "training", fold=k)
    with _reproducible():
        model = seeded_hatr(_fold_seed(config.seed, k), device, config.mode, data.audio_dim, data.text_dim,
                            config.hidden, config.dropout)
        shuffle = torch.Generator().manual_seed(_fold_seed(config.seed, k))
        noise = torch.Generator(device=device).manual_seed(_fold_seed(config.seed, k) + 1)
        codes = torch.as_tensor(data.codes, device=device)
        train_rows = torch.as_tensor(train, device=device)
        val_truth = _CLASS_KEY_ARRAY[data.codes[val]].tolist()
        val_inputs = _rows(data, torch.as_tensor(val, device=device))

        best_hf, best_epoch, best_state, stale = -math.inf, 0, None, 0
        history: list[dict[str, Any]] = []
        with Stepper(model, config, device, parallel=parallel) as stepper:
            for epoch in range(1, config.epochs + 1):
                jobs.check(job)
                loss, attn = _train_epoch(stepper, data, codes, train_rows, shuffle, noise, config, job)
                probs, _ = stepper.predict(val_inputs, EVAL_BATCH)
                pred = _CLASS_KEY_ARRAY[probs.argmax(dim=1).cpu().numpy()].tolist()
                val_hf = evaluate(val_truth, pred, lam=config.lam, absent="reference").hF
                row = {"epoch": epoch, "loss": loss, "val_hf": val_hf, "lr": stepper.lr,
                       "attn_audio": attn[0] if attn else None, "attn_text": attn[1] if attn else None}
                history.append(row)
                score = 0.0 if math.isnan(val_hf) else val_hf  # NaN: no true class predicted at all
                if score > best_hf:
                    best_hf, best_epoch, stale = score, epoch, 0
                    best_state = {name: t.detach().clone() for name, t in model.state_dict().items()}
                else:
                    stale += 1
                jobs.report(job, stage, epoch, config.epochs, f"epoch {epoch}: val hF {val_hf:.4f}",
                            fold=k, **row, best_epoch=best_epoch)
                if config.patience is not None and stale >= config.patience:
                    break
            if best_state is not None:
                model.load_state_dict(best_state)
            test_probs, _ = stepper.predict(_rows(data, torch.as_tensor(test, device=device)), EVAL_BATCH)

    probs_np = test_probs.double().cpu().numpy()
    test_report = evaluate(_CLASS_KEY_ARRAY[data.codes[test]].tolist(),
                           _CLASS_KEY_ARRAY[probs_np.argmax(axis=1)].tolist(), lam=config.lam,
                           absent=config.absent)  # type: ignore[arg-type]
    metrics = {"fold": k, "best_epoch": best_epoch, "best_val_hf": best_hf, "epochs_run": len(history),
               "n_train": len(train), "n_val": len(val), "n_test": len(test), "test": test_report.to_dict()}
    state = {name: t.detach().cpu() for name, t in model.state_dict().items()}
    return FoldOutcome(k, test, probs_np, best_epoch, history, metrics, state)


def _rows(data: _Data, rows: torch.Tensor) -> Inputs:
    """The model inputs of ``rows``: ``(audio, text, audio_present)``."""
    def pick(t: torch.Tensor | None) -> torch.Tensor | None:
        return None if t is None else t[rows]

    return pick(data.audio), pick(data.text), pick(data.audio_present)


def _train_epoch(stepper: Stepper, data: _Data, codes: torch.Tensor, train_rows: torch.Tensor,
                 shuffle: torch.Generator, noise: torch.Generator, config: TrainConfig,
                 job: Job | None) -> tuple[float, tuple[float, float] | None]:
    """One pass over the shuffled training rows; returns mean loss and mean attention."""
    stepper.model.train()
    order = train_rows[torch.randperm(len(train_rows), generator=shuffle).to(train_rows.device)]
    loss_sum = torch.zeros((), device=train_rows.device)
    attn_sum = torch.zeros(2, device=train_rows.device)
    seen = 0
    starts = [s for s in range(0, len(order), config.batch_size)
              if len(order) - s >= 2]  # BatchNorm cannot train on a single item: a trailing one is skipped
    # the next epoch starts with a batch of this size: its dropout masks may be drawn during this epoch's end
    first_size = min(config.batch_size, len(order))
    for b, start in enumerate(starts):
        rows = order[start:start + config.batch_size]
        if b % CHECK_EVERY_BATCHES == 0:
            jobs.check(job)
        audio, text, present = _rows(data, rows)
        if config.augment:
            audio = None if audio is None else _augment(audio, noise)
            text = None if text is None else _augment(text, noise)
        next_size = min(config.batch_size, len(order) - starts[b + 1]) if b + 1 < len(starts) else first_size
        loss, attention = stepper.step((audio, text, present), codes[rows], next_size=next_size)
        loss_sum += loss * len(rows)
        if attention is not None:
            attn_sum += attention.sum(dim=0)
        seen += len(rows)
    mean_attn = (attn_sum / seen).tolist() if stepper.model.fusion is not None and seen else None
    return float(loss_sum) / max(seen, 1), (tuple(mean_attn) if mean_attn else None)  # type: ignore[return-value]


def _augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Gaussian noise, then each dimension zeroed with probability AUGMENT_MASK_FRACTION."""
    noisy = x + AUGMENT_NOISE_STD * torch.randn(x.shape, generator=generator, device=x.device)
    keep = torch.rand(x.shape, generator=generator, device=x.device) >= AUGMENT_MASK_FRACTION
    return noisy * keep


def _reuse_fold(run_dir: Path, k: int, data: _Data, test: np.ndarray, fingerprint: str,
                device: torch.device) -> _FoldResult | None:
    """The fold's saved model if it exists and was made from the same config and data."""
    path = runs.fold_dir(run_dir, k) / runs.MODEL_FILE
    if not path.is_file():
        return None
    try:
        model, meta = runs.load_fold_model(path, audio_dim=data.audio_dim, text_dim=data.text_dim,
                                           map_location=device)
    except BadInputError:
        return None  # damaged or foreign: train it again (the new file replaces it)
    if meta.get("fingerprint") != fingerprint:
        return None
    audio, text, present = _rows(data, torch.as_tensor(test, device=device))
    with one_thread():  # as the fold's own test predictions were made
        probs, _ = predict_probs(model, audio, text, audio_present=present, batch_size=EVAL_BATCH)
    return _FoldResult(k, test, probs.double().cpu().numpy(), int(meta.get("best_epoch", 0)), reused=True)


def _aggregate(corpus: Corpus, data: _Data, results: list[_FoldResult], config: TrainConfig,
               writer: RunWriter) -> CrossValResult:
    """The out-of-fold table (rows in corpus order), per-fold and pooled reports, confusion."""
    rows = np.concatenate([r.test for r in results])
    probs = np.concatenate([r.probs for r in results])
    fold_of = np.concatenate([np.full(len(r.test), r.fold) for r in results])
    order = np.argsort(rows, kind="stable")
    rows, probs, fold_of = rows[order], probs[order], fold_of[order]
    ids = corpus.table["id"].astype(str).to_numpy()[rows]
    oof = runs.oof_table(ids, _CLASS_KEY_ARRAY[data.codes[rows]], probs, fold_of,
                         [data.audio_status[r] for r in rows])
    best = {r.fold: r.best_epoch for r in results}
    fold_reports, report, confusion = runs.results_from_table(oof, best, config)
    folds = [r.fold for r in results]
    model = hatr_for_loading(config.mode, data.audio_dim, data.text_dim, config.hidden, config.dropout)
    return CrossValResult(
        run_dir=writer.path, config=config, encoder=corpus.encoder,  # type: ignore[arg-type]
        fold_reports=fold_reports, oof=oof, report=report, confusion=confusion, folds=folds,
        reused=[r.fold for r in results if r.reused], best_epochs=[r.best_epoch for r in results],
        status="complete" if len(results) == config.folds else "partial",
        dataset_root=str(corpus.root) if corpus.root else "", dataset=corpus.dataset,
        synthetic=corpus.synthetic, n_items=len(corpus), parameters_per_model=count_parameters(model))
