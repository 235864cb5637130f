"""The files LAION-CLAP needs: where they are looked for, how they are fetched, how they are read.

Two sets of files, both fetched from Hugging Face at most once and only with the user's consent
(``--download-checkpoint`` on the command line, a dialog in the app):

- the checkpoint ``630k-audioset-fusion-best.pt`` (the challenge's model, the URL laion_clap's own
  ``load_ckpt`` uses), looked for at an explicit path, then ``$BST_CLAP_CHECKPOINT``, then
  ``<user data folder>/checkpoints/``;
- the ``roberta-base`` tokenizer and config (``vocab.json``, ``merges.txt``, ``config.json``, about
  1.4 MB): CLAP's text branch is a RoBERTa whose weights are all inside the checkpoint, so the
  500 MB roberta-base weights the library would fetch are never needed. Looked for at an explicit
  folder, then ``$BST_CLAP_TEXT_FILES``, then ``<user data folder>/checkpoints/roberta-base/``,
  then the Hugging Face cache of an earlier online laion_clap run.

Downloads stream to a temporary name beside the target, with progress; the result is verified
(a checkpoint by reading it, a short read by its Content-Length) and renamed into place only then.
A partial or corrupt download is removed and named in the error.

Checkpoints are read with ``torch.load(weights_only=True)``. LAION-CLAP's training code saved
with a pickle protocol (4) that the weights-only unpickler does not read ("Unsupported operand
149", reported for LAION-CLAP checkpoints in Audio-AGI/AudioSep#51); such a file is read with
:class:`_TensorOnlyUnpickler`, which resolves only the globals that rebuild tensors and NumPy
scalars and turns every other global into an inert placeholder, so no code from the file runs.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import pickle
import shutil
import tempfile
import time
import types
import urllib.error
import urllib.request
import warnings
import zipfile
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from bst_core import jobs
from bst_core.errors import BadInputError
from bst_core.paths import data_dir

if TYPE_CHECKING:
    import torch

CLAP_CHECKPOINT_NAME = "630k-audioset-fusion-best.pt"
CLAP_CHECKPOINT_URL = f"https://huggingface.co/lukewys/laion_clap/resolve/main/{CLAP_CHECKPOINT_NAME}"
CHECKPOINT_ENV = "BST_CLAP_CHECKPOINT"

ROBERTA_DIR_NAME = "roberta-base"
ROBERTA_FILES: tuple[str, ...] = ("config.json", "vocab.json", "merges.txt")
ROBERTA_URL = "https://huggingface.co/FacebookAI/roberta-base/resolve/main/"
ROBERTA_REPOS: tuple[str, ...] = ("FacebookAI/roberta-base", "roberta-base")
TEXT_FILES_ENV = "BST_CLAP_TEXT_FILES"

DOWNLOAD_FLAG = "--download-checkpoint"
STAGE_DOWNLOAD = "download CLAP"
REQUIRED_PREFIXES: tuple[str, ...] = ("audio_branch.", "text_branch.", "audio_projection.", "text_projection.")
"""Every LAION-CLAP state dict has weights under each of these prefixes."""

_CHUNK_BYTES = 1 << 20
_STALE_PART_S = 600.0   # a .part file untouched this long belongs to no running download
_TIMEOUT_S = 60.0


def checkpoints_dir() -> Path:
    """``<user data folder>/checkpoints`` (``$BST_DATA_DIR`` overrides the data folder)."""
    return data_dir() / "checkpoints"


def default_checkpoint_path() -> Path:
    """Where the checkpoint is looked for last and downloaded to."""
    return checkpoints_dir() / CLAP_CHECKPOINT_NAME


def default_text_files_dir() -> Path:
    """Where the roberta-base files are looked for and downloaded to."""
    return checkpoints_dir() / ROBERTA_DIR_NAME


class CheckpointNotFound(BadInputError):
    """No CLAP checkpoint where it was looked for: ``given`` is "explicit" (a path given), "env"
    (``$BST_CLAP_CHECKPOINT``) or "default" (nothing given; ``path`` is the user data folder's)."""

    def __init__(self, message: str, *, path: Path, given: str) -> None:
        super().__init__(message)
        self.path, self.given = path, given


class UnusableDownload(BadInputError):
    """A downloaded checkpoint that does not read as LAION-CLAP (``reason``); ``part`` was removed."""

    def __init__(self, url: str, part: Path, reason: str, message: str) -> None:
        super().__init__(message)
        self.url, self.part, self.reason = url, part, reason


def find_clap_checkpoint(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The checkpoint: ``explicit``, else ``$BST_CLAP_CHECKPOINT``, else the user data folder.

    A path given explicitly or by the variable must exist (no silent fallback); when nothing is
    found, BadInputError says where it looked and how to get the file.
    """
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise CheckpointNotFound(f"CLAP checkpoint {path} not found. Check the path given with --checkpoint, "
                                     f"or leave it out to use {default_checkpoint_path()}.", path=path,
                                     given="explicit")
        return path
    from_env = os.environ.get(CHECKPOINT_ENV)
    if from_env:
        path = Path(from_env).expanduser()
        if not path.is_file():
            raise CheckpointNotFound(f"CLAP checkpoint {path} (from ${CHECKPOINT_ENV}) not found. Fix or unset "
                                     f"${CHECKPOINT_ENV}.", path=path, given="env")
        return path
    path = default_checkpoint_path()
    if path.is_file():
        return path
    raise CheckpointNotFound(
        f"The LAION-CLAP checkpoint {CLAP_CHECKPOINT_NAME} was not found: no --checkpoint given, "
        f"${CHECKPOINT_ENV} not set, and {path} does not exist. Run again with {DOWNLOAD_FLAG} to "
        f"download it (once) into {path}, or download {CLAP_CHECKPOINT_URL} yourself and pass "
        f"--checkpoint PATH or set ${CHECKPOINT_ENV}.", path=path, given="default")


def find_text_files(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The folder holding roberta-base's ``vocab.json``, ``merges.txt`` and ``config.json``.

    ``explicit``, else ``$BST_CLAP_TEXT_FILES``, else the user data folder, else the Hugging Face
    cache (left by an earlier online laion_clap run); BadInputError when none has all three.
    """
    chosen = explicit or os.environ.get(TEXT_FILES_ENV)
    if chosen:
        folder = Path(chosen).expanduser()
        missing = [name for name in ROBERTA_FILES if not (folder / name).is_file()]
        if missing:
            raise BadInputError(f"{folder}: missing {', '.join(missing)} of roberta-base (CLAP's text "
                                f"tokenizer). Put {', '.join(ROBERTA_FILES)} from {ROBERTA_URL} there.")
        return folder
    folder = default_text_files_dir()
    if all((folder / name).is_file() for name in ROBERTA_FILES):
        return folder
    cached = _hugging_face_cache_folder()
    if cached is not None:
        return cached
    raise BadInputError(
        f"The roberta-base tokenizer files CLAP reads text with were not found in {folder} or the "
        f"Hugging Face cache. Run again with {DOWNLOAD_FLAG} to download them (once, about 1.4 MB), "
        f"or put {', '.join(ROBERTA_FILES)} from {ROBERTA_URL} into {folder}.")


def _hugging_face_cache_folder() -> Path | None:
    """The cached roberta-base snapshot holding all of :data:`ROBERTA_FILES`, if any (no network)."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    for repo in ROBERTA_REPOS:
        found = [try_to_load_from_cache(repo, name) for name in ROBERTA_FILES]
        if all(isinstance(item, str) for item in found):
            folders = {Path(item).parent for item in found}  # type: ignore[arg-type]
            if len(folders) == 1:
                return folders.pop()
    return None


def pending_downloads(checkpoint: str | os.PathLike[str] | None = None,
                      text_files: str | os.PathLike[str] | None = None) -> list[str]:
    """URLs :func:`ensure_clap_files` would fetch with consent (empty when all is found), for a
    consent dialog; BadInputError when a path given explicitly or by environment is wrong."""
    urls: list[str] = []
    try:
        find_clap_checkpoint(checkpoint)
    except BadInputError:
        if checkpoint or os.environ.get(CHECKPOINT_ENV):
            raise
        urls.append(CLAP_CHECKPOINT_URL)
    try:
        find_text_files(text_files)
    except BadInputError:
        if text_files or os.environ.get(TEXT_FILES_ENV):
            raise
        urls.extend(ROBERTA_URL + name for name in ROBERTA_FILES)
    return urls


def ensure_clap_files(checkpoint: str | os.PathLike[str] | None = None,
                      text_files: str | os.PathLike[str] | None = None, *, allow_download: bool = False,
                      job: jobs.Job | None = None) -> tuple[Path, Path]:
    """(checkpoint, text files folder), downloading what is missing into the user data folder
    only when ``allow_download`` (the small text files first); a path given explicitly or by
    environment is never replaced."""
    missing = pending_downloads(checkpoint, text_files)
    if missing and not allow_download:
        find_clap_checkpoint(checkpoint)   # raises the message saying where it looked, how to get it
        find_text_files(text_files)
    need_text_files = any(url.startswith(ROBERTA_URL) for url in missing)
    text_dir = download_text_files(job=job) if need_text_files else find_text_files(text_files)
    need_checkpoint = CLAP_CHECKPOINT_URL in missing
    checkpoint_path = download_clap_checkpoint(job=job) if need_checkpoint else find_clap_checkpoint(checkpoint)
    return checkpoint_path, text_dir


def download_clap_checkpoint(dest: str | os.PathLike[str] | None = None, *, job: jobs.Job | None = None,
                             url: str | None = None) -> Path:
    """Download the checkpoint to ``dest`` (default: the user data folder) and return its path.

    Streams to ``.<name>.*.part`` beside ``dest`` with progress on ``job`` (cancellable), checks the
    length against Content-Length, verifies the file by reading it as a CLAP checkpoint, and only
    then renames it to ``dest``. On any failure the partial file is removed and BadInputError
    names it and the URL.
    """
    url = url or CLAP_CHECKPOINT_URL
    target = Path(dest) if dest else default_checkpoint_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_parts(target)
    part = _new_part_file(target)
    try:
        _fetch(url, part, job=job, what=target.name)
        jobs.report(job, STAGE_DOWNLOAD, 0, None, f"verifying {target.name}")
        try:
            load_clap_state_dict(part)
        except BadInputError as exc:
            raise UnusableDownload(url, part, str(exc),
                                   f"The file downloaded from {url} is not a usable LAION-CLAP checkpoint "
                                   f"({exc}); the download {part} was removed. Try again later, or download it "
                                   f"yourself and pass --checkpoint PATH.") from exc
        os.replace(part, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            part.unlink()
    return target


def download_text_files(dest: str | os.PathLike[str] | None = None, *, job: jobs.Job | None = None,
                        base_url: str | None = None) -> Path:
    """Download :data:`ROBERTA_FILES` into the folder ``dest`` (default: the user data folder).

    Fetched into a temporary folder beside ``dest``, checked (JSON parses, merges has its header)
    and renamed into place as a whole; a failed download leaves nothing behind.
    """
    base_url = base_url or ROBERTA_URL
    target = Path(dest) if dest else default_text_files_dir()
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent))
    try:
        for name in ROBERTA_FILES:
            _fetch(base_url + name, staging / name, job=job, what=name)
        _check_text_files(staging, base_url)
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _check_text_files(folder: Path, source: str) -> None:
    for name in ("config.json", "vocab.json"):
        try:
            json.loads((folder / name).read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise BadInputError(f"{name} downloaded from {source} is not valid JSON ({exc}); it was "
                                "removed. Try again later.") from exc
    with (folder / "merges.txt").open(encoding="utf-8", errors="replace") as handle:
        if not handle.readline().startswith("#version"):
            raise BadInputError(f"merges.txt downloaded from {source} is not a BPE merges file; it was "
                                "removed. Try again later.")


def _new_part_file(target: Path) -> Path:
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    os.close(fd)
    return Path(name)


def _remove_stale_parts(target: Path) -> None:
    """Delete partial downloads of ``target`` left by a killed process (untouched for 10 min)."""
    now = time.time()
    for part in target.parent.glob(f".{target.name}.*.part"):
        with contextlib.suppress(OSError):
            if part.is_file() and now - part.stat().st_mtime > _STALE_PART_S:
                part.unlink()


def _fetch(url: str, target: Path, *, job: jobs.Job | None, what: str) -> None:
    """Stream ``url`` into ``target``, reporting bytes; BadInputError on failure or a short read."""
    request = urllib.request.Request(url, headers={"User-Agent": "bst-studio"})
    done = 0
    total: int | None = None
    try:
        with urllib.request.urlopen(request, timeout=_TIMEOUT_S) as response, target.open("wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            jobs.report(job, STAGE_DOWNLOAD, 0, total, f"{what}: starting")
            while chunk := response.read(_CHUNK_BYTES):
                out.write(chunk)
                done += len(chunk)
                jobs.report(job, STAGE_DOWNLOAD, done, total, f"{what}: {_megabytes(done)} of {_megabytes(total)}")
                jobs.check(job)
            out.flush()
            os.fsync(out.fileno())
    except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise BadInputError(f"Could not download {url} ({reason}) after {_megabytes(done)}; the partial "
                            f"file {target} was removed. Check the network connection and try again.") from exc
    if total is not None and done != total:
        raise BadInputError(f"The download of {url} stopped after {done:,} of {total:,} bytes; the partial "
                            f"file {target} was removed. Try again.")


def _megabytes(count: int | None) -> str:
    return "unknown size" if count is None else f"{count / 1e6:,.1f} MB"


# --- reading checkpoints ------------------------------------------------------------------------


def load_clap_state_dict(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """The model weights of a LAION-CLAP checkpoint, keyed as ``CLAP_Module.model`` expects.

    Does what laion_clap's ``load_ckpt`` does to the file (take ``state_dict``, strip the
    ``module.`` prefix of distributed training, drop ``text_branch.embeddings.position_ids``,
    a buffer recent transformers no longer saves) but reads it without running pickled code.
    BadInputError names the file when it is damaged (a partial copy) or not a CLAP checkpoint.
    """
    import torch

    path = Path(path)
    advice = ("it may be a partial or damaged copy: delete it and download it again "
              f"({DOWNLOAD_FLAG} or {CLAP_CHECKPOINT_URL})")
    try:
        payload = read_torch_file(path)
    except (RuntimeError, pickle.UnpicklingError, EOFError, ValueError, KeyError, OSError,
            zipfile.BadZipFile) as exc:
        raise BadInputError(f"{path}: cannot be read as a checkpoint ({_first_line(exc)}); {advice}.") from exc
    state = payload.get("state_dict", payload) if isinstance(payload, dict) else None
    if not isinstance(state, dict) or not state:
        raise BadInputError(f"{path}: holds no model weights (no state_dict); it is not a LAION-CLAP "
                            f"checkpoint. Use {CLAP_CHECKPOINT_NAME}.")
    weights = {str(key).removeprefix("module."): value for key, value in state.items()}
    weights.pop("text_branch.embeddings.position_ids", None)
    not_tensors = [key for key, value in weights.items() if not isinstance(value, torch.Tensor)]
    missing = [prefix.rstrip(".") for prefix in REQUIRED_PREFIXES
               if not any(key.startswith(prefix) for key in weights)]
    if not_tensors or missing:
        detail = (f"no {', '.join(missing)} weights" if missing
                  else f"{len(not_tensors)} entries are not tensors, e.g. {not_tensors[0]!r}")
        raise BadInputError(f"{path}: not a LAION-CLAP checkpoint ({detail}). Use {CLAP_CHECKPOINT_NAME}.")
    return weights


def read_torch_file(path: Path) -> Any:
    """``torch.load`` of ``path`` to the CPU without running code from the file.

    ``weights_only=True`` (NumPy scalars allowed) first; a file it cannot parse (pickle protocol 4,
    or other globals) is re-read with :class:`_TensorOnlyUnpickler`. Zip-format files are
    memory-mapped, so verifying a multi-gigabyte checkpoint does not read it into memory.
    """
    import torch

    mmap = zipfile.is_zipfile(path)
    try:
        with torch.serialization.safe_globals(_numpy_scalar_globals()), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
            return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError:
        # Same guarantee as weights_only: only tensor/NumPy rebuild functions can run (see module doc).
        return torch.load(path, map_location="cpu", weights_only=False, mmap=mmap,
                          pickle_module=_TENSOR_ONLY_PICKLE)


def _numpy_scalar_globals() -> list[Any]:
    import numpy as np

    return [np.core.multiarray.scalar, np.dtype, *(type(np.dtype(code)) for code in "?bhilqBHILQefdg")]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


class _Inert:
    """Stands in for a pickled object of a class that is not allowed; keeps its arguments as data."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        self.args, self.kwargs = args, kwargs

    def __setstate__(self, state: object) -> None:
        self.state = state


_TENSOR_GLOBALS: frozenset[tuple[str, str]] = frozenset({
    ("collections", "OrderedDict"),
    ("torch._utils", "_rebuild_tensor_v2"),
    ("torch._utils", "_rebuild_parameter"),
    ("torch._utils", "_rebuild_parameter_with_state"),
    ("torch._tensor", "_rebuild_from_type_v2"),
    ("torch", "Size"),
    ("torch", "Tensor"),
    ("torch.nn.parameter", "Parameter"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
})


class _TensorOnlyUnpickler(pickle.Unpickler):
    """Resolves only tensor-rebuilding globals (storages are mapped by torch before this is asked);
    any other global becomes an :class:`_Inert` subclass, so no function from the file is called."""

    def find_class(self, module: str, name: str) -> Any:
        import torch

        if (module, name) in _TENSOR_GLOBALS or (
                module == "torch" and isinstance(getattr(torch, name, None), torch.dtype)):
            return super().find_class(module, name)
        return type(f"Inert[{module}.{name}]", (_Inert,), {})


def _tensor_only_load(file: IO[bytes], **kwargs: Any) -> Any:
    return _TensorOnlyUnpickler(file, **kwargs).load()


_TENSOR_ONLY_PICKLE = types.ModuleType("bst_tensor_only_pickle")
_TENSOR_ONLY_PICKLE.Unpickler = _TensorOnlyUnpickler  # type: ignore[attr-defined]
_TENSOR_ONLY_PICKLE.load = _tensor_only_load  # type: ignore[attr-defined]
