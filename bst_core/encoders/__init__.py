"""Embedding encoders: LAION-CLAP (the challenge's, needs the model) and an offline feature extractor.

:func:`make_encoder` builds one by name. ``"offline"`` works on a fresh machine with no weights;
``"clap"`` imports ``laion_clap`` only when asked for.
"""

from __future__ import annotations

import os

from bst_core.config import ENCODER_NAMES
from bst_core.encoders.base import Encoder, EncoderInfo
from bst_core.errors import BadInputError
from bst_core.jobs import Job

__all__ = ["ENCODER_NAMES", "Encoder", "EncoderInfo", "make_encoder"]

def make_encoder(name: str, *, checkpoint: str | os.PathLike[str] | None = None, device: str = "cpu",
                 allow_download: bool = False, job: Job | None = None) -> Encoder:
    """The encoder called ``name``: ``"offline"`` or ``"clap"``.

    ``checkpoint``, ``device``, ``allow_download`` and ``job`` (progress of a model load) concern
    CLAP only; the offline encoder needs none of them. Unknown names raise BadInputError.
    """
    if name == "offline":
        from bst_core.encoders.offline import OfflineEncoder

        return OfflineEncoder()
    if name == "clap":
        from bst_core.encoders.clap import ClapEncoder

        return ClapEncoder(checkpoint=checkpoint, device=device, allow_download=allow_download, job=job)
    raise BadInputError(f"Unknown encoder {name!r}: choose one of {', '.join(ENCODER_NAMES)}.")
