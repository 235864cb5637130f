"""Guard against Qt binding builds that corrupt Python's reference counts.

PySide6-Essentials 6.12.0 (abi3 wheel) on Python 3.11 drops one reference to ``None`` on every
void Qt call, so a long-running app aborts with "deallocating None". requirements/lock.txt pins
6.11.3; this test fails if a broken build comes back.
"""

from __future__ import annotations

import sys


def test_void_qt_calls_keep_none_refcount() -> None:
    from PySide6.QtCore import QObject

    obj = QObject()
    before = sys.getrefcount(None)
    for _ in range(1000):
        obj.setObjectName("x")
    assert sys.getrefcount(None) - before > -10
