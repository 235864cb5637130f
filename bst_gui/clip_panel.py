"""The selected clip: waveform, spectrogram, text, class probabilities and attention weights.

Audio is decoded and analysed off the UI thread (:class:`ClipLoader`, a QThreadPool) and kept in
an LRU cache by path, so moving back to a clip is instant.
"""

from __future__ import annotations

import html
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyqtgraph as pg
from PySide6.QtCore import QObject, QPointF, QRectF, QRunnable, Qt, QThreadPool, Signal
from PySide6.QtGui import QColor, QFont, QIcon, QPainter, QPaintEvent, QPixmap, QTextDocumentFragment
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFrame,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QScrollArea,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from bst_core import audio, taxonomy
from bst_core.predictions import TEXT_ONLY
from bst_gui import style

PLAY_MAX_S = 600.0
"""Longest stretch of a file decoded for listening and display (the rest is not shown)."""
CACHE_BYTES = 256 * 1024 * 1024
ENVELOPE_POINTS = 1600
TOP_GUESSES = 3
SPECTROGRAM_ROWS = 160
SPECTROGRAM_RANGE_DB = 80.0
EXPLAIN_ROW_PX = 22


@dataclass(frozen=True)
class ClipData:
    """A decoded clip ready to show and play (``samples`` empty when it failed)."""

    path: str
    samples: np.ndarray
    sr: int
    duration_s: float
    env_times: np.ndarray
    env_min: np.ndarray
    env_max: np.ndarray
    spec_db: np.ndarray | None     # (log-spaced frequencies, frames), dB
    spec_top_hz: float
    status: str
    reason: str = ""
    warning: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def nbytes(self) -> int:
        return int(self.samples.nbytes + (self.spec_db.nbytes if self.spec_db is not None else 0))

    @property
    def shown_s(self) -> float:
        """Seconds of audio decoded (what the plots and the playhead cover)."""
        return len(self.samples) / self.sr if self.sr else 0.0


def log_frequency(db: np.ndarray, sr: int, rows: int = SPECTROGRAM_ROWS, fmin: float = 40.0) -> np.ndarray:
    """Resample a linear-frequency spectrogram ``(bins, frames)`` onto ``rows`` log-spaced
    frequencies from ``fmin`` to Nyquist (linear interpolation between bins), for display."""
    bins = db.shape[0]
    if bins < 2:
        return db
    nyquist = sr / 2
    targets = np.geomspace(min(fmin, nyquist / 2), nyquist, rows)
    position = targets / nyquist * (bins - 1)
    low = np.clip(np.floor(position).astype(int), 0, bins - 2)
    weight = (position - low)[:, None]
    return (db[low] * (1 - weight) + db[low + 1] * weight).astype(np.float32)


def load_clip(path: str, samplerate: int) -> ClipData:
    """Decode ``path`` at ``samplerate`` and compute the envelope and spectrogram (any thread)."""
    decoded = audio.decode(path, samplerate, max_seconds=PLAY_MAX_S)
    if not decoded.ok:
        empty = np.zeros(0, np.float32)
        return ClipData(path, empty, samplerate, 0.0, empty, empty, empty, None, 0.0, "failed", decoded.reason)
    samples = decoded.samples
    times, mins, maxs = audio.envelope(samples, decoded.sr, ENVELOPE_POINTS)
    _freqs, _frames, db = audio.spectrogram(samples, decoded.sr)
    return ClipData(path, samples, decoded.sr, decoded.duration_s, times, mins, maxs,
                    log_frequency(db, decoded.sr), decoded.sr / 2, "ok", "", decoded.warning)


class _Relay(QObject):
    done = Signal(str, object)


class _LoadTask(QRunnable):
    def __init__(self, path: str, samplerate: int, relay: _Relay) -> None:
        super().__init__()
        self.path, self.samplerate, self.relay = path, samplerate, relay

    def run(self) -> None:
        try:
            data = load_clip(self.path, self.samplerate)
        except Exception as exc:  # never let a worker die silently: the panel shows the reason
            empty = np.zeros(0, np.float32)
            data = ClipData(self.path, empty, self.samplerate, 0.0, empty, empty, empty, None, 0.0,
                            "failed", f"could not be analysed ({exc})")
        self.relay.done.emit(self.path, data)


class ClipLoader(QObject):
    """Loads clips in a thread pool; ``loaded(path, ClipData)`` on the UI thread; LRU by bytes."""

    loaded = Signal(str, object)

    def __init__(self, samplerate: int, parent: QObject | None = None, *, cache_bytes: int = CACHE_BYTES) -> None:
        super().__init__(parent)
        self.samplerate = samplerate
        self.cache_bytes = cache_bytes
        self._cache: OrderedDict[str, ClipData] = OrderedDict()
        self._in_flight: set[str] = set()
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(2)
        self._relay = _Relay()
        self._relay.done.connect(self._done)

    def cached(self, path: str) -> ClipData | None:
        data = self._cache.get(path)
        if data is not None:
            self._cache.move_to_end(path)
        return data

    def request(self, path: str) -> ClipData | None:
        """The cached clip, or None after queueing its load (``loaded`` follows)."""
        data = self.cached(path)
        if data is None and path not in self._in_flight:
            self._in_flight.add(path)
            self._pool.start(_LoadTask(path, self.samplerate, self._relay))
        return data

    def _done(self, path: str, data: ClipData) -> None:
        self._in_flight.discard(path)
        self._cache[path] = data
        while sum(d.nbytes for d in self._cache.values()) > self.cache_bytes and len(self._cache) > 1:
            self._cache.popitem(last=False)
        self.loaded.emit(path, data)

    def wait(self, timeout_ms: int = 10000) -> bool:
        return self._pool.waitForDone(timeout_ms)


class AttentionBar(QWidget):
    """Two segments, audio and text, sized by the fusion attention weights."""

    AUDIO = "#5aa9e6"
    TEXT = "#e6a15a"

    NO_WEIGHTS = "—  (only the ensemble predictions of an audio + text run have attention weights)"

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.weights: tuple[float, float] | None = None
        self.note = self.NO_WEIGHTS
        self.setMinimumHeight(22)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)

    def set_weights(self, weights: np.ndarray | None, note: str = "") -> None:
        """Show ``weights`` [audio, text]; with None, ``note`` (or the default) says why there are none."""
        self.weights = None if weights is None or np.isnan(weights).any() else (float(weights[0]),
                                                                                 float(weights[1]))
        self.note = note or self.NO_WEIGHTS
        self.update()

    def paintEvent(self, _event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        rect = self.rect().adjusted(0, 2, -1, -2)
        if self.weights is None:
            painter.setPen(QColor(style.MUTED))
            painter.drawText(rect, Qt.AlignmentFlag.AlignVCenter, self.note)
            return
        audio_w, text_w = self.weights
        total = audio_w + text_w or 1.0
        split = rect.left() + round(rect.width() * audio_w / total)
        painter.fillRect(QRectF(rect.left(), rect.top(), split - rect.left(), rect.height()), QColor(self.AUDIO))
        painter.fillRect(QRectF(split, rect.top(), rect.right() - split, rect.height()), QColor(self.TEXT))
        painter.setPen(QColor("#111111"))
        font = QFont(painter.font())
        font.setBold(True)
        painter.setFont(font)
        pad = rect.adjusted(6, 0, -6, 0)
        painter.drawText(pad, Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft,
                         f"audio {audio_w / total:.0%}")
        painter.drawText(pad, Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignRight,
                         f"text {text_w / total:.0%}")


def text_only_reason(status: str) -> str:
    """Why an item's audio was not used ("empty file" of "text only: empty file"); "" when it was."""
    if not status.startswith(TEXT_ONLY):
        return ""
    return status[len(TEXT_ONLY):].lstrip(": ").strip() or "not decoded"


def plain_text(text: str) -> str:
    """Freesound descriptions hold HTML (``<b>``, ``<a href>``, ``<br>``): show the words only."""
    text = text.strip()
    if ("<" in text and ">" in text) or "&" in text:
        text = QTextDocumentFragment.fromHtml(text).toPlainText().strip()
    return text


def chip(key: str) -> str:
    """HTML of a class key on its BST colour."""
    if not key:
        return f"<span style='color:{style.MUTED}'>—</span>"
    background = taxonomy.colour(key)
    return (f"<span style='background:{background}; color:{style.readable_text(background)};'>"
            f"&nbsp;{html.escape(key)}&nbsp;</span>")


def guesses_html(probs: np.ndarray, k: int = TOP_GUESSES) -> str:
    """The top ``k`` classes in words: chip, name, probability, then what the class holds."""
    lines = []
    for i in np.argsort(-probs)[:k]:
        cls = taxonomy.classes()[int(i)]
        lines.append(
            f"<p style='margin:0 0 5px 0'>{chip(cls.key)} <b>{html.escape(cls.name)}</b> "
            f"<span style='color:{style.TEXT}'>{probs[i]:.0%}</span><br>"
            f"<span style='color:{style.MUTED}'>{html.escape(cls.top_name)}: {html.escape(cls.examples)}</span></p>")
    return "".join(lines)


def _plot(height: int) -> pg.PlotWidget:
    plot = pg.PlotWidget(background=style.PLOT_BACKGROUND)
    plot.setFixedHeight(height)
    plot.setMenuEnabled(False)
    plot.setMouseEnabled(x=False, y=False)
    plot.hideButtons()
    item = plot.getPlotItem()
    item.hideAxis("left")
    item.hideAxis("bottom")
    item.getViewBox().setDefaultPadding(0.0)
    return plot


def _chip_icon(key: str, size: int = 12) -> QIcon:
    pixmap = QPixmap(size, size)
    pixmap.fill(QColor(taxonomy.colour(key)) if key in taxonomy.BY_KEY else QColor(style.MUTED))
    return QIcon(pixmap)


class ClipPanel(QWidget):
    """Everything about the current clip; ``seek_requested(seconds)`` on a click in the plots.

    "Why this label" lists the training clips nearest in the model's own space (filled by the
    window's analysis: :meth:`show_explanation`); ``explain_play(id)`` on a click,
    ``explain_open(id)`` on a double click.
    """

    seek_requested = Signal(float)
    explain_play = Signal(str)
    explain_open = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.clip_id = ""
        self.data: ClipData | None = None

        self.title = QLabel("No clip selected")
        self.title.setObjectName("heading")
        self.title.setWordWrap(True)
        self.title.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.facts = QLabel()
        self.facts.setObjectName("muted")
        self.facts.setWordWrap(True)
        self.labels = QLabel()
        self.labels.setTextFormat(Qt.TextFormat.RichText)
        self.audio_state = QLabel()
        self.audio_state.setWordWrap(True)

        self.waveform = _plot(84)
        # one vertical min→max stroke per envelope point (denser than the pixels: reads as filled)
        self._wave = pg.PlotCurveItem(pen=pg.mkPen(style.WAVEFORM, width=1))
        self.waveform.addItem(self._wave)
        self.waveform.setYRange(-1, 1)
        self.spectrogram = _plot(110)
        self._image = pg.ImageItem(axisOrder="row-major")
        self._image.setColorMap(pg.colormap.get("inferno"))
        self.spectrogram.addItem(self._image)
        self._playheads = []
        for plot in (self.waveform, self.spectrogram):
            line = pg.InfiniteLine(pos=0, angle=90, pen=pg.mkPen(style.PLAYHEAD, width=1.5))
            line.setZValue(10)
            plot.addItem(line)
            self._playheads.append(line)
            plot.scene().sigMouseClicked.connect(lambda event, p=plot: self._clicked(p, event))

        self.caption = QLabel()
        self.caption.setObjectName("muted")
        self.caption.setWordWrap(True)
        self.text_only = QLabel()
        self.text_only.setObjectName("notice")
        self.text_only.setWordWrap(True)
        self.guesses = QLabel()
        self.guesses.setTextFormat(Qt.TextFormat.RichText)
        self.guesses.setWordWrap(True)
        self.bars = self._probability_plot()
        self.explain_note = QLabel()
        self.explain_note.setObjectName("muted")
        self.explain_note.setWordWrap(True)
        self.explain_list = QListWidget()
        self.explain_list.setObjectName("explainList")
        self.explain_list.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.explain_list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.explain_list.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.explain_list.setUniformItemSizes(True)
        self.explain_list.itemClicked.connect(
            lambda item: self.explain_play.emit(str(item.data(Qt.ItemDataRole.UserRole))))
        self.explain_list.itemDoubleClicked.connect(
            lambda item: self.explain_open.emit(str(item.data(Qt.ItemDataRole.UserRole))))
        self.explain_list.hide()
        self.attention = AttentionBar()
        self.tags = QLabel()
        self.tags.setWordWrap(True)
        self.tags.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.description = QLabel()
        self.description.setWordWrap(True)
        self.description.setTextFormat(Qt.TextFormat.PlainText)
        self.description.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.description.setObjectName("muted")

        content = QWidget()
        layout = QVBoxLayout(content)
        layout.setContentsMargins(10, 8, 10, 8)
        layout.setSpacing(6)
        layout.addWidget(self.title)
        layout.addWidget(self.facts)
        layout.addWidget(self.labels)
        layout.addWidget(self.waveform)
        layout.addWidget(self.spectrogram)
        layout.addWidget(self.audio_state)
        layout.addWidget(self._section("Top guesses"))
        layout.addWidget(self.caption)
        layout.addWidget(self.text_only)
        layout.addWidget(self.guesses)
        layout.addWidget(self._section("Why this label: nearest training clips"))
        layout.addWidget(self.explain_note)
        layout.addWidget(self.explain_list)
        layout.addWidget(self._section("Attention: audio vs text"))
        layout.addWidget(self.attention)
        layout.addWidget(self._section("Tags"))
        layout.addWidget(self.tags)
        layout.addWidget(self._section("Description"))
        layout.addWidget(self.description)
        layout.addWidget(self._section("Class probabilities"))
        layout.addWidget(self.bars)
        layout.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setWidget(content)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(scroll)
        self.show_record(None)

    @staticmethod
    def _section(text: str) -> QLabel:
        label = QLabel(text.upper())
        label.setObjectName("muted")
        font = label.font()
        font.setPointSizeF(max(7.0, font.pointSizeF() - 1))
        font.setBold(True)
        label.setFont(font)
        label.setContentsMargins(0, 6, 0, 0)
        return label

    def _probability_plot(self) -> pg.PlotWidget:
        plot = pg.PlotWidget(background=style.PLOT_BACKGROUND)
        n = taxonomy.NUM_CLASSES
        plot.setFixedHeight(14 * n + 30)
        plot.setMenuEnabled(False)
        plot.setMouseEnabled(x=False, y=False)
        plot.hideButtons()
        item = plot.getPlotItem()
        item.invertY(True)
        left = item.getAxis("left")
        left.setTicks([[(i, k) for i, k in enumerate(taxonomy.CLASS_KEYS)]])
        left.setStyle(tickLength=0)
        left.setTextPen(pg.mkPen(style.MUTED))
        left.setWidth(42)
        bottom = item.getAxis("bottom")
        bottom.setTicks([[(x, f"{x:.0%}") for x in (0, 0.25, 0.5, 0.75, 1.0)]])
        bottom.setTextPen(pg.mkPen(style.MUTED))
        item.setXRange(0, 1, padding=0.02)
        item.setYRange(-0.6, n - 0.4, padding=0)
        brushes = [pg.mkBrush(c.colour) for c in taxonomy.classes()]
        self._bar_item = pg.BarGraphItem(x0=np.zeros(n), y=np.arange(n), height=0.72, width=np.zeros(n),
                                         brushes=brushes, pen=pg.mkPen(None))
        plot.addItem(self._bar_item)
        return plot

    # --- content ---------------------------------------------------------------------------------

    def show_record(self, record: pd.Series | None, probs: np.ndarray | None = None,
                    attention: np.ndarray | None = None, caption: str = "") -> None:
        """Text, labels, probabilities and attention of a library row (None: nothing selected).

        ``caption`` says which predictions these are (``Session.prediction_caption()``). A row whose
        ``audio`` status is "text only: <reason>" was predicted from its text alone: the panel says
        so and makes no claim about audio attention (the core gives such items no audio weight).
        """
        if record is None or str(record["id"]) != self.clip_id:
            self.show_explanation(None)       # never an explanation of another clip
        if record is None:
            self.clip_id = ""
            self.title.setText("No clip selected")
            self.facts.setText("Select a sound in the list. Space plays it, Up/Down move.")
            self.labels.setText("")
            self.tags.setText("")
            self.description.setText("")
            self._set_caption("", "")
            self.set_probabilities(None, "")
            self.attention.set_weights(None)
            self.show_audio(None)
            return
        self.clip_id = str(record["id"])
        self.title.setText(str(record["title"]) or self.clip_id)
        duration = record["duration_s"]
        facts = [f"id {self.clip_id}"]
        if duration == duration and duration is not None:
            facts.append(audio.format_duration(float(duration)))
        facts.append(str(record["status"]))
        self.facts.setText("  ·  ".join(facts))
        score = record["score"]
        parts = [f"Truth {chip(str(record['truth']))}",
                 f"Prediction {chip(str(record['prediction']))}"
                 + (f" <span style='color:{style.MUTED}'>{score:.2f}</span>" if score == score else "")]
        if record["edited"]:
            parts.append(f"Edited {chip(str(record['edited']))}")
        self.labels.setText("&nbsp;&nbsp;&nbsp;".join(parts))
        self.tags.setText(str(record.get("tags", "")) or "—")
        description = plain_text(str(record.get("description", "")))
        self.description.setText(description[:800] + ("…" if len(description) > 800 else "") or "—")
        reason = text_only_reason(str(record.get("audio", "")))
        self._set_caption(caption if probs is not None else "", reason, predicted=probs is not None)
        self.set_probabilities(probs, str(record["truth"]))
        if reason:
            self.attention.set_weights(None, "—  no audio attention: predicted from the text only")
        else:
            self.attention.set_weights(attention)

    def show_explanation(self, neighbours: pd.DataFrame | None, note: str = "") -> None:
        """The training clips nearest to this clip (``id, similarity, label, title``, best first) under
        ``note``; None shows the note alone (why there is no list, or that it is being computed)."""
        self.explain_list.clear()
        self.explain_note.setText(note)
        self.explain_note.setVisible(bool(note))
        if neighbours is None or not len(neighbours):
            self.explain_list.hide()
            return
        for rec in neighbours.itertuples(index=False):
            label, title = str(rec.label), str(rec.title) or str(rec.id)
            item = QListWidgetItem(_chip_icon(label), f"{label:<6} {float(rec.similarity):.3f}   {title}")
            item.setData(Qt.ItemDataRole.UserRole, str(rec.id))
            cls = taxonomy.BY_KEY.get(label)
            item.setToolTip(f"{title}\nid {rec.id} · truth {label}" + (f" ({cls.name})" if cls else "")
                            + f" · similarity {float(rec.similarity):.3f}\nClick plays it; double-click goes to it.")
            self.explain_list.addItem(item)
        self.explain_list.setFixedHeight(EXPLAIN_ROW_PX * len(neighbours) + 6)
        self.explain_list.show()

    def explanation_ids(self) -> list[str]:
        """The ids listed under "Why this label", best first."""
        return [str(self.explain_list.item(k).data(Qt.ItemDataRole.UserRole)) for k in range(self.explain_list.count())]

    def _set_caption(self, caption: str, reason: str, *, predicted: bool = False) -> None:
        self.caption.setText(caption[:1].upper() + caption[1:] if caption else "")
        self.caption.setVisible(bool(caption))
        if reason:
            self.text_only.setText(f"Predicted from text only (audio: {reason})." if predicted else
                                   f"No audio embedding (audio: {reason}): the model predicts it from the text only.")
        self.text_only.setVisible(bool(reason))

    def set_probabilities(self, probs: np.ndarray | None, truth: str = "") -> None:
        n = taxonomy.NUM_CLASSES
        widths = np.zeros(n) if probs is None else np.nan_to_num(np.asarray(probs, dtype=float))
        pens = [pg.mkPen("#ffffff", width=1.5) if k == truth else pg.mkPen(None) for k in taxonomy.CLASS_KEYS]
        self._bar_item.setOpts(width=widths, pens=pens)
        if probs is None:
            self.guesses.setText(f"<span style='color:{style.MUTED}'>No prediction yet: cross-validate or "
                                 "predict with a run (Analysis menu).</span>")
        else:
            self.guesses.setText(guesses_html(widths))

    def show_audio(self, data: ClipData | None, *, loading: bool = False, note: str = "") -> None:
        """Waveform and spectrogram of ``data``; ``loading``/``note`` explain an empty view."""
        self.data = data
        self.set_playhead(0.0)
        if data is None or not data.ok:
            self._wave.setData([], [])
            self._image.clear()
            if data is not None:
                self._set_audio_state(f"Cannot play this file: {data.reason}.", "error")
            elif loading:
                self._set_audio_state("Loading audio…", "muted")
            else:
                self._set_audio_state(note, "muted")
            return
        strokes = np.empty(2 * len(data.env_min), dtype=np.float32)
        strokes[0::2], strokes[1::2] = data.env_min, data.env_max
        self._wave.setData(np.repeat(data.env_times, 2), strokes, connect="pairs")
        peak = float(max(np.abs(data.env_min).max(initial=0), np.abs(data.env_max).max(initial=0), 1e-3))
        self.waveform.setYRange(-peak, peak, padding=0.05)
        self.waveform.setXRange(0, max(data.shown_s, 1e-3), padding=0)
        if data.spec_db is not None and data.spec_db.size:
            top = float(data.spec_db.max())
            rows = data.spec_db.shape[0]
            self._image.setImage(data.spec_db, levels=(top - SPECTROGRAM_RANGE_DB, top))
            self._image.setRect(QRectF(0, 0, max(data.shown_s, 1e-3), rows))
            self.spectrogram.setXRange(0, max(data.shown_s, 1e-3), padding=0)
            self.spectrogram.setYRange(0, rows, padding=0)
        self._set_audio_state(f"Note: {data.warning}." if data.warning else "", "notice")

    def _set_audio_state(self, text: str, kind: str) -> None:
        self.audio_state.setObjectName(kind)
        self.audio_state.setStyleSheet("")  # re-polish for the new object name
        self.audio_state.setText(text)
        self.audio_state.setVisible(bool(text))

    def set_playhead(self, seconds: float) -> None:
        for line in self._playheads:
            line.setValue(seconds)

    def _clicked(self, plot: pg.PlotWidget, event: object) -> None:
        if self.data is None or not self.data.ok:
            return
        position = event.scenePos()  # type: ignore[attr-defined]
        view = plot.getPlotItem().getViewBox()
        if not view.sceneBoundingRect().contains(position):
            return
        seconds = float(view.mapSceneToView(QPointF(position)).x())
        self.seek_requested.emit(min(max(seconds, 0.0), self.data.shown_s))
