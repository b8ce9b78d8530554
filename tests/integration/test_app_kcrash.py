"""A real KDE program's crash shows what KCrash told us about it.

Debian's kcalc (KF5 5.103's KCrash) is crashed as a desktop user while the real
systemd-coredump is the kernel's handler and DrKonqi's processor is installed: that is when
KCrash writes ~/.cache/kcrash-metadata/<pid>.ini (kcrash.cpp shouldWriteMetadataToDisk), the
arrangement `drkonqi-lite-collector install` keeps where DrKonqi is installed. KCRASH_DUMP_ONLY=1
is KCrash's own switch for "write the metadata and dump core" instead of starting DrKonqi
in-process. The real app, on the real journald, must name the program as KCrash does
("KCalc crashed"), and its crash window, `show` and `show --json` give the version and bug
address.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import need
from tests.integration import desktop as dk
from tests.integration.desktop import Desktop, User, wait_for

app_desktop = dk.app_desktop
systemd_coredump = dk.systemd_coredump
PROCESSOR = Path("/usr/lib/x86_64-linux-gnu/libexec/drkonqi-coredump-processor")


def _kcalc_version() -> str:
    """KAboutData's version of Debian's kcalc: the upstream part of the package version."""
    out = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "kcalc"], capture_output=True,
                         text=True, check=True).stdout  # fmt: skip
    return out.partition(":")[2].rpartition("-")[0]


def _windows(user: User, *query: str) -> str:
    return user.run(["xdotool", "search", "--onlyvisible", *query]).stdout.strip()


@pytest.mark.crash
def test_kcalc_crash_is_named_and_described_as_kcrash_says(
    app_desktop: Desktop, systemd_coredump: None
) -> None:
    need(shutil.which("kcalc") is not None, "kcalc (Debian's, links KCrash) not installed")
    need(PROCESSOR.exists(), "drkonqi not installed: KCrash writes no metadata without it")
    need(shutil.which("xdotool") is not None, "xdotool not installed")
    user = app_desktop.user()
    user.start_dunst()
    app = user.start_app()
    user.wait_app()
    try:
        user.env["KCRASH_DUMP_ONLY"] = "1"
        kcalc = user.spawn(["kcalc"], "kcalc")
        # KCrash is set up while QApplication is constructed; a mapped window comes after.
        wait_for(lambda: _windows(user, "--pid", str(kcalc.pid)), 30, "kcalc's window")
        os.kill(kcalc.pid, signal.SIGSEGV)
        assert kcalc.wait(30) == -signal.SIGSEGV
        ini = user.home / ".cache" / "kcrash-metadata" / f"{kcalc.pid}.ini"
        assert ini.is_file(), "the real KCrash wrote its metadata"
        assert user.wait_detected(kcalc.pid, timeout=20)["signal_name"] == "SIGSEGV"
        user.wait_notification("KCalc crashed")
        assert any(n.get("summary") == "KCalc crashed" for n in user.notifications())

        info = json.loads(user.cli("show", str(kcalc.pid), "--json").stdout)
        assert info["fields"]["SYSLOG_IDENTIFIER"] == "systemd-coredump"
        version = _kcalc_version()
        assert info["kcrash"]["display_name"] == "KCalc"
        assert info["kcrash"]["version"] == version
        assert info["kcrash"]["bug_address"] == "submit@bugs.kde.org"
        text = user.cli("show", str(kcalc.pid)).stdout
        assert "program: KCalc (KCrash)" in text
        assert f"version: {version}" in text
        assert "bugs to: submit@bugs.kde.org" in text

        user.dbus_call("ShowCrash", f"string:{info['id']}")
        assert app_desktop.display is not None
        wait_for(lambda: _windows(user, "--name", "KCalc crash"), what="the crash window")
        time.sleep(0.5)  # mapped is not yet painted; kept with DKL_KEEP=1: look at it
        app_desktop.display.screenshot(app_desktop.workdir / "kcrash-detail.png")
    finally:
        user.stop(app)
