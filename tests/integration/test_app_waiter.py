"""Resident without a systemd user manager (issue 12): XDG autostart's `drkonqi-lite
--autostart` is a waiter without Qt that runs the tray app per crash and outlives it.

Real journald, session bus and dunst (tests/integration/desktop.py). What a user would notice:
a notification per crash, once, live ("X crashed"), also when the crash's datagram got lost,
and, between crashes, nothing but a small process (no Qt library mapped in it).
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from drkonqi_lite.adapters.crash_handler import FALLBACK_S
from tests.entries import live_entry
from tests.integration import desktop as dk
from tests.integration.desktop import PYTHON, Desktop, User, wait_for

app_desktop = dk.app_desktop


def _children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False)
    return [int(p) for p in out.stdout.split()]


def _maps_qt(pid: int) -> bool:
    """Is any Qt or PySide6 library mapped into the process?"""
    maps = Path(f"/proc/{pid}/maps").read_text()
    return "libQt6" in maps or "PySide6" in maps or "shiboken6" in maps


def _summaries(user: User) -> list[str]:
    return [n.get("summary", "") for n in user.notifications()]


def test_the_waiter_runs_the_app_per_crash_and_stays_without_qt(app_desktop: Desktop) -> None:
    user = app_desktop.user()
    user.start_dunst()
    waiter = user.spawn([PYTHON, "-m", "drkonqi_lite", "--autostart"], "app")
    try:
        wait_for(user.wakeup_bound, what="the waiter holding the wake-up socket")
        assert not _maps_qt(waiter.pid), "the idle waiter loads no Qt"
        assert not _children(waiter.pid), "nothing unseen: no app"

        user.send_entry(live_entry(user.uid, comm="waited", pid=4714))
        wait_for(lambda: user.displayed() == 1, timeout=20, what="the notification")
        (app,) = _children(waiter.pid)
        (crash,) = json.loads(user.cli("list", "--json").stdout)
        out = user.dbus_call("Dismiss", f"string:{crash['id']}")
        assert out.returncode == 0, out.stderr
        user.dunstctl("close-all")
        wait_for(lambda: not _children(waiter.pid), timeout=20, what="the app's end")
        assert waiter.poll() is None, "the waiter outlives the app"
        assert not _maps_qt(waiter.pid)

        # A crash whose datagram got lost: the waiter's journal watch or its fallback re-read.
        user.send_entry(live_entry(user.uid, comm="nodgram", pid=4715), wake=False)
        wait_for(lambda: user.displayed() == 1, timeout=FALLBACK_S + 20, what="the second")
        assert _children(waiter.pid) != [app], "a new app for it"
        assert sorted(_summaries(user)) == ["nodgram crashed", "waited crashed"], "once, live"
    finally:
        print(user.app_log())
        user.stop(waiter)
    assert "Traceback" not in user.app_log()


def test_a_crash_from_before_the_login_is_announced_once_by_the_next_waiter(
    app_desktop: Desktop,
) -> None:
    """No waiter ran (logged out): the next login's waiter finds the unseen crash, runs the app
    for it (one "since you last logged in"); the login after that runs none."""
    user = app_desktop.user()
    user.start_dunst()
    user.send_entry(live_entry(user.uid, comm="away", pid=4716), wake=False)
    waiter = user.spawn([PYTHON, "-m", "drkonqi_lite", "--autostart"], "app")
    try:
        wait_for(lambda: user.displayed() == 1, timeout=20, what="the login's notification")
        assert _summaries(user) == ["away crashed since you last logged in"]
        (crash,) = json.loads(user.cli("list", "--json").stdout)
        assert user.dbus_call("Dismiss", f"string:{crash['id']}").returncode == 0
        wait_for(lambda: not _children(waiter.pid), timeout=20, what="the app's end")
    finally:
        user.stop(waiter)
    second = user.spawn([PYTHON, "-m", "drkonqi_lite", "--autostart"], "app")
    try:
        wait_for(user.wakeup_bound, what="the 2nd waiter holding the wake-up socket")
        time.sleep(1)
        assert not _children(second.pid), "nothing unseen: no app"
        assert _summaries(user) == ["away crashed since you last logged in"], "announced once"
    finally:
        print(user.app_log())
        user.stop(second)
