"""One prediction type for every place a model's output travels: ensemble, out-of-fold, CSV, views.

Words: ``score`` is the model's top probability (never "confidence", which stays the annotators'
1-5 column of the datasets); ``prediction`` is the argmax class key; ``audio_status`` is "ok" or
"text only: <reason>" for an item whose audio could not be decoded (its prediction comes from the
text alone).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from bst_core.errors import BadInputError
from bst_core.taxonomy import CLASS_KEYS

AUDIO_OK = "ok"
TEXT_ONLY = "text only"
"""Prefix of the audio status of an item predicted from its text alone: "text only: empty file"."""
ORIGINS: tuple[str, ...] = ("ensemble", "out-of-fold", "zero-shot")


def text_only(reason: str) -> str:
    """The audio status of an item without usable audio: ``"text only: <reason>"``."""
    return f"{TEXT_ONLY}: {reason or 'audio not decoded'}"


def has_audio(status: Sequence[str]) -> np.ndarray:
    """Boolean mask: True where the status says the audio was decoded."""
    return np.array([not str(s).startswith(TEXT_ONLY) for s in status], dtype=bool)


@dataclass
class Predictions:
    """Class probabilities of ``ids`` (rows) in taxonomy order, and what they were computed from.

    ``source`` is the folder or CSV of the items that were predicted (a run's results are bound to
    it); ``run_dir`` the run whose models made them; ``origin`` "ensemble" (the mean of the run's
    fold models), "out-of-fold" (each item by the fold model that did not see it) or "zero-shot"
    (CLAP's similarity to the class descriptions: no run, ``n_models`` 0).
    """

    ids: list[str]
    probs: np.ndarray                                  # (n, 23) float64
    attention: np.ndarray | None = None                # (n, 2) [audio, text]; None unless mode "both"
    audio_status: list[str] = field(default_factory=list)
    source: str = ""
    run_dir: Path | None = None
    origin: str = "ensemble"
    n_models: int = 1
    parameters_per_model: int = 0
    precision: str = "fp32"

    def __post_init__(self) -> None:
        self.ids = [str(i) for i in self.ids]
        self.probs = np.asarray(self.probs, dtype=np.float64)
        n = len(self.ids)
        if self.probs.shape != (n, len(CLASS_KEYS)):
            raise BadInputError(f"Predictions of {n} items need ({n}, {len(CLASS_KEYS)}) probabilities, "
                                f"not {self.probs.shape}; predict again.")
        if self.attention is not None and np.shape(self.attention) != (n, 2):
            raise BadInputError(f"Attention of {n} items must be ({n}, 2), not {np.shape(self.attention)}.")
        if not self.audio_status:
            self.audio_status = [AUDIO_OK] * n
        if len(self.audio_status) != n:
            raise BadInputError(f"{len(self.audio_status)} audio statuses for {n} predictions; predict again.")
        if self.origin not in ORIGINS:
            raise ValueError(f"origin must be one of {ORIGINS}, not {self.origin!r}")

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def labels(self) -> list[str]:
        """The argmax class key per item."""
        return [CLASS_KEYS[k] for k in self.probs.argmax(axis=1)]

    @property
    def scores(self) -> np.ndarray:
        """The top probability per item."""
        return self.probs.max(axis=1) if len(self) else np.zeros(0)

    @property
    def parameters(self) -> int:
        """Parameters of all the models together (a submission's ``total_parameters``)."""
        return self.parameters_per_model * self.n_models

    @property
    def text_only_count(self) -> int:
        return int((~has_audio(self.audio_status)).sum())

    def frame(self, *, probabilities: bool = True) -> pd.DataFrame:
        """``id, prediction, score, audio_status[, attention_audio, attention_text][, <23 probs>]``."""
        frame = pd.DataFrame({"id": pd.Series(self.ids, dtype=object), "prediction": self.labels,
                              "score": self.scores, "audio_status": self.audio_status})
        if self.attention is not None:
            frame["attention_audio"] = self.attention[:, 0]
            frame["attention_text"] = self.attention[:, 1]
        if probabilities:
            frame = pd.concat([frame, pd.DataFrame(self.probs, columns=list(CLASS_KEYS))], axis=1)
        return frame

    def submission_frame(self, *, probabilities: bool = False) -> pd.DataFrame:
        """The challenge's three columns, then ``audio_status`` (and the 23 probabilities if asked)."""
        frame = self.frame(probabilities=probabilities).drop(columns=["attention_audio", "attention_text"],
                                                             errors="ignore")
        return frame.rename(columns={"prediction": "predicted_bst_second_level_class",
                                     "score": "prediction_score"})

    def reindex(self, ids: Sequence[str]) -> Predictions:
        """The rows of ``ids``, in that order (BadInputError naming what is missing)."""
        position = {i: k for k, i in enumerate(self.ids)}
        missing = [i for i in ids if i not in position]
        if missing:
            raise BadInputError(f"{len(missing)} item(s) have no prediction (e.g. {', '.join(missing[:3])}).")
        rows = np.array([position[i] for i in ids], dtype=np.int64)
        return Predictions(
            [self.ids[k] for k in rows], self.probs[rows],
            None if self.attention is None else self.attention[rows],
            [self.audio_status[k] for k in rows], self.source, self.run_dir, self.origin,
            self.n_models, self.parameters_per_model, self.precision)
