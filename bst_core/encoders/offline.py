"""The offline encoder: fixed, documented features that need no model and no download.

It exists so BST Studio works on a fresh machine (the demo, a first look at a folder of sounds)
when LAION-CLAP is not installed. It is a hand-made feature extractor, not CLAP, and every store
and model made with it says so (:data:`OFFLINE_ENCODER`, "offline-logmel-ngram"). Its vectors
are deterministic: the same input gives the same vector (bit for bit with the same library
versions; float32 rounding may differ in the last digits across CPUs or versions).

Audio (:data:`AUDIO_DIM` = 192) at 22,050 Hz, first 30 s of a file, STFT with a 1024-point Hann
window and a 512-sample hop, 32 mel bands (30 Hz to 11,025 Hz):

====================  =====  =================================================================
block                 dims   content (statistics are over the frames of the clip)
====================  =====  =================================================================
logmel_mean             32   mean log-mel energy per band (dB re. full scale, scaled)
logmel_std              32   its standard deviation over time
logmel_p10              32   10th percentile per band (the quiet floor)
logmel_p90              32   90th percentile per band (the loud parts)
logmel_delta            32   mean absolute frame-to-frame change per band (texture, rhythm)
spectral               24   mean, std, p10, p90 of six frame descriptors: spectral centroid and
                             85 % roll-off (fractions of Nyquist), flatness of the mel spectrum,
                             spectral flux (mean rise of log-mel), zero-crossing rate, RMS (dB)
envelope                 7   RMS envelope shape: peak position, attack time, decay time,
                             active fraction, crest factor, temporal centroid, onset rate
duration                 1   log duration of the decoded clip
====================  =====  =================================================================

Each value has a fixed, data-independent scale (dB / 20, log seconds, ...) so no block dominates;
the whole vector is then L2-normalised.

Text (:data:`TEXT_DIM` = 512) from :func:`bst_core.text.text_for`: signed feature hashing
(scikit-learn's ``HashingVectorizer``, MurmurHash3, stable across runs unlike Python's ``hash``)
of lower-cased word unigrams + bigrams into 256 buckets and of character 3- to 5-grams within
word boundaries into 256 buckets; bucket values v become sign(v)·log(1 + |v|) (sublinear term
frequency), each half is L2-normalised and the two halves are scaled by 1/√2, so a non-empty text
has norm 1. An empty text gives the zero vector.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property

import numpy as np
import scipy.fft
from sklearn.feature_extraction.text import HashingVectorizer

from bst_core.corpus import EncoderInfo

SAMPLE_RATE = 22_050
MAX_SECONDS = 30.0
N_FFT = 1024
HOP = 512
N_MELS = 32
F_MIN = 30.0
AUDIO_DIM = 192
TEXT_DIM = 512
WORD_BUCKETS = 256
CHAR_BUCKETS = TEXT_DIM - WORD_BUCKETS

OFFLINE_ENCODER = EncoderInfo("offline-logmel-ngram", "1", AUDIO_DIM, TEXT_DIM)
"""Identity recorded in stores and models made with :class:`OfflineEncoder`."""

AUDIO_LAYOUT: tuple[tuple[str, int], ...] = (
    ("logmel_mean", N_MELS), ("logmel_std", N_MELS), ("logmel_p10", N_MELS), ("logmel_p90", N_MELS),
    ("logmel_delta", N_MELS), ("spectral", 24), ("envelope", 7), ("duration", 1),
)
"""Blocks of the audio vector in order, with their sizes (see the module docstring)."""

TEXT_LAYOUT: tuple[tuple[str, int], ...] = (
    ("word_1_2_grams", WORD_BUCKETS), ("char_3_5_grams", CHAR_BUCKETS),
)
"""Blocks of the text vector in order, with their sizes."""

_DB_FLOOR = -100.0
_DB_OFFSET = 50.0   # shifts typical levels (-100..0 dB) to about -50..50 before / _DB_SCALE
_DB_SCALE = 20.0
_EPS = 1e-10


def mel_filterbank(sr: int = SAMPLE_RATE, n_fft: int = N_FFT, n_mels: int = N_MELS,
                   f_min: float = F_MIN, f_max: float | None = None) -> np.ndarray:
    """Triangular filters on the HTK mel scale, ``(n_fft // 2 + 1, n_mels)``, unit peak."""
    f_max = sr / 2 if f_max is None else f_max
    to_mel = lambda f: 2595.0 * np.log10(1.0 + np.asarray(f) / 700.0)  # noqa: E731
    edges_hz = 700.0 * (10 ** (np.linspace(to_mel(f_min), to_mel(f_max), n_mels + 2) / 2595.0) - 1.0)
    bins_hz = np.fft.rfftfreq(n_fft, 1.0 / sr)
    lower, centre, upper = edges_hz[:-2], edges_hz[1:-1], edges_hz[2:]
    rising = (bins_hz[:, None] - lower) / (centre - lower)
    falling = (upper - bins_hz[:, None]) / (upper - centre)
    return np.maximum(0.0, np.minimum(rising, falling))


def _frames(clip: np.ndarray) -> np.ndarray:
    """Overlapping frames ``(T, N_FFT)`` of a clip (zero-padded to at least one frame)."""
    x = np.asarray(clip, dtype=np.float32)
    if len(x) < N_FFT:
        x = np.pad(x, (0, N_FFT - len(x)))
    return np.lib.stride_tricks.sliding_window_view(x, N_FFT)[::HOP]


def _stats(values: np.ndarray) -> np.ndarray:
    """mean, std, p10, p90 over axis 0 of ``(T, k)``, concatenated to ``(4k,)``."""
    p10, p90 = np.percentile(values, [10, 90], axis=0)
    return np.concatenate([values.mean(axis=0), values.std(axis=0), p10, p90])


def _db(power: np.ndarray) -> np.ndarray:
    return np.maximum(10.0 * np.log10(power + _EPS), _DB_FLOOR)


class OfflineEncoder:
    """Log-mel + spectral statistics for audio, hashed n-grams for text (see the module doc)."""

    info = OFFLINE_ENCODER
    sample_rate = SAMPLE_RATE
    max_seconds: float | None = MAX_SECONDS

    def __init__(self) -> None:
        self._window = np.hanning(N_FFT).astype(np.float32)
        # Power normalisation: a full-scale sine reads about 0 dB in its band.
        self._power_scale = 4.0 / float(self._window.sum()) ** 2
        self._mel = mel_filterbank().astype(np.float32)
        freqs = np.fft.rfftfreq(N_FFT, 1.0 / SAMPLE_RATE)
        self._bin_fraction = (freqs / (SAMPLE_RATE / 2)).astype(np.float32)

    # ------------------------------------------------------------------ audio
    def embed_audio(self, clips: Sequence[np.ndarray]) -> np.ndarray:
        """``(n, 192)`` float32, each row L2-normalised; clips are mono float32 at 22,050 Hz."""
        out = np.zeros((len(clips), AUDIO_DIM), np.float32)
        for i, clip in enumerate(clips):
            out[i] = self._audio_vector(np.asarray(clip, dtype=np.float32)[: int(MAX_SECONDS * SAMPLE_RATE)])
        return out

    def _audio_vector(self, clip: np.ndarray) -> np.ndarray:
        frames = _frames(clip)
        spectrum = scipy.fft.rfft(frames * self._window, axis=1)   # float32 FFT: ~9x numpy's here
        power = spectrum.real ** 2 + spectrum.imag ** 2
        power *= self._power_scale
        mel = power @ self._mel
        logmel = _db(mel)                                                 # (T, 32) dB
        scaled = (logmel + _DB_OFFSET) / _DB_SCALE
        delta = np.abs(np.diff(scaled, axis=0)) if len(scaled) > 1 else np.zeros_like(scaled)

        total = power.sum(axis=1)
        safe_total = np.maximum(total, _EPS)
        centroid = (power @ self._bin_fraction) / safe_total
        cumulative = np.cumsum(power, axis=1)
        rolloff = self._bin_fraction[np.argmax(cumulative >= 0.85 * cumulative[:, -1:], axis=1)]
        rolloff = np.where(total > _EPS, rolloff, 0.0)
        flatness = np.exp(np.log(mel + _EPS).mean(axis=1)) / (mel.mean(axis=1) + _EPS)
        flux = np.concatenate([[0.0], np.maximum(np.diff(scaled, axis=0), 0).mean(axis=1)])
        signs = np.signbit(frames)
        zcr = (signs[:, 1:] != signs[:, :-1]).mean(axis=1)
        rms = np.sqrt(np.einsum("ij,ij->i", frames, frames) / N_FFT)
        rms_db = np.maximum(20.0 * np.log10(rms + _EPS), _DB_FLOOR)
        descriptors = np.stack([centroid, rolloff, flatness, flux, zcr,
                                (rms_db + _DB_OFFSET) / _DB_SCALE], axis=1)

        duration = len(clip) / SAMPLE_RATE
        vector = np.concatenate([
            scaled.mean(axis=0), scaled.std(axis=0),
            *np.percentile(scaled, [10, 90], axis=0),
            delta.mean(axis=0),
            _stats(descriptors),
            self._envelope(rms, rms_db),
            [np.log(max(duration, 1e-3)) / 3.0],
        ]).astype(np.float32)
        norm = float(np.linalg.norm(vector))
        return vector / norm if norm > 0 else vector

    @staticmethod
    def _envelope(rms: np.ndarray, rms_db: np.ndarray) -> np.ndarray:
        """Seven shape values of the frame-RMS envelope (times as log seconds / 3)."""
        n = len(rms)
        frame_s = HOP / SAMPLE_RATE
        peak_at = int(np.argmax(rms))
        peak = rms[peak_at]
        if peak <= 0:
            return np.zeros(7)
        active = rms >= 0.1 * peak
        first_active = int(np.argmax(active))
        after = np.flatnonzero(~active[peak_at:])
        decay_frames = int(after[0]) if len(after) else n - peak_at
        attack_s = (peak_at - first_active) * frame_s
        decay_s = decay_frames * frame_s
        crest_db = rms_db[peak_at] - rms_db.mean()
        temporal_centroid = float((np.arange(n) * rms).sum() / rms.sum()) / n
        onsets = np.count_nonzero(np.diff(rms_db) > 6.0) / (n * frame_s)
        return np.array([
            peak_at / n,
            np.log(attack_s + 1e-2) / 3.0,
            np.log(decay_s + 1e-2) / 3.0,
            active.mean(),
            crest_db / _DB_SCALE,
            temporal_centroid,
            np.log1p(onsets) / 2.0,
        ])

    # ------------------------------------------------------------------ text
    @cached_property
    def _vectorizers(self) -> tuple[HashingVectorizer, HashingVectorizer]:
        common = {"alternate_sign": True, "norm": None, "lowercase": True, "strip_accents": "unicode",
                  "dtype": np.float32}
        words = HashingVectorizer(n_features=WORD_BUCKETS, analyzer="word", ngram_range=(1, 2),
                                  token_pattern=r"(?u)\b\w+\b", **common)
        chars = HashingVectorizer(n_features=CHAR_BUCKETS, analyzer="char_wb", ngram_range=(3, 5), **common)
        return words, chars

    def embed_text(self, texts: Sequence[str]) -> np.ndarray:
        """``(n, 512)`` float32: hashed word and character n-grams, norm 1 (0 for empty text)."""
        texts = [str(t) for t in texts]
        if not texts:
            return np.zeros((0, TEXT_DIM), np.float32)
        halves = []
        for vectorizer in self._vectorizers:
            counts = vectorizer.transform(texts).toarray()
            sublinear = np.sign(counts) * np.log1p(np.abs(counts))
            norms = np.linalg.norm(sublinear, axis=1, keepdims=True)
            halves.append(np.divide(sublinear, norms, out=np.zeros_like(sublinear), where=norms > 0))
        return (np.concatenate(halves, axis=1) / np.sqrt(2.0)).astype(np.float32)
