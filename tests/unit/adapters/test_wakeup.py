"""The wake-up socket, with real sockets in a temporary directory: its permissions, draining
and socket activation."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from drkonqi_lite.adapters.wakeup import WakeupSocket, poke, wakeup_path
from tests.conftest import REPO, which


def test_wakeup_socket_permissions_and_drain(tmp_path: Path) -> None:
    runtime = tmp_path / "run"
    runtime.mkdir()
    path = wakeup_path(str(runtime))
    path.parent.mkdir(mode=0o755)
    path.touch()  # a stale leftover where the socket goes
    wakeup = WakeupSocket(path)
    wakeup.open()
    try:
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        assert stat.S_ISSOCK(path.stat().st_mode)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert wakeup.drain() == 0
        for _ in range(3):
            assert poke(path)
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.sendto(b"\x00" * 4096, str(path))  # content is ignored, whatever it is
        assert wakeup.drain() == 4
    finally:
        wakeup.close()
    assert not path.exists()
    assert not poke(path)


def test_wakeup_refuses_a_directory_owned_by_someone_else(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to chown")
    path = wakeup_path(str(tmp_path))
    path.parent.mkdir()
    os.chown(path.parent, 12345, 12345)
    with pytest.raises(OSError, match="not a directory owned by this user"):
        WakeupSocket(path).open()


def test_wakeup_leaves_the_socket_units_socket_alone(tmp_path: Path) -> None:
    """Started by hand while drkonqi-lite.socket listens at the path: the app must not unlink
    the unit's socket (crashes after the app ends would then start nothing)."""
    path = wakeup_path(str(tmp_path))
    path.parent.mkdir(mode=0o700)
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as unit:
        unit.bind(str(path))
        with pytest.raises(OSError, match="socket unit"):
            WakeupSocket(path).open()
        assert poke(path)
        assert unit.recv(16) == b""  # the unit's socket still gets the datagram
    # Nobody listens any more: a stale socket file is replaced as before.
    wakeup = WakeupSocket(path)
    wakeup.open()
    wakeup.close()


PASSED_FD_PROBE = """
import os, socket, sys
from drkonqi_lite.adapters.wakeup import WakeupSocket, listened_socket, wakeup_path
sock = listened_socket()
assert "LISTEN_FDS" not in os.environ, "not inherited by what the app starts"
wakeup = WakeupSocket(wakeup_path(sys.argv[1]))
wakeup.adopt(sock)
print(wakeup.drain())
wakeup.close()
print(wakeup.path.exists())
"""


def test_socket_activation_passes_the_bound_socket(tmp_path: Path) -> None:
    """The real systemd-socket-activate, as drkonqi-lite.socket: it binds the path, a datagram
    starts the program, which takes fd 3 (LISTEN_FDS) and leaves the path to the unit."""
    activate = which("systemd-socket-activate")
    path = wakeup_path(str(tmp_path))
    path.parent.mkdir(mode=0o700)
    proc = subprocess.Popen(
        [activate, "--datagram", "-l", str(path), sys.executable, "-c", PASSED_FD_PROBE,
         str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ,
        "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while not path.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert poke(path)
        assert poke(path)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 0, err
    assert out.split() == ["2", "True"], out + err
