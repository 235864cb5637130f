"""What the app remembers between sessions (QSettings): recent sources, layout, toggles, and per
source what was shown (:class:`SourceMemory`: its runs, the run and predictions shown, the table's
sort, search, filters and selection)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from PySide6.QtCore import QByteArray, QSettings

from bst_core import paths

ORGANIZATION = "bst-studio"
APPLICATION = "BST Studio"
MAX_RECENT = 10
MAX_RUNS = 10
MAX_REMEMBERED_IDS = 2000
"""An id filter or selection larger than this is not remembered (the settings file stays small)."""


@dataclass
class SourceMemory:
    """What one source showed when it was last left (JSON in the settings, keyed by its path)."""

    path: str = ""
    truth_from_subfolders: bool = False
    runs: list[str] = field(default_factory=list)        # run folders shown with it, most recent first
    run: str = ""                                        # the run shown ("" none)
    predictions: str = ""                                # "out-of-fold", "ensemble" or "" (none)
    sort: tuple[str, bool] | None = None                 # (column, descending)
    search: str = ""
    filters: dict[str, Any] = field(default_factory=dict)   # library_query.filters_to_dict
    current: str = ""
    selected: list[str] = field(default_factory=list)

    def remember_run(self, run_dir: str | Path) -> None:
        text = str(run_dir)
        self.runs = [text, *[r for r in self.runs if r != text]][:MAX_RUNS]
        self.run = text

    def to_json(self) -> str:
        data = asdict(self)
        if len(self.selected) > MAX_REMEMBERED_IDS:
            data["selected"] = [self.current] if self.current else []
        return json.dumps(data)

    @classmethod
    def from_json(cls, text: str, path: str) -> SourceMemory:
        """The memory stored as ``text``; a blank one for ``path`` when it is missing or unreadable
        (an old or hand-edited settings file must not stop the app from starting)."""
        try:
            data = json.loads(text) if text else {}
        except ValueError:
            data = {}
        known = {f.name for f in fields(cls)}
        memory = cls(**{k: v for k, v in data.items() if k in known}) if isinstance(data, dict) else cls()
        if memory.path != path:                 # a hash collision or a moved entry: not this source's
            return cls(path=path)
        if memory.sort is not None:
            memory.sort = (str(memory.sort[0]), bool(memory.sort[1]))
        return memory


THEME_CHOICES: tuple[str, ...] = ("dark", "light", "system")


class Settings:
    """Typed access to the app's QSettings (pass a QSettings to use another store, e.g. in tests)."""

    def __init__(self, store: QSettings | None = None) -> None:
        self.store = store if store is not None else QSettings(ORGANIZATION, APPLICATION)

    # --- recent sources ------------------------------------------------------------------------

    def recent_sources(self) -> list[str]:
        """Most recent first; entries that no longer exist are left out."""
        value = self.store.value("recent/sources", [])
        items = [value] if isinstance(value, str) else list(value or [])
        return [str(p) for p in items if p and Path(str(p)).exists()]

    def add_recent_source(self, path: str | Path) -> None:
        text = str(Path(path).expanduser().absolute())
        items = [p for p in self.recent_sources() if p != text]
        self.store.setValue("recent/sources", [text, *items][:MAX_RECENT])

    def clear_recent_sources(self) -> None:
        self.store.setValue("recent/sources", [])

    # --- window layout ------------------------------------------------------------------------

    def window_geometry(self) -> QByteArray | None:
        value = self.store.value("window/geometry")
        return value if isinstance(value, QByteArray) and not value.isEmpty() else None

    def window_state(self) -> QByteArray | None:
        value = self.store.value("window/state")
        return value if isinstance(value, QByteArray) and not value.isEmpty() else None

    def save_window(self, geometry: QByteArray, state: QByteArray) -> None:
        self.store.setValue("window/geometry", geometry)
        self.store.setValue("window/state", state)

    # --- toggles and last folders ----------------------------------------------------------------

    def flag(self, name: str, default: bool) -> bool:
        value = self.store.value(f"flags/{name}", default)
        if isinstance(value, str):
            return value.lower() in ("true", "1", "yes")
        return bool(value)

    def set_flag(self, name: str, value: bool) -> None:
        self.store.setValue(f"flags/{name}", bool(value))

    def last_folder(self, purpose: str) -> str:
        return str(self.store.value(f"folders/{purpose}", "") or "")

    def set_last_folder(self, purpose: str, path: str | Path) -> None:
        self.store.setValue(f"folders/{purpose}", str(path))

    # --- per source: what it showed ----------------------------------------------------------------

    @staticmethod
    def _source_key(path: str | Path) -> str:
        return f"sources/{paths.folder_key(path).rsplit('-', 1)[1]}"

    def source_memory(self, path: str | Path) -> SourceMemory:
        """What ``path`` showed when it was last left (blank when never opened)."""
        text = str(Path(path).expanduser().resolve())
        return SourceMemory.from_json(str(self.store.value(self._source_key(text), "") or ""), text)

    def set_source_memory(self, memory: SourceMemory) -> None:
        """Store ``memory`` (from :meth:`source_memory`: its path is the source's resolved path)."""
        self.store.setValue(self._source_key(memory.path), memory.to_json())

    def last_source(self) -> str:
        """The source open when the app was last closed ("" none, or when it no longer exists)."""
        text = str(self.store.value("session/last_source", "") or "")
        return text if text and Path(text).exists() else ""

    def set_last_source(self, path: str | Path | None) -> None:
        self.store.setValue("session/last_source", str(path) if path else "")

    def number(self, name: str, default: float) -> float:
        try:
            return float(self.store.value(f"numbers/{name}", default))
        except (TypeError, ValueError):
            return default

    def set_number(self, name: str, value: float) -> None:
        self.store.setValue(f"numbers/{name}", float(value))

    def dialog_values(self, name: str) -> dict[str, Any]:
        """The last values a dialog was accepted with ({} when none)."""
        try:
            data = json.loads(str(self.store.value(f"dialogs/{name}", "") or "{}"))
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}

    def set_dialog_values(self, name: str, values: dict[str, Any]) -> None:
        self.store.setValue(f"dialogs/{name}", json.dumps(values))

    # --- theme -------------------------------------------------------------------------------

    def theme(self) -> str:
        """The colour theme chosen in View › Theme: "dark" (default), "light" or "system"."""
        value = str(self.store.value("view/theme", "dark") or "dark")
        return value if value in THEME_CHOICES else "dark"

    def set_theme(self, name: str) -> None:
        if name not in THEME_CHOICES:
            raise ValueError(f"unknown theme {name!r}; use one of {', '.join(THEME_CHOICES)}")
        self.store.setValue("view/theme", name)

    def sync(self) -> None:
        self.store.sync()
