"""Trust by construction: the workflow layer, the run format's single owner, masks and bounds."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from bst_core import pipeline
from bst_core.config import TrainConfig
from bst_core.errors import BadInputError
from bst_core.model import HATR, predict_probs
from bst_core.predictions import text_only
from bst_core.runs import RunFolder
from bst_core.session import Session
from bst_core.synthetic import make_corpus

FAST = TrainConfig(folds=2, epochs=2, batch_size=32, patience=None, hidden=16, val_fraction=0.3)
REPO = Path(__file__).resolve().parents[1]


def test_config_runs_pipeline_and_session_import_without_torch() -> None:
    code = ("import sys; import bst_core.config, bst_core.runs, bst_core.pipeline, bst_core.session, "
            "bst_core.predictions; print('torch' in sys.modules, 'sklearn' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.split() == ["False", "False"]


def test_masked_audio_gets_no_attention_and_cannot_move_the_prediction() -> None:
    torch.manual_seed(0)
    model = HATR("both", 8, 8, hidden=8).eval()
    audio, text = torch.randn(6, 8), torch.randn(6, 8)
    present = torch.tensor([True, False, True, False, True, True])
    probs, attention = predict_probs(model, audio, text, audio_present=present)
    assert attention is not None
    assert torch.equal(attention[~present], torch.tensor([[0.0, 1.0], [0.0, 1.0]]))
    assert (attention[present, 0] > 0).all()
    other_audio = audio.clone()
    other_audio[~present] = torch.randn(2, 8) * 5
    probs_other, _ = predict_probs(model, other_audio, text, audio_present=present)
    assert torch.allclose(probs[~present], probs_other[~present])       # audio of masked rows is ignored
    _, attn_seed = predict_probs(model, audio, text)              # the seed behaviour stays available
    assert attn_seed is not None and (attn_seed[~present, 0] > 0).all()


def test_items_without_audio_are_text_only_in_the_run_and_its_predictions(tmp_path: Path) -> None:
    corpus = make_corpus(n_per_class=8, dim=16)
    status = ["ok"] * len(corpus)
    status[3] = text_only("empty file")
    corpus.audio[3] = 0.0
    corpus.table["audio_status"] = status
    result = pipeline.cross_validate(corpus, tmp_path / "run", FAST)
    oof = result.oof.set_index("id")
    assert oof.loc[corpus.ids[3], "audio_status"] == "text only: empty file"
    predictions = pipeline.predict(tmp_path / "run", corpus)
    row = predictions.ids.index(corpus.ids[3])
    assert predictions.audio_status[row] == "text only: empty file"
    assert predictions.attention is not None and predictions.attention[row, 0] == 0.0
    frame = predictions.submission_frame()
    assert frame.loc[row, "audio_status"] == "text only: empty file"


def test_reading_a_run_gives_back_what_the_trainer_returned(tmp_path: Path) -> None:
    corpus = make_corpus(n_per_class=8, dim=16)
    trained = pipeline.cross_validate(corpus, tmp_path / "run", FAST)
    read = pipeline.load_run(tmp_path / "run")
    assert read.folds == trained.folds == [1, 2] and read.status == "complete"
    assert read.config == trained.config and read.encoder == trained.encoder
    assert read.report.hF == pytest.approx(trained.report.hF, abs=1e-12)
    assert [r.hF for r in read.fold_reports] == pytest.approx([r.hF for r in trained.fold_reports], abs=1e-12)
    assert np.array_equal(read.confusion, trained.confusion)
    assert read.synthetic and trained.synthetic


def test_two_only_fold_processes_into_one_folder_both_land(tmp_path: Path) -> None:
    script = textwrap.dedent(f"""
        import sys
        from bst_core import pipeline
        from bst_core.config import TrainConfig
        from bst_core.synthetic import make_corpus
        config = TrainConfig(folds=2, epochs=2, batch_size=32, patience=None, hidden=16, val_fraction=0.3,
                             only_fold=int(sys.argv[1]))
        pipeline.cross_validate(make_corpus(n_per_class=8, dim=16), {str(tmp_path / 'run')!r}, config)
    """)
    procs = [subprocess.Popen([sys.executable, "-c", script, str(k)], cwd=REPO) for k in (1, 2)]
    assert [p.wait(timeout=240) for p in procs] == [0, 0]
    run = RunFolder(tmp_path / "run")
    assert run.info["folds_done"] == [1, 2] and run.status == "complete"
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["folds_done"] == [1, 2]
    assert sorted(run.oof()["fold"].unique().tolist()) == [1, 2]


def test_a_folder_of_other_files_is_refused_and_a_killed_starts_temp_file_is_not(tmp_path: Path) -> None:
    import os

    from bst_core.atomic import STALE_TMP_SECONDS

    corpus = make_corpus(n_per_class=8, dim=16)
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(BadInputError, match="not empty and is not a run folder"):
        pipeline.cross_validate(corpus, other, FAST)
    assert sorted(p.name for p in other.iterdir() if p.name != ".lock") == ["notes.txt"]
    killed = tmp_path / "killed"
    killed.mkdir()
    stale = killed / ".run.json.abc.tmp"                 # a start killed while writing run.json
    stale.write_text("{")
    old = stale.stat().st_mtime - STALE_TMP_SECONDS - 60
    os.utime(stale, (old, old))
    pipeline.cross_validate(corpus, killed, FAST)
    assert RunFolder(killed).status == "complete" and not stale.exists()


def test_the_same_fold_trained_twice_at_once_is_refused(tmp_path: Path) -> None:
    from dataclasses import replace

    from bst_core import locking

    corpus = make_corpus(n_per_class=8, dim=16)
    pipeline.cross_validate(corpus, tmp_path / "run", replace(FAST, only_fold=2))
    with locking.exclusive(tmp_path / "run" / "fold_1", "fold"), pytest.raises(BadInputError, match="another process"):
        pipeline.cross_validate(corpus, tmp_path / "run", FAST)
    assert RunFolder(tmp_path / "run").info["folds_done"] == [2]


def test_a_run_of_another_dataset_is_never_shown_as_this_ones(tmp_path: Path, bsd_root: Path) -> None:
    other = make_corpus(n_per_class=8, dim=512)
    other.root = tmp_path / "elsewhere"
    result = pipeline.cross_validate(other, tmp_path / "run", FAST)
    session = Session()
    events: list[str] = []
    session.subscribe(events.append)
    session.open(pipeline.open_source(bsd_root))
    session.set_run(result)
    assert session.run is result and not session.run_is_for_source
    assert session.predictions is None
    with pytest.raises(BadInputError, match="not of the open source"):
        session.set_predictions(result.predictions())
    assert events == ["source", "run"]


def test_own_run_gives_the_session_its_out_of_fold_predictions(tmp_path: Path, bsd_root: Path) -> None:
    corpus = pipeline.open_source(bsd_root)
    result = pipeline.cross_validate(corpus, tmp_path / "run", FAST)
    session = Session()
    session.open(corpus)
    session.set_run(pipeline.load_run(tmp_path / "run"))
    assert session.run_is_for_source
    assert session.predictions is not None and session.predictions.origin == "out-of-fold"
    assert session.predictions.ids == result.oof["id"].tolist()
    assert "out-of-fold" in session.prediction_caption()
    session.reset()
    assert session.corpus is None and session.run is None and session.predictions is None


def test_a_huge_description_is_embedded_in_bounded_time_and_memory() -> None:
    from bst_core.encoders.offline import OfflineEncoder
    from bst_core.text import MAX_FIELD_CHARS, text_for

    huge = "<p>wind " + "gust howl " * 2_000_000 + "</p>"       # 20 MB
    text = text_for("Storm", "wind weather", huge)
    assert len(text) <= MAX_FIELD_CHARS + 40
    vector = OfflineEncoder().embed_text([text])
    assert vector.shape == (1, 512) and np.isfinite(vector).all()


def test_store_is_found_in_one_place_by_every_caller(tmp_path: Path) -> None:
    source = tmp_path / "My Sounds"
    source.mkdir()
    cached = pipeline.store_path_for(source, "offline")
    assert cached.name.startswith("My_Sounds-") and cached.name.endswith("-offline")
    beside = tmp_path / "stores" / "My Sounds-offline"
    beside.mkdir(parents=True)
    (beside / "manifest.json").write_text("{}")
    assert pipeline.store_path_for(source, "offline") == beside
    with pytest.raises(BadInputError, match="Unknown encoder"):
        pipeline.store_path_for(source, "mfcc")


def test_a_full_disk_during_training_says_so_and_leaves_no_temp_files(
        tmp_path: Path, bsd_root: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from bst_core.cli import EXIT_BAD_INPUT, main

    def full_disk(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("[enforce fail at inline_container.cc:664] . unexpected pos 27648 vs 6112")

    monkeypatch.setattr(torch, "save", full_disk)
    run = tmp_path / "run"
    assert main(["train", str(bsd_root), "--out", str(run), "--folds", "2", "--epochs", "1", "-q"]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "disk full while writing" in err and "model.pt" in err and "Traceback" not in err
    assert not list(run.rglob("*.tmp"))
    assert RunFolder(run).status == "failed" and RunFolder(run).info["folds_done"] == []


def test_temp_files_of_a_killed_write_are_removed_on_the_next_run(tmp_path: Path) -> None:
    import os

    corpus = make_corpus(n_per_class=8, dim=16)
    pipeline.cross_validate(corpus, tmp_path / "run", FAST)
    stale = [tmp_path / "run" / ".metrics.json.abc123.tmp", tmp_path / "run" / "fold_1" / ".model.pt.x1y2.tmp"]
    for path in stale:
        path.write_bytes(b"\0" * 4096)
        os.utime(path, (1_000_000_000, 1_000_000_000))
    pipeline.cross_validate(corpus, tmp_path / "run", FAST)      # resumes: both folds reused
    assert not any(p.exists() for p in stale)


def test_a_store_is_never_attached_to_files_that_changed_since_extraction(tmp_path: Path, eval_root: Path) -> None:
    import os
    import shutil

    sounds = tmp_path / "sounds"
    shutil.copytree(eval_root / "audio", sounds)
    corpus = pipeline.open_source(sounds)
    extracted = pipeline.extract(corpus)
    assert pipeline.open_source(sounds).store == extracted.corpus.store       # found again, in one place
    victim = sorted(sounds.glob("*.wav"))[1]
    data = victim.read_bytes()
    victim.write_bytes(data[:44] + bytes(len(data) - 44))                      # replaced in place
    os.utime(victim, ns=(victim.stat().st_atime_ns, victim.stat().st_mtime_ns + 5_000_000_000))
    reopened = pipeline.open_source(sounds)
    assert reopened.audio is None and reopened.store is None
    assert any("changed since they were embedded" in n for n in reopened.notes)
    with pytest.raises(BadInputError, match="changed since they were embedded"):
        pipeline.open_source(sounds, store=extracted.corpus.store)
    with pytest.raises(BadInputError, match="no usable embeddings"):
        pipeline.open_source(sounds, require_embeddings=True)
    pipeline.extract(reopened)                                                  # re-extracting heals it
    assert pipeline.open_source(sounds).audio is not None
