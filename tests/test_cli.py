"""End-to-end through the `bst` CLI on synthetic corpora: train → predict → export → evaluate."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from bst_core.cli import EXIT_BAD_INPUT, EXIT_OK, main
from bst_core.submission import SUBMISSION_COLUMNS, validate_package_dir
from bst_core.synthetic import truth_csv_path

LABEL = "Tester_BST_task1_1"


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory, bsd_root: Path) -> Path:
    run = tmp_path_factory.mktemp("runs") / "run"
    code = main(["train", str(bsd_root), "--out", str(run), "--folds", "2", "--epochs", "20",
                 "--batch-size", "16", "--patience", "0", "-q"])
    assert code == EXIT_OK
    return run


def test_train_writes_run_folder_and_beats_chance(trained_run: Path) -> None:
    metrics = json.loads((trained_run / "metrics.json").read_text())
    assert metrics["status"] == "complete"
    assert len(metrics["folds"]) == 2
    # 23 classes: chance leaf accuracy is ~4 % and a constant prediction scores hF ~0.16; the
    # synthetic classes are learnable but a 7.3M-parameter HATR sees only ~5 items per class here.
    assert metrics["pooled"]["leaf_accuracy"] > 0.25
    assert metrics["pooled"]["hF"] > 0.4
    for k in (1, 2):
        assert (trained_run / f"fold_{k}" / "model.pt").is_file()
        assert (trained_run / f"fold_{k}" / "history.csv").is_file()
    oof = pd.read_csv(trained_run / "oof_predictions.csv", dtype={"id": str})
    assert oof["id"].is_unique
    assert {"id", "truth", "prediction", "score", "fx-o", "ss-s"} <= set(oof.columns)


def test_train_prints_metric_table(capsys: pytest.CaptureFixture[str], bsd_root: Path, tmp_path: Path) -> None:
    code = main(["train", str(bsd_root), "--out", str(tmp_path / "r"), "--folds", "2", "--only-fold", "1",
                 "--epochs", "2", "-q"])
    assert code == EXIT_OK
    out = capsys.readouterr().out
    assert "hF" in out and "reference" in out


def test_export_writes_valid_package_and_scores_well(trained_run: Path, eval_root: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "submission"
    assert main(["export", str(trained_run), str(eval_root), "--label", LABEL, "--out", str(out), "-q"]) == 0
    package = out / "task1" / LABEL
    assert validate_package_dir(package) == []
    csv = pd.read_csv(package / f"{LABEL}.output.csv", dtype={"id": str})
    assert tuple(csv.columns) == SUBMISSION_COLUMNS
    meta_ids = pd.read_csv(next((eval_root / "metadata").glob("*_metadata.csv")), dtype=str,
                           keep_default_na=False)["anonymous_id"].tolist()
    assert csv["id"].tolist() == meta_ids  # metadata order, every id once
    meta = (package / f"{LABEL}.meta.yaml").read_text()
    assert "total_parameters" in meta and "bsd10k-v1.2" in meta

    capsys.readouterr()
    code = main(["evaluate", "--truth", str(truth_csv_path(eval_root)),
                 "--pred", str(package / f"{LABEL}.output.csv"), "--json"])
    assert code == EXIT_OK
    scores = json.loads(capsys.readouterr().out)
    assert set(scores) >= {"hP", "hR", "hF", "leaf_accuracy", "top_accuracy", "macro_accuracy",
                           "hierarchical_accuracy", "per_class"}
    assert scores["hF"] > 0.4


def test_predict_writes_submission_format(trained_run: Path, eval_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "pred.csv"
    assert main(["predict", str(trained_run), str(eval_root), "--out", str(out), "--probabilities", "-q"]) == 0
    frame = pd.read_csv(out, dtype={"id": str})
    assert tuple(frame.columns[:3]) == SUBMISSION_COLUMNS
    assert frame.columns[3] == "audio_status" and frame.shape[1] == 3 + 1 + 23
    assert set(frame["audio_status"]) <= {"ok"} or frame["audio_status"].str.startswith("text only").any()
    assert (frame.iloc[:, 4:].sum(axis=1) - 1).abs().max() < 1e-4
    fast_out = tmp_path / "pred-bf16.csv"
    assert main(["predict", str(trained_run), str(eval_root), "--out", str(fast_out), "--precision", "bf16",
                 "-q"]) == 0
    fast = pd.read_csv(fast_out, dtype={"id": str})
    assert fast["id"].tolist() == frame["id"].tolist()
    agree = (fast["predicted_bst_second_level_class"] == frame["predicted_bst_second_level_class"]).mean()
    assert agree >= 0.9


def test_invalid_label_is_refused_and_nothing_written(trained_run: Path, eval_root: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "bad"
    code = main(["export", str(trained_run), str(eval_root), "--label", "not a label", "--out", str(out), "-q"])
    assert code == EXIT_BAD_INPUT
    assert "label" in capsys.readouterr().err
    assert not (out / "task1").exists()


def test_broken_package_is_detected(trained_run: Path, eval_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "pkg"
    assert main(["export", str(trained_run), str(eval_root), "--label", LABEL, "--out", str(out), "-q"]) == 0
    csv_path = out / "task1" / LABEL / f"{LABEL}.output.csv"
    lines = csv_path.read_text().splitlines()
    csv_path.write_text("\n".join([*lines[:-1], lines[1]]) + "\n")  # drop the last id, duplicate the first
    meta_ids = pd.read_csv(next((eval_root / "metadata").glob("*_metadata.csv")), dtype=str,
                           keep_default_na=False)["anonymous_id"].tolist()
    problems = validate_package_dir(csv_path.parent, meta_ids)
    assert any("more than once" in p for p in problems)
    assert any("no prediction" in p for p in problems)


def test_evaluate_refuses_missing_predictions(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    truth = tmp_path / "truth.csv"
    truth.write_text("id,class\na,fx-o\nb,ss-n\n")
    pred = tmp_path / "pred.csv"
    pred.write_text("id,predicted_bst_second_level_class,prediction_score\na,fx-o,0.9\n")
    assert main(["evaluate", "--truth", str(truth), "--pred", str(pred)]) == EXIT_BAD_INPUT
    assert "no prediction" in capsys.readouterr().err


def test_evaluate_json_hand_case(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    truth = tmp_path / "truth.csv"
    truth.write_text("id,class\na,fx-o\nb,fx-o\n")
    pred = tmp_path / "pred.csv"
    pred.write_text("id,predicted_bst_second_level_class,prediction_score\na,fx-o,0.9\nb,fx-v,0.5\n")
    assert main(["evaluate", "--truth", str(truth), "--pred", str(pred), "--json"]) == EXIT_OK
    scores = json.loads(capsys.readouterr().out)
    # fx-o: precision over {a}: 1; recall over {a, b}: (1 + 0.375) / 2 = 0.6875. fx-v is not in the truth.
    assert scores["hP"] == pytest.approx(1.0)
    assert scores["hR"] == pytest.approx(0.6875)
    assert scores["hF"] == pytest.approx(2 * 0.6875 / 1.6875)


def test_cli_subprocess_exit_codes(tmp_path: Path) -> None:
    ok = subprocess.run([sys.executable, "-m", "bst_core.cli", "--help"], capture_output=True, text=True)
    assert ok.returncode == 0 and "train" in ok.stdout
    bad = subprocess.run([sys.executable, "-m", "bst_core.cli", "train", str(tmp_path / "nowhere"),
                          "--out", str(tmp_path / "run")], capture_output=True, text=True)
    assert bad.returncode == EXIT_BAD_INPUT
    assert "does not exist" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_extract_then_train_predict_export_with_stores(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Sources without shipped embeddings: `bst extract` makes stores that train/export accept."""
    from bst_core.demo import make_demo

    demo = make_demo(tmp_path / "demo", n_per_class=12, n_eval_per_class=2)
    dev_store, eval_store = tmp_path / "dev.store", tmp_path / "eval.store"
    assert main(["extract", str(demo.dataset), "--out", str(dev_store), "-q"]) == EXIT_OK
    first = capsys.readouterr().out
    assert f"computed {12 * 23}, reused 0, failed 0" in first
    assert main(["extract", str(demo.dataset), "--out", str(dev_store), "-q"]) == EXIT_OK
    assert f"computed 0, reused {12 * 23}, failed 0" in capsys.readouterr().out  # resumable: nothing redone
    assert main(["extract", str(demo.evaluation), "--out", str(eval_store), "-q"]) == EXIT_OK
    extract_out = capsys.readouterr().out
    assert "failed 1" in extract_out and "empty file" in extract_out  # the demo's 0-byte file, named

    run = tmp_path / "run"
    assert main(["train", str(demo.dataset), "--store", str(dev_store), "--out", str(run), "--folds", "2",
                 "--epochs", "3", "--batch-size", "16", "-q"]) == EXIT_OK
    # The shipped-embedding layout is absent, so the store is required: without it, a clear refusal.
    assert main(["export", str(run), str(demo.evaluation), "--label", LABEL, "--out", str(tmp_path / "x"),
                 "-q"]) == EXIT_BAD_INPUT
    assert "bst extract" in capsys.readouterr().err
    out = tmp_path / "sub"
    assert main(["export", str(run), str(demo.evaluation), "--store", str(eval_store), "--label", LABEL,
                 "--out", str(out), "-q"]) == EXIT_OK
    package = out / "task1" / LABEL
    frame = pd.read_csv(package / f"{LABEL}.output.csv", dtype={"id": str})
    meta_ids = pd.read_csv(next((demo.evaluation / "metadata").glob("*_metadata.csv")), dtype=str,
                           keep_default_na=False)["anonymous_id"].tolist()
    assert frame["id"].tolist() == meta_ids  # the 0-byte file too: its audio vector is zeros, text kept
    # A store that does not cover the source is refused before any training.
    assert main(["train", str(demo.dataset), "--store", str(eval_store), "--out", str(tmp_path / "r2"),
                 "-q"]) == EXIT_BAD_INPUT
    assert "bst extract" in capsys.readouterr().err


def test_package_of_offline_embeddings_is_not_described_as_clap(tmp_path: Path) -> None:
    """The meta.yaml names the encoder the run really used."""
    import yaml

    from bst_core.demo import run_demo
    from bst_core.training import TrainConfig

    result = run_demo(tmp_path / "demo", n_per_class=12, n_eval_per_class=1,
                      config=TrainConfig(folds=2, epochs=2, batch_size=16))
    meta = yaml.safe_load(next(result.package.glob("*.meta.yaml")).read_text())
    description = meta["system"]["description"]
    assert "offline-logmel-ngram" in description["audio_representation"]
    assert "not CLAP" in description["audio_representation"]
    assert description["external_data_usage"] == "none"


def test_predict_paths_may_be_split_by_options() -> None:
    """RUN_DIR --out X SOURCE_ROOT parses as before --zero-shot existed; --zero-shot takes one path."""
    from bst_core.cli import build_parser

    args = build_parser().parse_args(["predict", "run", "--out", "p.csv", "src"])
    assert (args.run, args.source, args.out, args.zero_shot) == ("run", "src", "p.csv", False)
    args = build_parser().parse_args(["predict", "src", "--zero-shot", "--out", "p.csv"])
    assert (args.run, args.source, args.zero_shot) == ("src", None, True)
