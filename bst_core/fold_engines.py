"""Where the folds of a cross-validation run are trained: here, in local processes, or on Ray.

Every engine gives the numbers of the sequential run with the same seed: a fold's arithmetic runs
on one intra-op thread wherever it runs (:mod:`bst_core.train_step`).

- :class:`LocalEngine` ``(workers=1)``: in this process, one fold after another, the two encoder
  branches on two threads when two cores are free (the default; per-epoch progress).
- :class:`LocalEngine` ``(workers=N > 1)``: N spawned processes, one fold each at a time.
- :class:`RayEngine`: each fold a Ray task (``num_cpus`` 1) on a local Ray instance started for the
  run or on the cluster at ``address``; ``workers`` bounds the folds in flight.

Remote folds **return** their outcome (weights, history, metrics, test probabilities: ~30 MB) to
the driver, which writes it through :class:`bst_core.runs.RunWriter` under that fold's lock. A
Ray worker on another machine may not see the run folder at all, and the run folder keeps one
writer. Progress is per fold for the remote engines (started, done), per epoch in this process.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass

from bst_core import jobs
from bst_core.errors import BadInputError
from bst_core.jobs import Job
from bst_core.train_step import usable_cores
from bst_core.training import FoldInputs, FoldOutcome, FoldTask, train_fold

ENGINES: tuple[str, ...] = ("local", "ray")
POLL_SECONDS = 0.2
"""How often a driver waiting on remote folds checks for cancellation."""


def make_engine(name: str = "local", *, address: str | None = None,
                workers: int | None = None) -> LocalEngine | RayEngine:
    """The engine the CLI's ``--engine/--address/--workers`` (or the GUI) ask for."""
    if workers is not None and workers < 1:
        raise BadInputError(f"--workers must be at least 1 (got {workers}).")
    if name == "local":
        if address:
            raise BadInputError("--address is for --engine ray; the local engine runs on this machine.")
        return LocalEngine(workers or 1)
    if name == "ray":
        return RayEngine(address=address, workers=workers)
    raise BadInputError(f"Unknown engine {name!r}: choose one of {', '.join(ENGINES)}.")


def _fold_stage(tasks: list[FoldTask], inputs: FoldInputs) -> str:
    return f"folds ({len(tasks)} of {inputs.config.folds})"


# --- local processes -------------------------------------------------------------------------------

_WORKER_INPUTS: FoldInputs | None = None


def _init_worker(inputs: FoldInputs) -> None:
    global _WORKER_INPUTS
    _WORKER_INPUTS = inputs


def _train_in_worker(task: FoldTask, parallel: bool) -> FoldOutcome:
    assert _WORKER_INPUTS is not None, "worker not initialised"
    return train_fold(task, _WORKER_INPUTS, _WORKER_INPUTS.config, parallel=parallel)


@dataclass
class LocalEngine:
    """Folds on this machine: in this process (``workers=1``) or in ``workers`` spawned processes."""

    workers: int = 1

    @property
    def in_process(self) -> bool:
        return self.workers <= 1

    def run(self, tasks: list[FoldTask], inputs: FoldInputs, job: Job | None) -> Iterator[FoldOutcome]:
        if self.in_process:
            for task in tasks:
                yield train_fold(task, inputs, inputs.config, job=job)
            return
        workers = min(self.workers, len(tasks))
        parallel = inputs.config.mode == "both" and inputs.config.device == "cpu" and usable_cores() >= 2 * workers
        stage = _fold_stage(tasks, inputs)
        jobs.report(job, stage, 0, len(tasks), f"{workers} local processes")
        context = multiprocessing.get_context("spawn")  # no fork of a process holding OpenMP threads
        pool = context.Pool(workers, initializer=_init_worker, initargs=(inputs,))
        try:
            pending = {task.fold: pool.apply_async(_train_in_worker, (task, parallel)) for task in tasks}
            while pending:
                jobs.check(job)
                ready = [k for k, result in pending.items() if result.ready()]
                if not ready:
                    time.sleep(POLL_SECONDS)
                    continue
                for k in ready:
                    outcome = pending.pop(k).get()  # re-raises a fold's error here
                    jobs.report(job, stage, len(tasks) - len(pending), len(tasks), f"fold {k} done",
                                fold=k, best_epoch=outcome.best_epoch)
                    yield outcome
            pool.close()
        finally:
            pool.terminate()  # cancelled or failed: stop the folds still running
            pool.join()


# --- Ray -------------------------------------------------------------------------------------------

def _ray_fold(inputs: FoldInputs, task: FoldTask) -> FoldOutcome:
    return train_fold(task, inputs, inputs.config, parallel=False)


@dataclass
class RayEngine:
    """Each fold a Ray task. Without ``address`` a local Ray instance is started for the run (and
    stopped after it); with one, the cluster there is joined. A Ray instance already initialised in
    this process is used as it is (and left running)."""

    address: str | None = None
    workers: int | None = None
    in_process = False

    def run(self, tasks: list[FoldTask], inputs: FoldInputs, job: Job | None) -> Iterator[FoldOutcome]:
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        try:
            import ray
        except ImportError as exc:
            raise BadInputError("--engine ray needs the ray package: install it with "
                                "`pip install ray==2.60.0` (the version in requirements/lock.txt).") from exc
        started = not ray.is_initialized()
        if started:
            try:
                if self.address:
                    ray.init(address=self.address, include_dashboard=False, logging_level="warning")
                else:
                    ray.init(num_cpus=self.workers or usable_cores(), include_dashboard=False,
                             logging_level="warning")
            except ConnectionError as exc:
                raise BadInputError(f"No Ray cluster answers at {self.address} ({exc}). Start one with "
                                    "`ray start --head` and pass the address it prints.") from exc
        stage = _fold_stage(tasks, inputs)
        remote = ray.remote(num_cpus=1, max_retries=1)(_ray_fold)
        pending: dict[object, int] = {}
        try:
            shared = ray.put(inputs)  # once, whatever the number of folds
            queue = list(tasks)
            limit = self.workers or len(tasks)
            jobs.report(job, stage, 0, len(tasks), "Ray tasks")
            done = 0
            while queue or pending:
                while queue and len(pending) < limit:
                    task = queue.pop(0)
                    pending[remote.remote(shared, task)] = task.fold
                jobs.check(job)
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=POLL_SECONDS)
                for ref in ready:
                    k = pending.pop(ref)
                    outcome = ray.get(ref)  # re-raises a fold's error here
                    done += 1
                    jobs.report(job, stage, done, len(tasks), f"fold {k} done", fold=k, best_epoch=outcome.best_epoch)
                    yield outcome
        finally:
            for ref in pending:  # cancelled or failed: stop the folds still running
                ray.cancel(ref, force=True)
            if started:
                ray.shutdown()
