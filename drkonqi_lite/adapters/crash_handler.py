"""Who the kernel's crash handler is, which decides what signals a crash to a waiting app.

When core_pattern names our collector, its wake-up datagram follows every crash entry, and the
journal fd (which fires on every journal write of the machine) need not be watched; a coarse
re-read every FALLBACK_S bounds how late a crash whose datagram got lost is announced. Used by
the Qt app (qt/lifetime.py, qt/crash_signals.py) and the Qt-free resident waiter (waiter.py).
"""

from __future__ import annotations

from drkonqi_lite_collector.admin.pattern import CORE_PATTERN, handler_kind

__all__ = ["FALLBACK_S", "collector_is_handler"]

#: Without the journal fd the journal is re-read this often (seconds). 10 s keeps the goal of
#: <= 2 wake-ups per 20 s and bounds how late a crash whose datagram got lost is.
FALLBACK_S = 10


def collector_is_handler() -> bool:
    """True when core_pattern names our collector (its datagram then signals every crash)."""
    try:
        pattern = CORE_PATTERN.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return False
    return handler_kind(pattern) == "drkonqi-lite-collector"
