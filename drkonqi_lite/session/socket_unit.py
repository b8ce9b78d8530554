"""A systemd socket unit with Accept=yes, played by systemd-socket-activate where PID 1 is not
systemd: it listens on a SOCK_SEQPACKET socket and runs a program per connection, the
connection as fd 3 (LISTEN_FDS=1), as drkonqi-lite-cores.socket and the collector's service
socket do when installed."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

from drkonqi_lite.session.process import stop, wait_for


@contextlib.contextmanager
def socket_activated(sock: Path, argv: list[str], log: Path, mode: int = 0o600) -> Iterator[Path]:
    """Listen on `sock` (made `mode`: SocketMode=) for as long as the context lasts. Yields the
    log file, whose "Accepted connection" lines prove a connection was handed over."""
    activate = shutil.which("systemd-socket-activate")
    if activate is None:
        raise FileNotFoundError("systemd-socket-activate not installed")
    sock.unlink(missing_ok=True)
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [activate, "--seqpacket", "--accept", "-l", str(sock), *argv],
            stdout=out,
            stderr=out,
            start_new_session=True,  # stop() ends its process group: the running handlers too
        )
    try:
        wait_for(sock.is_socket, timeout=5, what=f"{activate} listening on {sock}")
        sock.chmod(mode)
        yield log
    finally:
        stop(proc)
        sock.unlink(missing_ok=True)
