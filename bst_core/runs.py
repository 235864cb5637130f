"""Run folders: what a cross-validation run leaves on disk, and how to read it back.

```
run.json                  config, encoder, class order, dims, dataset root, n items, created, status
fold_<k>/model.pt         the fold's best model (plain dict, loaded with weights_only=True)
fold_<k>/history.csv      epoch,loss,val_hf,lr,attn_audio,attn_text
fold_<k>/metrics.json     the fold's test-part report, best epoch, split sizes
oof_predictions.csv       id,truth,prediction,score,fold,<23 probability columns by class key>
metrics.json              per fold, mean ± std, pooled out-of-fold report, per class, confusion
```
Folds are numbered from 1. ``fold_<k>/model.pt`` is written last, so its presence means the fold
finished. Every file is written atomically.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch

from bst_core.atomic import atomic_open, write_json
from bst_core.corpus import EncoderInfo
from bst_core.errors import BadInputError, IncompatibleError
from bst_core.model import HATR
from bst_core.taxonomy import CLASS_KEYS

if TYPE_CHECKING:
    from bst_core.training import TrainConfig

RUN_FORMAT = 1
"""``bst_format`` of model files and run.json this code writes and reads."""
RUN_FILE = "run.json"
METRICS_FILE = "metrics.json"
OOF_FILE = "oof_predictions.csv"
MODEL_FILE = "model.pt"
HISTORY_FILE = "history.csv"
HISTORY_COLUMNS: tuple[str, ...] = ("epoch", "loss", "val_hf", "lr", "attn_audio", "attn_text")
OOF_COLUMNS: tuple[str, ...] = ("id", "truth", "prediction", "score", "fold", *CLASS_KEYS)
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
        "bst_format": RUN_FORMAT,
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
    with atomic_open(path, "wb") as handle:
        torch.save(payload, handle)


def read_fold_meta(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """The saved dict of a fold model (state dict included), checked for the expected keys."""
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
    if int(meta["bst_format"]) > RUN_FORMAT:
        raise IncompatibleError(f"Model file {path} has format {meta['bst_format']}, newer than this "
                                f"version of BST Studio reads ({RUN_FORMAT}); update BST Studio.")
    return meta


def load_fold_model(path: str | Path, *, encoder: EncoderInfo | None = None, audio_dim: int | None = None,
                    text_dim: int | None = None, class_keys: Sequence[str] = CLASS_KEYS,
                    map_location: str | torch.device = "cpu") -> tuple[HATR, dict[str, Any]]:
    """Load a fold model in eval mode, refusing one that does not fit what the caller expects.

    Raises :class:`IncompatibleError` (naming the file) when the model's class order differs from
    ``class_keys`` or, where given, its encoder or input dimensions differ.
    Returns ``(model, meta)``; ``meta`` is the saved dict without the state dict.
    """
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
    model = HATR(mode=meta.get("mode", config.get("mode", "both")), audio_dim=int(meta["audio_dim"]),
                 text_dim=int(meta["text_dim"]), hidden=int(meta.get("hidden", config.get("hidden", 128))),
                 dropout=float(config.get("dropout", 0.1)), num_classes=len(meta["class_keys"]))
    try:
        model.load_state_dict(meta.pop("state_dict"))
    except RuntimeError as exc:
        raise BadInputError(f"Model file {path} does not match its own configuration ({exc}); "
                            "it is damaged: retrain this fold.") from exc
    model.to(map_location).eval()
    return model, meta


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


def write_history(path: str | Path, rows: Sequence[Mapping[str, Any]]) -> None:
    """Write a fold's per-epoch history (:data:`HISTORY_COLUMNS`)."""
    write_table(path, pd.DataFrame(list(rows), columns=list(HISTORY_COLUMNS)))


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


def write_run_info(run_dir: str | Path, info: Mapping[str, Any]) -> None:
    write_json(Path(run_dir) / RUN_FILE, json_ready(dict(info)))


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
        if int(self.info.get("bst_format", 0)) > RUN_FORMAT:
            raise IncompatibleError(f"{run_file} was written by a newer BST Studio; update to read it.")

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r}, status={self.status!r})"

    @property
    def config(self) -> TrainConfig:
        from bst_core.training import TrainConfig

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

    def fold_numbers(self) -> list[int]:
        """Folds whose model file exists, ascending."""
        numbers = []
        for child in self.path.glob("fold_*"):
            suffix = child.name.removeprefix("fold_")
            if suffix.isdigit() and (child / MODEL_FILE).is_file():
                numbers.append(int(suffix))
        return sorted(numbers)

    def fold_dirs(self) -> list[Path]:
        """Folders of the finished folds (with a ``model.pt``), by fold number."""
        return [fold_dir(self.path, k) for k in self.fold_numbers()]

    def metrics(self) -> dict[str, Any]:
        """The run's ``metrics.json`` (BadInputError if the run has not written it yet)."""
        return read_json(self.path / METRICS_FILE)

    def fold_metrics(self, fold: int) -> dict[str, Any]:
        return read_json(fold_dir(self.path, fold) / METRICS_FILE)

    def oof(self) -> pd.DataFrame:
        """Out-of-fold predictions; ``id``/``truth``/``prediction`` as str, probabilities float."""
        path = self.path / OOF_FILE
        try:
            frame = pd.read_csv(path, dtype={"id": str, "truth": str, "prediction": str},
                                keep_default_na=False)
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

    def model_paths(self) -> list[Path]:
        return [d / MODEL_FILE for d in self.fold_dirs()]
