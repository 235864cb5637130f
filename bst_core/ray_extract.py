"""Extraction on Ray: decoding and embedding in Ray actors on one machine or a cluster, one writer here.

:class:`RayEngine` is an :class:`bst_core.extraction.Engine`: :func:`bst_core.extraction.extract` plans
the work (which items are new, changed or reusable), hands the batches to the engine and appends each
finished batch to the store itself, in this process. So the store keeps every guarantee of a local
extraction: one writer holding the store's lock, each batch one atomic chunk, a rerun computing only
what is missing, the same statuses and reasons (the actors run the same :func:`compute_batch`).

Plain actors, not Ray Data's ``map_batches`` with an actor pool. The store, not a Ray dataset, is the
sink, and it must be written by this one process batch by batch as results come: with actors the
driver holds every batch's result as soon as it exists and writes it, Cancel is ``ray.kill`` of a
handful of actors, and a batch lost with its worker is Ray's own task retry on the restarted actor
(``max_restarts``/``max_task_retries``). Ray Data would add its streaming executor, its block format
and its own backpressure between the actors and the writer, for no gain here, and needs pyarrow
(``ray[data]``) besides.

Each actor builds one encoder (its own CLAP model, on its own GPU with ``gpus_per_worker``) and
computes one batch at a time; two batches per actor are in flight so it never waits for the next.
A batch whose worker dies is computed again on the restarted worker (up to :data:`RETRIES` times);
a batch that kills its worker every time is split and tried file by file, so a file that crashes the
decoder costs only itself (``audio_failed``, "worker process died ..."). Ctrl+C, Cancel or an error
kill the actors; the batches already written stay.

The audio is read by the workers from the same path as on this machine: every machine of a cluster
needs the files at the same path (a shared or replicated filesystem); a worker that cannot see a file
this machine sees stops the extraction with a message that says so, rather than recording the file
as missing. The CLAP checkpoint and tokenizer files are found here and passed by path, so they too
must be at that path on every machine.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bst_core import __version__, jobs
from bst_core.audio import NOT_FOUND
from bst_core.console import summarize_lines
from bst_core.corpus import CLAP_ENCODER, Corpus, EncoderInfo
from bst_core.encoders.base import Encoder
from bst_core.errors import BadInputError
from bst_core.extraction import Batch, BatchResult, ExtractSummary, compute_batch
from bst_core.extraction import extract as run_extraction

RAY_HINT = ('Install Ray: pip install "bst-studio[ray]" (Ray is pinned in requirements/lock.txt), '
            "or extract with the local engine.")
RETRIES = 3
"""How many times a batch is computed again after its worker died, before it is split file by file."""
IN_FLIGHT = 2
"""Batches queued per actor, so it starts the next as soon as one is done."""
STAGE_START = "start Ray workers"
WORKER_DIED = "worker process died while decoding or embedding this file"
TEST_EXIT_ENV = "BST_TEST_RAY_EXIT"
"""Tests only: ``"<batch index>:<marker file>"`` makes the worker computing that batch exit in the
middle of it, once (the marker file records that it did); ``"always:<file name>"`` makes every
worker that decodes that file exit."""


@dataclass(frozen=True)
class RayOptions:
    """Where and how wide: ``address`` of a running cluster (None: start a local Ray instance on this
    machine); ``workers`` (None: one per CPU, or per ``gpus_per_worker`` GPUs, of the cluster)."""

    address: str | None = None
    workers: int | None = None
    gpus_per_worker: float = 0.0
    cpus_per_worker: float = 1.0


@dataclass(frozen=True)
class EncoderSpec:
    """How a worker builds its encoder: by name, with files found on this machine (same paths there)."""

    name: str
    checkpoint: str | None = None
    text_files: str | None = None
    device: str = "cpu"

    @property
    def info(self) -> EncoderInfo:
        if self.name == "clap":
            return CLAP_ENCODER
        from bst_core.encoders.offline import OFFLINE_ENCODER

        return OFFLINE_ENCODER

    def build(self) -> Encoder:
        if self.name == "clap":
            from bst_core.encoders.clap import ClapEncoder

            return ClapEncoder(checkpoint=self.checkpoint, text_files=self.text_files, device=self.device)
        from bst_core.encoders import make_encoder

        return make_encoder(self.name)


def encoder_spec(name: str, *, checkpoint: str | os.PathLike[str] | None = None, device: str = "cpu",
                 allow_download: bool = False, job: jobs.Job | None = None) -> EncoderSpec:
    """The spec of encoder ``name`` with its files looked for (downloaded if allowed) here, once."""
    from bst_core.config import ENCODER_NAMES

    if name not in ENCODER_NAMES:
        raise BadInputError(f"Unknown encoder {name!r}: choose one of {', '.join(ENCODER_NAMES)}.")
    if name != "clap":
        return EncoderSpec(name, device=device)
    from bst_core.checkpoints import ensure_clap_files

    checkpoint_path, text_dir = ensure_clap_files(checkpoint, None, allow_download=allow_download, job=job)
    return EncoderSpec(name, str(checkpoint_path), str(text_dir), device)


class ExtractWorker:
    """The actor: one encoder, one batch at a time (made a Ray actor class by :class:`RayEngine`)."""

    def __init__(self, spec: EncoderSpec) -> None:
        self.encoder = spec.build()
        self.where = f"{socket.gethostname()} (pid {os.getpid()})"

    def describe(self) -> dict[str, Any]:
        info = self.encoder.info
        return {"version": __version__, "where": self.where,
                "encoder": (info.name, info.version, info.audio_dim, info.text_dim)}

    def compute(self, batch: Batch) -> BatchResult:
        result = compute_batch(self.encoder, batch, lambda k: _test_exit_hook(batch, k))
        result.worker = self.where
        return result


def _test_exit_hook(batch: Batch, k: int) -> None:
    """See :data:`TEST_EXIT_ENV`: called after the k-th file of ``batch`` is decoded."""
    spec = os.environ.get(TEST_EXIT_ENV, "")
    if not spec:
        return
    when, what = spec.split(":", 1)
    if when == "always":
        if Path(batch.paths[k]).name == what:
            os._exit(1)
    elif k == 0 and int(when) == batch.index and not os.path.exists(what):
        Path(what).touch()
        os._exit(1)


def import_ray() -> Any:
    """The ``ray`` module, or BadInputError saying how to install it."""
    try:
        import ray
    except ImportError as exc:
        raise BadInputError(f"The Ray engine needs Ray, which is not installed here ({exc}). {RAY_HINT}") from exc
    return ray


class RayEngine:
    """Computes batches in Ray actors built from ``spec`` (see the module docstring)."""

    def __init__(self, spec: EncoderSpec, options: RayOptions | None = None) -> None:
        self.spec = spec
        self.options = options or RayOptions()
        self.info = spec.info
        self.notes: list[str] = []
        self.workers_used = 0
        self._ray_said: list[str] = []

    # ------------------------------------------------------------------ connection and workers
    def _connect(self, ray: Any) -> bool:
        """Join the cluster at ``options.address`` or start a local instance; True when this call did
        (and so shuts it down afterwards). A Ray already initialised in this process is used as it is."""
        if ray.is_initialized():
            return False
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")    # no usage report sent home
        quiet: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.ERROR}
        try:
            if self.options.address:
                ray.init(address=self.options.address, **quiet)
            else:
                ray.init(address="local", num_cpus=os.cpu_count() or 1, include_dashboard=False, **quiet)
        except (ConnectionError, ValueError, RuntimeError) as exc:
            where = f"the Ray cluster at {self.options.address}" if self.options.address else "a local Ray instance"
            raise BadInputError(f"Could not start or join {where}: {exc}. On the cluster's head machine run "
                                "`ray start --head` and pass the address it prints (--address HOST:6379).") from exc
        return True

    def _worker_count(self, ray: Any, batches: int) -> int:
        resources = ray.cluster_resources()
        options = self.options
        if options.gpus_per_worker > 0:
            room = int(resources.get("GPU", 0) // options.gpus_per_worker)
            what = f"{resources.get('GPU', 0):g} GPUs for {options.gpus_per_worker:g} GPU(s) per worker"
        else:
            room = int(resources.get("CPU", 0) // options.cpus_per_worker)
            what = f"{resources.get('CPU', 0):g} CPUs for {options.cpus_per_worker:g} CPU(s) per worker"
        wanted = options.workers or room
        if wanted < 1 or wanted > room:
            raise BadInputError(f"The Ray cluster has room for {room} workers ({what}); "
                                f"{wanted} were asked for. Ask for at most {room} workers, or add machines.")
        return max(1, min(wanted, batches))

    def _start_workers(self, ray: Any, count: int, job: jobs.Job | None) -> list[Any]:
        env = {TEST_EXIT_ENV: os.environ[TEST_EXIT_ENV]} if os.environ.get(TEST_EXIT_ENV) else {}
        actor_class = ray.remote(ExtractWorker).options(
            num_cpus=self.options.cpus_per_worker, num_gpus=self.options.gpus_per_worker,
            max_restarts=-1, max_task_retries=RETRIES, **({"runtime_env": {"env_vars": env}} if env else {}))
        actors = [actor_class.remote(self.spec) for _ in range(count)]
        expected = (self.info.name, self.info.version, self.info.audio_dim, self.info.text_dim)
        pending = {actor.describe.remote(): actor for actor in actors}
        jobs.report(job, STAGE_START, 0, count, f"{count} workers load the {self.spec.name} encoder")
        try:
            while pending:
                jobs.check(job)
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=0.2)
                for ref in ready:
                    pending.pop(ref)
                    try:
                        described = ray.get(ref)
                    except ray.exceptions.RayActorError as exc:
                        raise _worker_start_error(exc) from None
                    if described["version"] != __version__ or tuple(described["encoder"]) != expected:
                        raise BadInputError(
                            f"The Ray worker on {described['where']} runs BST Studio {described['version']} with "
                            f"encoder {described['encoder']}, this machine {__version__} with {expected}: install "
                            "the same BST Studio on every machine of the cluster.")
                    jobs.report(job, STAGE_START, count - len(pending), count, described["where"])
        except BaseException:
            _kill(ray, actors)
            raise
        return actors

    # ------------------------------------------------------------------ the work
    def run(self, batches: Sequence[Batch], on_item: Callable[[Batch, int], None],
            job: jobs.Job | None) -> Iterator[tuple[Batch, BatchResult]]:
        """Yield each batch with its result as workers finish them (see the module docstring)."""
        if not batches:
            return
        ray = import_ray()
        ray_worker = getattr(getattr(ray, "_private", None), "worker", None)   # prints worker deaths on stdout
        printer = getattr(ray_worker, "print_to_stdstream", None)
        owned = self._connect(ray)
        actors: list[Any] = []
        if printer is not None:   # ... which would break --json: they become a note instead
            ray_worker.print_to_stdstream = self._ray_message
        try:
            actors = self._start_workers(ray, self._worker_count(ray, len(batches)), job)
            self.workers_used = len(actors)
            yield from self._dispatch(ray, actors, batches, job)
        finally:
            _kill(ray, actors)
            if owned:
                ray.shutdown()
            if printer is not None:   # what Ray still says of the killed workers goes to stderr, not stdout
                ray_worker.print_to_stdstream = _on_stderr(printer)
            if self._ray_said:
                self.notes.append(f"Ray reported (work lost with a worker was done again): "
                                  f"{summarize_lines(self._ray_said)}")

    def _ray_message(self, data: dict[str, Any], ignore_prefix: bool) -> None:
        """Ray's messages about its workers (a worker died, a task is retried) become a note."""
        for line in data.get("lines", []):
            if line.strip():   # the first sentence; the rest is ids and troubleshooting advice
                self._ray_said.append(line.strip().splitlines()[0].split(". ", 1)[0])

    def _dispatch(self, ray: Any, actors: list[Any], batches: Sequence[Batch],
                  job: jobs.Job | None) -> Iterator[tuple[Batch, BatchResult]]:
        """Keep every actor busy; write results as they come; deal with batches whose worker died.

        A worker's death fails the batch it was computing and the one queued behind it, after Ray's
        own retries. Such a batch is tried again *alone* on a worker (nothing queued behind it), file
        by file, so that a failure there is that file's own doing: only then is the file recorded as
        failed (its text still computed, alone too).
        """
        queue: deque[_Work] = deque(_Work(batch) for batch in batches)
        pending: dict[Any, tuple[_Work, int]] = {}
        load = [0] * len(actors)
        crashed = 0
        while queue or pending:
            jobs.check(job)
            while queue:
                alone = queue[0].alone
                free = [k for k in range(len(actors)) if load[k] == 0 or (not alone and load[k] < IN_FLIGHT)]
                if not free:
                    break
                k = min(free, key=load.__getitem__)
                work = queue.popleft()
                pending[actors[k].compute.remote(work.batch)] = (work, k)
                load[k] += IN_FLIGHT if work.alone else 1   # nothing joins a worker computing a batch alone
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=0.2)
            for ref in ready:
                work, k = pending.pop(ref)
                load[k] -= IN_FLIGHT if work.alone else 1
                batch = work.batch
                try:
                    result = ray.get(ref)
                except ray.exceptions.RayTaskError as exc:   # an error of the encoder: the job's, as locally
                    raise exc.as_instanceof_cause() from None
                except ray.exceptions.RayActorError as exc:
                    if getattr(exc, "_actor_init_failed", False):   # its encoder could not be built again
                        raise _worker_start_error(exc) from None
                    if not work.alone:
                        queue.extendleft(reversed([_Work(_part(batch, [j]), work.died, True)
                                                   for j in range(len(batch))]))
                    elif batch.text_only:
                        raise RuntimeError(f"A Ray worker died {RETRIES + 1} times embedding the text of "
                                           f"{', '.join(batch.paths[:3])}; the batches saved so far are "
                                           "kept.") from None
                    else:            # this file kills the worker: only its text is computed
                        crashed += 1
                        text_only = Batch(batch.index, batch.rows, batch.paths, batch.texts, True)
                        queue.appendleft(_Work(text_only, batch, True))
                    continue
                if work.died is not None:
                    yield work.died, _died_result(work.died, result, self.info)
                    continue
                _refuse_unseen_files(batch, result)
                yield batch, result
        if crashed:
            self.notes.append(f"{crashed} files made a Ray worker process die {RETRIES + 1} times; they are "
                              f"recorded as failed ({WORKER_DIED}).")


@dataclass
class _Work:
    """A batch to compute; ``alone``: on a worker with nothing queued behind it; ``died``: the audio
    batch of one file that killed its worker, of which ``batch`` is the text-only remainder."""

    batch: Batch
    died: Batch | None = None
    alone: bool = False


def _on_stderr(printer: Callable[..., None]) -> Callable[..., None]:
    original = getattr(printer, "original", printer)

    def print_on_stderr(data: dict[str, Any], ignore_prefix: bool) -> None:
        original({**data, "is_err": True}, ignore_prefix)

    print_on_stderr.original = original  # type: ignore[attr-defined]
    return print_on_stderr


def _part(batch: Batch, positions: list[int]) -> Batch:
    return Batch(batch.index, batch.rows[positions], [batch.paths[j] for j in positions],
                 [batch.texts[j] for j in positions], batch.text_only)


def _died_result(batch: Batch, text_result: BatchResult, info: EncoderInfo) -> BatchResult:
    audio = np.zeros((len(batch), info.audio_dim), np.float32)
    reason = f"{WORKER_DIED} ({RETRIES + 1} times)"
    return BatchResult(text_result.text, audio, ["audio_failed"] * len(batch), [reason] * len(batch),
                       text_result.worker)


def _refuse_unseen_files(batch: Batch, result: BatchResult) -> None:
    """A worker that cannot find a file this machine has is not on the same filesystem: stop, saying so."""
    for path, reason in zip(batch.paths, result.reasons or [], strict=False):
        if reason == NOT_FOUND and path and os.path.exists(path):
            raise BadInputError(
                f"The Ray worker on {result.worker} cannot find {path}, which exists on this machine: every "
                "machine of the cluster needs the audio files at the same path (a shared filesystem). The "
                "batches saved so far are kept; a rerun computes only the rest.")


def _worker_start_error(exc: BaseException) -> BaseException:
    """An actor whose encoder could not be built: its own message (the last line of its traceback)."""
    text = str(getattr(exc, "error_msg", "") or exc)
    last = next((line.strip() for line in reversed(text.splitlines()) if line.strip()), text)
    name, _, message = last.partition(": ")
    if name.endswith("BadInputError") and message:
        return BadInputError(f"A Ray worker could not load its encoder: {message}")
    return RuntimeError(f"A Ray worker could not start: {last}")


def _kill(ray: Any, actors: list[Any]) -> None:
    for actor in actors:
        with contextlib.suppress(Exception):
            ray.kill(actor, no_restart=True)


def extract_on_ray(corpus: Corpus, store_path: str | os.PathLike[str], spec: EncoderSpec,
                   options: RayOptions | None = None, *, batch_size: int = 16,
                   job: jobs.Job | None = None) -> ExtractSummary:
    """:func:`bst_core.extraction.extract` with the batches computed on Ray (this process writes)."""
    engine = RayEngine(spec, options)
    summary = run_extraction(corpus, store_path, engine, batch_size=batch_size, job=job)
    summary.notes.extend(engine.notes)
    if engine.workers_used:
        summary.notes.append(f"computed by {engine.workers_used} Ray workers")
    return summary
