"""Run folders: the one owner of the format. :class:`RunWriter` writes, :class:`RunFolder` reads.

```
run.json                  config, encoder, class order, dims, dataset (root, name, synthetic), n items,
                          fingerprint, created, updated, folds_done, status
fold_<k>/model.pt         the fold's best model (plain dict, loaded with weights_only=True)
fold_<k>/history.csv      epoch,loss,val_hf,lr,attn_audio,attn_text
fold_<k>/metrics.json     the fold's test-part report, best epoch, split sizes
oof_predictions.csv       id,truth,prediction,score,fold,audio_status,<23 probability columns by class key>
metrics.json              per fold, pooled out-of-fold report (per class inside), confusion
```
Folds are numbered from 1. ``fold_<k>/model.pt`` is written last, so its presence means the fold
finished; ``folds_done`` is always read from the disk, never counted by one process. Every file is
written atomically; the run-level files are written under the folder's lock (``.lock``), and a fold
is trained under its own lock, so two processes training different folds of one run (``--only-fold``)
both land, and two training the same fold are refused. Reading gives back the same
:class:`CrossValResult` the trainer returns. Torch is imported only to save or load a model.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from bst_core import atomic, locking
from bst_core.atomic import atomic_open, write_json
from bst_core.config import TrainConfig
from bst_core.corpus import EncoderInfo
from bst_core.errors import BadInputError, IncompatibleError
from bst_core.metrics import MetricReport, confusion_matrix, evaluate, summarize
from bst_core.predictions import AUDIO_OK, Predictions
from bst_core.taxonomy import CLASS_KEYS

if TYPE_CHECKING:
    import torch

    from bst_core.model import HATR

RUN_FORMAT = 2
"""``bst_format`` of run.json this code writes; results of format 1 (no audio status, no dataset
identity) are refused with what to do. Model files of format 1 and 2 both load."""
MODEL_FORMAT = 1
"""``bst_format`` of the fold model files."""
RUN_FILE = "run.json"
METRICS_FILE = "metrics.json"
OOF_FILE = "oof_predictions.csv"
MODEL_FILE = "model.pt"
HISTORY_FILE = "history.csv"
HISTORY_COLUMNS: tuple[str, ...] = ("epoch", "loss", "val_hf", "lr", "attn_audio", "attn_text")
OOF_COLUMNS: tuple[str, ...] = ("id", "truth", "prediction", "score", "fold", "audio_status", *CLASS_KEYS)
STATUSES: tuple[str, ...] = ("running", "complete", "partial", "cancelled", "failed")


def fold_dir(run_dir: str | Path, fold: int) -> Path:
    """``run_dir/fold_<fold>`` (folds are numbered from 1)."""
    return Path(run_dir) / f"fold_{fold}"


# --- model files -------------------------------------------------------------------------------

def save_fold_model(path: str | Path, model: HATR, *, config: Mapping[str, Any], encoder: EncoderInfo,
                    fold: int, best_epoch: int, fingerprint: str = "",
                    class_keys: Sequence[str] = CLASS_KEYS) -> None:
    """Write a fold model atomically (``torch.save`` of plain types only)."""
    from bst_core.model import count_parameters

    payload = {
        "bst_format": MODEL_FORMAT,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "config": dict(config),
        "mode": model.mode,
        "hidden": model.hidden,
        "class_keys": list(class_keys),
        "encoder": encoder.to_dict(),
        "audio_dim": model.audio_dim,
        "text_dim": model.text_dim,
        "fold": int(fold),
        "parameters": count_parameters(model),
        "best_epoch": int(best_epoch),
        "fingerprint": fingerprint,
    }
    atomic.save_torch(payload, path)


def read_fold_meta(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """The saved dict of a fold model (state dict included), checked for the expected keys."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise BadInputError(f"Model file {path} does not exist: train the fold first or pick another run.")
    try:
        meta = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # pickle/zip errors of all kinds: the file is not a model we wrote
        raise BadInputError(f"Model file {path} cannot be read ({type(exc).__name__}: {exc}). "
                            "It is damaged or not a BST Studio model; retrain this fold.") from exc
    required = ("state_dict", "config", "class_keys", "encoder", "audio_dim", "text_dim", "bst_format")
    missing = [k for k in required if not isinstance(meta, dict) or k not in meta]
    if missing:
        raise BadInputError(
            f"Model file {path} is not a BST Studio fold model (missing {', '.join(missing)}).")
    if int(meta["bst_format"]) > MODEL_FORMAT:
        raise IncompatibleError(f"Model file {path} has format {meta['bst_format']}, newer than this "
                                f"version of BST Studio reads ({MODEL_FORMAT}); update BST Studio.")
    return meta


def load_fold_model(path: str | Path, *, encoder: EncoderInfo | None = None, audio_dim: int | None = None,
                    text_dim: int | None = None, class_keys: Sequence[str] = CLASS_KEYS,
                    map_location: str | torch.device = "cpu") -> tuple[HATR, dict[str, Any]]:
    """Load a fold model in eval mode, refusing one that does not fit what the caller expects.

    Raises :class:`IncompatibleError` (naming the file) when the model's class order differs from
    ``class_keys`` or, where given, its encoder or input dimensions differ.
    Returns ``(model, meta)``; ``meta`` is the saved dict without the state dict.
    """
    from bst_core.model import hatr_for_loading

    path = Path(path)
    meta = read_fold_meta(path, map_location)
    if list(meta["class_keys"]) != list(class_keys):
        raise IncompatibleError(
            f"Model file {path} predicts classes in another order ({len(meta['class_keys'])} classes: "
            f"{', '.join(map(str, meta['class_keys'][:4]))}, ...) than this version of BST Studio "
            f"({len(class_keys)}: {', '.join(class_keys[:4])}, ...); retrain it.")
    saved_encoder = EncoderInfo.from_dict(meta["encoder"])
    if encoder is not None and saved_encoder != encoder:
        raise IncompatibleError(
            f"Model file {path} was trained on embeddings of {saved_encoder.label}, but these are "
            f"{encoder.label}. Use a model trained with the same encoder, or extract with it.")
    for name, want in (("audio_dim", audio_dim), ("text_dim", text_dim)):
        if want is not None and int(meta[name]) != int(want):
            raise IncompatibleError(f"Model file {path} expects {name.split('_')[0]} embeddings of "
                                    f"{meta[name]} dimensions, not {want}; use a matching model.")
    config = meta["config"]
    model = hatr_for_loading(mode=meta.get("mode", config.get("mode", "both")), audio_dim=int(meta["audio_dim"]),
                             text_dim=int(meta["text_dim"]), hidden=int(meta.get("hidden", config.get("hidden", 128))),
                             dropout=float(config.get("dropout", 0.1)), num_classes=len(meta["class_keys"]))
    try:
        model.load_state_dict(_float32(meta.pop("state_dict")), assign=True)
    except RuntimeError as exc:
        raise BadInputError(f"Model file {path} does not match its own configuration ({exc}); "
                            "it is damaged: retrain this fold.") from exc
    model.to(map_location).eval()
    return model, meta


def _float32(state: dict[str, Any]) -> dict[str, Any]:
    """``state`` with its floating tensors as float32 (what ``load_state_dict`` without ``assign``
    cast them to; the model computes in float32)."""
    import torch

    return {name: t.float() if isinstance(t, torch.Tensor) and t.is_floating_point() else t
            for name, t in state.items()}


# --- tables and JSON ---------------------------------------------------------------------------

def json_ready(obj: Any) -> Any:
    """Plain JSON types: numpy scalars/arrays converted, NaN/inf → None, tuples → lists."""
    if isinstance(obj, Mapping):
        return {str(k): json_ready(v) for k, v in obj.items()}
    if isinstance(obj, np.ndarray):
        return json_ready(obj.tolist())
    if isinstance(obj, list | tuple):
        return [json_ready(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, Path):
        return str(obj)
    return obj


def write_table(path: str | Path, frame: pd.DataFrame) -> None:
    """Write a CSV atomically with pandas (quotes ids with commas, newlines, ...)."""
    with atomic_open(path, "w", newline="") as handle:
        frame.to_csv(handle, index=False)


def read_json(path: Path) -> dict[str, Any]:
    """Read a JSON object; BadInputError naming the file when it is missing or damaged."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise BadInputError(f"{path} does not exist.") from exc
    except (OSError, ValueError) as exc:
        raise BadInputError(f"{path} cannot be read ({exc}); it is damaged. Rerun to rewrite it.") from exc
    if not isinstance(data, dict):
        raise BadInputError(f"{path} does not hold a JSON object; it is damaged. Rerun to rewrite it.")
    return data


# --- the result --------------------------------------------------------------------------------

@dataclass
class CrossValResult:
    """A cross-validation run's results: what :func:`training.cross_validate` returns and what
    :meth:`RunFolder.result` reads back from the folder (the same object either way).

    ``fold_reports``/``folds``/``best_epochs`` cover the folds finished so far; ``reused`` lists
    the folds this call loaded from disk instead of training (empty when read back).
    ``dataset_root`` is the source the run was trained on: its results belong to that source only.
    """

    run_dir: Path
    config: TrainConfig
    encoder: EncoderInfo
    fold_reports: list[MetricReport]
    oof: pd.DataFrame
    report: MetricReport
    confusion: np.ndarray
    folds: list[int] = field(default_factory=list)
    reused: list[int] = field(default_factory=list)
    best_epochs: list[int] = field(default_factory=list)
    status: str = "complete"
    dataset_root: str = ""
    dataset: str = ""
    synthetic: bool = False
    n_items: int = 0
    parameters_per_model: int = 0

    @property
    def summary(self) -> dict[str, tuple[float, float]]:
        """Mean and std (ddof 0) of every headline metric over the finished folds."""
        return summarize(self.fold_reports)

    @property
    def missing_folds(self) -> list[int]:
        """Folds of the split that have not finished."""
        return [k for k in range(1, self.config.folds + 1) if k not in self.folds]

    @property
    def complete(self) -> bool:
        return not self.missing_folds

    @property
    def dataset_label(self) -> str:
        """The data the run was trained on, in words (marked when synthetic)."""
        name = Path(self.dataset_root).name if self.dataset_root else "an in-memory corpus"
        return f"{name} (synthetic)" if self.synthetic else name

    def predictions(self) -> Predictions:
        """The out-of-fold predictions: every item by the fold model that did not train on it."""
        oof = self.oof
        return Predictions(oof["id"].astype(str).tolist(), oof.loc[:, list(CLASS_KEYS)].to_numpy(np.float64),
                           audio_status=oof["audio_status"].astype(str).tolist(), source=self.dataset_root,
                           run_dir=self.run_dir, origin="out-of-fold", n_models=1,
                           parameters_per_model=self.parameters_per_model)


def oof_table(ids: Sequence[str], truth: Sequence[str], probs: np.ndarray, fold_of: np.ndarray,
              audio_status: Sequence[str]) -> pd.DataFrame:
    """The out-of-fold table (:data:`OOF_COLUMNS`) of rows already in id order."""
    probs = np.asarray(probs, dtype=np.float64)
    head = pd.DataFrame({
        "id": pd.Series(list(ids), dtype=object), "truth": list(truth),
        "prediction": [CLASS_KEYS[k] for k in probs.argmax(axis=1)], "score": probs.max(axis=1),
        "fold": np.asarray(fold_of, dtype=np.int64), "audio_status": list(audio_status),
    })
    return pd.concat([head, pd.DataFrame(probs, columns=list(CLASS_KEYS))], axis=1)


def results_from_table(oof: pd.DataFrame, fold_best: Mapping[int, int], config: TrainConfig) -> tuple[
        list[MetricReport], MetricReport, np.ndarray]:
    """Per-fold reports (fold order), the pooled report and the confusion of an out-of-fold table."""
    folds = sorted(fold_best)
    reports = []
    for k in folds:
        part = oof[oof["fold"] == k]
        reports.append(evaluate(part["truth"].tolist(), part["prediction"].tolist(), lam=config.lam,
                                absent=config.absent))  # type: ignore[arg-type]
    truth, pred = oof["truth"].tolist(), oof["prediction"].tolist()
    pooled = evaluate(truth, pred, lam=config.lam, absent=config.absent)  # type: ignore[arg-type]
    return reports, pooled, confusion_matrix(truth, pred)


# --- writing a run -----------------------------------------------------------------------------

def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class RunWriter:
    """The only code that writes a run folder. Start it with :meth:`start`."""

    def __init__(self, run_dir: Path, info: dict[str, Any]) -> None:
        self.path = run_dir
        self.info = info

    @classmethod
    def start(cls, run_dir: str | Path, *, config: TrainConfig, encoder: EncoderInfo, fingerprint: str,
              audio_dim: int, text_dim: int, n_items: int, dataset_root: str = "", dataset: str = "",
              synthetic: bool = False) -> RunWriter:
        """Create run.json (status running), or join the same run; refuse a folder of another.

        Left-over temp files of a killed write are removed first.
        """
        run_dir = Path(run_dir)
        run_file = run_dir / RUN_FILE
        run_dir.mkdir(parents=True, exist_ok=True)
        with locking.exclusive(run_dir, "run folder"):   # checked under the lock: another process
            atomic.clean_stale_tmp(run_dir)               # starting this run may be writing run.json now
            if not run_file.is_file() and any(p.name != locking.LOCK_NAME for p in run_dir.iterdir()):
                raise BadInputError(f"{run_dir} is not empty and is not a run folder: choose a new or empty folder.")
            for folder in run_dir.glob("fold_*"):   # folds no other process is training now
                with contextlib.suppress(BadInputError), locking.exclusive(folder, "fold", timeout=0):
                    atomic.clean_stale_tmp(folder)
            created = _now()
            if run_file.is_file():
                previous = read_json(run_file)
                if previous.get("fingerprint") != fingerprint:
                    raise BadInputError(
                        f"{run_dir} already holds a run with other options or other data. Choose a new "
                        "folder for this run (or delete that one to replace it).")
                created = str(previous.get("created", created))
            info = {
                "format": "bst-run", "bst_format": RUN_FORMAT,
                "config": config.to_dict(), "encoder": encoder.to_dict(), "class_keys": list(CLASS_KEYS),
                "audio_dim": int(audio_dim), "text_dim": int(text_dim),
                "dataset_root": dataset_root, "dataset": dataset, "synthetic": bool(synthetic),
                "n_items": int(n_items), "fingerprint": fingerprint, "created": created,
            }
            writer = cls(run_dir, info)
            writer._write_info("running")
        return writer

    @contextlib.contextmanager
    def fold_lock(self, fold: int) -> Iterator[None]:
        """Hold while training ``fold``: a second process training the same fold is refused.
        Temp files a killed write left in the fold's folder are removed first."""
        folder = fold_dir(self.path, fold)
        with locking.exclusive(folder, f"fold {fold} of the run", timeout=0):
            atomic.clean_stale_tmp(folder)
            yield

    def write_fold(self, fold: int, model: HATR, *, history: Sequence[Mapping[str, Any]],
                   metrics: Mapping[str, Any], best_epoch: int) -> None:
        """History, metrics, then the model (its presence means the fold is finished)."""
        folder = fold_dir(self.path, fold)
        write_table(folder / HISTORY_FILE, pd.DataFrame(list(history), columns=list(HISTORY_COLUMNS)))
        write_json(folder / METRICS_FILE, json_ready(dict(metrics)))
        save_fold_model(folder / MODEL_FILE, model, config=self.info["config"],
                        encoder=EncoderInfo.from_dict(self.info["encoder"]), fold=fold, best_epoch=best_epoch,
                        fingerprint=self.info["fingerprint"])

    def finish(self, result: CrossValResult, unusable: Sequence[int] = ()) -> bool:
        """Write the out-of-fold table and metrics.json, then run.json with the status on disk.

        Returns False, writing nothing, when the folder holds finished folds that ``result`` lacks
        (another process finished them meanwhile): aggregate again with them and call again.
        ``unusable``: folds whose model file is there but not of this run (damaged or foreign).
        """
        with locking.exclusive(self.path, "run folder"):
            on_disk = sorted(set(RunFolder.finished_folds(self.path)) - set(unusable))
            if set(on_disk) - set(result.folds):
                return False
            status = "complete" if len(on_disk) >= result.config.folds else "partial"
            write_table(self.path / OOF_FILE, result.oof)
            write_json(self.path / METRICS_FILE, json_ready({
                "lam": result.config.lam, "absent": result.config.absent, "mode": result.config.mode,
                "n_items": len(result.oof), "folds_done": result.folds, "status": status,
                "folds": [{"fold": k, "best_epoch": b, **rep.to_dict()}
                          for k, b, rep in zip(result.folds, result.best_epochs, result.fold_reports, strict=True)],
                "summary": {name: {"mean": m, "std": sd} for name, (m, sd) in result.summary.items()},
                "pooled": result.report.to_dict(), "class_keys": list(CLASS_KEYS),
                "confusion": result.confusion, "parameters_per_model": result.parameters_per_model,
            }))
            self._write_info(status, unusable)
        return True

    def set_status(self, status: str) -> None:
        """Record ``status`` (e.g. "cancelled"); ``folds_done`` is what is on disk now."""
        with locking.exclusive(self.path, "run folder"):
            self._write_info(status)

    def _write_info(self, status: str, unusable: Sequence[int] = ()) -> None:
        done = sorted(set(RunFolder.finished_folds(self.path)) - set(unusable))
        if status in ("complete", "partial"):
            status = "complete" if len(done) >= int(self.info["config"]["folds"]) else "partial"
        self.info.update(status=status, folds_done=done, updated=_now())
        write_json(self.path / RUN_FILE, json_ready(self.info))


# --- reading a run -----------------------------------------------------------------------------

class RunFolder:
    """Read-only view of a run folder. A folder without ``run.json`` → BadInputError."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        run_file = self.path / RUN_FILE
        if not run_file.is_file():
            raise BadInputError(f"{self.path} is not a BST Studio run folder (no {RUN_FILE}); "
                                "pick the folder a training run wrote.")
        self.info = read_json(run_file)
        if self.info.get("format") != "bst-run":
            raise BadInputError(f"{run_file} is not a BST Studio run description; pick another folder.")
        version = self.info.get("bst_format", 0)
        if not isinstance(version, int) or version > RUN_FORMAT:
            raise IncompatibleError(f"{run_file} was written by a newer BST Studio; update to read it.")

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r}, status={self.status!r})"

    @property
    def config(self) -> TrainConfig:
        return TrainConfig.from_dict(self.info.get("config", {}))

    @property
    def encoder(self) -> EncoderInfo:
        return EncoderInfo.from_dict(self.info["encoder"])

    @property
    def class_keys(self) -> list[str]:
        return list(self.info.get("class_keys", CLASS_KEYS))

    @property
    def audio_dim(self) -> int:
        return int(self.info["audio_dim"])

    @property
    def text_dim(self) -> int:
        return int(self.info["text_dim"])

    @property
    def status(self) -> str:
        return str(self.info.get("status", ""))

    @property
    def dataset_root(self) -> str:
        return str(self.info.get("dataset_root", ""))

    @staticmethod
    def finished_folds(path: Path) -> list[int]:
        """Folds whose model file exists in ``path``, ascending."""
        numbers = []
        for child in Path(path).glob("fold_*"):
            suffix = child.name.removeprefix("fold_")
            if suffix.isdigit() and (child / MODEL_FILE).is_file():
                numbers.append(int(suffix))
        return sorted(numbers)

    def fold_numbers(self) -> list[int]:
        """Folds whose model file exists, ascending."""
        return self.finished_folds(self.path)

    def fold_dirs(self) -> list[Path]:
        """Folders of the finished folds (with a ``model.pt``), by fold number."""
        return [fold_dir(self.path, k) for k in self.fold_numbers()]

    def model_paths(self) -> list[Path]:
        return [d / MODEL_FILE for d in self.fold_dirs()]

    def missing_folds(self) -> list[int]:
        """Folds of the split without a finished model."""
        done = set(self.fold_numbers())
        return [k for k in range(1, self.config.folds + 1) if k not in done]

    def metrics(self) -> dict[str, Any]:
        """The run's ``metrics.json`` (BadInputError if the run has not written it yet)."""
        return read_json(self.path / METRICS_FILE)

    def fold_metrics(self, fold: int) -> dict[str, Any]:
        return read_json(fold_dir(self.path, fold) / METRICS_FILE)

    def oof(self) -> pd.DataFrame:
        """Out-of-fold predictions; ``id``/``truth``/``prediction``/``audio_status`` as str."""
        path = self.path / OOF_FILE
        try:
            frame = pd.read_csv(path, dtype={"id": str, "truth": str, "prediction": str, "audio_status": str},
                                keep_default_na=False, na_filter=False)
        except FileNotFoundError as exc:
            raise BadInputError(f"{path} does not exist: the run has not finished a fold yet.") from exc
        except (OSError, ValueError) as exc:
            raise BadInputError(f"{path} cannot be read ({exc}); rerun the training to rewrite it.") from exc
        missing = [c for c in OOF_COLUMNS if c not in frame.columns]
        if missing:
            raise BadInputError(f"{path} lacks the columns {', '.join(missing)}; rerun the training.")
        return frame

    def history(self, fold: int) -> pd.DataFrame:
        """Per-epoch history of a fold (:data:`HISTORY_COLUMNS`)."""
        path = fold_dir(self.path, fold) / HISTORY_FILE
        try:
            return pd.read_csv(path)
        except FileNotFoundError as exc:
            raise BadInputError(f"{path} does not exist: fold {fold} has not finished an epoch.") from exc
        except (OSError, ValueError) as exc:
            raise BadInputError(f"{path} cannot be read ({exc}); rerun fold {fold}.") from exc

    def result(self) -> CrossValResult:
        """The run's results as the trainer returned them; the reports are recomputed from the
        out-of-fold table, so metrics.json can never disagree with the predictions shown."""
        if int(self.info.get("bst_format", 0)) < RUN_FORMAT:
            raise IncompatibleError(f"{self.path / RUN_FILE} was written by an older BST Studio (format "
                                    f"{self.info.get('bst_format')}); its results lack the audio status "
                                    "and dataset identity. Retrain into a new folder.")
        metrics = self.metrics()
        oof = self.oof()
        best = {int(f["fold"]): int(f.get("best_epoch", 0)) for f in metrics.get("folds", [])}
        in_table = sorted({int(k) for k in oof["fold"].unique()})
        if sorted(best) != in_table:
            raise BadInputError(f"{self.path}: metrics.json lists folds {sorted(best)} but "
                                f"{OOF_FILE} holds folds {in_table}; the folder is inconsistent. Rerun "
                                "`bst train` with the same options into it to rewrite both.")
        config = self.config
        reports, pooled, confusion = results_from_table(oof, best, config)
        status = self.status
        if status in ("complete", "partial"):
            status = "complete" if all(k in best for k in range(1, config.folds + 1)) else "partial"
        return CrossValResult(
            run_dir=self.path, config=config, encoder=self.encoder, fold_reports=reports, oof=oof,
            report=pooled, confusion=confusion, folds=sorted(best), best_epochs=[best[k] for k in sorted(best)],
            status=status, dataset_root=self.dataset_root, dataset=str(self.info.get("dataset", "")),
            synthetic=bool(self.info.get("synthetic", False)), n_items=int(self.info.get("n_items", len(oof))),
            parameters_per_model=int(metrics.get("parameters_per_model", 0)))


__all__ = [
    "AUDIO_OK", "HISTORY_COLUMNS", "OOF_COLUMNS", "RUN_FORMAT", "CrossValResult", "RunFolder", "RunWriter",
    "fold_dir", "json_ready", "load_fold_model", "oof_table", "read_fold_meta", "read_json", "results_from_table",
    "save_fold_model", "write_table",
]
