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
Same seed, same data, same device → the same numbers (deterministic algorithms, private RNG state).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.model_selection import StratifiedKFold, train_test_split
from torch import nn

from bst_core import jobs, runs
from bst_core.atomic import write_json
from bst_core.corpus import Corpus, EncoderInfo
from bst_core.errors import BadInputError
from bst_core.jobs import Cancelled, Job
from bst_core.metrics import ABSENT_MODES, MetricReport, confusion_matrix, evaluate, summarize
from bst_core.model import HATR, MODES, predict_probs
from bst_core.taxonomy import CLASS_INDEX, CLASS_KEYS

AUGMENT_NOISE_STD = 0.01
"""Standard deviation of the Gaussian noise added to training embeddings when ``augment``."""
AUGMENT_MASK_FRACTION = 0.1
"""Probability that one embedding dimension is zeroed when ``augment``."""
CHECK_EVERY_BATCHES = 20
"""``job.check()`` is called every this many training batches (and between epochs)."""
EVAL_BATCH = 8192

_CLASS_KEY_ARRAY = np.array(CLASS_KEYS, dtype=object)
_NOT_IN_FINGERPRINT = ("only_fold", "device", "fused_adam")
"""Config fields that choose what/where to run, not what a fold model is."""


@dataclass
class TrainConfig:
    """Everything that defines a cross-validation run. Defaults are the seed report's protocol.

    ``only_fold`` (1..folds) trains just that fold of the same split; ``patience=None`` disables
    early stopping; ``fused_adam=None`` uses the fused Adam kernel when the device supports it.
    ``absent`` is the absent-class mode of the reported test metrics (validation always uses
    ``"reference"``).
    """

    mode: str = "both"
    folds: int = 5
    seed: int = 1821
    epochs: int = 100
    batch_size: int = 64
    lr: float = 1e-3
    patience: int | None = 10
    val_fraction: float = 0.2
    augment: bool = False
    label_smoothing: float = 0.0
    only_fold: int | None = None
    hidden: int = 128
    dropout: float = 0.1
    device: str = "cpu"
    lam: float = 0.75
    absent: str = "reference"
    fused_adam: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Build from a dict (e.g. run.json), ignoring keys this version does not know."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def validate(self) -> None:
        """BadInputError for an option outside its range, saying what is allowed."""
        problems = []
        if self.mode not in MODES:
            problems.append(f"mode must be one of {', '.join(MODES)} (got {self.mode!r})")
        if not isinstance(self.folds, int) or self.folds < 2:
            problems.append(f"folds must be an integer ≥ 2 (got {self.folds!r})")
        if not isinstance(self.epochs, int) or self.epochs < 1:
            problems.append(f"epochs must be an integer ≥ 1 (got {self.epochs!r})")
        if not isinstance(self.batch_size, int) or self.batch_size < 2:
            problems.append(f"batch size must be an integer ≥ 2 (got {self.batch_size!r})")
        if not self.lr > 0:
            problems.append(f"learning rate must be > 0 (got {self.lr!r})")
        if self.patience is not None and (not isinstance(self.patience, int) or self.patience < 1):
            problems.append(f"patience must be an integer ≥ 1 or None (got {self.patience!r})")
        if not 0 < self.val_fraction < 1:
            problems.append(f"validation fraction must be between 0 and 1 (got {self.val_fraction!r})")
        if not 0 <= self.label_smoothing < 1:
            problems.append(f"label smoothing must be in [0, 1) (got {self.label_smoothing!r})")
        if not 0 <= self.dropout < 1:
            problems.append(f"dropout must be in [0, 1) (got {self.dropout!r})")
        if not isinstance(self.hidden, int) or self.hidden < 4:
            problems.append(f"hidden size must be an integer ≥ 4 (got {self.hidden!r})")
        if not 0 <= self.lam <= 1:
            problems.append(f"λ must be between 0 and 1 (got {self.lam!r})")
        if self.absent not in ABSENT_MODES:
            problems.append(f"absent mode must be one of {', '.join(ABSENT_MODES)} (got {self.absent!r})")
        if self.only_fold is not None and (
                not isinstance(self.only_fold, int) or not 1 <= self.only_fold <= self.folds):
            problems.append(f"only_fold must be between 1 and {self.folds} (got {self.only_fold!r})")
        try:
            torch.device(self.device)
        except (RuntimeError, TypeError):
            problems.append(f"device {self.device!r} is not a torch device name (use 'cpu' or 'cuda')")
        if problems:
            raise BadInputError("Training options not usable: " + "; ".join(problems) + ".")


@dataclass
class CrossValResult:
    """What :func:`cross_validate` returns (all of it is also in the run folder).

    ``fold_reports``/``folds``/``best_epochs`` cover the folds available after this call (with
    ``only_fold``, the trained fold plus any finished ones already in the folder); ``reused`` lists
    the folds loaded from disk instead of trained.
    """

    run_dir: Path
    fold_reports: list[MetricReport]
    summary: dict[str, tuple[float, float]]
    oof: pd.DataFrame
    report: MetricReport
    confusion: np.ndarray
    folds: list[int] = field(default_factory=list)
    reused: list[int] = field(default_factory=list)
    best_epochs: list[int] = field(default_factory=list)
    status: str = "complete"


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


@dataclass
class _FoldResult:
    fold: int
    test: np.ndarray
    probs: np.ndarray             # (n_test, 23) float64
    best_epoch: int
    reused: bool


def cross_validate(corpus: Corpus, run_dir: str | Path, config: TrainConfig | None = None,
                   job: Job | None = None) -> CrossValResult:
    """Cross-validate HATR on ``corpus``; write the run folder ``run_dir``; return the results.

    Finished folds already in ``run_dir`` with the same configuration and data are reused; a
    folder holding another run (or other files) is refused. Progress: ``job.progress("fold k/K",
    epoch, epochs, fold=, epoch=, loss=, val_hf=, lr=, attn_audio=, attn_text=)`` every epoch.
    On cancel, finished folds stay on disk, run.json says "cancelled", and Cancelled propagates.
    """
    config = config or TrainConfig()
    check_trainable(corpus, config)
    run_dir = Path(run_dir)
    device = torch.device(config.device)
    encoder = corpus.encoder
    assert encoder is not None  # checked above
    data = _to_tensors(corpus, config, device)
    fingerprint = run_fingerprint(corpus, config)
    info = _start_run_folder(run_dir, corpus, config, encoder, data, fingerprint)
    splits = fold_splits(data.codes, folds=config.folds, seed=config.seed, val_fraction=config.val_fraction)

    results: list[_FoldResult] = []
    try:
        for k, (train, val, test) in enumerate(splits, start=1):
            wanted = config.only_fold is None or config.only_fold == k
            done = _reuse_fold(run_dir, k, data, test, fingerprint, config, device)
            if done is not None:
                results.append(done)
                jobs.report(job, f"fold {k}/{config.folds}", config.epochs, config.epochs,
                            "reused", fold=k, reused=True, best_epoch=done.best_epoch)
            elif wanted:
                results.append(_train_fold(k, train, val, test, data, config, encoder, run_dir,
                                           fingerprint, device, job))
    except Cancelled:
        _set_status(run_dir, info, "cancelled", [r.fold for r in results])
        raise
    except BaseException:
        _set_status(run_dir, info, "failed", [r.fold for r in results])
        raise

    result = _aggregate(corpus, data, results, config, run_dir)
    _set_status(run_dir, info, result.status, result.folds)
    return result


def run_fingerprint(corpus: Corpus, config: TrainConfig) -> str:
    """Hash of the configuration and the data (ids, labels, embeddings used, encoder)."""
    digest = hashlib.blake2b(digest_size=16)
    core = {k: v for k, v in config.to_dict().items() if k not in _NOT_IN_FINGERPRINT}
    digest.update(json.dumps(core, sort_keys=True).encode())
    digest.update(json.dumps(corpus.encoder.to_dict() if corpus.encoder else None, sort_keys=True).encode())
    digest.update("\0".join(corpus.ids).encode())
    digest.update(b"\1" + "\0".join(corpus.labels.astype(str)).encode())
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
    return _Data(
        codes=np.array(corpus.labels.astype(str).map(CLASS_INDEX), dtype=np.int64),
        audio=audio, text=text,
        audio_dim=audio.shape[1] if audio is not None else encoder.audio_dim,
        text_dim=text.shape[1] if text is not None else encoder.text_dim,
    )


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _start_run_folder(run_dir: Path, corpus: Corpus, config: TrainConfig, encoder: EncoderInfo,
                      data: _Data, fingerprint: str) -> dict[str, Any]:
    """Create run.json (status running), or continue the same run; refuse a folder of another."""
    created = _now()
    run_file = run_dir / runs.RUN_FILE
    if run_file.is_file():
        previous = runs.read_json(run_file)
        if previous.get("fingerprint") != fingerprint:
            raise BadInputError(
                f"{run_dir} already holds a run with other options or other data. Choose a new "
                "folder for this run (or delete that one to replace it).")
        created = str(previous.get("created", created))
    elif run_dir.exists() and any(run_dir.iterdir()):
        raise BadInputError(f"{run_dir} is not empty and is not a run folder: choose a new or empty folder.")
    info = {
        "format": "bst-run", "bst_format": runs.RUN_FORMAT,
        "config": config.to_dict(), "encoder": encoder.to_dict(), "class_keys": list(CLASS_KEYS),
        "audio_dim": data.audio_dim, "text_dim": data.text_dim,
        "dataset_root": str(corpus.root) if corpus.root else "", "n_items": len(corpus),
        "fingerprint": fingerprint, "created": created, "updated": created,
        "status": "running", "folds_done": [],
    }
    run_dir.mkdir(parents=True, exist_ok=True)
    runs.write_run_info(run_dir, info)
    return info


def _set_status(run_dir: Path, info: dict[str, Any], status: str, folds_done: list[int]) -> None:
    info.update(status=status, folds_done=sorted(folds_done), updated=_now())
    runs.write_run_info(run_dir, info)


@contextlib.contextmanager
def _reproducible(seed: int, device: torch.device) -> Iterator[None]:
    """Seeded private RNG state and deterministic kernels; the caller's state is restored."""
    devices = [device.index or 0] if device.type == "cuda" else []
    was_on = torch.are_deterministic_algorithms_enabled()
    was_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    with torch.random.fork_rng(devices=devices, device_type="cuda" if device.type == "cpu" else device.type):
        torch.manual_seed(seed)
        torch.use_deterministic_algorithms(True, warn_only=True)
        try:
            yield
        finally:
            torch.use_deterministic_algorithms(was_on, warn_only=was_warn)


def _fold_seed(seed: int, fold: int) -> int:
    return seed * 1000 + fold


def _make_optimizer(model: nn.Module, config: TrainConfig, device: torch.device) -> torch.optim.Optimizer:
    if config.fused_adam is not False:
        try:
            return torch.optim.Adam(model.parameters(), lr=config.lr, fused=True)
        except (RuntimeError, TypeError):
            if config.fused_adam:
                raise BadInputError(f"Fused Adam is not available on device {device}; "
                                    "set fused_adam to None or False.") from None
    return torch.optim.Adam(model.parameters(), lr=config.lr)


def warm_up(device: str = "cpu") -> None:
    """One tiny training step and one prediction, so torch's first-call costs (lazy imports and
    kernel set-up that hold the GIL for ~0.1 s) are paid now rather than inside a job. Leaves the
    global random state untouched. The GUI calls this in a background thread at start-up."""
    with torch.random.fork_rng(devices=[]):
        model = HATR("both", 8, 8, hidden=8).to(device)
        optimizer = _make_optimizer(model, TrainConfig(device=device), torch.device(device))
        logits, _ = model(torch.randn(4, 8, device=device), torch.randn(4, 8, device=device))
        nn.CrossEntropyLoss()(logits, torch.zeros(4, dtype=torch.long, device=device)).backward()
        optimizer.step()
        predict_probs(model, torch.randn(2, 8, device=device), torch.randn(2, 8, device=device))


def _train_fold(k: int, train: np.ndarray, val: np.ndarray, test: np.ndarray, data: _Data,
                config: TrainConfig, encoder: EncoderInfo, run_dir: Path, fingerprint: str,
                device: torch.device, job: Job | None) -> _FoldResult:
    stage = f"fold {k}/{config.folds}"
    jobs.report(job, stage, 0, config.epochs, "training", fold=k)
    with _reproducible(_fold_seed(config.seed, k), device):
        model = HATR(config.mode, data.audio_dim, data.text_dim, config.hidden, config.dropout).to(device)
        optimizer = _make_optimizer(model, config, device)
        criterion = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
        shuffle = torch.Generator().manual_seed(_fold_seed(config.seed, k))
        noise = torch.Generator(device=device).manual_seed(_fold_seed(config.seed, k) + 1)
        codes = torch.as_tensor(data.codes, device=device)
        train_rows = torch.as_tensor(train, device=device)
        val_truth = _CLASS_KEY_ARRAY[data.codes[val]].tolist()
        val_rows = torch.as_tensor(val, device=device)

        best_hf, best_epoch, best_state, stale = -math.inf, 0, None, 0
        history: list[dict[str, Any]] = []
        for epoch in range(1, config.epochs + 1):
            jobs.check(job)
            loss, attn = _train_epoch(model, optimizer, criterion, data, codes, train_rows, shuffle, noise,
                                      config, job)
            probs, _ = predict_probs(model, *_rows(data, val_rows), batch_size=EVAL_BATCH)
            pred = _CLASS_KEY_ARRAY[probs.argmax(dim=1).cpu().numpy()].tolist()
            val_hf = evaluate(val_truth, pred, lam=config.lam, absent="reference").hF
            lr = optimizer.param_groups[0]["lr"]
            row = {"epoch": epoch, "loss": loss, "val_hf": val_hf, "lr": lr,
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
        test_probs, _ = predict_probs(model, *_rows(data, torch.as_tensor(test, device=device)),
                                      batch_size=EVAL_BATCH)

    probs_np = test_probs.double().cpu().numpy()
    test_report = evaluate(_CLASS_KEY_ARRAY[data.codes[test]].tolist(),
                           _CLASS_KEY_ARRAY[probs_np.argmax(axis=1)].tolist(), lam=config.lam,
                           absent=config.absent)  # type: ignore[arg-type]
    folder = runs.fold_dir(run_dir, k)
    runs.write_history(folder / runs.HISTORY_FILE, history)
    write_json(folder / runs.METRICS_FILE, runs.json_ready({
        "fold": k, "best_epoch": best_epoch, "best_val_hf": best_hf, "epochs_run": len(history),
        "n_train": len(train), "n_val": len(val), "n_test": len(test), "test": test_report.to_dict(),
    }))
    runs.save_fold_model(folder / runs.MODEL_FILE, model, config=config.to_dict(), encoder=encoder,
                         fold=k, best_epoch=best_epoch, fingerprint=fingerprint)
    return _FoldResult(k, test, probs_np, best_epoch, reused=False)


def _rows(data: _Data, rows: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    return (None if data.audio is None else data.audio[rows], None if data.text is None else data.text[rows])


def _train_epoch(model: HATR, optimizer: torch.optim.Optimizer, criterion: nn.Module, data: _Data,
                 codes: torch.Tensor, train_rows: torch.Tensor, shuffle: torch.Generator,
                 noise: torch.Generator, config: TrainConfig,
                 job: Job | None) -> tuple[float, tuple[float, float] | None]:
    """One pass over the shuffled training rows; returns mean loss and mean attention."""
    model.train()
    order = train_rows[torch.randperm(len(train_rows), generator=shuffle).to(train_rows.device)]
    loss_sum = torch.zeros((), device=train_rows.device)
    attn_sum = torch.zeros(2, device=train_rows.device)
    seen = 0
    for b, start in enumerate(range(0, len(order), config.batch_size)):
        rows = order[start:start + config.batch_size]
        if len(rows) < 2:  # BatchNorm cannot train on a single item
            continue
        if b % CHECK_EVERY_BATCHES == 0:
            jobs.check(job)
        audio, text = _rows(data, rows)
        if config.augment:
            audio = None if audio is None else _augment(audio, noise)
            text = None if text is None else _augment(text, noise)
        optimizer.zero_grad(set_to_none=True)
        logits, attention = model(audio, text)
        loss = criterion(logits, codes[rows])
        loss.backward()
        optimizer.step()
        loss_sum += loss.detach() * len(rows)
        if attention is not None:
            attn_sum += attention.detach().sum(dim=0)
        seen += len(rows)
    mean_attn = (attn_sum / seen).tolist() if model.fusion is not None and seen else None
    return float(loss_sum) / max(seen, 1), (tuple(mean_attn) if mean_attn else None)  # type: ignore[return-value]


def _augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Gaussian noise, then each dimension zeroed with probability AUGMENT_MASK_FRACTION."""
    noisy = x + AUGMENT_NOISE_STD * torch.randn(x.shape, generator=generator, device=x.device)
    keep = torch.rand(x.shape, generator=generator, device=x.device) >= AUGMENT_MASK_FRACTION
    return noisy * keep


def _reuse_fold(run_dir: Path, k: int, data: _Data, test: np.ndarray, fingerprint: str,
                config: TrainConfig, device: torch.device) -> _FoldResult | None:
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
    probs, _ = predict_probs(model, *_rows(data, torch.as_tensor(test, device=device)), batch_size=EVAL_BATCH)
    return _FoldResult(k, test, probs.double().cpu().numpy(), int(meta.get("best_epoch", 0)), reused=True)


def _aggregate(corpus: Corpus, data: _Data, results: list[_FoldResult], config: TrainConfig,
               run_dir: Path) -> CrossValResult:
    """OOF table, per-fold and pooled reports, confusion; writes oof_predictions.csv and metrics.json."""
    results = sorted(results, key=lambda r: r.fold)
    absent = config.absent
    fold_reports = []
    for r in results:
        truth = _CLASS_KEY_ARRAY[data.codes[r.test]].tolist()
        pred = _CLASS_KEY_ARRAY[r.probs.argmax(axis=1)].tolist()
        fold_reports.append(evaluate(truth, pred, lam=config.lam, absent=absent))  # type: ignore[arg-type]

    rows = np.concatenate([r.test for r in results])
    probs = np.concatenate([r.probs for r in results])
    fold_of = np.concatenate([np.full(len(r.test), r.fold) for r in results])
    order = np.argsort(rows, kind="stable")
    rows, probs, fold_of = rows[order], probs[order], fold_of[order]
    truth = _CLASS_KEY_ARRAY[data.codes[rows]]
    pred = _CLASS_KEY_ARRAY[probs.argmax(axis=1)]
    oof = pd.DataFrame({
        "id": corpus.table["id"].astype(str).to_numpy()[rows], "truth": truth, "prediction": pred,
        "score": probs.max(axis=1), "fold": fold_of,
    })
    oof = pd.concat([oof, pd.DataFrame(probs, columns=list(CLASS_KEYS))], axis=1)
    report = evaluate(truth.tolist(), pred.tolist(), lam=config.lam, absent=absent)  # type: ignore[arg-type]
    confusion = confusion_matrix(truth.tolist(), pred.tolist())
    summary = summarize(fold_reports)
    folds = [r.fold for r in results]
    status = "complete" if len(results) == config.folds else "partial"

    runs.write_table(run_dir / runs.OOF_FILE, oof)
    write_json(run_dir / runs.METRICS_FILE, runs.json_ready({
        "lam": config.lam, "absent": absent, "mode": config.mode, "n_items": len(rows),
        "folds_done": folds, "status": status,
        "folds": [{"fold": r.fold, "best_epoch": r.best_epoch, **rep.to_dict()}
                  for r, rep in zip(results, fold_reports, strict=True)],
        "summary": {name: {"mean": m, "std": s} for name, (m, s) in summary.items()},
        "pooled": report.to_dict(),
        "class_keys": list(CLASS_KEYS),
        "confusion": confusion,
    }))
    return CrossValResult(run_dir=run_dir, fold_reports=fold_reports, summary=summary, oof=oof,
                          report=report, confusion=confusion, folds=folds,
                          reused=[r.fold for r in results if r.reused],
                          best_epochs=[r.best_epoch for r in results], status=status)

