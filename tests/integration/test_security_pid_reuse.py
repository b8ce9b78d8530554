"""SECURITY.md 1: process identity races (CVE-2025-4598, CVE-2025-5054, CVE-2020-15702).

The collector must read /proc only through a handle proven to be the crashed process, and fail
closed (entry marked unverified, no read access for the user, no metadata of whatever process
now owns the PID) when it cannot prove that. These tests play the attacker's part with real
processes: a pidfd of one process with the PID of another, a PID recycled to another user, and a
live process that is not dumping core handed over without a pidfd.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import which
from tests.integration.access import posix_acl, readable_as
from tests.integration.harness import Harness
from tests.integration.journal_read import (
    Entry,
    admin_uid,
    entries_since,
    field,
    wait_entry_since,
)
from tests.integration.processes import start_waiting, stop

USER = 1000


OTHER = 4242
NS_LAST_PID = Path("/proc/sys/kernel/ns_last_pid")
#: Bytes that exist only in the impostor's /proc files; none may reach the victim's entry.
MARKER = b"IMPOSTOR-7f3a9c"
CORE = b"\x7fELF" + bytes(range(256)) * 256


@pytest.fixture
def impostor_env() -> dict[str, str]:
    return {"DKL_SECRET": MARKER.decode(), "DKL_COMM": "impostor-7f3a9c"}


def assert_fails_closed(h: Harness, e: Entry) -> None:
    """What a user or admin sees when identity could not be proven."""
    assert field(e, "DRKONQI_LITE_IDENTITY") == b"unverified"
    assert field(e, "DRKONQI_LITE_RESTRICTED") == b"1"
    assert b"identity" in field(e, "DRKONQI_LITE_RESTRICTED_REASON")
    leaked = [k for k, v in e.items() if isinstance(v, bytes) and b"7f3a9c" in v]
    assert not leaked, f"metadata of the process now under the PID leaked into {leaked}"
    for name in ("COREDUMP_ENVIRON", "COREDUMP_CMDLINE", "COREDUMP_EXE", "COREDUMP_PROC_STATUS"):
        assert name not in e, f"{name} recorded although identity was not proven"
    # The core is still kept for root, but nobody else may read it.
    core = Path(field(e, "COREDUMP_FILENAME").decode())
    assert core.parent == h.storage
    st = core.stat()
    assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (0, 0, 0o640)
    assert posix_acl(core) is None, "an ACL was granted on a core of unproven identity"
    assert not readable_as(core, USER, USER)


def test_pidfd_of_another_process_is_unverified(
    t0: float, harness: Harness, crashme: Path, impostor_env: dict[str, str]
) -> None:
    """%F names process A, %P names process B (same user): nothing of B is recorded."""
    victim = start_waiting([str(crashme)], USER, USER)
    impostor = start_waiting([str(crashme), MARKER.decode()], USER, USER, env=impostor_env)
    pidfd = os.pidfd_open(victim.pid)
    try:
        argv = harness.argv(impostor.pid, USER, USER, pidfd=pidfd)
        out = harness.run(argv, CORE, pass_fds=(pidfd,))
        assert out.returncode == 0, out.stderr
        assert_fails_closed(harness, wait_entry_since(t0, COREDUMP_PID=impostor.pid))

        # Control: the same call with the matching pidfd is trusted, so the check above is
        # the pidfd comparison and not some other failure.
        own = os.pidfd_open(impostor.pid)
        try:
            out = harness.run(
                harness.argv(impostor.pid, USER, USER, pidfd=own, timestamp=1_000_000_000),
                CORE,
                pass_fds=(own,),
            )
        finally:
            os.close(own)
        assert out.returncode == 0, out.stderr
        ok = wait_entry_since(
            t0, COREDUMP_PID=impostor.pid, COREDUMP_TIMESTAMP=1_000_000_000_000_000
        )
        assert field(ok, "DRKONQI_LITE_IDENTITY") == b"verified"
        assert MARKER in field(ok, "COREDUMP_ENVIRON")
        assert readable_as(Path(field(ok, "COREDUMP_FILENAME").decode()), USER, USER)
    finally:
        os.close(pidfd)
        stop(victim)
        stop(impostor)


def _reuse_pid(
    pid: int, start: Callable[[], subprocess.Popen[bytes]]
) -> subprocess.Popen[bytes] | None:
    """Make the next fork get `pid` (ns_last_pid = pid - 1) and start a process; None if
    another process won the race for that number."""
    NS_LAST_PID.write_text(f"{pid - 1}\n")
    proc = start()
    if proc.pid == pid:
        return proc
    stop(proc)
    return None


@pytest.fixture
def recycled(
    crashme: Path, impostor_env: dict[str, str], request: pytest.FixtureRequest
) -> Iterator[tuple[int, int]]:
    """(dead pidfd of the crashed process, PID now held by another process of `request.param`)."""
    which("setpriv")
    uid = request.param
    for _ in range(50):
        victim = start_waiting([str(crashme)], USER, USER)
        pidfd = os.pidfd_open(victim.pid)
        victim.send_signal(signal.SIGKILL)
        victim.wait()  # reaped: the number is free again
        impostor = _reuse_pid(
            victim.pid,
            lambda: start_waiting([str(crashme), MARKER.decode()], uid, uid, env=impostor_env),
        )
        if impostor is None:
            os.close(pidfd)
            continue
        try:
            yield pidfd, victim.pid
        finally:
            os.close(pidfd)
            stop(impostor)
        return
    pytest.fail("could not get a recycled PID in 50 attempts")


@pytest.mark.parametrize("recycled", [OTHER, USER], indirect=True, ids=["other-user", "same-user"])
def test_recycled_pid_with_dead_pidfd_fails_closed(
    t0: float, harness: Harness, recycled: tuple[int, int]
) -> None:
    """The crashed process is gone and its PID belongs to someone else; the kernel's pidfd
    still names the dead one. Even when the newcomer runs as the same user (so uid checks
    cannot tell), nothing of it is recorded and the core stays root-only."""
    pidfd, pid = recycled
    out = harness.run(harness.argv(pid, USER, USER, pidfd=pidfd), CORE, pass_fds=(pidfd,))
    assert out.returncode == 0, out.stderr
    assert_fails_closed(harness, wait_entry_since(t0, COREDUMP_PID=pid))


def test_live_process_not_dumping_core_without_pidfd(
    t0: float, harness: Harness, crashme: Path, impostor_env: dict[str, str]
) -> None:
    """Without %F (kernels before 6.16) the collector opens the PID itself; a process of the
    same user that is merely running (not in the kernel's dump, no PF_DUMPCORE) is not the
    crashed one."""
    impostor = start_waiting([str(crashme), MARKER.decode()], USER, USER, env=impostor_env)
    try:
        out = harness.run(harness.argv(impostor.pid, USER, USER), CORE)
        assert out.returncode == 0, out.stderr
        e = wait_entry_since(t0, COREDUMP_PID=impostor.pid)
        assert_fails_closed(harness, e)
    finally:
        stop(impostor)


def _one_crash(t0: float, pid: int) -> Entry:
    """The crash's entry, free of the replacement's metadata. Killed while its /proc was read,
    the victim may leave no auxv (a zombie): the collector then fails closed, a restricted
    crash with two entries, the full one for root (sent first) and the user's
    (restriction.py); both are checked, the user's is returned."""
    match = {"COREDUMP_PID": pid, "COREDUMP_TIMESTAMP": 1_700_000_000_000_000}
    mine = b"%d" % USER
    found: list[Entry] = []
    deadline = time.monotonic() + 15
    while not any(field(e, "_UID") == mine for e in found):
        assert time.monotonic() < deadline, f"no crash entry of the user for {match}: {found}"
        time.sleep(0.05)
        found = entries_since(t0, **match)
    own = next(e for e in found if field(e, "_UID") == mine)
    expected = sorted([mine, b"%d" % admin_uid()]) if "DRKONQI_LITE_WITHHELD" in own else [mine]
    assert sorted(field(e, "_UID") for e in found) == expected, "one crash, one entry (or a pair)"
    for e in found:
        leaked = [k for k, v in e.items() if isinstance(v, bytes) and b"7f3a9c" in v]
        assert not leaked, f"the replacement's metadata leaked into {leaked}"
    return own


@pytest.mark.parametrize("delay", [0.0, 0.02, 0.05, 0.07, 0.08, 0.09, 0.1, 0.2])
def test_process_replaced_mid_collection(
    t0: float, harness: Harness, crashme: Path, impostor_env: dict[str, str], delay: float
) -> None:
    """The kernel hands over A with its pidfd; while the collector runs, A is killed and reaped
    and B (same user) takes A's PID. Whatever the timing, B's metadata never lands in A's
    entry, and access is granted only when identity was proven (then the data is A's)."""
    which("setpriv")
    for _ in range(50):
        victim = start_waiting([str(crashme)], USER, USER, env={"DKL_SECRET": "victim-aaaa"})
        pidfd = os.pidfd_open(victim.pid)
        collector = subprocess.Popen(
            harness.argv(victim.pid, USER, USER, pidfd=pidfd, timestamp=1_700_000_000),
            stdin=subprocess.PIPE,
            pass_fds=(pidfd,),
        )
        time.sleep(delay)
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        impostor = _reuse_pid(
            victim.pid,
            lambda: start_waiting([str(crashme), MARKER.decode()], USER, USER, env=impostor_env),
        )
        try:
            collector.communicate(CORE, timeout=30)
        finally:
            os.close(pidfd)
            if impostor is not None:
                stop(impostor)
        assert collector.returncode == 0
        e = _one_crash(t0, victim.pid)
        if impostor is None:
            continue  # another process took the number: the entry was checked to exist, retry
        core = Path(field(e, "COREDUMP_FILENAME").decode())
        if field(e, "DRKONQI_LITE_IDENTITY") == b"verified":
            # The victim's own environment, or none when it was already a zombie (its pidfd
            # still pins the PID, so identity holds, but its memory is gone): never another's.
            if "COREDUMP_ENVIRON" in e:
                assert b"DKL_SECRET=victim-aaaa" in field(e, "COREDUMP_ENVIRON")
        else:
            assert_fails_closed(harness, e)
        assert posix_acl(core) is None or field(e, "DRKONQI_LITE_IDENTITY") == b"verified"
        return
    pytest.fail("could not get a recycled PID in 50 attempts")
