"""Deleting a stored core: the user's own, only theirs, through drkonqi-lite-cores@.service.

Cores are root-owned in a root-owned directory, so the crash window's "Delete core" asks the
deletion service (socket activation played by systemd-socket-activate, as in production with
Accept=yes). Real kernel crashes make the cores; the app's own adapter, run as the user, makes
the request; a raw client stands in for a user who skips the app's checks.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from drkonqi_lite.session.socket_unit import socket_activated
from tests.integration.harness import COLLECTOR, Harness
from tests.integration.journal_read import field, wait_entry_since
from tests.integration.processes import build_crashme, crash, crash_self

USER = 1000
OTHER = 4242

#: The app's adapter (drkonqi_lite/adapters/stored_core.py), run as the user it is for.
CLIENT = """
import sys
from drkonqi_lite.adapters import stored_core
from drkonqi_lite.domain.trust import TrustPolicy
uid, storage, core, sock = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
policy = TrustPolicy(uid, frozenset({0}), (storage,))
print("blocker:", stored_core.deletable(policy, core, sock) or "none", flush=True)
try:
    stored_core.delete_core(policy, core, sock)
except stored_core.CoreUnavailableError as exc:
    print("refused:", exc)
else:
    print("deleted")
"""


class Service:
    def __init__(self, h: Harness, sock: Path, log: Path) -> None:
        self.h, self.sock, self.log = h, sock, log

    def app_delete(self, uid: int, core: Path) -> str:
        """The app's delete path, as `uid`: its printed outcome."""
        cmd = [sys.executable, "-c", CLIENT, str(uid), str(self.h.storage), str(core),
               str(self.sock)]  # fmt: skip
        out = subprocess.run(
            ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", *cmd],
            capture_output=True, text=True, timeout=60, check=False, cwd="/",
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        return out.stdout

    def raw_request(self, uid: int, payload: bytes) -> bytes:
        """A hand-made request from `uid`, past every check the app would make first."""
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            code = 1
            try:
                os.close(r)
                os.setgroups([])
                os.setresgid(uid, uid, uid)
                os.setresuid(uid, uid, uid)
                with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as s:
                    s.settimeout(20)
                    s.connect(str(self.sock))
                    s.send(payload)
                    os.write(w, s.recv(4096))
                code = 0
            finally:
                os._exit(code)
        os.close(w)
        with os.fdopen(r, "rb") as f:
            reply = f.read()
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, "the raw client failed"
        return reply


@pytest.fixture
def service(harness: Harness, core_pattern: None) -> Iterator[Service]:
    harness.install()
    sock = harness.prefix / "run/drkonqi-lite/cores.socket"
    sock.parent.mkdir(parents=True, exist_ok=True)
    argv = [str(COLLECTOR), f"--prefix={harness.prefix}", "--cores-service"]
    with socket_activated(sock, argv, harness.prefix / "cores.log", mode=0o666) as log:
        yield Service(harness, sock, log)


def _core_of(t0: float, pid: int) -> Path:
    entry = wait_entry_since(t0, COREDUMP_PID=pid, _UID=USER)  # the user's own entry
    core = Path(os.fsdecode(field(entry, "COREDUMP_FILENAME")))
    assert core.is_file()
    return core


def test_user_deletes_own_core(t0: float, service: Service) -> None:
    core = _core_of(t0, crash(["/bin/sleep", "1000"], USER, USER))
    assert core.stat().st_uid == 0, "the user cannot unlink it alone"
    out = service.app_delete(USER, core)
    assert out == "blocker: none\ndeleted\n"
    assert not core.exists()
    assert f"deleted {core.name} at the request of uid {USER}" in service.log.read_text()
    # Asked again, the window would say so rather than fail obscurely.
    assert "already gone" in service.app_delete(USER, core)


def test_another_user_cannot_delete_it(t0: float, service: Service) -> None:
    core = _core_of(t0, crash(["/bin/sleep", "1000"], USER, USER))
    # The app never offers it ...
    assert "blocker: The core belongs to another user." in service.app_delete(OTHER, core)
    # ... and a hand-made request is refused by the service itself.
    reply = service.raw_request(OTHER, b"delete\0" + core.name.encode())
    assert reply == b"error\0the core belongs to another user"
    assert core.is_file()


@pytest.mark.parametrize(
    "name",
    ["../../../etc/passwd", "core.x.1000.0123456789abcdef0123456789abcdef.1.1.zst/..", "passwd",
     ".core.x.1000.0123456789abcdef0123456789abcdef.1.1.zst"],
)  # fmt: skip
def test_names_outside_the_storage_are_refused(service: Service, name: str) -> None:
    reply = service.raw_request(USER, b"delete\0" + name.encode())
    assert reply == b"error\0not a core file name"


def test_links_and_fifos_are_not_followed(t0: float, service: Service) -> None:
    """A name only root could plant, but the service must not trust its directory blindly."""
    core = _core_of(t0, crash(["/bin/sleep", "1000"], USER, USER))
    victim = service.h.prefix / "victim"
    victim.write_bytes(b"precious")
    base = core.name.rsplit(".", 2)[0]
    for i, kind in enumerate(("symlink", "hardlink", "fifo")):
        name = f"{base}.{i}.zst"
        path = core.with_name(name)
        if kind == "symlink":
            path.symlink_to(victim)
        elif kind == "hardlink":
            os.link(core, path)
        else:
            os.mkfifo(path, 0o644)
        reply = service.raw_request(USER, b"delete\0" + name.encode())
        assert reply.startswith(b"error\0"), (kind, reply)
        assert path.exists() or path.is_symlink(), kind
    assert victim.read_bytes() == b"precious"
    assert core.is_file()


def test_restricted_core_stays_for_the_administrator(
    t0: float, service: Service, suid_dumpable: None
) -> None:
    """A set-uid program's core carries the user's uid in its name but no ACL: the user may
    neither read nor delete it; root may delete it."""
    exe = service.h.prefix / "bin/suidhelper"
    exe.parent.mkdir(mode=0o755, exist_ok=True)
    exe.write_bytes(build_crashme().read_bytes())
    os.chown(exe, 0, 0)
    exe.chmod(0o4755)
    core = _core_of(t0, crash_self([str(exe)], USER, USER))
    out = service.app_delete(USER, core)
    assert "blocker: The core is restricted" in out
    reply = service.raw_request(USER, b"delete\0" + core.name.encode())
    assert reply.startswith(b"error\0the core is restricted"), reply
    assert core.is_file()
    assert service.raw_request(0, b"delete\0" + core.name.encode()) == b"ok"
    assert not core.exists()


def test_status_says_whether_users_can_delete_cores(service: Service) -> None:
    def status() -> str:
        cmd = [str(COLLECTOR), f"--prefix={service.h.prefix}", "status"]
        return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout

    assert f"core deletion:   listening on {service.sock}" in status()
    service.sock.unlink()
    assert "core deletion:   not listening (users cannot delete cores)" in status()
