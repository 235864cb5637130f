"""The challenge package: validated before writing, exact round-trips, nothing left by a refusal."""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from bst_core import atomic, dev_results, metrics, submission
from bst_core.corpus import CLAP_ENCODER, EncoderInfo
from bst_core.errors import BadInputError
from bst_core.taxonomy import CLASS_KEYS

LABEL = "Doe_BSTS_task1_1"
ODD_IDS = [  # an anonymous_id, leading zeros, words pandas reads as NaN, CSV syntax, Unicode
    "3f2b8c1e-0d4a-4e7b-9a51-6c2d7e8f9a10", "00123", "nan", "NA", "null", "1e5",
    "comma,inside", 'quote"inside', "  spaced  ", "ünïcödé-声音", "semi;colon", "new\nline",
]


@dataclass
class FakePredictions:
    ids: list[str]
    labels: list[str]
    scores: np.ndarray


def _predictions(ids: list[str], seed: int = 0) -> FakePredictions:
    rng = np.random.default_rng(seed)
    labels = [str(x) for x in rng.choice(CLASS_KEYS, size=len(ids))]
    return FakePredictions(list(ids), labels, rng.uniform(0.04, 1.0, size=len(ids)))


def _dev_report() -> metrics.MetricReport:
    truth = ["fx-o", "fx-v", "m-sp", "m-sp", "ss-n"]
    pred = ["fx-v", "fx-v", "m-sp", "m-si", "ss-n"]          # fx-o never predicted → dropped
    return metrics.evaluate(truth, pred)


def _write(tmp_path: Path, predictions: FakePredictions, eval_ids: list[str], label: str = LABEL,
           **kwargs) -> Path:
    kwargs.setdefault("total_parameters", 7_319_513)
    return submission.write_package(tmp_path / "out", label, predictions, eval_ids, **kwargs)


# ---------------------------------------------------------------------------------- happy path


def test_package_rows_follow_eval_ids_and_odd_ids_round_trip(tmp_path: Path) -> None:
    preds = _predictions(ODD_IDS)
    shuffled = FakePredictions(preds.ids[::-1], preds.labels[::-1], preds.scores[::-1])
    folder = _write(tmp_path, shuffled, ODD_IDS, dev_report=_dev_report())
    assert folder == tmp_path / "out" / "task1" / LABEL
    assert sorted(p.name for p in folder.iterdir()) == [f"{LABEL}.meta.yaml", f"{LABEL}.output.csv"]

    csv_path = folder / f"{LABEL}.output.csv"
    assert csv_path.read_text(encoding="utf-8").startswith(
        "id,predicted_bst_second_level_class,prediction_score\n")
    back = submission.read_submission_csv(csv_path)
    assert back["id"].tolist() == ODD_IDS
    assert back["predicted_bst_second_level_class"].tolist() == preds.labels
    np.testing.assert_allclose(back["prediction_score"].to_numpy(), preds.scores, atol=5e-7)
    assert submission.validate_package_dir(folder, ODD_IDS) == []
    assert not list(folder.glob(".*.tmp"))       # no temp files left by the atomic writes


def test_meta_yaml_round_trips_with_report_numbers(tmp_path: Path) -> None:
    report = _dev_report()
    folder = _write(tmp_path, _predictions(ODD_IDS), ODD_IDS, dev_report=report, dev_dataset="BSD10k",
                    system={"description": {"data_augmentation": "mixup"}},
                    authors=[{"lastname": "Doe", "firstname": "Jane", "email": "jane@example.org"}])
    text = (folder / f"{LABEL}.meta.yaml").read_text(encoding="utf-8")
    assert "absent-class mode: reference" in text and "λ = 0.75" in text
    assert "dropped from the means: fx-o" in text
    meta = yaml.safe_load(text)
    assert meta["submission"]["label"] == LABEL
    assert meta["submission"]["name"] == "BSTS system 1"
    assert meta["submission"]["abbreviation"] == "BSTS_1"
    assert meta["submission"]["authors"][0]["firstname"] == "Jane"
    assert meta["system"]["complexity"]["total_parameters"] == 7_319_513
    assert meta["system"]["description"]["data_augmentation"] == "mixup"
    assert meta["system"]["description"]["hierarchical_setting"]      # default kept beside the override
    bsd10k = meta["results"]["development_datasets"]["bsd10k-v1.2"]
    assert bsd10k["overall"] == {"hP": round(100 * report.hP, 2), "hR": round(100 * report.hR, 2),
                                 "hF": round(100 * report.hF, 2)}
    assert bsd10k["overall"]["hP"] == 89.58                   # (0.6875 + 1 + 1) / 3, fx-o dropped
    assert bsd10k["class_wise"]["m-sp"]["hR"] == round(100 * report.per_class.loc["m-sp", "hR"], 2)
    assert bsd10k["class_wise"]["fx-o"]["hP"] is None                 # dropped class
    assert set(bsd10k["class_wise"]) == set(CLASS_KEYS)
    assert meta["results"]["development_datasets"]["bsd35k-cs"]["overall"]["hF"] is None


def test_placeholders_without_report_or_authors(tmp_path: Path) -> None:
    folder = _write(tmp_path, _predictions(ODD_IDS), ODD_IDS)
    meta = yaml.safe_load((folder / f"{LABEL}.meta.yaml").read_text(encoding="utf-8"))
    author = meta["submission"]["authors"][0]
    assert author["lastname"] == "Doe" and author["firstname"] == "Firstname"
    assert meta["results"]["development_datasets"]["bsd10k-v1.2"]["overall"]["hF"] is None
    assert submission.validate_package_dir(folder) == []


def test_label_parts() -> None:
    assert submission.label_parts("Zheng_SCUT_task1_4") == ("Zheng", "SCUT", 4)
    with pytest.raises(BadInputError, match="Lastname_Abbreviation_task1_N"):
        submission.label_parts("Zheng_SCUT_task1_5")


# ------------------------------------------------------------------------------- refusals


def _assert_refused(tmp_path: Path, predictions: FakePredictions, eval_ids: list[str], *needles: str,
                    label: str = LABEL, **kwargs) -> str:
    with pytest.raises(BadInputError) as info:
        _write(tmp_path, predictions, eval_ids, label=label, **kwargs)
    message = str(info.value)
    for needle in needles:
        assert needle in message, (needle, message)
    assert not (tmp_path / "out").exists(), "a refused package must leave nothing behind"
    return message


IDS = [f"id-{k:03d}" for k in range(20)]


def test_missing_ids_refused(tmp_path: Path) -> None:
    _assert_refused(tmp_path, _predictions(IDS[:-7]), IDS,
                    "7 evaluation id(s) have no prediction", "'id-013'")


def test_extra_ids_refused(tmp_path: Path) -> None:
    _assert_refused(tmp_path, _predictions([*IDS, "stranger"]), IDS,
                    "1 id(s) are not evaluation ids: 'stranger'")


def test_duplicate_ids_refused_with_counts(tmp_path: Path) -> None:
    _assert_refused(tmp_path, _predictions([*IDS, "id-004", "id-004"]), IDS,
                    "1 id(s) appear more than once", "'id-004' ×3")


def test_other_label_refused(tmp_path: Path) -> None:
    preds = _predictions(IDS)
    preds.labels[3] = "fx-other"
    _assert_refused(tmp_path, preds, IDS, "1 row(s) have a class that is not one of the 23 BST keys",
                    "'fx-other'", "'-other' labels are not targets")


@pytest.mark.parametrize("bad", [1.5, -0.01, np.nan, np.inf])
def test_bad_scores_refused(tmp_path: Path, bad: float) -> None:
    preds = _predictions(IDS)
    preds.scores[5] = bad
    _assert_refused(tmp_path, preds, IDS, "1 score(s)")


@pytest.mark.parametrize("label", ["Doe_BSTS_task1_5", "Doe_task1_1", "Doe_BS-TS_task1_1", "Doe_X_task2_1"])
def test_bad_label_refused(tmp_path: Path, label: str) -> None:
    _assert_refused(tmp_path, _predictions(IDS), IDS, "Lastname_Abbreviation_task1_N", label=label)


def test_all_problems_listed_together(tmp_path: Path) -> None:
    preds = _predictions([*IDS[1:], "stranger"])
    preds.labels[0] = "banana"
    preds.scores[1] = 2.0
    message = _assert_refused(tmp_path, preds, IDS, "no prediction", "not evaluation ids", "banana",
                              "outside [0, 1]", "total_parameters", label="bad label",
                              total_parameters=0)
    assert message.count("\n- ") == 6


def test_fifth_system_refused(tmp_path: Path) -> None:
    for n, lastname in enumerate(["Aa", "Bb", "Cc", "Dd"], start=1):
        _write(tmp_path, _predictions(IDS), IDS, label=f"{lastname}_X_task1_{n}")
    with pytest.raises(BadInputError, match="at most 4"):
        _write(tmp_path, _predictions(IDS), IDS, label="Ee_X_task1_1")
    assert not (tmp_path / "out" / "task1" / "Ee_X_task1_1").exists()
    _write(tmp_path, _predictions(IDS, seed=1), IDS, label="Aa_X_task1_1")   # rewriting one is fine


# ------------------------------------------------------------------------ validation of a folder


def test_tampered_package_is_reported(tmp_path: Path) -> None:
    folder = _write(tmp_path, _predictions(IDS), IDS)
    csv_path = folder / f"{LABEL}.output.csv"
    lines = csv_path.read_text(encoding="utf-8").splitlines(keepends=True)
    csv_path.write_text("".join(lines[:-1]), encoding="utf-8")
    problems = submission.validate_package_dir(folder, IDS)
    assert problems == [f"{LABEL}.output.csv: 1 evaluation id(s) have no prediction: 'id-019'."]

    meta_path = folder / f"{LABEL}.meta.yaml"
    meta = yaml.safe_load(meta_path.read_text(encoding="utf-8"))
    meta["submission"]["label"] = "Other_X_task1_1"
    meta["system"]["complexity"]["total_parameters"] = "lots"
    meta_path.write_text(yaml.safe_dump(meta), encoding="utf-8")
    problems = submission.validate_package_dir(folder)
    assert any("submission.label is 'Other_X_task1_1'" in p for p in problems)
    assert any("total_parameters" in p for p in problems)

    meta_path.unlink()
    assert any("meta.yaml is missing" in p for p in submission.validate_package_dir(folder))


def test_read_submission_csv_checks_header(tmp_path: Path) -> None:
    path = tmp_path / "wrong.csv"
    path.write_text("id,class,score\na,fx-o,0.5\n", encoding="utf-8")
    with pytest.raises(BadInputError, match=r"wrong\.csv.*must start with"):
        submission.read_submission_csv(path)
    with pytest.raises(BadInputError, match=r"missing\.csv: no such submission CSV"):
        submission.read_submission_csv(tmp_path / "missing.csv")
    empty = tmp_path / "empty.csv"
    empty.write_text("", encoding="utf-8")
    with pytest.raises(BadInputError, match=r"empty\.csv"):
        submission.read_submission_csv(empty)


def test_read_submission_csv_reports_unparseable_scores(tmp_path: Path) -> None:
    path = tmp_path / "s.csv"
    path.write_text("id,predicted_bst_second_level_class,prediction_score\n007,fx-o,high\n", encoding="utf-8")
    frame = submission.read_submission_csv(path)
    assert frame["id"].tolist() == ["007"]
    problems = submission.validate_submission(frame, ["007"], LABEL)
    assert len(problems) == 1 and "not finite numbers" in problems[0]


def test_read_truth_csv(tmp_path: Path) -> None:
    path = tmp_path / "truth.csv"
    path.write_text("id,class,extra\n00042,fx-o,x\nNA,m-sp,y\n", encoding="utf-8")
    frame = submission.read_truth_csv(path)
    assert frame["id"].tolist() == ["00042", "NA"]
    assert frame["class"].tolist() == ["fx-o", "m-sp"]
    bad = tmp_path / "bad.csv"
    bad.write_text("sound_id,label\n1,fx-o\n", encoding="utf-8")
    with pytest.raises(BadInputError, match=r"bad\.csv: column\(s\) id, class missing"):
        submission.read_truth_csv(bad)


def test_validate_submission_on_a_frame() -> None:
    frame = pd.DataFrame({"id": ["a", "b"], "predicted_bst_second_level_class": ["fx-o", "ss-n"],
                          "prediction_score": [0.0, 1.0]})
    assert submission.validate_submission(frame, ["a", "b"], LABEL) == []
    assert submission.validate_submission(frame, ["b", "a", "a"], LABEL) == [
        "The evaluation id list itself repeats 1 id(s): 'a'."]
    no_columns = submission.validate_submission(frame.drop(columns="prediction_score"), ["a", "b"], LABEL)
    assert no_columns == ["Columns missing: prediction_score "
                          "(the header must be id,predicted_bst_second_level_class,prediction_score)."]


# --------------------------------------------------------- development results: dataset and folds


def _fold_report() -> dev_results.DevelopmentReport:
    a = metrics.evaluate(["fx-o", "m-sp", "ss-n"], ["fx-v", "m-sp", "ss-n"])
    b = metrics.evaluate(["fx-o", "fx-o", "fx-o", "m-sp", "ss-n"], ["fx-o", "fx-o", "fx-o", "fx-o", "ss-n"])
    pooled = metrics.evaluate(["fx-o", "m-sp", "ss-n", "fx-o", "fx-o", "fx-o", "m-sp", "ss-n"],
                              ["fx-v", "m-sp", "ss-n", "fx-o", "fx-o", "fx-o", "fx-o", "ss-n"])
    return dev_results.development_report([a, b], pooled)


def _meta(folder: Path) -> tuple[dict, str]:
    text = (folder / f"{folder.name}.meta.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text), text


def test_official_dataset_results_under_its_key_with_fold_method(tmp_path: Path) -> None:
    report = _fold_report()
    meta, text = _meta(_write(tmp_path, _predictions(IDS), IDS, dev_report=report, dev_dataset="BSD10k"))
    bsd10k = meta["results"]["development_datasets"]["bsd10k-v1.2"]
    assert bsd10k["overall"]["hF"] == round(100 * report.hF, 2)
    assert bsd10k["class_wise"]["fx-o"] == {"hP": 75.0, "hR": 100.0, "hF": 85.71}      # fold b only
    assert "class_wise: mean over the same folds" in text and "(of 2 folds)" in text
    assert "fx-o 1/2" in text
    assert meta["results"]["development_datasets"]["bsd35k-cs"]["overall"]["hF"] is None
    assert submission.UNOFFICIAL_RESULTS_KEY not in meta

    meta, _ = _meta(_write(tmp_path / "b", _predictions(IDS), IDS, dev_report=report, dev_dataset="BSD35k-CS"))
    development = meta["results"]["development_datasets"]
    assert development["bsd35k-cs"] == {"overall": {n: round(100 * getattr(report, n), 2) for n in ("hP", "hR", "hF")}}
    assert development["bsd10k-v1.2"]["overall"]["hF"] is None


@pytest.mark.parametrize("dataset", ["BSD10k-demo (synthetic)", "", None, "bsd10k", "BSD10k subset"])
def test_other_corpora_never_filed_under_an_official_key(tmp_path: Path, dataset: str | None) -> None:
    report = _fold_report()
    folder = _write(tmp_path, _predictions(IDS), IDS, dev_report=report, dev_dataset=dataset)
    meta, text = _meta(folder)
    for block in meta["results"]["development_datasets"].values():
        assert block["overall"] == {"hP": None, "hR": None, "hF": None}
        assert all(v is None for row in block.get("class_wise", {}).values() for v in row.values())
    unofficial = meta[submission.UNOFFICIAL_RESULTS_KEY]
    assert unofficial["overall"]["hF"] == round(100 * report.hF, 2)
    assert unofficial["dataset"] == (dataset or "unknown (not an official development dataset)")
    assert "not an official development dataset" in text
    assert submission.validate_package(folder, IDS) == []


def _clap_facts() -> submission.SystemFacts:
    return submission.SystemFacts(n_models=5, encoder=CLAP_ENCODER, input_sampling_rate="48kHz",
                                  parameters_per_model=7_319_513)


def test_description_is_built_from_the_facts(tmp_path: Path) -> None:
    offline = EncoderInfo("offline-logmel-ngram", "1", 192, 512)
    facts = submission.SystemFacts(n_models=3, encoder=offline, input_sampling_rate="22.05kHz",
                                   mode="audio", augmentation="Gaussian noise", precision="bf16")
    meta, _ = _meta(_write(tmp_path, _predictions(IDS), IDS, facts=facts, total_parameters=3 * 1000))
    description = meta["system"]["description"]
    assert description["input_sampling_rate"] == "22.05kHz"
    assert "offline-logmel-ngram" in description["audio_representation"]
    assert description["text_representation"] == "none (audio-only system)"
    assert description["data_augmentation"] == "Gaussian noise"
    assert description["external_data_usage"] == "none"
    method = description["machine_learning_method"]
    assert "audio mode" in method and "of 3 cross-validation fold models" in method and "bfloat16" in method
    assert "LAION" not in str(description) and "48kHz" not in str(description)

    meta, _ = _meta(_write(tmp_path / "c", _predictions(IDS), IDS, facts=_clap_facts(),
                           total_parameters=5 * 7_319_513))
    description = meta["system"]["description"]
    assert "LAION-CLAP" in description["audio_representation"] and "512-d" in description["text_representation"]
    assert "of 5 cross-validation fold models of 7,319,513 parameters each" in description["machine_learning_method"]


def test_without_facts_nothing_is_claimed(tmp_path: Path) -> None:
    meta, _ = _meta(_write(tmp_path, _predictions(IDS), IDS))
    description = meta["system"]["description"]
    assert set(description.values()) == {"(fill in)"}


def test_inconsistent_facts_refused(tmp_path: Path) -> None:
    _assert_refused(tmp_path, _predictions(IDS), IDS, "the facts say 5 models of 7,319,513",
                    facts=_clap_facts(), total_parameters=7_319_513)
    bad = submission.SystemFacts(n_models=0, encoder=CLAP_ENCODER, input_sampling_rate=" ", mode="x")
    _assert_refused(tmp_path, _predictions(IDS), IDS, "n_models", "input_sampling_rate", "mode", facts=bad)


# ---------------------------------------------------------------------------------- label, atomicity


@pytest.mark.parametrize("label", ["Doe_BSTS_task1_1\n", "Doe_BSTS_task1_1\r\n", " Doe_BSTS_task1_1"])
def test_label_with_newline_or_space_refused(tmp_path: Path, label: str) -> None:
    _assert_refused(tmp_path, _predictions(IDS), IDS, "Lastname_Abbreviation_task1_N", label=label)
    assert not submission.is_valid_label(label)
    with pytest.raises(BadInputError):
        submission.label_parts(label)
    frame = submission.submission_frame(_predictions(IDS))
    assert any("Lastname_Abbreviation" in p for p in submission.validate_submission(frame, IDS, label))


def test_disk_full_writes_neither_file(tmp_path: Path, monkeypatch) -> None:
    real = atomic._write_synced

    def yaml_fails(path: Path, data: bytes) -> None:
        if path.name.endswith(".meta.yaml"):
            raise OSError(errno.ENOSPC, "No space left on device")
        real(path, data)

    monkeypatch.setattr(atomic, "_write_synced", yaml_fails)
    _assert_refused(tmp_path, _predictions(IDS), IDS, "disk full while writing", "free some space")


@pytest.mark.skipif(os.name == "nt", reason="POSIX modes")
def test_package_files_get_the_umask_mode(tmp_path: Path) -> None:
    previous = os.umask(0o022)
    try:
        folder = _write(tmp_path, _predictions(IDS), IDS)
    finally:
        os.umask(previous)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o755
    assert {stat.S_IMODE(p.stat().st_mode) for p in folder.iterdir()} == {0o644}


# ------------------------------------------------------------------------- validating meta values


def test_validate_package_lists_every_meta_problem(tmp_path: Path) -> None:
    folder = _write(tmp_path, _predictions(IDS), IDS, dev_report=_fold_report(), dev_dataset="BSD10k")
    meta_path = folder / f"{LABEL}.meta.yaml"
    meta = yaml.safe_load(meta_path.read_text(encoding="utf-8"))
    development = meta["results"]["development_datasets"]
    development["bsd10k-v1.2"]["overall"]["hP"] = float("nan")
    development["bsd10k-v1.2"]["overall"]["hR"] = 150.0
    development["bsd10k-v1.2"]["class_wise"]["fx-o"]["hF"] = "high"
    development["bsd35k-cs"]["overall"] = {"hP": 0.81, "hR": 0.79, "hF": 0.8}
    development["my-corpus"] = {"overall": {"hP": 50.0, "hR": 50.0, "hF": 50.0}}
    meta["system"]["complexity"]["total_parameters"] = -3
    meta["submission"]["label"] = "Doe_BSTS_task1_2"
    meta_path.write_text(yaml.safe_dump(meta), encoding="utf-8")
    (folder / "Doe_BSTS_task1_2.output.csv").write_text("x", encoding="utf-8")
    problems = submission.validate_package(folder, IDS)
    expected = ["overall.hP is nan, not a finite number", "overall.hR is 150.0, outside [0, 100]",
                "class_wise.fx-o.hF is 'high', not a number", "bsd35k-cs.overall: every figure is at most 1",
                "'my-corpus' is not an official development dataset key", "total_parameters is -3",
                "submission.label is 'Doe_BSTS_task1_2'", "Doe_BSTS_task1_2.output.csv does not match"]
    for needle in expected:
        assert any(needle in p for p in problems), (needle, problems)


@pytest.mark.parametrize("value", [0, True, 2.5, "7319513"])
def test_validate_package_total_parameters_must_be_positive_int(tmp_path: Path, value) -> None:
    folder = _write(tmp_path, _predictions(IDS), IDS)
    meta_path = folder / f"{LABEL}.meta.yaml"
    meta = yaml.safe_load(meta_path.read_text(encoding="utf-8"))
    meta["system"]["complexity"]["total_parameters"] = value
    meta_path.write_text(yaml.safe_dump(meta), encoding="utf-8")
    assert any("total_parameters" in p for p in submission.validate_package(folder, IDS))


def test_validate_package_checks_ids_against_evaluation_metadata(tmp_path: Path) -> None:
    folder = _write(tmp_path, _predictions(IDS), IDS)
    eval_root = tmp_path / "BSD2k"
    (eval_root / "metadata").mkdir(parents=True)
    rows = "".join(f"{i},title,tags,desc\n" for i in [*IDS[1:], "unseen-id"])
    (eval_root / "metadata" / "BSD2k_metadata.csv").write_text(
        "anonymous_id,title,tags,description\n" + rows, encoding="utf-8")
    eval_ids = submission.read_eval_ids(eval_root)
    assert eval_ids == [*IDS[1:], "unseen-id"]
    problems = submission.validate_package(folder, eval_ids)
    assert any("1 evaluation id(s) have no prediction: 'unseen-id'" in p for p in problems)
    assert any("1 id(s) are not evaluation ids: 'id-000'" in p for p in problems)
    with pytest.raises(BadInputError, match="not a folder"):
        submission.read_eval_ids(tmp_path / "nowhere")
