"""End to end through `bst`: no command reports success on a wrong or partial result."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from bst_core import pipeline
from bst_core.cli import EXIT_BAD_INPUT, EXIT_OK, main
from bst_core.submission import read_submission_csv

LABEL = "Tester_BST_task1_1"


@pytest.fixture(scope="module")
def partial_run(tmp_path_factory: pytest.TempPathFactory, bsd_root: Path) -> Path:
    """Fold 2 of a 3-fold run only: a partial run (status "partial")."""
    run = tmp_path_factory.mktemp("partial") / "run"
    assert main(["train", str(bsd_root), "--out", str(run), "--folds", "3", "--epochs", "3",
                 "--only-fold", "2", "-q"]) == EXIT_OK
    return run


def test_export_from_a_partial_run_is_refused_naming_the_missing_folds(
        partial_run: Path, eval_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "submission"
    assert main(["export", str(partial_run), str(eval_root), "--label", LABEL, "--out", str(out), "-q"]) \
        == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "partial run" in err and "missing 1, 3" in err and "--allow-partial" in err
    assert not out.exists()


def test_allow_partial_exports_and_meta_says_how_many_models(
        partial_run: Path, eval_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "submission"
    assert main(["export", str(partial_run), str(eval_root), "--label", LABEL, "--out", str(out), "-q",
                 "--allow-partial"]) == EXIT_OK
    package = out / "task1" / LABEL
    meta = yaml.safe_load((package / f"{LABEL}.meta.yaml").read_text())
    text = yaml.safe_dump(meta)
    assert "a single model of" in text and meta["system"]["complexity"]["total_parameters"] == 7_319_513
    # synthetic development data is never filed under the official dataset key
    assert meta["results"]["development_datasets"]["bsd10k-v1.2"]["overall"]["hF"] is None
    assert meta["unofficial_development_results"]["dataset"] == "BSD10k-synthetic (synthetic)"
    assert main(["validate", str(package), str(eval_root)]) == EXIT_OK


def test_validate_lists_every_problem_with_exit_2(partial_run: Path, eval_root: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "submission"
    assert main(["export", str(partial_run), str(eval_root), "--label", LABEL, "--out", str(out), "-q",
                 "--allow-partial"]) == EXIT_OK
    package = out / "task1" / LABEL
    csv = package / f"{LABEL}.output.csv"
    lines = csv.read_text().splitlines()
    csv.write_text("\n".join([lines[0], *lines[2:]]) + "\n")            # one id dropped
    meta = package / f"{LABEL}.meta.yaml"
    meta.write_text(meta.read_text().replace("total_parameters:", "total_parameters: -5 #"))
    capsys.readouterr()
    assert main(["validate", str(package), str(eval_root)]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "has 2 problem(s)" in err and "total_parameters is -5" in err
    assert "1 of the 40 evaluation ids" in err or "no prediction" in err.lower()


def test_a_label_with_a_trailing_newline_writes_nothing(partial_run: Path, eval_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "submission"
    assert main(["export", str(partial_run), str(eval_root), "--label", LABEL + "\n", "--out", str(out), "-q",
                 "--allow-partial"]) == EXIT_BAD_INPUT
    assert not out.exists()


def test_latin1_evaluation_metadata_exports_real_ids_not_file_paths(
        partial_run: Path, eval_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    latin = tmp_path / "eval-latin1"
    shutil.copytree(eval_root, latin)
    meta = next((latin / "metadata").glob("*_metadata.csv"))
    text = meta.read_text(encoding="utf-8")
    lines = text.splitlines()
    lines[1] = lines[1] + " café"
    meta.write_bytes(("\n".join(lines) + "\n").encode("latin-1", errors="replace"))
    out = tmp_path / "submission"
    assert main(["export", str(partial_run), str(latin), "--label", LABEL, "--out", str(out),
                 "--allow-partial"]) == EXIT_OK
    err = capsys.readouterr().err
    assert "cp1252" in err   # a note: on stderr without --quiet (with it, only in --json's notes)
    ids = read_submission_csv(out / "task1" / LABEL / f"{LABEL}.output.csv")["id"].tolist()
    assert all("/" not in i and not i.endswith(".wav") for i in ids)
    assert sorted(ids) == sorted(pipeline.open_source(eval_root).ids)   # the metadata's anonymous ids


def test_export_of_a_folder_that_is_not_an_evaluation_set_is_refused(
        partial_run: Path, eval_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sounds = tmp_path / "sounds"
    shutil.copytree(eval_root / "audio", sounds)
    assert main(["extract", str(sounds), "-q"]) == EXIT_OK
    out = tmp_path / "submission"
    assert main(["export", str(partial_run), str(sounds), "--label", LABEL, "--out", str(out), "-q",
                 "--allow-partial"]) == EXIT_BAD_INPUT
    assert "not an evaluation folder" in capsys.readouterr().err and not out.exists()


def test_a_folder_given_as_the_output_file_is_bad_input_not_a_crash(
        partial_run: Path, eval_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "pred"
    folder.mkdir()
    assert main(["predict", str(partial_run), str(eval_root), "--out", str(folder), "-q"]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert f"{folder} is a folder" in err and "Traceback" not in err


def test_a_huge_metadata_value_is_cut_on_reading_and_the_note_says_so(tmp_path: Path) -> None:
    from bst_core.textfile import MAX_CELL_CHARS, read_csv_table

    path = tmp_path / "meta.csv"
    path.write_text("id,description\n1," + "wind " * 400_000 + "\n2,short\n", encoding="utf-8")
    table = read_csv_table(path)
    assert len(table.frame.loc[0, "description"]) == MAX_CELL_CHARS
    assert table.frame.loc[1, "description"] == "short"
    assert "1 value(s)" in table.note and "were cut" in table.note
