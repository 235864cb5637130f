"""What the app remembers between sessions (QSettings): recent sources, layout, toggles."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QByteArray, QSettings

ORGANIZATION = "bst-studio"
APPLICATION = "BST Studio"
MAX_RECENT = 10


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

    def sync(self) -> None:
        self.store.sync()
