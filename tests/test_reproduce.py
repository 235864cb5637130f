"""`bst reproduce`: the seed's four configurations on two synthetic BSD-layout corpora (2 folds, 2
epochs: the test override), resumable, with the report's numbers equal to the runs' own."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from bst_core import training
from bst_core.cli import main
from bst_core.config import TrainConfig
from bst_core.errors import BadInputError
from bst_core.reproduce import SEED_TABLE1, plan, reproduce, seed_table1_markdown
from bst_core.runs import METRICS_FILE, MODEL_FILE, RunFolder, fold_dir
from bst_core.synthetic import write_bsd_dataset

FAST = TrainConfig(folds=2, epochs=2, patience=None)


@pytest.fixture(scope="module")
def roots(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("reproduce")
    small = write_bsd_dataset(base / "BSD10k", n_per_class=10, name="BSD10k", dim=16, with_audio=False, seed=1)
    crowd = write_bsd_dataset(base / "BSD35k-CS", n_per_class=11, name="BSD35k-CS", dim=16, with_audio=False, seed=2)
    return small, crowd


@pytest.fixture(scope="module")
def done(roots: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory):
    return reproduce(roots, tmp_path_factory.mktemp("out") / "seed", config=FAST)


def test_four_runs_in_the_seed_order_and_the_report(done) -> None:
    names = [Path(r.run_dir).name for r in done.runs]
    assert names == ["BSD10k-both", "BSD10k-audio", "BSD35k-CS-both", "BSD35k-CS-audio"]
    assert [r.config.mode for r in done.runs] == ["both", "audio", "both", "audio"]
    assert all(r.config.folds == 2 and r.config.epochs == 2 for r in done.runs)
    assert len(done.trained) == 4 and done.reused == [] and done.protocol_overridden
    assert [f.name for f in done.files] == ["report.md", "report.csv"] and all(f.is_file() for f in done.files)
    assert any("not an official dataset" in note for note in done.notes)
    markdown = (done.out / "report.md").read_text(encoding="utf-8")
    assert "Table 1" in markdown and "Table 2" in markdown and "BSD35k-CS-audio" in markdown


def test_report_figures_are_the_runs_own_metrics(done) -> None:
    with open(done.out / "report.csv", encoding="utf-8", newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if r["table"] == "1"]
    assert len(rows) == 4 * 5
    for row in rows:
        summary = json.loads((done.out / "runs" / row["run"] / METRICS_FILE).read_text())["summary"]
        assert float(row["mean"]) == pytest.approx(summary[row["row"]]["mean"], abs=1e-12)
        assert float(row["std"]) == pytest.approx(summary[row["row"]]["std"], abs=1e-12)


def test_rerun_trains_nothing_and_a_lost_fold_is_trained_again(done, roots: tuple[Path, Path],
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    before = (done.out / "report.csv").read_text()
    real = training.train_fold
    calls: list[int] = []

    def counting(task, *args, **kwargs):
        calls.append(task.fold)
        return real(task, *args, **kwargs)

    monkeypatch.setattr(training, "train_fold", counting)
    again = reproduce(roots, done.out, config=FAST)
    assert calls == [] and len(again.reused) == 4 and again.trained == []
    assert (done.out / "report.csv").read_text() == before

    run = done.out / "runs" / "BSD35k-CS-audio"
    (fold_dir(run, 2) / MODEL_FILE).unlink()          # an interrupted run
    resumed = reproduce(roots, done.out, config=FAST)
    assert calls == [2] and resumed.trained == [run] and len(resumed.reused) == 3
    assert RunFolder(run).status == "complete"


def test_other_options_into_the_same_folder_are_refused(done, roots: tuple[Path, Path]) -> None:
    with pytest.raises(BadInputError, match="other options or other data"):
        reproduce(roots, done.out, config=TrainConfig(folds=2, epochs=3, patience=None))


def test_plan_and_bad_input(tmp_path: Path, roots: tuple[Path, Path]) -> None:
    assert [p.run_dir.name for p in plan([roots[0]], tmp_path)] == ["BSD10k-both", "BSD10k-audio"]
    with pytest.raises(BadInputError, match="one or two"):
        plan([], tmp_path)
    with pytest.raises(BadInputError, match="twice"):
        plan([roots[0], roots[0]], tmp_path)
    assert "| hF | 78.65 ± 0.52 | 75.88 ± 0.47 | 79.77 ± 0.60 | 70.19 ± 0.93 |" in seed_table1_markdown()
    assert list(SEED_TABLE1) == ["BSD10k both", "BSD10k audio", "BSD35k-CS both", "BSD35k-CS audio"]


def test_bst_reproduce_cli(roots: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    small = tmp_path / "BSD10k"
    shutil.copytree(roots[0], small)
    out = tmp_path / "repro"
    assert main(["reproduce", str(small), "--out", str(out), "--folds", "2", "--epochs", "1", "--json", "-q"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert [Path(r["run_dir"]).name for r in result["runs"]] == ["BSD10k-both", "BSD10k-audio"]
    assert result["protocol_overridden"] is True and (out / "report.md").is_file()
    assert main(["reproduce", str(small), "--out", str(out), "--folds", "2", "--epochs", "1"]) == 0
    captured = capsys.readouterr()
    assert "Table 1" in captured.out and "not an official dataset" in captured.err
    assert main(["reproduce", str(tmp_path / "missing"), "--out", str(out)]) == 2
