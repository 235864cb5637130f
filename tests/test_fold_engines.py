"""Fold engines: local processes and a real local Ray instance (no mocks) give the sequential run's
numbers, fold metrics and out-of-fold predictions, bit for bit; the run folder is the same.

One Ray instance for the module (``ray.init(num_cpus=2)``: start-up takes seconds), shut down at
the end; no usage report, no dashboard.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from test_training import make_corpus

from bst_core import fold_engines
from bst_core.errors import BadInputError
from bst_core.fold_engines import LocalEngine, RayEngine, make_engine
from bst_core.jobs import Cancelled, Job, Progress
from bst_core.runs import RunFolder
from bst_core.training import TrainConfig, cross_validate

CONFIG = TrainConfig(folds=3, epochs=3, batch_size=16, dropout=0.2)


@pytest.fixture(scope="module")
def sequential(tmp_path_factory: pytest.TempPathFactory) -> tuple[object, Path, object]:
    corpus = make_corpus(n_per_class=30)
    run_dir = tmp_path_factory.mktemp("seq") / "run"
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return corpus, run_dir, cross_validate(corpus, run_dir, CONFIG)
    finally:
        torch.set_num_threads(before)


def assert_same_run(first: object, second: object, first_dir: Path, second_dir: Path) -> None:
    pd.testing.assert_frame_equal(first.oof, second.oof, check_exact=True)
    assert first.best_epochs == second.best_epochs
    for k in (1, 2, 3):
        a, b = RunFolder(first_dir).fold_metrics(k), RunFolder(second_dir).fold_metrics(k)
        assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
        pd.testing.assert_frame_equal(RunFolder(first_dir).history(k), RunFolder(second_dir).history(k),
                                      check_exact=True)
        state_a = torch.load(first_dir / f"fold_{k}" / "model.pt", weights_only=True)["state_dict"]
        state_b = torch.load(second_dir / f"fold_{k}" / "model.pt", weights_only=True)["state_dict"]
        assert all(torch.equal(state_a[n], state_b[n]) for n in state_a)


def test_engine_options_are_checked() -> None:
    assert make_engine().in_process and isinstance(make_engine(), LocalEngine)
    assert not make_engine("local", workers=2).in_process
    assert isinstance(make_engine("ray", address="10.0.0.1:6379"), RayEngine)
    with pytest.raises(BadInputError, match="--workers"):
        make_engine("local", workers=0)
    with pytest.raises(BadInputError, match="--address"):
        make_engine("local", address="10.0.0.1:6379")
    with pytest.raises(BadInputError, match="Unknown engine"):
        make_engine("dask")


@pytest.mark.slow
def test_local_processes_give_the_sequential_numbers(sequential, tmp_path: Path) -> None:
    corpus, seq_dir, first = sequential
    events: list[Progress] = []
    second = cross_validate(corpus, tmp_path / "run", CONFIG, Job(events.append), engine=LocalEngine(workers=2))
    assert_same_run(first, second, seq_dir, tmp_path / "run")
    assert [e.data.get("fold") for e in events if "best_epoch" in e.data] != []


@pytest.fixture(scope="module")
def ray_instance() -> Iterator[object]:
    import ray

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RAY_USAGE_STATS_ENABLED", "0")
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
        try:
            yield ray
        finally:
            ray.shutdown()


@pytest.mark.slow
def test_ray_tasks_give_the_sequential_numbers(sequential, ray_instance, tmp_path: Path) -> None:
    corpus, seq_dir, first = sequential
    second = cross_validate(corpus, tmp_path / "run", CONFIG, engine=RayEngine(workers=2))
    assert_same_run(first, second, seq_dir, tmp_path / "run")
    assert ray_instance.is_initialized()  # an instance the caller started is left running
    # resume: the finished folds are reused, not sent to Ray again
    again = cross_validate(corpus, tmp_path / "run", CONFIG, engine=RayEngine())
    assert again.reused == [1, 2, 3]


@pytest.mark.slow
def test_cancel_on_ray_keeps_finished_folds_and_stops_the_rest(sequential, ray_instance, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    corpus, _seq_dir, _first = sequential
    monkeypatch.setattr(fold_engines, "POLL_SECONDS", 0.05)

    def cancel_after_first(event: Progress) -> None:
        if event.data.get("best_epoch") is not None and event.stage.startswith("folds"):
            job.cancel()

    job = Job(cancel_after_first)
    with pytest.raises(Cancelled):
        cross_validate(corpus, tmp_path / "run", TrainConfig(**{**CONFIG.to_dict(), "epochs": 30}), job,
                       engine=RayEngine(workers=1))
    run = RunFolder(tmp_path / "run")
    assert run.status == "cancelled" and run.fold_numbers() == [1]
    assert np.isfinite(run.fold_metrics(1)["best_val_hf"])


@pytest.mark.parametrize("flags, message", [(["--workers", "0"], "--workers"),
                                            (["--address", "10.0.0.1:6379"], "--address")])
def test_bad_engine_flags_are_bad_input(flags: list[str], message: str, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    from bst_core.cli import EXIT_BAD_INPUT, main

    assert main(["train", str(tmp_path), "--out", str(tmp_path / "run"), *flags]) == EXIT_BAD_INPUT
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
