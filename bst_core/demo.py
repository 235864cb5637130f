"""The offline demo: a SYNTHETIC labelled corpus, offline embeddings, cross-validation, a package.

Nothing here is real data. :func:`make_demo` synthesizes one recipe per BST class (envelopes,
pitch, noise bands, rhythm and duration differ by class; each clip draws its own parameters) and
writes it in the BSD layout, with titles and tags that correlate with the class but are noisy
(about 30 % of clips get generic or misleading words). It also writes a demo evaluation folder
(anonymous UUID ids, one 0-byte file as in the real evaluation set) and its hidden truth beside
it. :func:`run_demo` then runs the whole workflow offline with the offline encoder: extract,
cross-validate, predict the evaluation folder, write and validate the submission package, and
score it against the hidden truth.

Output folder::

    BSD10k-demo/              audio/<sound_id>.wav (44.1 kHz), metadata/BSD10k_metadata.csv
    BSD2k-demo/               audio/<anonymous_id>.wav, metadata/BSD2k_metadata.csv
    BSD2k-demo-truth.csv      id,class of the evaluation folder (kept out of it, for scoring)
    stores/                   offline embedding stores of both folders
    run/                      the cross-validation run folder (5 fold models)
    submission/task1/Demo_BST_task1_1/   the package
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import soundfile as sf

from bst_core import atomic, jobs, taxonomy
from bst_core.config import TrainConfig
from bst_core.corpus import SYNTHETIC_MARKER, Corpus
from bst_core.extraction import ExtractSummary
from bst_core.jobs import Job
from bst_core.metrics import MetricReport, format_table

if TYPE_CHECKING:
    from bst_core.runs import CrossValResult

SR = 44_100
DEMO_LABEL = "Demo_BST_task1_1"
DEV_NAME = "BSD10k-demo"
EVAL_NAME = "BSD2k-demo"
NOISY_FRACTION = 0.3
"""Share of clips whose title/tags get generic or misleading words."""

Recipe = Callable[[np.random.Generator], np.ndarray]


# ---------------------------------------------------------------------- signal helpers
def _n(seconds: float) -> int:
    """Samples in ``seconds``, rounded to a multiple of 1024 (FFT-friendly lengths keep it fast)."""
    return max(1024, int(seconds * SR) // 1024 * 1024)


def _t(seconds: float) -> np.ndarray:
    return np.arange(_n(seconds)) / SR


def _band_noise(rng: np.random.Generator, seconds: float, low: float, high: float, tilt: float = 0.0) -> np.ndarray:
    """Noise limited to ``low``..``high`` Hz (FFT mask); ``tilt`` dB/octave shapes its slope."""
    n = _n(seconds)
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / SR)
    gain = ((freqs >= low) & (freqs <= high)).astype(float)
    if tilt:
        gain *= (np.maximum(freqs, 20.0) / 1000.0) ** (tilt / 6.02)
    out = np.fft.irfft(spectrum * gain, n)
    return out / (np.abs(out).max() + 1e-12)


def _decay(seconds: float, attack: float, decay: float) -> np.ndarray:
    """Linear attack over ``attack`` s, then exponential decay with time constant ``decay`` s."""
    t = _t(seconds)
    return np.minimum(t / max(attack, 1e-4), 1.0) * np.exp(-np.maximum(t - attack, 0) / decay)


def _harmonic(t: np.ndarray, f0: np.ndarray | float, amps: list[float], *, stretch: float = 0.0) -> np.ndarray:
    """Sum of harmonics k·f0 (optionally stretched, piano-like) with amplitudes ``amps``."""
    phase = 2 * np.pi * np.cumsum(np.broadcast_to(f0, t.shape)) / SR
    return sum(a * np.sin(phase * k * np.sqrt(1 + stretch * k * k)) for k, a in enumerate(amps, 1)
               if np.max(f0) * k < SR / 2 - 500)


def _place(total: np.ndarray, event: np.ndarray, at: float) -> None:
    start = int(at * SR)
    end = min(len(total), start + len(event))
    if start < end:
        total[start:end] += event[: end - start]


def _speech(rng: np.random.Generator, seconds: float) -> np.ndarray:
    """Formant-like AM buzz: a jittered glottal pulse train through formant bands, syllabic."""
    t = _t(seconds)
    f0 = rng.uniform(95, 230) * (1 + 0.08 * np.sin(2 * np.pi * rng.uniform(0.3, 0.8) * t))
    cycles = np.cumsum(f0) / SR
    pulses = np.diff(np.floor(cycles), prepend=0.0)             # one impulse per glottal cycle
    spectrum = np.fft.rfft(pulses)
    freqs = np.fft.rfftfreq(len(t), 1 / SR)
    formants = sum(np.exp(-0.5 * ((freqs - f) / w) ** 2) for f, w in
                   ((rng.uniform(350, 800), 120), (rng.uniform(1000, 2300), 200), (2900, 300)))
    voiced = np.fft.irfft(spectrum * formants * (100.0 / np.maximum(freqs, 100.0)), len(t))
    rate = rng.uniform(3.0, 5.0)
    syllables = np.clip(np.sin(2 * np.pi * rate * t + rng.uniform(0, 6)), 0, None) ** 1.5
    pauses = (np.sin(2 * np.pi * rng.uniform(0.2, 0.4) * t + rng.uniform(0, 6)) > -0.6).astype(float)
    return voiced * syllables * pauses


def _drums(rng: np.random.Generator, seconds: float, bpm: float) -> np.ndarray:
    out = np.zeros(_n(seconds))
    beat = 60.0 / bpm
    kick_t = _t(0.25)
    kick = np.sin(2 * np.pi * np.cumsum(55 + 90 * np.exp(-kick_t * 30)) / SR) * np.exp(-kick_t * 14)
    hat = _band_noise(rng, 0.06, 6000, 16000) * _decay(0.06, 0.001, 0.015)
    snare = (_band_noise(rng, 0.2, 1000, 8000) * 0.6 + np.sin(2 * np.pi * 190 * _t(0.2))) * _decay(0.2, 0.001, 0.05)
    for k in range(int(seconds / beat * 2)):
        at = k * beat / 2
        _place(out, hat * 0.4, at)
        if k % 4 == 0:
            _place(out, kick, at)
        elif k % 4 == 2:
            _place(out, snare * 0.7, at)
    return out


def _note(rng: np.random.Generator, f0: float, seconds: float, bright: int = 8) -> np.ndarray:
    t = _t(seconds)
    return _harmonic(t, f0, [1.0 / k ** 1.2 for k in range(1, bright)]) * _decay(seconds, 0.02, seconds / 2)


def _chirp(seconds: float, f_start: float, f_end: float) -> np.ndarray:
    t = _t(seconds)
    f = f_start * (f_end / f_start) ** (t / seconds)
    return np.sin(2 * np.pi * np.cumsum(f) / SR) * np.hanning(len(t))


_SCALE = 220.0 * 2 ** (np.array([0, 2, 4, 5, 7, 9, 11, 12, 14, 16]) / 12)


# ---------------------------------------------------------------------- one recipe per class
def _m_sp(rng: np.random.Generator) -> np.ndarray:
    return _drums(rng, rng.uniform(3, 6), rng.uniform(85, 150))


def _m_si(rng: np.random.Generator) -> np.ndarray:
    seconds, step = rng.uniform(3, 5), rng.uniform(0.22, 0.45)
    out = np.zeros(_n(seconds))
    for k in range(int(seconds / step)):
        _place(out, _note(rng, rng.choice(_SCALE) * rng.choice([1, 2]), step * 1.3), k * step)
    return out


def _m_m(rng: np.random.Generator) -> np.ndarray:
    seconds = rng.uniform(4, 6)
    out = _drums(rng, seconds, rng.uniform(90, 130)) * 0.5
    for k in range(int(seconds)):
        root = rng.integers(0, 5)
        for step in (0, 2, 4):
            _place(out, _note(rng, _SCALE[root + step], 1.1, bright=6) * 0.5, k)
        _place(out, _note(rng, _SCALE[root] / 2, 1.0, bright=4), k)
    return out


def _is_p(rng: np.random.Generator) -> np.ndarray:
    seconds, f0 = rng.uniform(0.6, 1.8), rng.uniform(150, 900)
    t = _t(seconds)
    partials = sum(np.sin(2 * np.pi * f0 * r * t) / (i + 1) for i, r in enumerate((1, 2.76, 5.40, 8.93)))
    click = _band_noise(rng, seconds, 500, 12000) * _decay(seconds, 0.001, 0.01)
    return partials * _decay(seconds, 0.001, rng.uniform(0.08, 0.4)) + click


def _is_s(rng: np.random.Generator) -> np.ndarray:
    seconds, f0 = rng.uniform(1.2, 2.8), rng.uniform(110, 600)
    t = _t(seconds)
    return sum(np.sin(2 * np.pi * f0 * k * t) / k * np.exp(-t * (1.5 + 0.8 * k)) for k in range(1, 16)
               if f0 * k < SR / 2) * _decay(seconds, 0.003, 10)


def _is_w(rng: np.random.Generator) -> np.ndarray:
    seconds, f0 = rng.uniform(1.2, 2.8), rng.uniform(200, 900)
    t = _t(seconds)
    vibrato = f0 * (1 + 0.012 * np.sin(2 * np.pi * rng.uniform(4.5, 6) * t))
    tone = _harmonic(t, vibrato, [1, 0.05, 0.5, 0.05, 0.3, 0.03, 0.15])
    breath = _band_noise(rng, seconds, 1000, 5000) * 0.08
    envelope = np.minimum(t / 0.12, 1) * np.minimum((seconds - t) / 0.15, 1)
    return (tone + breath) * envelope


def _is_k(rng: np.random.Generator) -> np.ndarray:
    seconds, f0 = rng.uniform(1.5, 3.0), rng.uniform(100, 1000)
    t = _t(seconds)
    return _harmonic(t, f0, [1, 0.6, 0.35, 0.25, 0.15, 0.1, 0.06], stretch=4e-4) * _decay(seconds, 0.004, 0.7)


def _is_e(rng: np.random.Generator) -> np.ndarray:
    seconds, f0 = rng.uniform(1.2, 2.8), rng.uniform(60, 400)
    t = _t(seconds)
    saws = (t * f0) % 1.0 + (t * f0 * 1.007) % 1.0 - 1.0          # two detuned sawtooths
    spectrum = np.fft.rfft(saws)
    cutoff = rng.uniform(800, 4000)
    spectrum *= 1 / (1 + (np.fft.rfftfreq(len(t), 1 / SR) / cutoff) ** 4)
    gate = (np.sin(2 * np.pi * rng.uniform(2, 8) * t) > -0.3).astype(float)
    return np.fft.irfft(spectrum, len(t)) * (0.6 + 0.4 * gate)


def _sp_s(rng: np.random.Generator) -> np.ndarray:
    return _speech(rng, rng.uniform(3, 5))


def _sp_c(rng: np.random.Generator) -> np.ndarray:
    seconds = rng.uniform(4, 6)
    voices = sum(np.roll(_speech(rng, seconds), rng.integers(0, SR)) * rng.uniform(0.3, 1)
                 for _ in range(rng.integers(4, 8)))
    return voices + _band_noise(rng, seconds, 200, 4000, tilt=-3) * 0.3


def _sp_p(rng: np.random.Generator) -> np.ndarray:
    seconds = rng.uniform(3, 5)
    voice = _speech(rng, seconds)
    voice = np.clip(voice / (np.abs(voice).max() + 1e-9) * 3, -0.6, 0.6)
    spectrum = np.fft.rfft(voice * np.sin(2 * np.pi * rng.uniform(30, 80) * _t(seconds)) * 0.5 + voice)
    freqs = np.fft.rfftfreq(len(voice), 1 / SR)
    spectrum[(freqs < 300) | (freqs > 3400)] = 0
    return np.fft.irfft(spectrum, len(voice)) + _band_noise(rng, seconds, 300, 3400) * 0.02


def _fx_o(rng: np.random.Generator) -> np.ndarray:
    seconds = rng.uniform(1.0, 2.5)
    out = np.zeros(_n(seconds))
    for _ in range(rng.integers(2, 6)):
        low = rng.uniform(300, 3000)
        hit = _band_noise(rng, 0.15, low, low * rng.uniform(2, 5)) * _decay(0.15, 0.0005, rng.uniform(0.01, 0.04))
        _place(out, hit * rng.uniform(0.4, 1), rng.uniform(0, seconds - 0.15))
    return out


def _fx_v(rng: np.random.Generator) -> np.ndarray:
    seconds = rng.uniform(4, 6)
    t = _t(seconds)
    passing = np.exp(-0.5 * ((t - seconds * rng.uniform(0.35, 0.65)) / (seconds * 0.18)) ** 2)
    f0 = rng.uniform(30, 70) * (1 + 0.15 * np.tanh((seconds / 2 - t) * 2))   # Doppler drop
    engine = _harmonic(t, f0, [1, 0.8, 0.6, 0.5, 0.4, 0.3, 0.2, 0.15])
    road = _band_noise(rng, seconds, 60, 3000, tilt=-4)
    return (engine * 0.6 + road) * (0.1 + passing)


def _fx_m(rng: np.random.Generator) -> np.ndarray:
    seconds = rng.uniform(3, 5)
    t = _t(seconds)
    hum = _harmonic(t, rng.uniform(50, 150), [1, 0.7, 0.5, 0.5, 0.4, 0.3, 0.3, 0.2, 0.2, 0.1])
    rate = rng.uniform(5, 15)
    clatter = _band_noise(rng, seconds, 2000, 8000) * (np.sin(2 * np.pi * rate * t) > 0.7)
    return hum * 0.5 + clatter * 0.4


def _fx_h(rng: np.random.Generator) -> np.ndarray:
    seconds = rng.uniform(2.5, 4.5)
    out = np.zeros(_n(seconds))
    n = rng.integers(2, 4)
    for k in range(n):
        length = rng.uniform(0.4, 0.8)
        t = _t(length)
        swell = np.sin(np.pi * t / length) ** 2
        breath = _band_noise(rng, length, rng.uniform(300, 600), rng.uniform(2000, 3500)) * swell
        _place(out, breath, k * seconds / n + rng.uniform(0, 0.2))
    return out


def _fx_a(rng: np.random.Generator) -> np.ndarray:
    seconds = rng.uniform(1.5, 3.5)
    out = np.zeros(_n(seconds))
    high = rng.uniform(2500, 6000)
    for _ in range(rng.integers(4, 12)):
        length = rng.uniform(0.05, 0.15)
        _place(out, _chirp(length, high, high * rng.uniform(0.5, 0.8)), rng.uniform(0, seconds - length))
    return out


def _fx_n(rng: np.random.Generator) -> np.ndarray:
    seconds = rng.uniform(2, 4)
    boom = _band_noise(rng, seconds, 20, rng.uniform(400, 1500), tilt=-3)
    return boom * _decay(seconds, 0.002, rng.uniform(0.4, 1.2))


def _fx_ex(rng: np.random.Generator) -> np.ndarray:
    seconds = rng.uniform(2, 4)
    t = _t(seconds)
    f = rng.uniform(200, 800) * (1 + 0.5 * np.sin(2 * np.pi * rng.uniform(0.5, 3) * t) ** 3)
    metallic = _harmonic(t, f, [1, 0.7, 0.6, 0.5], stretch=0.02)
    reversed_decay = _decay(seconds, 0.001, rng.uniform(0.4, 1.0))[::-1]
    gate = (rng.random(len(t)) > 0.9995).cumsum() % 2          # random on/off stretches
    grains = _band_noise(rng, seconds, 200, 10000) * gate
    return metallic * reversed_decay + grains * 0.2


def _fx_el(rng: np.random.Generator) -> np.ndarray:
    seconds = rng.uniform(0.6, 1.6)
    out = np.zeros(_n(seconds))
    for k in range(rng.integers(1, 4)):
        length = rng.uniform(0.1, 0.3)
        zap = np.sign(_chirp(length, rng.uniform(2500, 5000), rng.uniform(150, 400)))
        _place(out, zap * np.hanning(len(zap)), k * 0.35)
    return out * 0.5


def _soundscape(rng: np.random.Generator, bed_low: float, bed_high: float, tilt: float) -> tuple[np.ndarray, float]:
    seconds = rng.uniform(5, 8)
    t = _t(seconds)
    swell = 0.7 + 0.3 * np.sin(2 * np.pi * rng.uniform(0.05, 0.2) * t + rng.uniform(0, 6))
    return _band_noise(rng, seconds, bed_low, bed_high, tilt=tilt) * swell, seconds


def _ss_n(rng: np.random.Generator) -> np.ndarray:
    bed, seconds = _soundscape(rng, 100, 1500, -1)
    for _ in range(rng.integers(2, 6)):
        _place(bed, _chirp(0.1, rng.uniform(3000, 5000), 2500) * 0.3, rng.uniform(0, seconds - 0.1))
    return bed


def _ss_i(rng: np.random.Generator) -> np.ndarray:
    bed, seconds = _soundscape(rng, 40, 600, -6)
    hum = _harmonic(_t(seconds), rng.choice([50.0, 60.0]), [0.3, 0.15, 0.1])
    murmur = _speech(rng, seconds) * 0.05
    return bed * 0.5 + hum + murmur


def _ss_u(rng: np.random.Generator) -> np.ndarray:
    bed, seconds = _soundscape(rng, 30, 4000, -5)
    for _ in range(rng.integers(1, 3)):
        _place(bed, _fx_v(rng) * 0.6, rng.uniform(0, seconds - 1))
    if rng.random() < 0.5:
        _place(bed, _harmonic(_t(0.5), 420.0, [1, 0.5, 0.3]) * 0.2, rng.uniform(0, seconds - 0.5))
    return bed


def _ss_s(rng: np.random.Generator) -> np.ndarray:
    seconds = rng.uniform(5, 8)
    t = _t(seconds)
    drones = sum(np.sin(2 * np.pi * rng.uniform(80, 600) * t + rng.uniform(0, 6)) for _ in range(4))
    pad = _band_noise(rng, seconds, 300, 3000) * (0.5 + 0.5 * np.sin(2 * np.pi * 0.1 * t))
    return drones * 0.3 + pad * 0.4


RECIPES: dict[str, Recipe] = {
    "m-sp": _m_sp, "m-si": _m_si, "m-m": _m_m,
    "is-p": _is_p, "is-s": _is_s, "is-w": _is_w, "is-k": _is_k, "is-e": _is_e,
    "sp-s": _sp_s, "sp-c": _sp_c, "sp-p": _sp_p,
    "fx-o": _fx_o, "fx-v": _fx_v, "fx-m": _fx_m, "fx-h": _fx_h, "fx-a": _fx_a, "fx-n": _fx_n,
    "fx-ex": _fx_ex, "fx-el": _fx_el,
    "ss-n": _ss_n, "ss-i": _ss_i, "ss-u": _ss_u, "ss-s": _ss_s,
}
"""One synthesis recipe per class key (all 23 taxonomy classes)."""

WORDS: dict[str, tuple[str, ...]] = {
    "m-sp": ("drum loop", "beat", "groove", "percussion", "breakbeat"),
    "m-si": ("melody", "solo", "riff", "tune", "phrase"),
    "m-m": ("band", "song", "ensemble", "track", "jam"),
    "is-p": ("bell", "gong", "xylophone", "hit", "strike"),
    "is-s": ("guitar", "pluck", "harp", "string", "mandolin"),
    "is-w": ("flute", "clarinet", "woodwind", "horn", "note"),
    "is-k": ("piano", "keys", "keyboard", "organ", "chord"),
    "is-e": ("synth", "analog", "lead", "bass", "oscillator"),
    "sp-s": ("voice", "talking", "speech", "narration", "reading"),
    "sp-c": ("crowd", "chatter", "people", "conversation", "babble"),
    "sp-p": ("radio", "telephone", "robot voice", "walkie talkie", "vocoder"),
    "fx-o": ("knock", "cup", "door", "keys jingle", "tool"),
    "fx-v": ("car", "engine", "truck", "passing", "motorbike"),
    "fx-m": ("machine", "motor", "drill", "mechanism", "gear"),
    "fx-h": ("breath", "breathing", "sigh", "exhale", "body"),
    "fx-a": ("bird", "chirp", "tweet", "animal", "birdsong"),
    "fx-n": ("explosion", "thunder", "boom", "rumble", "blast"),
    "fx-ex": ("experimental", "weird", "reversed", "glitch", "strange"),
    "fx-el": ("laser", "zap", "sci-fi", "ui", "blip"),
    "ss-n": ("forest", "river", "wind", "nature", "ambience"),
    "ss-i": ("room tone", "office", "indoor", "hum", "interior"),
    "ss-u": ("city", "traffic", "street", "urban", "road"),
    "ss-s": ("drone", "soundscape", "imaginary", "pad", "atmosphere"),
}
"""Class-typical words for titles and tags."""

GENERIC_WORDS: tuple[str, ...] = ("sound", "recording", "sample", "audio", "fx", "stereo", "zoom h4n",
                                  "field recording", "edit", "take", "free", "misc", "café", "Straße")


@dataclass(frozen=True)
class DemoPaths:
    """Where :func:`make_demo` wrote the demo data."""

    root: Path
    dataset: Path       # BSD layout, labelled
    evaluation: Path    # evaluation layout, anonymous ids
    truth_csv: Path     # id,class of the evaluation folder


def _text_fields(rng: np.random.Generator, key: str) -> dict[str, str]:
    """Title, tags and description that mostly say the class, sometimes say nothing or mislead.

    With probability :data:`NOISY_FRACTION` the title and tags are generic words, plus (half the
    time in the title) a word of another class; otherwise they are the class's own words.
    """
    def pick(words: tuple[str, ...] | list[str], n: int) -> list[str]:
        return [str(w) for w in rng.choice(words, size=n, replace=False)]

    other = WORDS[str(rng.choice([k for k in WORDS if k != key]))]
    if rng.random() < NOISY_FRACTION:
        title_words = pick(GENERIC_WORDS, 1) + (pick(other, 1) if rng.random() < 0.5 else [])
        tags = [*pick(GENERIC_WORDS, 3), *pick(other, 1)]
    else:
        title_words = pick(WORDS[key], int(rng.integers(1, 3)))
        tags = [*pick(WORDS[key], 3), *pick(GENERIC_WORDS, 1)]
    title = " ".join(title_words).capitalize()
    if rng.random() < 0.5:
        title += f" {int(rng.integers(1, 99)):02d}"
    style = int(rng.integers(0, 4))
    descriptions = (
        "",
        f"Synthetic {tags[0]} made for the BST Studio demo.",
        f'<p>{title}, recorded <b>close</b>.<br>More at <a href="https://example.org">example.org</a> &amp; co.</p>',
        f'A {rng.choice(["short", "long", "loud", "soft"])} {title_words[-1]}, "{tags[1]}"\nline two',
    )
    return {"title": title, "tags": ", ".join(t.replace(" ", "-") for t in tags), "description": descriptions[style]}


def _write_clip(path: Path, key: str, seed: list[int]) -> None:
    """Synthesize a clip of class ``key``, peak-normalise, write 16-bit PCM (skipped if the file exists)."""
    if path.exists():
        return
    signal = RECIPES[key](np.random.default_rng(seed))
    peak = np.abs(signal).max()
    scaled = signal / peak * 0.8 if peak > 0 else signal
    with atomic.atomic_open(path, "wb") as handle:
        sf.write(handle, scaled.astype(np.float32), SR, format="WAV", subtype="PCM_16")


def _write_csv(path: Path, frame: pd.DataFrame) -> None:
    with atomic.atomic_open(path, "w", newline="") as handle:
        frame.to_csv(handle, index=False)


def make_demo(out_dir: str | os.PathLike[str], *, n_per_class: int = 20, n_eval_per_class: int = 5,
              seed: int = 2026, job: Job | None = None) -> DemoPaths:
    """Write the synthetic dataset, the demo evaluation folder and its truth under ``out_dir``.

    Deterministic for a given ``seed``; existing audio files are left as they are, so a rerun
    reuses the embeddings already extracted.
    """
    root = Path(out_dir).absolute()
    paths = DemoPaths(root, root / DEV_NAME, root / EVAL_NAME, root / f"{EVAL_NAME}-truth.csv")
    for folder in (paths.dataset, paths.evaluation):
        (folder / "audio").mkdir(parents=True, exist_ok=True)
        (folder / "metadata").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    keys = list(taxonomy.CLASS_KEYS)
    total = len(keys) * (n_per_class + n_eval_per_class)
    sound_ids = rng.choice(np.arange(100_000, 1_000_000), size=total, replace=False)
    dev_rows, eval_rows, truth_rows = [], [], []
    done = 0
    for key in keys:
        for k in range(n_per_class + n_eval_per_class):
            jobs.check(job)
            signal_seed = [seed, taxonomy.CLASS_INDEX[key], k]
            rng_text = np.random.default_rng([*signal_seed, 1])
            text = _text_fields(rng_text, key)
            if k < n_per_class:
                sound_id = str(sound_ids[done])
                _write_clip(paths.dataset / "audio" / f"{sound_id}.wav", key, signal_seed)
                cls = taxonomy.BY_KEY[key]
                dev_rows.append({"sound_id": sound_id, "class": key, "class_idx": cls.class_idx,
                                 "class_top": cls.top, "confidence": int(rng_text.integers(3, 6)),
                                 "uploader": f"synth{int(rng_text.integers(1, 40))}",
                                 "license": "http://creativecommons.org/publicdomain/zero/1.0/", **text})
            else:
                anonymous_id = str(uuid.UUID(bytes=rng_text.bytes(16), version=4))
                _write_clip(paths.evaluation / "audio" / f"{anonymous_id}.wav", key, signal_seed)
                eval_rows.append({"anonymous_id": anonymous_id, **text})
                truth_rows.append({"id": anonymous_id, "class": key})
            done += 1
            jobs.report(job, "synthesize", done, total, key)
    # As in the real evaluation set: one audio file is empty (0 bytes); its text still counts.
    (paths.evaluation / "audio" / f"{eval_rows[0]['anonymous_id']}.wav").write_bytes(b"")
    _write_csv(paths.dataset / "metadata" / "BSD10k_metadata.csv", pd.DataFrame(dev_rows))
    _write_csv(paths.evaluation / "metadata" / "BSD2k_metadata.csv", pd.DataFrame(eval_rows))
    _write_csv(paths.truth_csv, pd.DataFrame(truth_rows))
    notice = ("SYNTHETIC DEMO DATA made by `bst demo` (bst_core.demo): every sound is synthesized from a "
              "per-class recipe; titles and tags are generated and partly noisy. Not BSD10k, not "
              "real recordings; numbers obtained on it say nothing about the real task.\n")
    for folder in (paths.dataset, paths.evaluation):
        atomic.write_text(folder / "README.txt", notice)
        atomic.write_text(folder / SYNTHETIC_MARKER, notice)
    return paths


# ---------------------------------------------------------------------- the whole workflow
@dataclass
class DemoResult:
    """What :func:`run_demo` did; :meth:`format` is what ``bst demo`` prints."""

    paths: DemoPaths
    dev_extraction: ExtractSummary
    eval_extraction: ExtractSummary
    cross_validation: CrossValResult
    package: Path
    eval_report: MetricReport       # the package's predictions scored against the hidden truth
    seconds: float = 0.0

    def format(self) -> str:
        cv = self.cross_validation
        lines = [
            "BST Studio demo on SYNTHETIC sounds (offline encoder, not CLAP): the numbers show that "
            "the workflow runs, not how well the real task is solved.",
            f"data: {self.paths.root}",
            f"extract {self.paths.dataset.name}: {self.dev_extraction.format()}",
            f"extract {self.paths.evaluation.name}: {self.eval_extraction.format()}",
            "",
            format_table(cv.fold_reports, title=f"cross-validation on {self.paths.dataset.name} ({cv.run_dir})"),
            "",
            format_table(self.eval_report, title=f"{self.paths.evaluation.name} scored against its hidden "
                                                 f"truth ({self.paths.truth_csv.name})"),
            "",
            f"submission package (validated): {self.package}",
            f"demo took {self.seconds:.0f} s",
        ]
        return "\n".join(lines)


@contextlib.contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    """Run torch on ``n`` threads, then restore. The demo's model sees ~10 small batches per epoch:
    one thread is as fast as two on an idle 2-core machine and several times faster on a busy one
    (measured: 10 epochs 7 s on one thread, 54 s on two, with other jobs running)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def demo_train_config() -> TrainConfig:
    """Cross-validation sized for the demo: 5 folds, at most 30 epochs, batches of 32 (a few
    hundred clips give only ~10 steps per epoch), early stop after 8 epochs without gain."""
    return TrainConfig(folds=5, epochs=30, batch_size=32, patience=8, seed=1821)


def demo_store(paths: DemoPaths, corpus_root: Path) -> Path:
    """The demo keeps its offline stores beside its data: ``<demo>/stores/<folder>-offline``."""
    return paths.root / "stores" / f"{corpus_root.name}-offline"


def prepare_demo(out_dir: str | os.PathLike[str], *, job: Job | None = None) -> tuple[DemoPaths, Corpus]:
    """Write the demo data (if needed) and open its dataset with offline embeddings (extracting
    what is missing). What the app's "Try the demo" opens."""
    from bst_core import pipeline

    paths = make_demo(out_dir, job=job)
    corpus = pipeline.open_source(paths.dataset, job=job)
    extracted = pipeline.extract(corpus, encoder="offline", store=demo_store(paths, paths.dataset), job=job)
    return paths, extracted.corpus


def run_demo(out_dir: str | os.PathLike[str] = "demo_out", *, n_per_class: int = 20,
             n_eval_per_class: int = 5, config: TrainConfig | None = None,
             job: Job | None = None) -> DemoResult:
    """Synthesize, extract offline embeddings, cross-validate, predict, package and score."""
    from bst_core import pipeline
    from bst_core.submission import read_truth_csv

    started = time.monotonic()

    paths = make_demo(out_dir, n_per_class=n_per_class, n_eval_per_class=n_eval_per_class, job=job)
    dev = pipeline.extract(pipeline.open_source(paths.dataset, job=job), encoder="offline",
                           store=demo_store(paths, paths.dataset), job=job)
    evaluation = pipeline.extract(pipeline.open_source(paths.evaluation, job=job), encoder="offline",
                                  store=demo_store(paths, paths.evaluation), job=job)
    run_dir = paths.root / "run"
    with _torch_threads(1):
        cv = pipeline.cross_validate(dev.corpus, run_dir, config or demo_train_config(), job=job)
        predictions = pipeline.predict(run_dir, evaluation.corpus, job=job)
        package = pipeline.export(run_dir, evaluation.corpus, DEMO_LABEL, paths.root / "submission",
                                  predictions=predictions, job=job)
    truth = read_truth_csv(paths.truth_csv)
    report = pipeline.score(predictions, pd.Series(truth["class"].astype(str).to_numpy(),
                                                   index=truth["id"].astype(str)), source=str(paths.truth_csv))
    return DemoResult(paths, dev.summary, evaluation.summary, cv, package, report, time.monotonic() - started)
