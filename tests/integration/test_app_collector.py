"""The whole pipeline: a real kernel crash → our collector → journal + wake-up → the app → dunst.

The collector runs from a scratch prefix (tests/integration/harness.py), so its cores live
outside the two storage directories the app trusts: the app must then say `none` for the core
rather than open it (DESIGN.md §4). Everything else is the production path, including the
wake-up datagram the collector's child sends as the crashing user.
"""

from __future__ import annotations

import json
import signal
import time

import pytest

from tests.integration import desktop as dk
from tests.integration.desktop import Desktop
from tests.integration.harness import make_prefix
from tests.integration.processes import crash

app_desktop = dk.app_desktop


@pytest.mark.crash
def test_real_crash_through_our_collector_is_notified(
    app_desktop: Desktop, core_pattern: None
) -> None:
    user = app_desktop.user()
    user.start_dunst()
    app = user.start_app()
    user.wait_app()
    prefixes = make_prefix()
    harness = next(prefixes)
    try:
        harness.install()
        t0 = time.monotonic()
        pid = crash(["/bin/sleep", "1000"], user.uid, user.uid, signal.SIGSEGV)
        assert user.wait_detected(pid, timeout=20)["signal_name"] == "SIGSEGV"
        user.wait_notification("sleep crashed")
        elapsed = time.monotonic() - t0
        info = json.loads(user.cli("show", str(pid), "--json").stdout)
        assert info["fields"]["SYSLOG_IDENTIFIER"] == "drkonqi-lite-collector"
        assert "Stack trace of thread" in info["backtrace"]
        assert info["core_state"] == "none"  # stored under the test prefix: not trusted storage
        assert info["fields"]["COREDUMP_FILENAME"].startswith(str(harness.storage))
        user.dunstctl("action", "0")
        user.wait_window("sleep crash — Crash Reports")
        # The wake-up datagram, not journald's ~0.5 s reader delay, brought it (generous bound).
        assert elapsed < 5, elapsed
    finally:
        user.stop(app)
        for _ in prefixes:
            pass
