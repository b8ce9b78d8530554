"""Real crashes through the kernel's core_pattern with the real systemd-coredump as handler.

The app must work when systemd-coredump (not our collector) files the entries: same schema,
no wake-up datagram, so the journal fd is the path (journald's ~500 ms reader delay applies).
core_pattern is global: the `core_pattern` fixture holds the shared lock and restores it.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from tests.integration import desktop as dk
from tests.integration.desktop import Desktop, User, wait_for

app_desktop = dk.app_desktop
systemd_coredump = dk.systemd_coredump


def _crash(user: User, signo: int = signal.SIGSEGV) -> int:
    """Start `sleep` as the user, wait until it really is sleep, kill it with `signo`."""
    proc = user.spawn(["sleep", "1000"], "sleep")
    wait_for(lambda: Path(f"/proc/{proc.pid}/comm").read_text().strip() == "sleep",
             what="sleep to run")  # fmt: skip
    os.kill(proc.pid, signo)
    proc.wait(10)
    return proc.pid


@pytest.mark.crash
def test_systemd_coredump_crash_notified_details_and_mute(
    app_desktop: Desktop, systemd_coredump: None
) -> None:
    user = app_desktop.user()
    user.start_dunst(dmenu_choice="Mute this program")
    app = user.start_app()
    user.wait_app()
    try:
        pid = _crash(user)
        assert user.wait_detected(pid, timeout=20)["signal_name"] == "SIGSEGV"
        user.wait_notification("sleep crashed")
        # The real entry: systemd-coredump's fields, its stored core readable by the user.
        info = json.loads(user.cli("show", str(pid), "--json").stdout)
        assert info["pid"] == pid
        assert info["uid"] == user.uid
        assert info["fields"]["SYSLOG_IDENTIFIER"] == "systemd-coredump"
        assert info["core_state"] == "present"  # root-owned 0640 + a read ACL for the user
        user.dunstctl("action", "0")  # Details
        user.wait_window("sleep crash — Crash Reports")
        second = _crash(user, signal.SIGABRT)
        assert user.wait_detected(second, timeout=20)["signal_name"] == "SIGABRT"
        wait_for(lambda: user.displayed() == 1, what="the second bubble")
        user.dunstctl("context")  # Mute this program
        wait_for(lambda: "/usr/bin/sleep" in user.state().get("muted", {}), what="muted, saved")
        third = _crash(user)
        assert user.wait_detected(third, timeout=20)["signal_name"] == "SIGSEGV"  # read, muted
    finally:
        user.stop(app)
    assert len(user.notified()) == 2
