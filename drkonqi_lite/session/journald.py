"""journald in the host's namespace, filing per-user journals (persistent storage).

The kernel runs core_pattern's pipe helper in the host's namespaces, so a crash reaches the
host's /run/systemd/journal/socket. journald only writes user-UID.journal files (readable by
that user) when it writes to /var/log/journal; on these machines /run is not a tmpfs and
nothing flushes it, so journald is started with the `flushed` flag already present
(TESTING.md, as tools/desktop-env does).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from drkonqi_lite.session.process import wait_for

JOURNALD = Path("/lib/systemd/systemd-journald")
SOCKET = Path("/run/systemd/journal/socket")


def running() -> bool:
    found = subprocess.run(["pgrep", "-x", "systemd-journal"], capture_output=True, check=False)
    return found.returncode == 0 and SOCKET.is_socket()


def start() -> subprocess.Popen[bytes] | None:
    """Start journald unless one runs; its process (for whoever means to stop it), or None."""
    if running():
        return None
    Path("/var/log/journal").mkdir(parents=True, exist_ok=True)
    Path("/run/systemd/journal").mkdir(parents=True, exist_ok=True)
    Path("/run/systemd/journal/flushed").touch()
    machine_id = Path("/etc/machine-id")
    if not machine_id.exists() or not machine_id.read_text().strip():
        subprocess.run(["systemd-machine-id-setup"], check=True, capture_output=True)
    proc = subprocess.Popen(
        [str(JOURNALD)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    wait_for(SOCKET.is_socket, timeout=15, what="journald's socket")
    return proc
