"""The synthetic demo: BSD layout the readers accept, noisy text, and the whole offline workflow."""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from bst_core import demo, taxonomy
from bst_core.sources import detect_kind, read_bsd_dataset, read_evaluation_folder


@pytest.fixture(scope="module")
def small_demo(tmp_path_factory: pytest.TempPathFactory) -> demo.DemoPaths:
    return demo.make_demo(tmp_path_factory.mktemp("demo"), n_per_class=2, n_eval_per_class=1)


def test_every_class_has_a_recipe_and_words() -> None:
    assert set(demo.RECIPES) == set(taxonomy.CLASS_KEYS) == set(demo.WORDS)


def test_dataset_is_in_bsd_layout(small_demo: demo.DemoPaths) -> None:
    assert detect_kind(small_demo.dataset) == "bsd"
    corpus = read_bsd_dataset(small_demo.dataset)
    assert len(corpus) == 2 * 23 and corpus.audio is None
    assert corpus.table["label"].value_counts().to_dict() == dict.fromkeys(taxonomy.CLASS_KEYS, 2)
    first = corpus.table.iloc[0]
    info = sf.info(first.audio_path)
    assert (info.samplerate, info.channels, info.subtype) == (44_100, 1, "PCM_16")
    assert "SYNTHETIC" in (small_demo.dataset / "README.txt").read_text()


def test_evaluation_folder_has_uuid_ids_truth_and_one_empty_file(small_demo: demo.DemoPaths) -> None:
    assert detect_kind(small_demo.evaluation) == "evaluation"
    corpus = read_evaluation_folder(small_demo.evaluation)
    assert len(corpus) == 23 and (corpus.table["label"] == "").all()
    for item in corpus.ids:
        assert str(uuid.UUID(item)) == item
    truth = pd.read_csv(small_demo.truth_csv, dtype=str)
    assert list(truth["id"]) == corpus.ids
    assert sorted(truth["class"]) == sorted(taxonomy.CLASS_KEYS)
    sizes = [Path(p).stat().st_size for p in corpus.table["audio_path"]]
    assert sizes.count(0) == 1
    assert not small_demo.truth_csv.is_relative_to(small_demo.evaluation)


def test_make_demo_is_deterministic_and_keeps_existing_audio(tmp_path: Path, small_demo: demo.DemoPaths) -> None:
    again = demo.make_demo(tmp_path, n_per_class=2, n_eval_per_class=1)
    first = pd.read_csv(small_demo.dataset / "metadata" / "BSD10k_metadata.csv", dtype=str, keep_default_na=False)
    second = pd.read_csv(again.dataset / "metadata" / "BSD10k_metadata.csv", dtype=str, keep_default_na=False)
    pd.testing.assert_frame_equal(first, second)
    clip = again.dataset / "audio" / f"{second.sound_id[0]}.wav"
    mtime = clip.stat().st_mtime_ns
    demo.make_demo(tmp_path, n_per_class=2, n_eval_per_class=1)
    assert clip.stat().st_mtime_ns == mtime


def test_titles_and_tags_correlate_with_the_class_but_are_noisy() -> None:
    rng = np.random.default_rng(0)
    own_words = {word.replace(" ", "-") for word in demo.WORDS["fx-a"]}
    drawn = [demo._text_fields(rng, "fx-a") for _ in range(2000)]
    says_class = [bool(own_words & set(fields["tags"].split(", "))) for fields in drawn]
    assert np.mean(says_class) == pytest.approx(1 - demo.NOISY_FRACTION, abs=0.04)


@pytest.mark.slow
def test_run_demo_end_to_end(tmp_path: Path) -> None:
    """The whole workflow on a tiny demo and a tiny training config (the real demo is bigger)."""
    from bst_core.submission import validate_package_dir
    from bst_core.training import TrainConfig

    config = TrainConfig(folds=2, epochs=1, batch_size=16, patience=None, val_fraction=0.4, hidden=16)
    result = demo.run_demo(tmp_path, n_per_class=6, n_eval_per_class=1, config=config)
    assert result.dev_extraction.line == "computed 138, reused 0, failed 0"
    assert result.eval_extraction.line == "computed 22, reused 0, failed 1"
    assert list(result.eval_extraction.failures) == ["empty file"]
    assert validate_package_dir(result.package) == []
    assert result.package.name == demo.DEMO_LABEL
    submitted = pd.read_csv(result.package / f"{demo.DEMO_LABEL}.output.csv", dtype={"id": str})
    assert len(submitted) == 23
    text = result.format()
    assert "SYNTHETIC" in text and "hF" in text and str(result.package) in text
