"""What ``bst --version`` prints: the facts a bug report needs.

:func:`gather` collects the BST Studio version, Python, the torch build (CUDA or CPU) and whether
CUDA is usable, the encoder stacks found and the cache/data folders; :func:`format` writes them
as lines. Nothing is downloaded, and ``laion_clap`` / ``transformers`` are never imported: the
CLAP stack is looked up with :func:`importlib.util.find_spec` only.
"""

from __future__ import annotations

import importlib.util
import platform
import sys
from typing import Any

from bst_core import __version__

CLAP_MODULES = ("laion_clap", "torchaudio", "torchvision")
"""Modules the CLAP encoder imports (laion_clap needs the other two but does not declare them)."""


def _module_location(name: str) -> str | None:
    """Where ``name`` would be imported from (its folder), or None when it is not installed."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    if spec.submodule_search_locations:
        return str(next(iter(spec.submodule_search_locations)))
    return spec.origin or name


def _torch() -> dict[str, Any]:
    try:
        import torch
    except Exception as exc:   # missing, or a broken install: say so rather than fail
        return {"version": None, "error": f"{type(exc).__name__}: {exc}"}
    cuda_build = getattr(torch.version, "cuda", None)
    info: dict[str, Any] = {"version": torch.__version__, "cuda_build": cuda_build,
                            "build": f"CUDA {cuda_build}" if cuda_build else "CPU"}
    try:
        info["cuda_available"] = bool(torch.cuda.is_available())
        if info["cuda_available"]:
            info["cuda_devices"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    except Exception as exc:
        info["cuda_available"] = False
        info["cuda_error"] = f"{type(exc).__name__}: {exc}"
    return info


def _clap() -> dict[str, Any]:
    from bst_core import checkpoints
    from bst_core.errors import BadInputError

    locations = {name: _module_location(name) for name in CLAP_MODULES}
    modules = {name: where is not None for name, where in locations.items()}
    info: dict[str, Any] = {"stack": all(modules.values()), "modules": modules,
                            "missing": [name for name, found in modules.items() if not found],
                            "location": locations["laion_clap"]}
    try:
        info["checkpoint"] = str(checkpoints.find_clap_checkpoint())
    except BadInputError:
        info["checkpoint"] = None
    info["checkpoint_expected"] = str(checkpoints.default_checkpoint_path())
    info["checkpoint_env"] = checkpoints.CHECKPOINT_ENV
    try:
        info["text_files"] = str(checkpoints.find_text_files())
    except BadInputError:
        info["text_files"] = None
    return info


def gather() -> dict[str, Any]:
    """Version, Python, torch build, encoder stacks and folders, as a JSON-ready dict."""
    from bst_core import paths

    folders: dict[str, str | None] = {}
    for name, where in (("cache", paths.cache_dir), ("data", paths.data_dir)):
        try:
            folders[name] = str(where())
        except OSError as exc:    # an unwritable home: still report what can be
            folders[name] = f"unusable ({exc})"
    return {
        "bst_studio": __version__,
        "python": {"version": platform.python_version(), "executable": sys.executable,
                   "platform": platform.platform(), "bundle": bool(getattr(sys, "frozen", False))},
        "torch": _torch(),
        "encoders": {"offline": {"available": True}, "clap": _clap()},
        "folders": folders,
    }


def format(info: dict[str, Any]) -> str:
    """The lines ``bst --version`` prints."""
    torch = info["torch"]
    if torch.get("version"):
        cuda = "yes" if torch.get("cuda_available") else "no"
        devices = torch.get("cuda_devices")
        if devices:
            cuda += f" ({', '.join(devices)})"
        torch_line = f"torch {torch['version']} ({torch['build']} build), CUDA available: {cuda}"
    else:
        torch_line = f"torch: not importable ({torch.get('error', 'not installed')})"
    clap = info["encoders"]["clap"]
    if clap["stack"]:
        stack = f"installed (laion_clap, torchaudio, torchvision; laion_clap in {clap['location']})"
    else:
        how = ("this desktop bundle was built without it: use the bundle built with packaging/build.sh --clap"
               if info["python"].get("bundle") else 'pip install "bst-studio[clap]"')
        stack = f"not installed (missing {', '.join(clap['missing'])}; {how})"
    checkpoint = (f"found at {clap['checkpoint']}" if clap["checkpoint"] else
                  f"not found (looked for ${clap['checkpoint_env']} and {clap['checkpoint_expected']}; "
                  "`bst extract --encoder clap --download-checkpoint` fetches it)")
    text_files = f"found at {clap['text_files']}" if clap["text_files"] else "not found"
    python = info["python"]
    folders = info["folders"]
    return "\n".join([
        f"bst-studio {info['bst_studio']}",
        f"Python {python['version']} ({'desktop bundle: ' if python.get('bundle') else ''}{python['executable']}) "
        f"on {python['platform']}",
        torch_line,
        "encoder offline: available (no download)",
        f"encoder clap: stack {stack}",
        f"  checkpoint: {checkpoint}",
        f"  roberta-base tokenizer files: {text_files}",
        f"cache folder: {folders['cache']}",
        f"data folder: {folders['data']}",
    ])
