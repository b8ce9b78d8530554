"""SECURITY.md 14: the tools that read our entries (coredumpctl, journalctl, a terminal).

A real crash through core_pattern of a program whose name, path and arguments hold terminal
escape sequences (7-bit ESC and 8-bit CSI), invalid UTF-8 and newlines. The real coredumpctl
must list it (systemd-coredump's own entries make it fail with "Failed to print table: Invalid
argument") and show it without a control character, journalctl must show MESSAGE as text, not
"blob data", and coredumpctl dump/debug must still find the core and the program. The app still
shows the real name.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from drkonqi_lite_collector.journal.schema import MESSAGE_ID, escape_comm
from tests.conftest import which
from tests.integration import desktop as dk
from tests.integration.desktop import Desktop
from tests.integration.harness import Harness, copy_program
from tests.integration.journal_read import field, wait_entry_since
from tests.integration.processes import crash_self

app_desktop = dk.app_desktop

COMM = b"\x1b]0;pwn\x07\xff\x9b2J"  # 15 bytes: OSC title, invalid UTF-8, 8-bit CSI
DIR = b"tools\x1b[2J\xff\n"
EXE = b"crash\xc2\x9b31m\xfe"
ARG = b"\x1b[31mred\nnew line"
#: What no reader may print: ESC, BEL, 8-bit CSI (as a byte or UTF-8 encoded), invalid UTF-8.
FORBIDDEN = (b"\x1b", b"\x07", b"\x9b")


def assert_inert(out: bytes, what: str) -> None:
    for bad in FORBIDDEN:
        assert bad not in out, f"{what} printed {bad!r}: {out!r}"
    out.decode("utf-8")  # raises on invalid UTF-8


@pytest.fixture
def crashed(
    t0: float, harness: Harness, core_pattern: None, crashme: Path, app_desktop: Desktop
) -> tuple[int, bytes, dk.User]:
    user = app_desktop.user(with_display=False)
    exe = copy_program(harness, crashme, DIR, EXE)
    harness.install()
    pid = crash_self([exe, ARG], user.uid, user.uid, env={b"DKL_COMM": COMM})
    wait_entry_since(t0, COREDUMP_PID=pid)
    return pid, exe, user


def coredumpctl(*args: str) -> subprocess.CompletedProcess[bytes]:
    cmd = [which("coredumpctl"), "--no-pager", "--no-legend", *args]
    return subprocess.run(cmd, capture_output=True, timeout=60, check=False)


def test_coredumpctl_lists_and_shows_it_without_control_characters(
    crashed: tuple[int, bytes, dk.User],
) -> None:
    pid, _exe, _user = crashed
    e = wait_entry_since(0, COREDUMP_PID=pid)
    assert field(e, "COREDUMP_COMM") == escape_comm(COMM).encode(), "escaped as systemd does"
    listed = coredumpctl("list", f"COREDUMP_PID={pid}")
    assert listed.returncode == 0, listed.stderr
    assert b"Failed to print table" not in listed.stderr
    assert str(pid).encode() in listed.stdout
    assert_inert(listed.stdout, "coredumpctl list")
    info = coredumpctl("info", f"COREDUMP_PID={pid}")
    assert info.returncode == 0, info.stderr
    assert b"dumped core" in info.stdout
    assert_inert(info.stdout, "coredumpctl info")


def test_journalctl_shows_the_message_as_text(crashed: tuple[int, bytes, dk.User]) -> None:
    pid, _exe, _user = crashed
    cmd = ["journalctl", "--no-pager", f"MESSAGE_ID={MESSAGE_ID}", f"COREDUMP_PID={pid}"]
    out = subprocess.run(cmd, capture_output=True, timeout=60, check=True).stdout
    assert b"blob data" not in out, out
    assert f"Process {pid} (".encode() in out
    assert b"Stack trace of thread" in out
    assert_inert(out, "journalctl")


def test_coredumpctl_dump_and_debug_find_the_files(
    crashed: tuple[int, bytes, dk.User], tmp_path: Path
) -> None:
    pid, _exe, _user = crashed
    core = tmp_path / "core"
    dumped = coredumpctl("dump", f"COREDUMP_PID={pid}", "-o", str(core))
    assert dumped.returncode == 0, dumped.stderr
    assert core.read_bytes()[:4] == b"\x7fELF"
    debug = coredumpctl("debug", f"COREDUMP_PID={pid}", "-A", "--batch -ex bt")
    assert debug.returncode == 0, debug.stderr
    assert b"#0" in debug.stdout, debug.stdout


def test_the_app_still_shows_the_real_name(crashed: tuple[int, bytes, dk.User]) -> None:
    pid, exe, user = crashed
    shown = user.cli("show", str(pid), "--json")
    assert shown.returncode == 0, shown.stderr
    crash = json.loads(shown.stdout)
    assert crash["comm"] == COMM.decode("utf-8", "replace")
    assert crash["exe"] == exe.decode("utf-8", "replace")
