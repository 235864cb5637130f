"""The plain types data travels in: the corpus table, its embeddings, the encoder identity.

A corpus table is a pandas DataFrame, one row per sound, with at least the columns of
:data:`CORPUS_COLUMNS`:

- ``id`` (str): sound_id / anonymous_id / relative path; unique.
- ``audio_path`` (str): absolute path of the audio file, "" when unknown.
- ``title``, ``tags``, ``description`` (str, "" when empty): free text, any Unicode.
- ``label`` (str): a target class key ("fx-o") or "" when unlabelled.
- ``confidence`` (float): annotator confidence (1-5) or NaN.
- ``source`` (str): what kind of source the row came from ("bsd", "evaluation", "folder", "csv").

Readers keep any extra columns they find (uploader, license, ...).
Embedding matrices are float32 numpy arrays row-aligned to the table (``audio[i]`` belongs to
``table.id[i]``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from bst_core.errors import IncompatibleError
from bst_core.predictions import AUDIO_OK, text_only

CORPUS_COLUMNS: tuple[str, ...] = (
    "id", "audio_path", "title", "tags", "description", "label", "confidence", "source",
)


@dataclass(frozen=True)
class EncoderInfo:
    """Identity of the embedding encoder: stores and models record it; mixing is refused."""

    name: str          # "laion-clap-630k-audioset-fusion" or "offline-logmel-ngram"
    version: str       # bumps whenever the vectors would change
    audio_dim: int
    text_dim: int

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "version": self.version,
                "audio_dim": self.audio_dim, "text_dim": self.text_dim}

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> EncoderInfo:
        return cls(str(data["name"]), str(data["version"]), int(data["audio_dim"]),  # type: ignore[arg-type]
                   int(data["text_dim"]))  # type: ignore[arg-type]

    @property
    def label(self) -> str:
        """Human-readable name, e.g. ``laion-clap-630k-audioset-fusion v1 (512+512)``."""
        return f"{self.name} v{self.version} ({self.audio_dim}+{self.text_dim})"

    def require_same(self, other: EncoderInfo, what: str) -> None:
        """Raise :class:`IncompatibleError` naming ``what`` unless both encoders match."""
        if self != other:
            raise IncompatibleError(
                f"{what}: made with encoder {other.label}, but this needs {self.label}. "
                "Embeddings from different encoders cannot be mixed; extract with the same encoder.")


OFFICIAL_DATASETS: dict[str, int] = {"BSD10k": 10_956, "BSD35k-CS": 33_829}
"""Official development datasets and their metadata row counts (``reference/dcase_task1.md``)."""
SYNTHETIC_MARKER = "SYNTHETIC"
"""A file of this name in a dataset folder marks it as synthesized by BST Studio."""


def official_dataset(name: str, metadata_rows: int, root: Path) -> tuple[str, bool]:
    """``(dataset, synthetic)`` of a BSD-layout folder: ``dataset`` is the official name only when
    the metadata is that dataset's whole file and the folder is not marked synthetic."""
    synthetic = (root / SYNTHETIC_MARKER).exists()
    official = not synthetic and OFFICIAL_DATASETS.get(name) == metadata_rows
    return (name if official else ""), synthetic


CLAP_ENCODER = EncoderInfo("laion-clap-630k-audioset-fusion", "1", 512, 512)
"""Identity of the LAION-CLAP 630k-audioset-fusion-best embeddings (shipped with BSD datasets)."""


@dataclass
class Corpus:
    """A corpus table plus row-aligned embeddings (None where a modality is absent)."""

    table: pd.DataFrame
    audio: np.ndarray | None = None
    text: np.ndarray | None = None
    encoder: EncoderInfo | None = None
    root: Path | None = None
    kind: str = ""
    notes: list[str] = field(default_factory=list)
    """Human-readable report lines: rows dropped and why, files missing, ..."""
    dataset: str = ""
    """The official dataset this corpus is, whole and unmodified ("BSD10k", "BSD35k-CS"), else ""."""
    synthetic: bool = False
    """True for corpora BST Studio synthesized (the demo, test data): never reported as real data."""
    store: Path | None = None
    """The embedding store the vectors came from (None: shipped with the source, or none)."""

    def __len__(self) -> int:
        return len(self.table)

    @property
    def ids(self) -> list[str]:
        return self.table["id"].tolist()

    @property
    def labels(self) -> pd.Series:
        return self.table["label"]

    @property
    def labelled(self) -> bool:
        return bool((self.table["label"] != "").any())

    def audio_status(self) -> list[str]:
        """Per item "ok" or "text only: <reason>": the table's ``audio_status`` column (set from the
        store's per-item status), else "text only" for an all-zero audio vector."""
        if "audio_status" in self.table.columns:
            return self.table["audio_status"].astype(str).tolist()
        if self.audio is None:
            return [AUDIO_OK] * len(self)
        zero = ~np.any(np.asarray(self.audio) != 0, axis=1)
        return [text_only("no audio embedding (all zeros)") if z else AUDIO_OK for z in zero]

    def subset(self, mask: np.ndarray | pd.Series) -> Corpus:
        """Rows where ``mask`` is true, embeddings sliced alike."""
        m = np.asarray(mask, dtype=bool)
        return Corpus(
            self.table.loc[m].reset_index(drop=True),
            None if self.audio is None else self.audio[m],
            None if self.text is None else self.text[m],
            self.encoder, self.root, self.kind, list(self.notes),
            dataset="", synthetic=self.synthetic, store=self.store,   # a subset is not the official dataset
        )

    @property
    def name(self) -> str:
        """What to call the corpus in a report: its folder name, marked when synthetic."""
        base = self.root.name if self.root else (self.kind or "corpus")
        return f"{base} (synthetic)" if self.synthetic else base


def empty_table(n: int = 0) -> pd.DataFrame:
    """A corpus table of ``n`` blank rows with the standard columns and dtypes."""
    return pd.DataFrame({
        "id": pd.Series([""] * n, dtype=str),
        "audio_path": pd.Series([""] * n, dtype=str),
        "title": pd.Series([""] * n, dtype=str),
        "tags": pd.Series([""] * n, dtype=str),
        "description": pd.Series([""] * n, dtype=str),
        "label": pd.Series([""] * n, dtype=str),
        "confidence": pd.Series([np.nan] * n, dtype=float),
        "source": pd.Series([""] * n, dtype=str),
    })
