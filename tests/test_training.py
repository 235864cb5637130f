"""Cross-validation: protocol, determinism, input checks, run folder, resume, cancel."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from bst_core import training
from bst_core.corpus import AUDIO_OK, Corpus, EncoderInfo, empty_table
from bst_core.errors import BadInputError, IncompatibleError
from bst_core.jobs import Cancelled, Job, Progress
from bst_core.model import HATR
from bst_core.runs import RunFolder, load_fold_model, read_fold_meta
from bst_core.taxonomy import CLASS_KEYS
from bst_core.training import TrainConfig, check_trainable, cross_validate, fold_splits

ENCODER = EncoderInfo("test-encoder", "1", 32, 32)
CLASSES = ("m-sp", "is-p", "sp-s", "fx-o", "ss-n")
FAST = TrainConfig(folds=2, epochs=3, batch_size=8)


def make_corpus(n_per_class: int = 40, classes: tuple[str, ...] = CLASSES, dim: int = 32,
                seed: int = 0) -> Corpus:
    """Items around one random centroid per class, audio and text alike; ids contain commas."""
    rng = np.random.default_rng(seed)
    which = np.repeat(np.arange(len(classes)), n_per_class)
    centroids = rng.normal(size=(len(classes), dim))
    table = empty_table(len(which))
    table["id"] = [f"{i},{classes[c]}" for i, c in enumerate(which)]
    table["label"] = [classes[c] for c in which]
    audio = centroids[which] + 0.5 * rng.normal(size=(len(which), dim))
    text = centroids[which][:, ::-1] + 0.5 * rng.normal(size=(len(which), dim))
    return Corpus(table, audio.astype(np.float32), text.astype(np.float32),
                  EncoderInfo("test-encoder", "1", dim, dim))


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """Tiny models run faster on one thread, and the test machine is shared."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Corpus, Path, object, list[Progress]]:
    """One finished 2-fold run (read-only: copy the folder before changing it)."""
    torch.set_num_threads(1)
    corpus = make_corpus()
    run_dir = tmp_path_factory.mktemp("runs") / "run"
    events: list[Progress] = []
    result = cross_validate(corpus, run_dir, FAST, Job(events.append))
    return corpus, run_dir, result, events


# --- protocol and determinism ------------------------------------------------------------------

def test_same_seed_gives_identical_numbers(trained, tmp_path: Path) -> None:
    corpus, _run_dir, first, _ = trained
    again = cross_validate(corpus, tmp_path / "again", FAST)
    pd.testing.assert_frame_equal(first.oof, again.oof, check_exact=True)
    np.testing.assert_equal(first.summary, again.summary)
    assert first.best_epochs == again.best_epochs



@pytest.mark.parametrize("mode", ["both", "audio"])
def test_other_threads_drawing_random_numbers_do_not_change_a_run(mode: str, tmp_path: Path) -> None:
    """The app trains while other jobs load models, warm torch up or draw from torch's global
    generator; a fold's numbers must not depend on them (a render once got two different runs)."""
    import threading

    corpus = make_corpus()
    config = TrainConfig(mode=mode, folds=2, epochs=3, batch_size=8, only_fold=1)
    alone = cross_validate(corpus, tmp_path / "alone", config)
    stop = threading.Event()

    def disturb() -> None:
        while not stop.is_set():
            torch.randn(64)
            training.warm_up()
            HATR("both", 8, 8, hidden=8)   # what loading a model does

    thread = threading.Thread(target=disturb, daemon=True)
    thread.start()
    try:
        busy = cross_validate(corpus, tmp_path / "busy", config)
    finally:
        stop.set()
        thread.join()
    pd.testing.assert_frame_equal(alone.oof, busy.oof, check_exact=True)
    assert alone.best_epochs == busy.best_epochs

@pytest.mark.parametrize("extra", [{}, {"augment": True, "missing_audio": "mask"}])
def test_two_encoder_threads_give_the_numbers_of_one(extra: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    """The branch-parallel step (dropout masks drawn ahead, one Adam per branch) is bit-identical."""
    corpus = make_corpus(n_per_class=24)
    corpus.table["audio_status"] = AUDIO_OK
    corpus.table.loc[:3, "audio_status"] = "text only: test"   # masked attention rows
    config = TrainConfig(**{**FAST.to_dict(), "dropout": 0.3, **extra})
    data = training._to_tensors(corpus, config, torch.device("cpu"))
    assert data.audio_present is not None and 0 < int(data.audio_present.sum()) < len(corpus)
    train, val, test = fold_splits(data.codes, folds=2, seed=config.seed, val_fraction=config.val_fraction)[0]
    task = training.FoldTask(1, train, val, test)
    one = training.train_fold(task, data, config, parallel=False)
    two = training.train_fold(task, data, config, parallel=True)
    np.testing.assert_array_equal(one.probs, two.probs)
    assert one.history == two.history and one.best_epoch == two.best_epoch
    for name, tensor in one.state.items():
        assert torch.equal(tensor, two.state[name]), name


def test_folds_run_on_one_thread_whatever_the_caller_uses(trained, tmp_path: Path) -> None:
    corpus, _run_dir, first, _ = trained
    torch.set_num_threads(2)
    again = cross_validate(corpus, tmp_path / "again", FAST)
    assert torch.get_num_threads() == 2  # restored
    pd.testing.assert_frame_equal(first.oof, again.oof, check_exact=True)


def test_another_seed_gives_other_splits_and_numbers(trained, tmp_path: Path) -> None:
    corpus, _run_dir, first, _ = trained
    other = cross_validate(corpus, tmp_path / "other", TrainConfig(**{**FAST.to_dict(), "seed": 7}))
    assert not np.array_equal(first.oof[list(CLASS_KEYS)].to_numpy(), other.oof[list(CLASS_KEYS)].to_numpy())


def test_splits_are_stratified_and_partition_the_items() -> None:
    codes = np.repeat(np.arange(5), 20)
    splits = fold_splits(codes, folds=5, seed=1821, val_fraction=0.2)
    tests = np.concatenate([test for _, _, test in splits])
    assert sorted(tests.tolist()) == list(range(100))
    for train, val, test in splits:
        assert not set(train) & set(val) and not set(train) & set(test) and not set(val) & set(test)
        assert np.bincount(codes[test]).tolist() == [4] * 5
        assert len(val) == 16 and set(np.bincount(codes[val]).tolist()) <= {3, 4}
        assert len(train) == 64


def test_oof_covers_every_item_once_with_fold_probabilities(trained) -> None:
    corpus, _run_dir, result, _ = trained
    oof = result.oof
    assert oof["id"].tolist() == corpus.ids
    assert set(oof["fold"]) == {1, 2}
    probs = oof[list(CLASS_KEYS)].to_numpy()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-6)
    assert (oof["prediction"] == np.array(CLASS_KEYS)[probs.argmax(axis=1)]).all()
    np.testing.assert_allclose(oof["score"], probs.max(axis=1))
    assert (oof["truth"] == corpus.labels).all()
    assert result.confusion.shape == (23, 23) and result.confusion.sum() == len(corpus)
    assert result.report.n == len(corpus) and len(result.fold_reports) == 2


def test_the_model_learns_separable_classes(tmp_path: Path) -> None:
    corpus = make_corpus(classes=CLASSES[:3])
    result = cross_validate(corpus, tmp_path / "run", TrainConfig(folds=2, epochs=8, batch_size=8))
    assert result.report.leaf_accuracy > 0.8


def test_progress_reports_each_epoch_with_curve_data(trained) -> None:
    _corpus, _run_dir, _result, events = trained
    epochs = [e for e in events if "epoch" in e.data]
    assert [(e.stage, e.data["epoch"]) for e in epochs] == [
        ("fold 1/2", 1), ("fold 1/2", 2), ("fold 1/2", 3), ("fold 2/2", 1), ("fold 2/2", 2), ("fold 2/2", 3)]
    for key in ("fold", "loss", "val_hf", "lr", "attn_audio", "attn_text"):
        assert key in epochs[0].data
    assert epochs[-1].total == 3 and epochs[-1].data["lr"] == pytest.approx(1e-3)
    assert epochs[0].data["attn_audio"] + epochs[0].data["attn_text"] == pytest.approx(1.0)


def test_augmentation_and_label_smoothing_change_the_training(trained, tmp_path: Path) -> None:
    corpus, _run_dir, plain, _ = trained
    for i, extra in enumerate(({"augment": True}, {"label_smoothing": 0.01})):
        config = TrainConfig(**{**FAST.to_dict(), **extra})
        result = cross_validate(corpus, tmp_path / f"run{i}", config)
        assert not np.array_equal(result.oof[list(CLASS_KEYS)].to_numpy(),
                                  plain.oof[list(CLASS_KEYS)].to_numpy())


def test_single_modality_run_has_no_attention(tmp_path: Path) -> None:
    corpus = make_corpus(n_per_class=10)
    corpus.text = None
    events: list[Progress] = []
    cross_validate(corpus, tmp_path / "run", TrainConfig(mode="audio", folds=2, epochs=1),
                   Job(events.append))
    last = [e for e in events if "epoch" in e.data][-1]
    assert last.data["attn_audio"] is None
    _model, meta = load_fold_model(tmp_path / "run" / "fold_1" / "model.pt")
    assert meta["mode"] == "audio"


# --- checks before training --------------------------------------------------------------------

def _refused(corpus: Corpus, config: TrainConfig = FAST) -> str:
    with pytest.raises(BadInputError) as info:
        check_trainable(corpus, config)
    return str(info.value)


def test_empty_corpus_is_refused() -> None:
    assert "no items" in _refused(make_corpus().subset(np.zeros(200, dtype=bool)))


def test_single_class_is_refused() -> None:
    assert "two classes" in _refused(make_corpus(classes=("fx-o",)))


def test_a_class_smaller_than_the_folds_is_named_with_its_count() -> None:
    corpus = make_corpus()
    keep = np.ones(len(corpus), dtype=bool)
    keep[np.flatnonzero(corpus.labels == "sp-s")[3:]] = False
    message = _refused(corpus.subset(keep), TrainConfig(folds=5))
    assert "sp-s has 3" in message and "5" in message


def test_missing_embeddings_for_the_mode_are_refused() -> None:
    corpus = make_corpus()
    corpus.text = None
    assert "no text embeddings" in _refused(corpus, TrainConfig(mode="both"))
    check_trainable(corpus, TrainConfig(mode="audio", folds=2))  # audio alone is enough
    corpus.encoder = None
    assert "encoder" in _refused(corpus, TrainConfig(mode="audio", folds=2))


def test_unlabelled_rows_are_refused_with_their_count() -> None:
    corpus = make_corpus()
    corpus.table.loc[[0, 5, 9], "label"] = ""
    assert "3 of 200 items" in _refused(corpus)


def test_non_target_labels_are_refused() -> None:
    corpus = make_corpus()
    corpus.table.loc[[1, 2], "label"] = "fx-other"
    assert "'fx-other' ×2" in _refused(corpus)


def test_non_finite_embeddings_are_refused() -> None:
    corpus = make_corpus()
    corpus.audio[4, 3] = np.nan
    assert "NaN" in _refused(corpus)


def test_options_out_of_range_are_refused() -> None:
    assert "only_fold" in _refused(make_corpus(), TrainConfig(folds=2, only_fold=3))
    assert "mode" in _refused(make_corpus(), TrainConfig(mode="video"))


def test_nothing_is_written_when_the_input_is_refused(tmp_path: Path) -> None:
    with pytest.raises(BadInputError):
        cross_validate(make_corpus(classes=("fx-o",)), tmp_path / "run", FAST)
    assert not (tmp_path / "run").exists()


# --- run folder --------------------------------------------------------------------------------

def test_run_folder_holds_every_artefact(trained) -> None:
    corpus, run_dir, result, _ = trained
    for name in ("run.json", "metrics.json", "oof_predictions.csv"):
        assert (run_dir / name).is_file()
    for k in (1, 2):
        for name in ("model.pt", "history.csv", "metrics.json"):
            assert (run_dir / f"fold_{k}" / name).is_file()
    run = RunFolder(run_dir)
    assert run.status == "complete" and run.config == FAST and run.encoder == ENCODER
    assert run.info["n_items"] == len(corpus) and run.info["class_keys"] == list(CLASS_KEYS)
    assert [p.name for p in run.fold_dirs()] == ["fold_1", "fold_2"]
    history = run.history(1)
    assert list(history.columns) == ["epoch", "loss", "val_hf", "lr", "attn_audio", "attn_text"]
    assert history["epoch"].tolist() == [1, 2, 3]
    pd.testing.assert_frame_equal(run.oof(), result.oof, check_dtype=False)
    metrics = run.metrics()
    assert metrics["absent"] == "reference" and metrics["lam"] == 0.75
    assert [f["fold"] for f in metrics["folds"]] == [1, 2]
    assert metrics["summary"]["hF"]["mean"] == pytest.approx(result.summary["hF"][0])
    assert np.array_equal(np.array(metrics["confusion"]), result.confusion)
    assert set(metrics["pooled"]["per_class"]) == set(CLASS_KEYS)


def test_model_file_is_plain_and_loads_with_weights_only(trained) -> None:
    _corpus, run_dir, result, _ = trained
    raw = torch.load(run_dir / "fold_1" / "model.pt", weights_only=True)
    assert raw["bst_format"] == 1 and raw["fold"] == 1 and raw["class_keys"] == list(CLASS_KEYS)
    assert raw["encoder"] == ENCODER.to_dict() and raw["audio_dim"] == 32 and raw["text_dim"] == 32
    assert raw["best_epoch"] == result.best_epochs[0] and raw["parameters"] > 0
    model, meta = load_fold_model(run_dir / "fold_1" / "model.pt", encoder=ENCODER, audio_dim=32, text_dim=32)
    assert not model.training and meta["config"]["hidden"] == 128


def _rewrite(path: Path, **changes: object) -> None:
    data = torch.load(path, weights_only=True)
    data.update(changes)
    torch.save(data, path)


def test_loading_refuses_mismatched_models(trained, tmp_path: Path) -> None:
    _corpus, run_dir, _result, _ = trained
    path = tmp_path / "model.pt"
    shutil.copy(run_dir / "fold_1" / "model.pt", path)
    other = EncoderInfo("other-encoder", "2", 32, 32)
    with pytest.raises(IncompatibleError, match="other-encoder") as info:
        load_fold_model(path, encoder=other)
    assert str(path) in str(info.value)
    with pytest.raises(IncompatibleError, match="64"):
        load_fold_model(path, audio_dim=64)
    with pytest.raises(IncompatibleError, match="order"):
        load_fold_model(path, class_keys=list(reversed(CLASS_KEYS)))
    _rewrite(path, class_keys=list(reversed(CLASS_KEYS)))
    with pytest.raises(IncompatibleError, match="order"):
        load_fold_model(path)


def test_loading_refuses_pickled_objects_and_junk(tmp_path: Path) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": {}, "config": Path("x")}, path)  # an arbitrary object: not weights-only
    with pytest.raises(BadInputError, match=r"evil\.pt"):
        read_fold_meta(path)
    path.write_bytes(b"not a model")
    with pytest.raises(BadInputError, match="cannot be read"):
        load_fold_model(path)


def test_a_folder_that_is_not_a_run_is_refused(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match=re.escape(str(tmp_path))):
        RunFolder(tmp_path)


def test_a_non_empty_foreign_folder_is_not_overwritten(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(BadInputError, match="not empty"):
        cross_validate(make_corpus(), tmp_path, FAST)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_a_run_with_other_options_is_not_overwritten(trained, tmp_path: Path) -> None:
    corpus, run_dir, _result, _ = trained
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    with pytest.raises(BadInputError, match="other options"):
        cross_validate(corpus, copy, TrainConfig(**{**FAST.to_dict(), "epochs": 4}))


# --- resume, only_fold, cancel -----------------------------------------------------------------

def test_resume_reuses_finished_folds(trained, tmp_path: Path) -> None:
    corpus, run_dir, first, _ = trained
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    stamp = (copy / "fold_1" / "model.pt").stat().st_mtime_ns
    events: list[Progress] = []
    again = cross_validate(corpus, copy, FAST, Job(events.append))
    assert again.reused == [1, 2]
    assert [e.message for e in events] == ["reused", "reused"]
    assert (copy / "fold_1" / "model.pt").stat().st_mtime_ns == stamp
    pd.testing.assert_frame_equal(again.oof, first.oof)


def test_only_fold_trains_one_fold_then_the_rest_completes(trained, tmp_path: Path) -> None:
    corpus, _run_dir, full, _ = trained
    config = TrainConfig(**{**FAST.to_dict(), "only_fold": 2})
    part = cross_validate(corpus, tmp_path / "run", config)
    assert part.folds == [2] and part.status == "partial" and not (tmp_path / "run" / "fold_1").exists()
    assert set(part.oof["fold"]) == {2} and RunFolder(tmp_path / "run").status == "partial"
    rest = cross_validate(corpus, tmp_path / "run", FAST)
    assert rest.reused == [2] and rest.folds == [1, 2] and rest.status == "complete"
    pd.testing.assert_frame_equal(rest.oof, full.oof)


def test_cancel_keeps_finished_folds_and_resumes(trained, tmp_path: Path) -> None:
    corpus, _run_dir, full, _ = trained

    def cancel_in_fold_2(progress: Progress) -> None:
        if progress.data.get("fold") == 2 and progress.data.get("epoch") == 1:
            job.cancel()

    job = Job(cancel_in_fold_2)
    run_dir = tmp_path / "run"
    with pytest.raises(Cancelled):
        cross_validate(corpus, run_dir, FAST, job)
    assert (run_dir / "fold_1" / "model.pt").is_file() and (run_dir / "fold_1" / "history.csv").is_file()
    assert not (run_dir / "fold_2" / "model.pt").exists()
    info = json.loads((run_dir / "run.json").read_text())
    assert info["status"] == "cancelled" and info["folds_done"] == [1]
    resumed = cross_validate(corpus, run_dir, FAST)
    assert resumed.reused == [1]
    pd.testing.assert_frame_equal(resumed.oof, full.oof)


def test_a_model_file_with_float64_weights_loads_as_float32(tmp_path: Path) -> None:
    from bst_core.runs import save_fold_model

    corpus = make_corpus()
    model = HATR("both", 32, 32, hidden=16).double()
    path = tmp_path / "model.pt"
    save_fold_model(path, model, config={"mode": "both", "hidden": 16, "dropout": 0.1}, encoder=corpus.encoder,
                    fold=1, best_epoch=1)
    loaded, _ = load_fold_model(path)
    assert {p.dtype for p in loaded.parameters()} == {torch.float32}
    assert torch.equal(next(loaded.parameters()), next(model.parameters()).float())
    assert loaded(torch.zeros(2, 32), torch.zeros(2, 32))[0].dtype == torch.float32
