"""The LAION-CLAP encoder: ``laion_clap.CLAP_Module(enable_fusion=True)`` + 630k-audioset-fusion-best.

This is the encoder the BSD datasets' shipped embeddings were made with (:data:`CLAP_ENCODER`).
``laion_clap`` is imported here only, when a :class:`ClapEncoder` is built, never at app start.

Offline seam. laion_clap fetches from the Hugging Face hub in two places: importing it creates
bert-base-uncased, roberta-base and facebook/bart-base tokenizers (``training/data.py``), and
building the model creates ``RobertaModel.from_pretrained("roberta-base")`` and a roberta-base
tokenizer (``clap_module/model.py``, ``hook.py``). :func:`_local_pretrained` replaces those
``from_pretrained`` class methods of transformers while the import and the construction run:
roberta-base tokenizers come from a local folder of ``vocab.json`` + ``merges.txt``, the RoBERTa is
built from that folder's ``config.json`` with fresh weights (the checkpoint overwrites every one
of them), and the bert/bart tokenizers, which the fusion model never uses, become placeholders.
Everything else is the library's own code: model construction, ``get_audio_embedding_from_data``
(48 kHz, int16 quantisation, repeat-padding, fusion crops) and ``get_text_embedding``.

Determinism. For clips longer than 10 s the fusion model picks three random 10 s crops with
NumPy's global RNG (``get_audio_features``, ``np.random.choice``/``randint``); nothing else is
random in eval mode. Each clip is given its own seed, from a hash of its samples and
:attr:`ClapEncoder.seed`, right before the library draws its crops, so the same clip always gives
the same vector, whatever batch it is in. The caller's NumPy RNG state is restored afterwards.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import os
import threading
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bst_core import jobs
from bst_core.checkpoints import ensure_clap_files, load_clap_state_dict
from bst_core.console import quiet_library_warnings
from bst_core.corpus import CLAP_ENCODER, EncoderInfo
from bst_core.errors import BadInputError

SAMPLE_RATE = 48_000
MAX_SECONDS = 300.0
"""Decoding cap. Challenge audio is at most 30 s, so its vectors are the library's exactly; a longer
file is summarised from its first 5 minutes (the fusion model shrinks the whole mel to 10 s anyway)."""
DEFAULT_SEED = 1821
STAGE_LOAD = "load CLAP"
ROBERTA_NAMES = frozenset({"roberta-base", "FacebookAI/roberta-base"})
INSTALL_HINT = ('Install the CLAP extra: pip install "bst-studio[clap]" (laion-clap 1.1.7 with '
                "torchvision and torchaudio matching torch), or use the offline encoder (--encoder offline).")

_HARMLESS_WARNINGS = (r"torch\.meshgrid: in an upcoming release", r"Argument 'onesided' has been deprecated")
"""Deprecation notices from inside laion_clap's HTSAT and mel code, hidden once CLAP is imported."""
_GLOBAL_STATE_LOCK = threading.RLock()   # from_pretrained patches and NumPy's global RNG are process-wide


class ClapEncoder:
    """LAION-CLAP 630k-audioset-fusion audio and text embeddings, 512-d, L2-normalised.

    Finds the checkpoint (explicit path, ``$BST_CLAP_CHECKPOINT``, user data folder) and the
    roberta-base tokenizer files, downloading them only when ``allow_download``; reads the
    checkpoint safely and loads it strictly into the library's model on ``device``.
    ``embed_audio`` raises on a failing batch; the extraction layer then retries item by item.
    """

    info: EncoderInfo = CLAP_ENCODER
    sample_rate: int = SAMPLE_RATE
    max_seconds: float | None = MAX_SECONDS

    def __init__(self, checkpoint: str | os.PathLike[str] | None = None, device: str = "cpu",
                 allow_download: bool = False, job: jobs.Job | None = None, seed: int = DEFAULT_SEED,
                 text_files: str | os.PathLike[str] | None = None) -> None:
        torch_device = _torch_device(device)
        jobs.report(job, STAGE_LOAD, 0, 3, "finding the checkpoint")
        checkpoint_path, text_dir = ensure_clap_files(checkpoint, text_files, allow_download=allow_download,
                                                      job=job)
        jobs.check(job)
        jobs.report(job, STAGE_LOAD, 1, 3, f"reading {checkpoint_path.name}")
        weights = load_clap_state_dict(checkpoint_path)
        jobs.check(job)
        jobs.report(job, STAGE_LOAD, 2, 3, "building the model")
        module = build_clap_module(text_dir, device=str(torch_device))
        try:
            module.model.load_state_dict(weights)
        except RuntimeError as exc:   # missing/unexpected keys or shapes: another model's file
            raise BadInputError(f"{checkpoint_path}: does not fit the LAION-CLAP fusion model "
                                f"({str(exc).splitlines()[0]}). Use {CLAP_ENCODER.name} "
                                "(630k-audioset-fusion-best.pt).") from exc
        del weights
        module.eval()
        self._module = module
        self.checkpoint = checkpoint_path
        self.text_files = text_dir
        self.device = str(torch_device)
        self.seed = int(seed)
        jobs.report(job, STAGE_LOAD, 3, 3, "ready")

    def embed_audio(self, clips: Sequence[np.ndarray]) -> np.ndarray:
        """``(n, 512)`` float32 unit vectors for mono clips at 48 kHz, one library call per batch.

        Raises BadInputError for a clip that is empty or not mono, and whatever the model raises.
        """
        import torch

        arrays = [_checked_clip(index, clip) for index, clip in enumerate(clips)]
        if not arrays:
            return np.zeros((0, self.info.audio_dim), np.float32)
        seeds = [clip_seed(clip, self.seed) for clip in arrays]
        with _GLOBAL_STATE_LOCK, _numpy_rng_restored(), torch.inference_mode(), quiet_library_warnings():
            vectors = self._module.get_audio_embedding_from_data(_seeding_each(arrays, seeds), use_tensor=False)
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def embed_text(self, texts: Sequence[str]) -> np.ndarray:
        """``(n, 512)`` float32 unit vectors with the library's RoBERTa tokenizer (77 tokens)."""
        import torch

        items = ["" if text is None else str(text) for text in texts]
        if not items:
            return np.zeros((0, self.info.text_dim), np.float32)
        with torch.inference_mode(), quiet_library_warnings():
            vectors = self._module.get_text_embedding(items)
        return np.ascontiguousarray(vectors, dtype=np.float32)

    @property
    def logit_scale(self) -> float:
        """The checkpoint's learned audio-text logit scale, ``exp(logit_scale_a)`` (zero-shot softmax)."""
        return float(self._module.model.logit_scale_a.detach().exp())


def clip_seed(clip: np.ndarray, seed: int = DEFAULT_SEED) -> int:
    """A 32-bit seed from the clip's samples and ``seed``: same clip, same seed, on any machine."""
    digest = hashlib.blake2b(np.ascontiguousarray(clip, dtype=np.float32).tobytes(), digest_size=4,
                             key=str(seed).encode())
    return int.from_bytes(digest.digest(), "little")


def _seeding_each(clips: Sequence[np.ndarray], seeds: Sequence[int]) -> Iterator[np.ndarray]:
    """Yield each clip after seeding NumPy's global RNG with its own seed.

    ``get_audio_embedding_from_data`` prepares each clip (drawing its fusion crops) as soon as it
    takes it from this iterator, so a clip's crops depend on its seed only, not on its neighbours.
    """
    for clip, seed in zip(clips, seeds, strict=True):
        np.random.seed(seed)
        yield clip


@contextlib.contextmanager
def _numpy_rng_restored() -> Iterator[None]:
    state = np.random.get_state()
    try:
        yield
    finally:
        np.random.set_state(state)


def _checked_clip(index: int, clip: np.ndarray) -> np.ndarray:
    array = np.asarray(clip, dtype=np.float32)
    if array.ndim != 1:
        raise BadInputError(f"audio clip {index}: expected mono samples (1-D), got shape {array.shape}.")
    if not len(array):
        raise BadInputError(f"audio clip {index} is empty (0 samples): there is nothing to embed.")
    if not np.isfinite(array).all():
        array = np.nan_to_num(array, nan=0.0, posinf=0.0, neginf=0.0)
    return array


def _torch_device(device: str) -> Any:
    import torch

    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise BadInputError(f"Device {device!r} is not a torch device: use cpu or cuda.") from exc
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise BadInputError(f"Device {device!r}: PyTorch sees no CUDA GPU here; use --device cpu.")
    return parsed


# --- the laion_clap library, offline -------------------------------------------------------------


def build_clap_module(text_files: str | os.PathLike[str], device: str = "cpu") -> Any:
    """``laion_clap.CLAP_Module(enable_fusion=True)`` (HTSAT-tiny + RoBERTa) with random weights,
    its RoBERTa and tokenizer made from the files in ``text_files``; nothing is fetched."""
    text_dir = Path(text_files)
    laion_clap = import_laion_clap(text_dir)
    with _GLOBAL_STATE_LOCK, _local_pretrained(text_dir):
        return laion_clap.CLAP_Module(enable_fusion=True, device=device, amodel="HTSAT-tiny", tmodel="roberta")


def import_laion_clap(text_files: str | os.PathLike[str]) -> Any:
    """Import ``laion_clap`` with no network; BadInputError with install advice when its stack is missing."""
    try:
        # laion_clap needs these but does not declare them: torchvision at import, torchaudio for audio.
        importlib.import_module("torchvision")
        importlib.import_module("torchaudio")
        with _GLOBAL_STATE_LOCK, _local_pretrained(Path(text_files)), quiet_library_warnings():
            module = importlib.import_module("laion_clap")
    except ImportError as exc:
        missing = getattr(exc, "name", None) or str(exc)
        raise BadInputError(f"The CLAP encoder needs laion_clap and its dependencies, but {missing!r} "
                            f"cannot be imported ({exc}). {INSTALL_HINT}") from exc
    for message in _HARMLESS_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=UserWarning)
    return module


class _UnusedTokenizer:
    """Placeholder for a tokenizer laion_clap creates at import but the fusion model never uses."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __call__(self, *args: object, **kwargs: object) -> Any:
        raise BadInputError(f"The {self.name} tokenizer is not available in BST Studio (only "
                            "roberta-base, CLAP's text branch, is loaded).")


@contextlib.contextmanager
def _local_pretrained(text_dir: Path) -> Iterator[None]:
    """Redirect transformers' ``from_pretrained`` calls laion_clap makes to ``text_dir`` (see module doc)."""
    import transformers

    roberta_tokenizer = transformers.RobertaTokenizer.from_pretrained

    def tokenizer(name: str, *args: object, **kwargs: object) -> Any:
        if name in ROBERTA_NAMES:
            return roberta_tokenizer(str(text_dir), local_files_only=True)
        return _UnusedTokenizer(name)

    def roberta_model(name: str, *args: object, **kwargs: object) -> Any:
        if name not in ROBERTA_NAMES:
            raise BadInputError(f"laion_clap asked for the text model {name!r}; only roberta-base is offered.")
        config = transformers.RobertaConfig.from_json_file(str(text_dir / "config.json"))
        return transformers.RobertaModel(config)

    def unused_model(name: str, *args: object, **kwargs: object) -> Any:
        raise BadInputError(f"laion_clap asked for the text model {name!r}; only roberta-base is offered.")

    replacements: list[tuple[type, Any]] = [
        (transformers.RobertaTokenizer, tokenizer),
        (transformers.BartTokenizer, tokenizer),
        (transformers.BertTokenizer, tokenizer),
        (transformers.RobertaModel, roberta_model),
        (transformers.BertModel, unused_model),
        (transformers.BartModel, unused_model),
    ]
    saved: list[tuple[type, Any]] = []
    try:
        for cls, loader in replacements:
            if not any(cls is done for done, _ in saved):
                saved.append((cls, cls.__dict__["from_pretrained"]) if "from_pretrained" in cls.__dict__
                             else (cls, None))
                cls.from_pretrained = staticmethod(loader)  # type: ignore[method-assign,assignment]
        yield
    finally:
        for cls, original in reversed(saved):
            if original is None:
                del cls.from_pretrained
            else:
                cls.from_pretrained = original  # type: ignore[method-assign]
