"""Options and their allowed values, shared by the CLI, the GUI and the core (no torch import).

One place for every choice a person makes: classifier modes, encoders, inference precisions,
absent-class modes, and :class:`TrainConfig`, the whole definition of a cross-validation run.
The CLI's flags and the GUI's dialogs take their choices and defaults from here.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, fields
from typing import Any

from bst_core.errors import BadInputError
from bst_core.metrics import ABSENT_MODES

MODES: tuple[str, ...] = ("both", "audio", "text")
"""HATR input modes: audio + text with attention fusion, or one modality."""
ENCODER_NAMES: tuple[str, ...] = ("clap", "offline")
"""Embedding encoders: LAION-CLAP 630k-audioset-fusion (needs the checkpoint) or the offline one."""
DEFAULT_ENCODER = "offline"
"""The encoder the CLI and the app propose: it works without any download. The challenge's
embeddings are ``clap``; choose it explicitly once the checkpoint is installed."""
PRECISIONS: tuple[str, ...] = ("fp32", "bf16")
"""Inference precisions: fp32 (default, exact) or bf16 autocast (faster, slightly different)."""
DEFAULT_PRECISION = "fp32"
MISSING_AUDIO: tuple[str, ...] = ("mask", "seed")
"""How ``both`` mode treats an item whose audio could not be decoded (a zero audio vector):
``mask`` (default) gives the audio branch no attention weight, so the prediction and the shown
attention come from the text alone; ``seed`` feeds the zero vector like any other, as the seed
system does (exact reproduction)."""

AUGMENT_NOISE_STD = 0.01
"""Standard deviation of the Gaussian noise added to training embeddings when ``augment``."""
AUGMENT_MASK_FRACTION = 0.1
"""Probability that one embedding dimension is zeroed when ``augment``."""

_DEVICE = re.compile(r"(cpu|mps|cuda|xpu)(:\d+)?")


@dataclass
class TrainConfig:
    """Everything that defines a cross-validation run. Defaults are the seed report's protocol.

    ``only_fold`` (1..folds) trains just that fold of the same split; ``patience=None`` disables
    early stopping; ``fused_adam=None`` uses the fused Adam kernel when the device supports it.
    ``absent`` is the absent-class mode of the reported test metrics (validation always uses
    ``"reference"``). ``missing_audio``: see :data:`MISSING_AUDIO`.
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
    missing_audio: str = "mask"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Build from a dict (e.g. run.json), ignoring keys this version does not know.

        A run written before ``missing_audio`` existed fed zero audio vectors unmasked: it reads
        back as ``"seed"`` so its description stays true.
        """
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values.setdefault("missing_audio", "seed")
        return cls(**values)

    def validate(self) -> None:
        """BadInputError for an option outside its range, saying what is allowed."""
        problems = []
        if self.mode not in MODES:
            problems.append(f"mode must be one of {', '.join(MODES)} (got {self.mode!r})")
        if not _is_int(self.folds) or self.folds < 2:
            problems.append(f"folds must be an integer ≥ 2 (got {self.folds!r})")
        if not _is_int(self.epochs) or self.epochs < 1:
            problems.append(f"epochs must be an integer ≥ 1 (got {self.epochs!r})")
        if not _is_int(self.batch_size) or self.batch_size < 2:
            problems.append(f"batch size must be an integer ≥ 2 (got {self.batch_size!r})")
        if not self.lr > 0:
            problems.append(f"learning rate must be > 0 (got {self.lr!r})")
        if self.patience is not None and (not _is_int(self.patience) or self.patience < 1):
            problems.append(f"patience must be an integer ≥ 1 or None (got {self.patience!r})")
        if not 0 < self.val_fraction < 1:
            problems.append(f"validation fraction must be between 0 and 1 (got {self.val_fraction!r})")
        if not 0 <= self.label_smoothing < 1:
            problems.append(f"label smoothing must be in [0, 1) (got {self.label_smoothing!r})")
        if not 0 <= self.dropout < 1:
            problems.append(f"dropout must be in [0, 1) (got {self.dropout!r})")
        if not _is_int(self.hidden) or self.hidden < 4:
            problems.append(f"hidden size must be an integer ≥ 4 (got {self.hidden!r})")
        if not 0 <= self.lam <= 1:
            problems.append(f"λ must be between 0 and 1 (got {self.lam!r})")
        if self.absent not in ABSENT_MODES:
            problems.append(f"absent mode must be one of {', '.join(ABSENT_MODES)} (got {self.absent!r})")
        if self.missing_audio not in MISSING_AUDIO:
            problems.append(f"missing_audio must be one of {', '.join(MISSING_AUDIO)} (got {self.missing_audio!r})")
        if self.only_fold is not None and (not _is_int(self.only_fold) or not 1 <= self.only_fold <= self.folds):
            problems.append(f"only_fold must be between 1 and {self.folds} (got {self.only_fold!r})")
        if not isinstance(self.device, str) or not _DEVICE.fullmatch(self.device):
            problems.append(f"device {self.device!r} is not a torch device name (use 'cpu' or 'cuda')")
        if problems:
            raise BadInputError("Training options not usable: " + "; ".join(problems) + ".")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
