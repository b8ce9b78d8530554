"""PySide6 6.12.0 on Python 3.11 drops a reference to True on every Signal.disconnect() and the
interpreter aborts (bool_dealloc) after ~500; qasync disconnects on every socket cycle, so the
app would die after ~50 D-Bus calls (TESTING.md). This guards the pin."""

from __future__ import annotations

import sys

from PySide6.QtCore import QObject, Signal


class _Emitter(QObject):
    fired = Signal()


def _slot() -> None:
    return None


def test_true_refcount_is_stable_around_connect_disconnect() -> None:
    emitter = _Emitter()
    for _ in range(10):  # warm-up: first connections may cache objects
        emitter.fired.connect(_slot)
        emitter.fired.disconnect(_slot)
    before = sys.getrefcount(True)
    for _ in range(100):
        emitter.fired.connect(_slot)
        emitter.fired.disconnect(_slot)
    after = sys.getrefcount(True)
    assert abs(after - before) < 10, f"True lost {before - after} references"
