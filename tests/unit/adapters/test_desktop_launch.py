"""Restart only from an installed .desktop file and never while the program runs
(SECURITY.md 6); the bug tracker from AppStream, http(s) only.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from drkonqi_lite.adapters import desktop_launch


@pytest.fixture
def xdg(tmp_path: Path) -> dict[str, str]:
    share = tmp_path / "share"
    (share / "applications").mkdir(parents=True)
    (share / "metainfo").mkdir()
    marker = tmp_path / "started"
    script = tmp_path / "fake-editor"
    script.write_text(f'#!/bin/sh\necho "$@" > {marker}\n')
    script.chmod(0o755)
    (share / "applications" / "org.example.Editor.desktop").write_text(
        f"[Desktop Entry]\nType=Application\nName=Editor\nExec={script} --new-window %U\n"
        "X-KDE-BugReport=javascript:alert(1)\n"
    )
    (share / "metainfo" / "org.example.Editor.metainfo.xml").write_text(
        '<component><url type="homepage">https://example.org</url>'
        '<url type="bugtracker">https://bugs.example.org/new</url></component>'
    )
    return {"XDG_DATA_DIRS": str(share), "XDG_DATA_HOME": str(tmp_path / "nohome")}


def test_restart_runs_the_desktop_files_exec_without_field_codes(
    xdg: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in xdg.items():
        monkeypatch.setenv(key, value)
    assert desktop_launch.restart_blocker("org.example.Editor", "/nonexistent/editor") == ""
    assert desktop_launch.restart("org.example.Editor", "/nonexistent/editor") > 0
    # What the user notices: the program started (not our child to wait for: it is detached,
    # and subprocess may reap it on its own when another Popen is made).
    started = tmp_path / "started"
    deadline = time.monotonic() + 10
    while not (started.exists() and started.read_text().strip()):
        assert time.monotonic() < deadline, "the program was not started"
        time.sleep(0.02)
    assert started.read_text().strip() == "--new-window"
    assert "never restarted" in desktop_launch.restart_blocker("org.unknown", "/usr/bin/x")
    assert desktop_launch.desktop_file("../../etc/passwd") is None


def test_no_restart_while_the_program_runs() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        exe = str(Path(f"/proc/{proc.pid}/exe").readlink())
        assert proc.pid in desktop_launch.running_pids(exe)
    finally:
        proc.kill()
        proc.wait()


def test_bug_tracker_from_appstream_and_only_web_urls(xdg: dict[str, str]) -> None:
    assert desktop_launch.bug_tracker("org.example.Editor", xdg) == "https://bugs.example.org/new"
    (Path(xdg["XDG_DATA_DIRS"]) / "metainfo" / "org.example.Editor.metainfo.xml").unlink()
    assert desktop_launch.bug_tracker("org.example.Editor", xdg) == ""  # javascript: refused
    assert desktop_launch.bug_tracker("", xdg) == ""

