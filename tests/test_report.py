"""Compare runs / the seed report's tables (bst_core.report, `bst report`)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bst_core import cli, pipeline
from bst_core.config import TrainConfig
from bst_core.report import CSV_COLUMNS, TABLE1_METRICS, build_report, report_runs
from bst_core.synthetic import make_corpus
from bst_core.taxonomy import CLASS_KEYS


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two short runs on one synthetic corpus: text and audio mode (2 folds each)."""
    base = tmp_path_factory.mktemp("report")
    corpus = make_corpus(n_per_class=8, dim=32, seed=6)
    out = []
    for mode in ("text", "audio"):
        config = TrainConfig(mode=mode, folds=2, epochs=6, batch_size=16, patience=None, val_fraction=0.4, seed=6)
        pipeline.cross_validate(corpus, base / f"run-{mode}", config)
        out.append(base / f"run-{mode}")
    return out


def _metrics(run: Path) -> dict:
    return json.loads((run / "metrics.json").read_text())


def _class_hf_from_metrics(metrics: dict, key: str) -> float:
    values = [f["per_class"][key]["hF"] for f in metrics["folds"]
              if f["per_class"][key]["included"] and f["per_class"][key]["hF"] is not None]
    return float(np.mean(values)) if values else float("nan")


def test_report_numbers_equal_the_runs_metrics_json(runs: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "report.csv"
    assert cli.main(["report", *map(str, runs), "--out", str(out)]) == 0
    frame = pd.read_csv(out, dtype={"run": str, "row": str})
    assert list(frame.columns) == list(CSV_COLUMNS)
    assert len(frame) == len(runs) * (len(TABLE1_METRICS) + len(CLASS_KEYS))
    for run in runs:
        metrics = _metrics(run)
        mine = frame[frame["run"] == run.name]
        table1 = mine[mine["table"] == 1].set_index("row")
        for metric, _label in TABLE1_METRICS:
            assert table1.loc[metric, "mean"] == pytest.approx(metrics["summary"][metric]["mean"], abs=1e-12)
            assert table1.loc[metric, "std"] == pytest.approx(metrics["summary"][metric]["std"], abs=1e-12)
        table2 = mine[mine["table"] == 2].set_index("row")
        assert table2.index.tolist() == list(CLASS_KEYS)
        for key in CLASS_KEYS:
            expected = _class_hf_from_metrics(metrics, key)
            if np.isnan(expected):
                assert np.isnan(table2.loc[key, "mean"])
            else:
                assert table2.loc[key, "mean"] == pytest.approx(expected, abs=1e-12)
        assert set(mine["mode"]) == {metrics["mode"]} and set(mine["absent"]) == {metrics["absent"]}
        assert set(mine["lam"]) == {metrics["lam"]}


def test_markdown_has_one_column_per_run_and_states_lambda_and_absent_mode(
        runs: list[Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["report", *map(str, runs)]) == 0
    text = capsys.readouterr().out
    assert "λ = 0.75" in text and "absent classes: reference" in text
    header = next(line for line in text.splitlines() if line.startswith("| Metric"))
    assert header == "| Metric | run-text | run-audio |"
    hf_row = next(line for line in text.splitlines() if line.startswith("| hF |"))
    for run in runs:
        mean, std = (_metrics(run)["summary"]["hF"][k] for k in ("mean", "std"))
        assert f"{100 * mean:.2f} ± {100 * std:.2f}" in hf_row
    assert "Table 2" in text and sum(line.startswith("| fx-") for line in text.splitlines()) == 8


def test_latex_and_refusals(runs: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "report.tex"
    assert cli.main(["report", str(runs[0]), "--out", str(out)]) == 0
    tex = out.read_text()
    assert tex.count("\\begin{tabular}") == 2 and "$\\pm$" in tex
    body = [line for line in tex.splitlines() if not line.startswith("%")]
    assert not any("±" in line or "λ" in line for line in body)      # escaped for LaTeX
    assert "run-text" in tex and "fx-o" in tex
    assert cli.main(["report", str(runs[0]), "--out", str(tmp_path / "report.docx")]) == 2
    assert "FILE.md" in capsys.readouterr().err
    assert cli.main(["report", str(tmp_path)]) == 2          # not a run folder


def test_runs_with_different_protocols_are_flagged(runs: list[Path]) -> None:
    first = pipeline.load_run(runs[0])
    strict = replace(first, run_dir=runs[0].parent / "strict-copy",
                     fold_reports=[replace(r, absent="strict") for r in first.fold_reports])
    report = build_report([first, strict])
    assert not report.same_protocol
    assert any("not comparable" in line for line in report.protocol_lines())
    assert report_runs([runs[0]]).same_protocol
