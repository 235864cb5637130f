"""LAION-CLAP: finding, downloading and reading the checkpoint; the real library's encoder, offline.

The ``clap`` tests run the real laion_clap 1.1.7 code (model construction, checkpoint loading,
``get_audio_embedding_from_data``, ``get_text_embedding``) with no network: the RoBERTa files are
tiny ones the test writes and the weights are random (see ``clap_fixtures``). They are not skipped.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import http.server
import os
import re
import socket
import subprocess
import sys
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
import torch
from clap_fixtures import tone, write_random_checkpoint, write_tiny_roberta_files

from bst_core import checkpoints
from bst_core.corpus import CLAP_ENCODER, Corpus, empty_table
from bst_core.errors import BadInputError
from bst_core.jobs import Job, Progress

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _no_clap_files_from_this_machine(tmp_path_factory: pytest.TempPathFactory,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests see neither the developer's CLAP variables nor their Hugging Face cache."""
    import huggingface_hub.constants

    monkeypatch.delenv(checkpoints.CHECKPOINT_ENV, raising=False)
    monkeypatch.delenv(checkpoints.TEXT_FILES_ENV, raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path_factory.mktemp("hf-cache")))


# --- finding the checkpoint ------------------------------------------------------------------------


def test_checkpoint_is_found_explicit_then_env_then_data_folder(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    default = checkpoints.default_checkpoint_path()
    default.parent.mkdir(parents=True, exist_ok=True)
    default.write_bytes(b"x")
    from_env = tmp_path / "env.pt"
    from_env.write_bytes(b"x")
    explicit = tmp_path / "explicit.pt"
    explicit.write_bytes(b"x")
    assert checkpoints.find_clap_checkpoint() == default
    monkeypatch.setenv(checkpoints.CHECKPOINT_ENV, str(from_env))
    assert checkpoints.find_clap_checkpoint() == from_env
    assert checkpoints.find_clap_checkpoint(explicit) == explicit
    with pytest.raises(BadInputError, match=r"missing\.pt"):   # a wrong explicit path is not skipped over
        checkpoints.find_clap_checkpoint(tmp_path / "missing.pt")


def test_text_files_are_found_in_the_hugging_face_cache_of_an_earlier_online_run() -> None:
    import huggingface_hub.constants

    repo = Path(huggingface_hub.constants.HF_HUB_CACHE) / "models--FacebookAI--roberta-base"
    snapshot = write_tiny_roberta_files(repo / "snapshots" / "0123abc")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0123abc")
    assert checkpoints.find_text_files() == snapshot
    (snapshot / "merges.txt").unlink()
    with pytest.raises(BadInputError, match="--download-checkpoint"):
        checkpoints.find_text_files()


def test_absent_checkpoint_says_where_it_looked_and_how_to_get_it() -> None:
    with pytest.raises(BadInputError) as caught:
        checkpoints.find_clap_checkpoint()
    message = str(caught.value)
    assert str(checkpoints.default_checkpoint_path()) in message
    assert "https://huggingface.co/lukewys/laion_clap/resolve/main/630k-audioset-fusion-best.pt" in message
    assert "--download-checkpoint" in message and "BST_CLAP_CHECKPOINT" in message


def test_make_encoder_without_files_explains_before_importing_anything_heavy() -> None:
    from bst_core.encoders import make_encoder

    with pytest.raises(BadInputError, match="--download-checkpoint"):
        make_encoder("clap")


def test_importing_the_encoder_module_does_not_import_laion_clap() -> None:
    code = ("import sys, bst_core, bst_core.encoders, bst_core.checkpoints, bst_core.encoders.clap\n"
            "heavy = [m for m in ('laion_clap', 'transformers', 'torchvision') if m in sys.modules]\n"
            "assert not heavy, heavy")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 0, result.stderr


# --- reading checkpoints safely ------------------------------------------------------------------


def _clap_like_state() -> dict[str, torch.Tensor]:
    return {f"module.{prefix}weight": torch.full((2, 2), float(k))
            for k, prefix in enumerate(checkpoints.REQUIRED_PREFIXES)} | {
        "module.text_branch.embeddings.position_ids": torch.arange(4)[None]}


def test_state_dict_is_read_as_load_ckpt_would(tmp_path: Path) -> None:
    path = tmp_path / "ckpt.pt"
    torch.save({"epoch": 3, "state_dict": _clap_like_state()}, path)
    weights = checkpoints.load_clap_state_dict(path)
    assert sorted(weights) == sorted(f"{prefix}weight" for prefix in checkpoints.REQUIRED_PREFIXES)
    assert float(weights["text_branch.weight"][0, 0]) == 1.0


def test_protocol_4_checkpoint_with_extra_objects_is_read_without_running_its_code(tmp_path: Path) -> None:
    """LAION-CLAP's own files use pickle protocol 4, which weights_only cannot parse."""
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return os.system, (f"touch {marker}",)

    path = tmp_path / "ckpt.pt"
    torch.save({"epoch": np.int64(45), "best": np.float64(0.5), "args": argparse.Namespace(lr=1e-4),
                "exploit": Exploit(), "state_dict": _clap_like_state()}, path, pickle_protocol=4)
    with pytest.raises(Exception, match="Unsupported operand"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.load(path, weights_only=True)
    weights = checkpoints.load_clap_state_dict(path)
    assert float(weights["audio_projection.weight"][0, 0]) == 2.0
    assert not marker.exists()


@pytest.mark.parametrize("damage", ["truncated", "garbage", "no_state_dict", "not_clap"])
def test_damaged_or_foreign_checkpoint_is_named(tmp_path: Path, damage: str) -> None:
    path = tmp_path / "ckpt.pt"
    if damage == "not_clap":
        torch.save({"state_dict": {"layer.weight": torch.ones(2)}}, path)
    elif damage == "no_state_dict":
        torch.save({"epoch": 1}, path)
    else:
        torch.save({"state_dict": _clap_like_state()}, path)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"\x00not a checkpoint" * 50)
    with pytest.raises(BadInputError, match=re.escape(str(path))):
        checkpoints.load_clap_state_dict(path)


# --- downloading, offline (a local HTTP server) ------------------------------------------------


class _Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        if self.path.startswith("/cut/"):   # promises more bytes than it sends, then hangs up
            self.send_response(200)
            self.send_header("Content-Length", "100000")
            self.end_headers()
            self.wfile.write(b"x" * 1000)
            self.close_connection = True
            return
        super().do_GET()


@contextlib.contextmanager
def _serve(folder: Path) -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Handler, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def test_download_verifies_then_renames_into_place_with_progress(tmp_path: Path) -> None:
    served = tmp_path / "served"
    served.mkdir()
    torch.save({"state_dict": _clap_like_state()}, served / "good.pt")
    seen: list[Progress] = []
    dest = tmp_path / "data" / "630k-audioset-fusion-best.pt"
    with _serve(served) as url:
        path = checkpoints.download_clap_checkpoint(dest, url=url + "good.pt", job=Job(seen.append))
    assert path == dest and dest.read_bytes() == (served / "good.pt").read_bytes()
    assert seen[-2].done == seen[-2].total == dest.stat().st_size   # byte progress, then "verifying"
    assert list(dest.parent.iterdir()) == [dest]


@pytest.mark.parametrize("failure", ["cut", "corrupt"])
def test_partial_or_corrupt_download_is_detected_named_and_removed(tmp_path: Path, failure: str) -> None:
    served = tmp_path / "served"
    served.mkdir()
    torch.save({"state_dict": _clap_like_state()}, served / "good.pt")
    data = (served / "good.pt").read_bytes()
    (served / "corrupt.pt").write_bytes(data[: len(data) // 2])
    dest = tmp_path / "data" / "630k-audioset-fusion-best.pt"
    with _serve(served) as url, pytest.raises(BadInputError) as caught:
        checkpoints.download_clap_checkpoint(dest, url=url + ("cut/x.pt" if failure == "cut" else "corrupt.pt"))
    assert "was removed" in str(caught.value) and ".part" in str(caught.value)
    assert list(dest.parent.iterdir()) == []


def test_consent_gates_the_download_of_both_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    served = tmp_path / "served"
    write_tiny_roberta_files(served / "roberta")
    torch.save({"state_dict": _clap_like_state()}, served / "ckpt.pt")
    with _serve(served) as url:
        monkeypatch.setattr(checkpoints, "CLAP_CHECKPOINT_URL", url + "ckpt.pt")
        monkeypatch.setattr(checkpoints, "ROBERTA_URL", url + "roberta/")
        with pytest.raises(BadInputError, match="--download-checkpoint"):
            checkpoints.ensure_clap_files(allow_download=False)
        assert checkpoints.pending_downloads() == [url + "ckpt.pt"] + [
            url + "roberta/" + name for name in checkpoints.ROBERTA_FILES]
        checkpoint, text_dir = checkpoints.ensure_clap_files(allow_download=True)
    assert checkpoint == checkpoints.default_checkpoint_path()
    assert text_dir == checkpoints.default_text_files_dir()
    assert sorted(p.name for p in text_dir.iterdir()) == sorted(checkpoints.ROBERTA_FILES)
    assert checkpoints.ensure_clap_files() == (checkpoint, text_dir)   # afterwards: found, offline
    assert checkpoints.pending_downloads() == []


# --- the real laion_clap encoder, offline, random weights --------------------------------------


@contextlib.contextmanager
def _no_network() -> Iterator[pytest.MonkeyPatch]:
    """Any attempt to open a connection (e.g. to the Hugging Face hub) fails the test."""
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"network access {args[:3]} while building or loading CLAP")

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HUB_OFFLINE", "1")
        patch.setenv("TRANSFORMERS_OFFLINE", "1")
        patch.setattr(socket, "getaddrinfo", refuse)   # name lookups (the hub) ...
        patch.setattr(socket.socket, "connect", refuse)   # ... and direct connections
        yield patch


@dataclass
class ClapFiles:
    checkpoint: Path
    text_dir: Path
    module: Any   # the laion_clap.CLAP_Module whose random weights the checkpoint holds


@pytest.fixture(scope="module")
def clap_files(tmp_path_factory: pytest.TempPathFactory) -> ClapFiles:
    """A random CLAP built and saved by the real library, laid out as the official file."""
    base = tmp_path_factory.mktemp("clap")
    text_dir = write_tiny_roberta_files(base / "roberta-base")
    checkpoint = base / "630k-audioset-fusion-best.pt"
    with _no_network():
        module = write_random_checkpoint(checkpoint, text_dir)
        module.load_ckpt(str(checkpoint), verbose=False)   # the library's own loader accepts the layout
    return ClapFiles(checkpoint, text_dir, module)


@pytest.fixture(scope="module")
def encoder(clap_files: ClapFiles):  # -> ClapEncoder (imported lazily)
    """Built as the app builds it: make_encoder("clap"), files found through the environment."""
    from bst_core.encoders import make_encoder

    with _no_network() as patch:
        patch.setenv(checkpoints.CHECKPOINT_ENV, str(clap_files.checkpoint))
        patch.setenv(checkpoints.TEXT_FILES_ENV, str(clap_files.text_dir))
        seen: list[Progress] = []
        built = make_encoder("clap", job=Job(seen.append))
    assert [p.done for p in seen if p.stage == "load CLAP"] == [0, 1, 2, 3]
    return built


@pytest.mark.clap
def test_identity_shapes_and_unit_norm(encoder) -> None:
    assert encoder.info == CLAP_ENCODER and encoder.sample_rate == 48_000
    audio = encoder.embed_audio([tone(12.5, seed=1), tone(0.005, seed=2), tone(3.0, seed=3)])
    text = encoder.embed_text(["Dog bark dog bark", "", "é 🐕 <b>x</b>"])
    for matrix in (audio, text):
        assert matrix.shape == (3, 512) and matrix.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(matrix, axis=1), 1.0, atol=1e-5)
    assert encoder.embed_audio([]).shape == encoder.embed_text([]).shape == (0, 512)
    assert encoder.embed_text(["one text"]).shape == (1, 512)


@pytest.mark.clap
def test_vectors_are_the_library_ones_from_the_checkpoint_weights(encoder, clap_files: ClapFiles) -> None:
    from bst_core.encoders.clap import clip_seed

    reference = clap_files.module
    texts = ["dog bark", "rain on a tin roof"]
    np.testing.assert_allclose(encoder.embed_text(texts), reference.get_text_embedding(texts), atol=1e-5)
    clip = tone(14.0, seed=4)
    np.random.seed(clip_seed(clip, encoder.seed))
    expected = reference.get_audio_embedding_from_data([clip], use_tensor=False)
    np.testing.assert_allclose(encoder.embed_audio([clip]), expected, atol=1e-5)


@pytest.mark.clap
def test_long_clip_gives_the_same_vector_in_any_batch(encoder) -> None:
    long_clip, short_clip = tone(15.0, seed=5), tone(2.0, seed=6)
    rng_before = np.random.get_state()[1].copy()
    first = encoder.embed_audio([long_clip])[0]
    batched = encoder.embed_audio([short_clip, long_clip])
    np.testing.assert_allclose(batched[1], first, atol=1e-5)
    np.testing.assert_array_equal(np.random.get_state()[1], rng_before)   # caller's RNG untouched
    # The crops really are random: another seed picks other crops for the long clip only.
    seed = encoder.seed
    try:
        encoder.seed = seed + 1
        other = encoder.embed_audio([long_clip, short_clip])
    finally:
        encoder.seed = seed
    assert not np.allclose(other[0], first, atol=1e-4)
    np.testing.assert_allclose(other[1], batched[0], atol=1e-5)


@pytest.mark.clap
def test_bad_clips_raise_so_the_caller_can_retry_one_by_one(encoder) -> None:
    with pytest.raises(BadInputError, match="clip 1 is empty"):
        encoder.embed_audio([tone(1.0), np.zeros(0, np.float32)])
    with pytest.raises(BadInputError, match="mono"):
        encoder.embed_audio([np.zeros((2, 480), np.float32)])


@pytest.mark.clap
def test_extraction_gives_zero_audio_for_unreadable_files_and_text_for_all(
        encoder, tmp_path: Path) -> None:
    from bst_core.audio import decode
    from bst_core.extraction import extract
    from bst_core.store import EmbeddingStore

    sf.write(tmp_path / "good.wav", tone(12.0, sr=44_100, seed=8), 44_100)
    (tmp_path / "notes.wav").write_text("not audio at all")
    (tmp_path / "empty.wav").write_bytes(b"")
    table = empty_table(3)
    table["id"] = ["good", "notes", "empty"]
    table["audio_path"] = [str(tmp_path / f"{name}.wav") for name in table["id"]]
    table["title"] = ["Dog", "Notes", ""]
    table["tags"] = ["dog bark", "", ""]
    summary = extract(Corpus(table, root=tmp_path, kind="folder"), tmp_path / "store", encoder, batch_size=3)
    assert (summary.computed, summary.failed) == (1, 2)
    audio, text, found = EmbeddingStore.open(tmp_path / "store").load(["good", "notes", "empty"])
    assert found.all()
    assert not audio[1:].any()
    np.testing.assert_allclose(np.linalg.norm(text, axis=1), 1.0, atol=1e-5)
    items = EmbeddingStore.open(tmp_path / "store").items().set_index("id")
    assert items.loc[["notes", "empty"], "status"].tolist() == ["audio_failed", "audio_failed"]
    decoded = decode(tmp_path / "good.wav", encoder.sample_rate, max_seconds=encoder.max_seconds)
    np.testing.assert_allclose(audio[0], encoder.embed_audio([decoded.samples])[0], atol=1e-5)


@pytest.mark.clap
def test_missing_stack_is_explained(clap_files: ClapFiles, monkeypatch: pytest.MonkeyPatch) -> None:
    from bst_core.encoders.clap import import_laion_clap

    monkeypatch.setitem(sys.modules, "torchvision", None)
    with pytest.raises(BadInputError, match=r"torchvision.*pip install"):
        import_laion_clap(clap_files.text_dir)
