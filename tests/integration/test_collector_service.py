"""The systemd-coredump style split: kernel-facing stage → socket-activated service.

systemd is not PID 1 here, so `systemd-socket-activate --seqpacket --accept` plays
drkonqi-lite-collector.socket (Accept=yes): it listens, and per connection runs the collector
with `--service` and the connection as fd 3 (LISTEN_FDS=1), as systemd would.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from drkonqi_lite.session.socket_unit import socket_activated
from drkonqi_lite_collector import config
from drkonqi_lite_collector.admin import pattern
from tests.conftest import which
from tests.integration.harness import Harness
from tests.integration.journal_read import field, wait_entry
from tests.integration.processes import crash

USER = 1000


@pytest.fixture
def service(harness: Harness, core_pattern: None) -> Iterator[Path]:
    """The emulated socket unit; yields the file its log (stderr) goes to."""
    which("systemd-socket-activate")
    harness.install()
    launcher = pattern.write_launcher(config.Paths(str(harness.prefix)))
    sock = Path(config.Paths(str(harness.prefix)).socket)
    sock.parent.mkdir(parents=True, mode=0o755)
    # SocketMode=0600: only root may hand over crashes.
    with socket_activated(sock, [str(launcher), "--service"],
                          harness.prefix / "socket-activate.log") as log:
        yield log


def test_crash_goes_through_the_service(harness: Harness, service: Path) -> None:
    pid = crash(["/bin/sleep", "1000"], USER, USER)
    e = wait_entry(COREDUMP_PID=pid)
    log = service.read_text()
    assert "Accepted" in log or "Communication attempt" in log, log
    assert field(e, "DRKONQI_LITE_IDENTITY") == b"verified", "the pidfd and dirfd were handed over"
    assert field(e, "COREDUMP_COMM") == b"sleep"
    assert b"sleep 1000" in field(e, "COREDUMP_CMDLINE")
    # The thread and the kernel's pidfd survive the hand-over (argv word, SCM_RIGHTS).
    assert int(field(e, "COREDUMP_TID")) == pid
    assert field(e, "COREDUMP_THREAD_NAME") == b"sleep"
    assert field(e, "COREDUMP_BY_PIDFD") == b"1"
    assert int(field(e, "COREDUMP_PIDFDID")) > 0
    core = Path(os.fsdecode(field(e, "COREDUMP_FILENAME")))
    assert core.parent == harness.storage
    assert (
        "user:1000:r"
        in subprocess.run(
            ["getfacl", "-cpn", str(core)], capture_output=True, text=True, check=True
        ).stdout
    )


def test_no_listener_means_in_process(harness: Harness, core_pattern: None) -> None:
    harness.install()
    sock = Path(config.Paths(str(harness.prefix)).socket)
    sock.parent.mkdir(parents=True, mode=0o755)
    # A stale socket file with nobody listening (the service crashed, systemd is gone).
    import socket  # noqa: PLC0415

    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.bind(str(sock))
    s.close()
    pid = crash(["/bin/sleep", "1000"], USER, USER)
    e = wait_entry(COREDUMP_PID=pid)
    assert field(e, "DRKONQI_LITE_IDENTITY") == b"verified"
    assert Path(os.fsdecode(field(e, "COREDUMP_FILENAME"))).exists()


def test_service_rejects_a_malformed_hand_over(harness: Harness, service: Path) -> None:
    import socket  # noqa: PLC0415

    sock = config.Paths(str(harness.prefix)).socket
    with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as s:
        s.connect(sock)
        s.sendall(b"not a crash")  # no fds, no flags
    # The service logs and exits; the socket keeps working for the next real crash.
    pid = crash(["/bin/sleep", "1000"], USER, USER)
    assert field(wait_entry(COREDUMP_PID=pid), "COREDUMP_COMM") == b"sleep"
