"""What every embedding encoder offers: an identity, a sample rate, and two batch functions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from bst_core.corpus import EncoderInfo

__all__ = ["Encoder", "EncoderInfo"]


@runtime_checkable
class Encoder(Protocol):
    """An audio + text embedding encoder.

    ``info`` is recorded in every store and model (mixing encoders is refused); ``sample_rate``
    is the rate clips must be decoded at; ``max_seconds`` caps how much of a file is decoded
    (None: all of it). Both embed functions return float32 ``(n, dim)`` matrices.
    """

    info: EncoderInfo
    sample_rate: int
    max_seconds: float | None

    def embed_audio(self, clips: Sequence[np.ndarray]) -> np.ndarray:
        """``(len(clips), info.audio_dim)`` for mono float32 clips at ``sample_rate``."""
        ...

    def embed_text(self, texts: Sequence[str]) -> np.ndarray:
        """``(len(texts), info.text_dim)`` for the texts of :func:`bst_core.text.text_for`."""
        ...
