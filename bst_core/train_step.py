"""HATR's training step and prediction pass, on one thread or with the two encoder branches on two.

A fold's arithmetic always runs on **one intra-op thread** (:func:`one_thread`): the numbers of a
run then do not depend on the machine's core count nor on where a fold runs (in this process, a
pool process, a Ray worker), and one thread is faster than two on these small matrices when other
work shares the cores (OpenMP regions wait for a descheduled thread).

In ``both`` mode the audio and text encoders carry ~96 % of the arithmetic and are independent
until the fusion. :class:`Stepper` with ``parallel=True`` runs each encoder's forward pass,
backward pass and Adam update on its own thread (one intra-op thread each) and the fusion and
head on the caller's thread. The dropout masks of the step are drawn ahead on the caller's
thread, in the sequential forward pass's order (:func:`bst_core.model.draw_dropout_masks`), and
Adam is element-wise, so both paths give bit-identical weights (``tests/test_training.py``).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import platform
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import torch
from torch import nn

from bst_core.config import TrainConfig
from bst_core.errors import BadInputError
from bst_core.model import HATR, draw_dropout_masks, dropout_layers

Inputs = tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]
"""``(audio, text, audio_present)`` of a batch."""


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Run torch on one intra-op thread in this thread, then restore the previous count."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3          # glibc mallopt parameters
_GLIBC_DEFAULTS = {_M_TRIM_THRESHOLD: 128 * 1024, _M_MMAP_THRESHOLD: 128 * 1024}
_TRAINING = {_M_TRIM_THRESHOLD: 512 << 20, _M_MMAP_THRESHOLD: 256 << 20}


def _glibc() -> ctypes.CDLL | None:
    if sys.platform != "linux" or platform.libc_ver()[0] != "glibc":
        return None
    return ctypes.CDLL(None)   # the C library the process already runs on


@contextlib.contextmanager
def freed_memory_kept() -> Iterator[None]:
    """While training, let glibc's malloc keep freed blocks instead of returning them to the OS.

    Every step frees and re-allocates ~30 MB of 2 MB gradient and activation buffers; served by
    fresh ``mmap`` pages, each costs a page fault and zeroing (measured here: 3,400 faults and
    6-8 ms of system time per step, 1-2 ms with this). Numbers are unchanged. On exit the glibc
    defaults are set again and the kept memory is released (``malloc_trim``). Elsewhere: no-op.
    """
    libc = _glibc()
    if libc is None:
        yield
        return
    for param, value in _TRAINING.items():
        libc.mallopt(param, value)
    try:
        yield
    finally:
        for param, value in _GLIBC_DEFAULTS.items():
            libc.mallopt(param, value)
        libc.malloc_trim(0)


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def branch_parallel_default(mode: str, device: torch.device, cores: int | None = None) -> bool:
    """Two encoder threads pay off in ``both`` mode on a CPU with at least two cores to use."""
    return mode == "both" and device.type == "cpu" and (usable_cores() if cores is None else cores) >= 2


def make_optimizer(params: list[nn.Parameter], config: TrainConfig, device: torch.device) -> torch.optim.Optimizer:
    """Adam (lr from ``config``), fused where the device supports it unless ``fused_adam`` is False."""
    if config.fused_adam is not False:
        try:
            return torch.optim.Adam(params, lr=config.lr, fused=True)
        except (RuntimeError, TypeError):
            if config.fused_adam:
                raise BadInputError(f"Fused Adam is not available on device {device}; "
                                    "set fused_adam to None or False.") from None
    return torch.optim.Adam(params, lr=config.lr)


def _set_one_thread() -> None:
    torch.set_num_threads(1)


class Stepper:
    """Adam steps and predictions of one fold's model; ``parallel`` runs the encoders on two threads.

    The parameters are split into the audio encoder's, the text encoder's and the rest, one Adam
    each (the same element-wise update as one Adam over all of them). Use as a context manager
    (the threads are stopped on exit).
    """

    def __init__(self, model: HATR, config: TrainConfig, device: torch.device, *, parallel: bool) -> None:
        self.model = model
        self.parallel = parallel and model.audio_encoder is not None and model.text_encoder is not None
        self.criterion = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
        self.device = device
        branches = [m for m in (model.audio_encoder, model.text_encoder) if m is not None]
        seen = {id(p) for m in branches for p in m.parameters()}
        groups = [list(m.parameters()) for m in branches] + [[p for p in model.parameters() if id(p) not in seen]]
        self.optimizers = [make_optimizer(g, config, device) for g in groups]
        self._pool = ThreadPoolExecutor(2, thread_name_prefix="hatr-branch",
                                        initializer=_set_one_thread) if self.parallel else None
        in_branches = {id(m) for b in branches for m in dropout_layers(b)}
        self._head_dropouts = [m for m in dropout_layers(model) if id(m) not in in_branches]
        self._planned_size: int | None = None
        if self.parallel:
            for optimizer in self.optimizers:
                optimizer.zero_grad(set_to_none=True)

    def __enter__(self) -> Stepper:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    @property
    def lr(self) -> float:
        return float(self.optimizers[0].param_groups[0]["lr"])

    def step(self, inputs: Inputs, target: torch.Tensor, *,
             next_size: int | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """One Adam step on a batch; returns the (detached) loss and the attention (or None).

        ``next_size``: the size of the batch the next call will get, if known. The two-thread path
        then draws that step's dropout masks while this step's encoder backward passes run (the
        generator sees the same draws in the same order; nothing else in a fold draws from it).
        """
        if self._pool is None:
            for optimizer in self.optimizers:
                optimizer.zero_grad(set_to_none=True)
            logits, attention = self.model(*inputs)
            loss = self.criterion(logits, target)
            loss.backward()
            for optimizer in self.optimizers:
                optimizer.step()
            return loss.detach(), None if attention is None else attention.detach()
        try:
            return self._parallel_step(inputs, target, next_size)
        except BaseException:
            self._planned_size = None
            for layer in dropout_layers(self.model):  # never leave a mask for a later call
                layer.planned = None
            raise

    def _draw_masks(self, size: int) -> None:
        model = self.model
        assert model.audio_encoder is not None and model.text_encoder is not None
        for part in (model.audio_encoder, model.text_encoder):  # the sequential forward's order
            draw_dropout_masks(part, size, self.device)
        draw_dropout_masks(self._head_dropouts, size, self.device)

    def _parallel_step(self, inputs: Inputs, target: torch.Tensor,
                       next_size: int | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        model, pool = self.model, self._pool
        assert pool is not None and model.audio_encoder is not None and model.text_encoder is not None
        assert model.fusion is not None
        audio, text, present = inputs
        if self._planned_size is None:
            self._draw_masks(len(target))
        elif self._planned_size != len(target):
            raise RuntimeError(f"dropout masks were drawn for a batch of {self._planned_size}, "
                               f"not {len(target)}: pass the true next_size")
        self._planned_size = None
        self.optimizers[2].zero_grad(set_to_none=True)  # the branches' grads were cleared by their threads
        audio_job = pool.submit(model.audio_encoder, audio)
        text_job = pool.submit(model.text_encoder, text)
        audio_out, text_out = audio_job.result(), text_job.result()
        audio_in = audio_out.detach().requires_grad_()
        text_in = text_out.detach().requires_grad_()
        features, attention = model.fusion(audio_in, text_in, present)
        loss = self.criterion(model.classify(features), target)
        loss.backward()
        jobs = [pool.submit(_finish_branch, out, leaf.grad, optimizer)
                for out, leaf, optimizer in ((audio_out, audio_in, self.optimizers[0]),
                                             (text_out, text_in, self.optimizers[1]))]
        self.optimizers[2].step()
        if next_size is not None:
            self._draw_masks(next_size)   # overlaps the encoders' backward passes
            self._planned_size = next_size
        for job in jobs:
            job.result()
        return loss.detach(), attention.detach()

    def predict(self, inputs: Inputs, batch_size: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Softmax probabilities and attention in eval mode (as :func:`bst_core.model.predict_probs`)."""
        from bst_core.model import predict_probs

        audio, text, present = inputs
        if self._pool is None:
            return predict_probs(self.model, audio, text, audio_present=present, batch_size=batch_size)
        model, pool = self.model, self._pool
        assert model.audio_encoder is not None and model.text_encoder is not None and model.fusion is not None
        assert audio is not None and text is not None
        model.eval()
        probs, attention = [], []
        with torch.inference_mode():
            for start in range(0, len(audio), batch_size):
                part = slice(start, start + batch_size)
                audio_job = pool.submit(_infer, model.audio_encoder, audio[part])
                text_job = pool.submit(_infer, model.text_encoder, text[part])
                features, attn = model.fusion(audio_job.result(), text_job.result(),
                                              None if present is None else present[part])
                probs.append(torch.softmax(model.classify(features), dim=-1))
                attention.append(attn)
        if not probs:
            return torch.empty(0, model.num_classes), None
        return torch.cat(probs), torch.cat(attention)


def _finish_branch(output: torch.Tensor, grad: torch.Tensor | None, optimizer: torch.optim.Optimizer) -> None:
    output.backward(grad)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)  # here, not on the caller's thread before the next step


def _infer(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():  # grad mode is per thread
        return module(x)
