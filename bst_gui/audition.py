"""Audition in the library: the current row's clip is shown, loaded off the UI thread and played.

:class:`AuditionController` ties the table's current row to the clip panel and to the player
(:class:`bst_gui.playback.Audition`): a new row shows its text and probabilities at once, its audio
loads after a short pause (so holding Down does not decode every clip on the way) and, when the
move came from the person (a key or a click) and auto-play is on, plays as soon as it is loaded.
:meth:`AuditionController.show_state_on` makes Play read Stop while a clip plays, heard or not.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QObject, QTimer
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QApplication, QStyle, QToolBar

from bst_gui.clip_panel import ClipData, ClipLoader, ClipPanel
from bst_gui.library_model import LibraryModel
from bst_gui.library_view import LibraryView
from bst_gui.playback import Audition

SETTLE_MS = 150
"""Pause after a move before the clip loads and auto-plays."""

NO_AUDIO_NOTE = "No audio file for this sound: it can be classified but not played."

PLAY_TEXT: tuple[str, str] = ("Play / stop", "Stop")
"""The play action's text when stopped and while playing."""
PLAY_BUTTON_TEXT: tuple[str, str] = ("▶ Play", "■ Stop")
"""The toolbar button's text when stopped and while playing."""


class AuditionController(QObject):
    """Current row → clip panel + loader + player. ``autoplay`` is asked each time (a callable);
    ``caption`` says which predictions the table shows (``Session.prediction_caption``)."""

    def __init__(self, library: LibraryModel, view: LibraryView, panel: ClipPanel, player: Audition,
                 autoplay: Callable[[], bool], parent: QObject | None = None, *,
                 caption: Callable[[], str] = lambda: "") -> None:
        super().__init__(parent)
        self.library, self.view, self.panel, self.player = library, view, panel, player
        self.autoplay = autoplay
        self.caption = caption
        self.loader = ClipLoader(player.samplerate, self)
        self._armed = False          # the next move comes from the person: it may auto-play
        self._play_when_settled = False
        self._settle = QTimer(self)
        self._settle.setSingleShot(True)
        self._settle.setInterval(SETTLE_MS)
        self._settle.timeout.connect(self._settled)
        view.current_changed.connect(self.current_changed)
        view.table.pressed.connect(self.arm)
        self.loader.loaded.connect(self._loaded)
        panel.seek_requested.connect(self.seek)
        player.position_changed.connect(panel.set_playhead)

    def show_state_on(self, action: QAction, toolbar: QToolBar | None = None) -> None:
        """Keep ``action`` (and its twin on ``toolbar``, the button reading :data:`PLAY_BUTTON_TEXT`)
        saying Play or Stop, with the matching icon, as the player starts and stops: with no sound
        device too (the silent clock), so keyboard audition can be checked by eye."""
        button = None
        if toolbar is not None:
            button = next((a for a in toolbar.actions() if a.text() in PLAY_BUTTON_TEXT), None)
        style = QApplication.style()
        icons = (style.standardIcon(QStyle.StandardPixmap.SP_MediaPlay),
                 style.standardIcon(QStyle.StandardPixmap.SP_MediaStop))

        def show(playing: bool) -> None:
            silent = "" if self.player.output.heard or self.player.output.available else \
                " (no sound output: the playhead runs silently)"
            action.setText(PLAY_TEXT[playing])
            action.setIcon(icons[playing])
            if button is not None:
                button.setText(PLAY_BUTTON_TEXT[playing])
                button.setIcon(icons[playing])
                button.setToolTip(("Stop the clip" if playing else "Play the selected clip") + " (Space)" + silent)

        self.player.state_changed.connect(show)
        show(self.player.playing)

    def arm(self) -> None:
        """The next change of row is the person's (a key or a click): auto-play it."""
        self._armed = True

    def _current(self) -> tuple[str, str]:
        sound_id = self.view.current_id() or ""
        record = self.library.record(sound_id) if sound_id else None
        return sound_id, (str(record["audio_path"]) if record is not None else "")

    def show_record(self, sound_id: str) -> None:
        """Text, labels, probabilities and attention of ``sound_id`` in the clip panel."""
        record = self.library.record(sound_id) if sound_id else None
        self.panel.show_record(record, self.library.probabilities(sound_id) if sound_id else None,
                               self.library.attention_of(sound_id) if sound_id else None, self.caption())

    def current_changed(self, sound_id: str) -> None:
        armed, self._armed = self._armed, False
        self.show_record(sound_id)
        self.player.set_clip(sound_id, None)
        _, path = self._current()
        if not sound_id:
            self.panel.show_audio(None)
            return
        if not path:
            self.panel.show_audio(None, note=NO_AUDIO_NOTE)
            return
        cached = self.loader.cached(path)
        if cached is not None:
            self._loaded(path, cached)
        else:
            self.panel.show_audio(None, loading=True)
        self._play_when_settled = armed and self.autoplay()
        self._settle.start()

    def _settled(self) -> None:
        """The selection rested for a moment: load its audio, auto-play when asked."""
        sound_id, path = self._current()
        if path:
            data = self.loader.request(path)
            if data is not None:
                self._loaded(path, data)
        if self._play_when_settled and sound_id:
            self._play_when_settled = False
            self.player.request_play(sound_id)

    def _loaded(self, path: str, data: ClipData) -> None:
        sound_id, current_path = self._current()
        if path != current_path:
            return
        self.panel.show_audio(data)
        self.player.set_clip(sound_id, data.samples if data.ok else None)

    def _load_now(self) -> tuple[str, ClipData | None]:
        """Start loading the current clip if it is not cached; (id, cached clip or None)."""
        sound_id, path = self._current()
        cached = self.loader.cached(path) if path else None
        if path and cached is None:
            self.loader.request(path)
        return sound_id, cached

    def toggle(self) -> None:
        """Space: play the current clip (as soon as it is loaded) or stop."""
        sound_id, cached = self._load_now()
        if not sound_id:
            return
        if self.player.clip_id != sound_id:
            self.player.set_clip(sound_id, cached.samples if cached is not None and cached.ok else None)
        self.player.toggle()

    def replay(self) -> None:
        """Right: play the current clip again from the start."""
        sound_id, _cached = self._load_now()
        if sound_id:
            self.player.request_play(sound_id, 0.0)

    def stop(self) -> None:
        self.player.stop()

    def seek(self, seconds: float) -> None:
        """A click in the waveform or spectrogram: move there and play."""
        self.player.seek(seconds)
        if not self.player.playing:
            self.player.play(seconds)

    def close(self) -> None:
        self.player.close()
        self.loader.wait(5000)
