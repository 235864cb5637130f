"""The CLI in scripts and logs: progress off a terminal, --quiet/--json, captured library noise,
`bst --version`."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from bst_core import audio, console, diagnostics
from bst_core.cli import EXIT_BAD_INPUT, EXIT_OK, main
from bst_core.jobs import Progress

LABEL = "Tester_BST_task1_1"
MPG123 = b"[src/libmpg123/layer3.c:INT123_do_layer3():1771] error: dequantization failed!\n"


def _lines(text: str) -> list[str]:
    return [line for line in text.split("\n") if line]


@pytest.fixture(scope="module")
def json_run(tmp_path_factory: pytest.TempPathFactory, bsd_root: Path) -> tuple[Path, dict, str]:
    """`bst train --json` with stderr captured (not a terminal): the run, its JSON and its stderr."""
    run = tmp_path_factory.mktemp("console") / "run"
    out, err = io.StringIO(), io.StringIO()
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = out, err
    try:
        code = main(["train", str(bsd_root), "--out", str(run), "--folds", "2", "--epochs", "3",
                     "--patience", "0", "--json"])
    finally:
        sys.stdout, sys.stderr = saved
    assert code == EXIT_OK, err.getvalue()
    lines = _lines(out.getvalue())
    assert len(lines) == 1      # one JSON object, nothing else on stdout
    return run, json.loads(lines[0]), err.getvalue()


def test_train_off_a_terminal_writes_stage_lines_not_carriage_returns(json_run: tuple[Path, dict, str]) -> None:
    _, _, err = json_run
    assert "\r" not in err
    lines = _lines(err)
    # per stage a start and an end line (+ rate-limited progress, at most one per 5 s): a handful
    assert len(lines) <= 12, lines
    assert "fold 1/2: started (training)" in lines
    assert any(line.startswith("fold 1/2: done in ") and "best val hF" in line for line in lines), lines
    assert any(line.startswith("fold 2/2: done in ") for line in lines), lines


def test_train_json_has_folds_summary_and_run_dir(json_run: tuple[Path, dict, str]) -> None:
    run, result, _ = json_run
    assert result["command"] == "train" and result["status"] == "complete"
    assert result["run_dir"] == str(run) and result["missing_folds"] == []
    assert [fold["fold"] for fold in result["folds"]] == [1, 2]
    assert set(result["folds"][0]["metrics"]) >= {"hF", "hP", "hR", "leaf_accuracy"}
    assert set(result["summary"]["hF"]) == {"mean", "std"}


def test_quiet_train_prints_results_only(json_run: tuple[Path, dict, str], bsd_root: Path,
                                         capfd: pytest.CaptureFixture[str]) -> None:
    run, _, _ = json_run
    assert main(["train", str(bsd_root), "--out", str(run), "--folds", "2", "--epochs", "3",
                 "--patience", "0", "-q"]) == EXIT_OK       # folds reused: fast
    captured = capfd.readouterr()
    assert captured.err == ""                                # no progress, no notes, no warnings
    assert "hF" in captured.out and "run folder" in captured.out


def test_quiet_drops_notes_that_a_plain_run_prints(eval_root: Path, tmp_path: Path,
                                                   capfd: pytest.CaptureFixture[str]) -> None:
    sounds = tmp_path / "sounds"
    sounds.mkdir()
    shutil.copy(sorted((eval_root / "audio").glob("*.wav"))[0], sounds / "a.wav")
    (sounds / "readme.txt").write_text("not a sound")
    assert main(["extract", str(sounds), "--out", str(tmp_path / "store")]) == EXIT_OK
    plain = capfd.readouterr()
    assert "note: skipped 1 files that are not audio" in plain.err
    assert main(["extract", str(sounds), "--out", str(tmp_path / "store"), "--quiet"]) == EXIT_OK
    quiet = capfd.readouterr()
    assert quiet.err == "" and "store: " in quiet.out
    assert main(["extract", str(tmp_path / "missing"), "--out", str(tmp_path / "s2"), "-q"]) == EXIT_BAD_INPUT
    assert "bst extract: " in capfd.readouterr().err         # errors still reach stderr


def test_quiet_output_hides_python_warnings_only_inside() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with console.quiet_output(True):
            warnings.warn("hidden", UserWarning, stacklevel=1)
        with console.quiet_output(False):
            warnings.warn("shown", UserWarning, stacklevel=1)
        warnings.warn("after", UserWarning, stacklevel=1)
    assert [str(w.message) for w in caught] == ["shown", "after"]


def test_predict_export_validate_json(json_run: tuple[Path, dict, str], eval_root: Path, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    run, _, _ = json_run
    pred = tmp_path / "pred.csv"
    assert main(["predict", str(run), str(eval_root), "--out", str(pred), "--json", "-q"]) == EXIT_OK
    result = json.loads(capsys.readouterr().out)
    assert result["n"] == 40 and result["n_models"] == 2 and result["text_only"] == 0
    assert result["out"] == str(pred)

    assert main(["export", str(run), str(eval_root), "--label", LABEL, "--out", str(tmp_path / "sub"),
                 "--json", "-q"]) == EXIT_OK
    result = json.loads(capsys.readouterr().out)
    package = Path(result["package"])
    assert sorted(result["files"]) == sorted([f"{LABEL}.meta.yaml", f"{LABEL}.output.csv"])

    assert main(["validate", str(package), str(eval_root), "--json"]) == EXIT_OK
    assert json.loads(capsys.readouterr().out) == {"command": "validate", "package": str(package),
                                                   "valid": True, "problems": [], "checked_ids": 40}
    csv = package / f"{LABEL}.output.csv"
    csv.write_text("\n".join(csv.read_text().splitlines()[:-1]) + "\n")        # one id dropped
    assert main(["validate", str(package), str(eval_root), "--json"]) == EXIT_BAD_INPUT
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert result["valid"] is False and result["problems"]
    assert "problem" in captured.err


def test_errors_in_json_mode_go_to_stderr_with_the_exit_code(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["predict", str(tmp_path / "no-run"), str(tmp_path), "--out", str(tmp_path / "p.csv"),
                 "--json"]) == EXIT_BAD_INPUT
    captured = capsys.readouterr()
    assert captured.out == "" and "bst predict:" in captured.err


def _patched_reader(monkeypatch: pytest.MonkeyPatch, *, c_text: bytes = MPG123, python: str = "",
                    fail: bool = False) -> None:
    original = audio._read_mono

    def reader(*args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        os.write(2, c_text)                       # what libmpg123 does: fprintf(stderr, ...)
        if python:
            warnings.warn(python, UserWarning, stacklevel=1)
        if fail:
            raise RuntimeError("stream broke")
        return original(*args, **kwargs)          # type: ignore[arg-type]

    monkeypatch.setattr(audio, "_read_mono", reader)


def _wav(path: Path, seconds: float = 1.0) -> Path:
    t = np.arange(int(seconds * 16_000)) / 16_000
    sf.write(path, 0.3 * np.sin(2 * np.pi * 440 * t), 16_000)
    return path


def test_decoder_output_and_python_warnings_become_the_files_warning(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]) -> None:
    _patched_reader(monkeypatch, c_text=MPG123 * 3, python="Argument 'x' is deprecated")
    decoded = audio.decode(_wav(tmp_path / "a.wav"), 16_000)
    assert decoded.ok
    assert "decoder said (dequantization failed! (x3))" in decoded.warning
    assert "library warning (UserWarning: Argument 'x' is deprecated)" in decoded.warning
    err = capfd.readouterr().err
    assert "dequantization" not in err and "deprecated" not in err   # nothing reached the user's stderr
    os.write(2, b"after\n")                                          # fd 2 is restored
    assert "after" in capfd.readouterr().err


def test_decoder_output_is_folded_into_a_failure_reason(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _patched_reader(monkeypatch, fail=True)
    decoded = audio.decode(_wav(tmp_path / "b.wav"), 16_000)
    assert decoded.status == "failed"
    assert decoded.reason.endswith("; decoder said (dequantization failed!)"), decoded.reason


def test_captures_in_threads_keep_each_files_words(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    paths = [_wav(tmp_path / f"{k}.wav", 0.2) for k in range(6)]
    original = audio._read_mono

    def reader(handle, *args):  # type: ignore[no-untyped-def]
        os.write(2, f"bad frame in {Path(handle.name).stem}\n".encode())
        return original(handle, *args)

    monkeypatch.setattr(audio, "_read_mono", reader)
    results: dict[str, str] = {}

    def work(path: Path) -> None:
        results[path.stem] = audio.decode(path, 16_000).warning

    threads = [threading.Thread(target=work, args=(p,)) for p in paths]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == {p.stem: f"decoder said (bad frame in {p.stem})" for p in paths}


def test_extract_json_groups_decoder_warnings(eval_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    sounds = tmp_path / "sounds"
    sounds.mkdir()
    for wav in sorted((eval_root / "audio").glob("*.wav"))[:3]:
        shutil.copy(wav, sounds / wav.name)
    _patched_reader(monkeypatch)
    assert main(["extract", str(sounds), "--out", str(tmp_path / "store"), "--json"]) == EXIT_OK
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert (result["computed"], result["reused"], result["failed"]) == (3, 0, 0)
    assert result["store"] == str(tmp_path / "store")
    assert len(result["warnings"]["decoder said"]) == 3
    assert "\r" not in captured.err and "dequantization" not in captured.err


def test_line_progress_is_rate_limited() -> None:
    now = [0.0]
    stream = io.StringIO()
    progress = console.LineProgress(stream, interval_s=5.0, clock=lambda: now[0])
    progress(Progress("read metadata", 0, None, "meta.csv"))
    progress(Progress("read embeddings", 10, 10))                      # nested, complete at once
    progress(Progress("read metadata", 1, 1))
    for epoch in range(1, 101):                                        # 100 reports over 20 s
        now[0] += 0.2
        progress(Progress("fold 1/2", epoch, 100, f"epoch {epoch}", {"val_hf": epoch / 200, "epoch": epoch}))
    progress(Progress("fold 2/2", 5, 5, "reused", {"reused": True}))
    progress.close()
    lines = _lines(stream.getvalue())
    assert lines[:3] == ["read metadata: started (meta.csv)", "read embeddings: done in 0.0 s",
                         "read metadata: done in 0.0 s"]
    assert lines[3].startswith("fold 1/2: started")
    updates = [line for line in lines if line.startswith("fold 1/2: ") and "%" in line]
    assert 3 <= len(updates) <= 5
    assert lines[-2] == "fold 1/2: done in 20 s, best val hF 0.50 (epoch 100)"
    assert lines[-1] == "fold 2/2: reused"


def test_make_progress_chooses_by_terminal() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert isinstance(console.make_progress(True, Tty()), console.NoProgress)
    assert isinstance(console.make_progress(False, Tty()), console.ProgressBars)
    assert isinstance(console.make_progress(False, io.StringIO()), console.LineProgress)


def test_quiet_library_warnings_hides_only_known_notices() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with console.quiet_library_warnings():
            warnings.warn("Argument 'onesided' has been deprecated and has no influence", UserWarning,
                          stacklevel=1)
            warnings.warn_explicit("old API", DeprecationWarning, "torchaudio/x.py", 1, module="torchaudio.x")
            warnings.warn("something real", UserWarning, stacklevel=1)
    assert [str(w.message) for w in caught] == ["something real"]


def test_version_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version", "--json"]) == EXIT_OK
    info = json.loads(capsys.readouterr().out)
    assert set(info) == {"bst_studio", "python", "torch", "encoders", "folders"}
    assert info["encoders"]["offline"]["available"] is True
    assert info["python"]["bundle"] is False            # True only inside the PyInstaller bundle
    clap = info["encoders"]["clap"]
    assert (clap["location"] is None) == (not clap["modules"]["laion_clap"])
    missing = {**info, "encoders": {**info["encoders"], "clap": {**clap, "stack": False, "missing": ["laion_clap"]}}}
    assert 'pip install "bst-studio[clap]"' in diagnostics.format(missing)
    bundled = {**missing, "python": {**info["python"], "bundle": True}}
    assert "desktop bundle: " in diagnostics.format(bundled) and "build.sh --clap" in diagnostics.format(bundled)
    assert info["folders"]["cache"] == os.environ["BST_CACHE_DIR"]


def test_version_prints_a_bug_report_header_without_importing_clap() -> None:
    code = ("import sys\nfrom bst_core.cli import main\n"
            "try:\n    main(['--version'])\nexcept SystemExit:\n    pass\n"
            "print('LOADED', sorted(m for m in sys.modules if m.split('.')[0] in ('laion_clap', 'transformers')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "BST_CLAP_CHECKPOINT": ""})
    assert done.returncode == 0, done.stderr
    out = done.stdout
    for start in ("bst-studio ", "Python ", "torch ", "encoder offline: available", "encoder clap: stack ",
                  "  checkpoint: not found", "cache folder: ", "data folder: "):
        assert any(line.startswith(start) for line in out.splitlines()), (start, out)
    assert "CUDA available: " in out and ("CPU build" in out or "CUDA " in out)
    assert "LOADED []" in out
