"""SECURITY.md 2: set-uid, file-caps and non-dumpable processes (CVE-2022-4415).

The crashing user may read the core only if dump mode is 1, AT_SECURE is 0, uid == euid and
gid == egid. Real crashes through core_pattern: a set-uid-root helper, a binary with file
capabilities, a root process that dropped to the user (the kernel then marks it with
fs.suid_dumpable), and a PR_SET_DUMPABLE 0 process. The core must be root-only (0640 root:root,
no ACL), the user must not be able to open it, and the entry must still be written, saying
"restricted" and why.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import which
from tests.integration.access import posix_acl, readable_as
from tests.integration.harness import Harness
from tests.integration.journal_read import (
    Entry,
    entries_since,
    field,
    restricted_entries,
    wait_entry_since,
)
from tests.integration.processes import build_crashme, crash_self, start_waiting, stop

USER = 1000


NOPASSWD = 4242


@pytest.fixture
def installed(harness: Harness, core_pattern: None, suid_dumpable: None) -> Harness:
    harness.install()
    return harness


def privileged_copy(h: Harness, name: str) -> Path:
    """A root-owned copy of crashme in a root-owned directory, ready for chmod/setcap."""
    which("gcc")
    bindir = h.prefix / "bin"
    bindir.mkdir(mode=0o755, exist_ok=True)
    exe = bindir / name
    shutil.copy(build_crashme(), exe)
    os.chown(exe, 0, 0)
    exe.chmod(0o755)
    return exe


def assert_restricted(h: Harness, e: Entry, uid: int, reason: bytes) -> None:
    """The user sees the crash, marked restricted with the reason; the core is root-only."""
    assert field(e, "COREDUMP_UID") == str(uid).encode()
    assert field(e, "DRKONQI_LITE_RESTRICTED") == b"1"
    assert reason in field(e, "DRKONQI_LITE_RESTRICTED_REASON")
    assert "DRKONQI_LITE_CORE_MISSING" not in e
    core = Path(field(e, "COREDUMP_FILENAME").decode())
    assert core.parent == h.storage
    st = core.stat()
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (0, 0, 0o640)
    assert posix_acl(core) is None, "a set-uid/non-dumpable core got an ACL"
    assert not readable_as(core, uid, uid), "the user can read a restricted core"
    assert h.cores() == [core]


@pytest.mark.parametrize("uid", [USER, NOPASSWD])
def test_setuid_root_helper(t0: float, installed: Harness, uid: int) -> None:
    exe = privileged_copy(installed, "suidhelper")
    exe.chmod(0o4755)
    pid = crash_self([str(exe)], uid, uid)
    e, full = restricted_entries(t0, pid, uid)
    assert field(e, "COREDUMP_DUMPABLE") == b"2"
    assert_restricted(installed, e, uid, b"dump mode 2")
    assert_restricted(installed, full, uid, b"dump mode 2")
    # The euid the user could not have had themselves is visible to root in the full entry.
    status = field(full, "COREDUMP_PROC_STATUS")
    assert f"Uid:\t{uid}\t0\t0\t0".encode() in status


def test_file_capabilities_binary(t0: float, installed: Harness) -> None:
    setcap = which("setcap")
    exe = privileged_copy(installed, "capshelper")
    subprocess.run([setcap, "cap_net_raw+ep", str(exe)], check=True)
    pid = crash_self([str(exe)], USER, USER)
    e, _full = restricted_entries(t0, pid, USER)
    # Gaining capabilities sets AT_SECURE and makes the kernel dump it in suid_dumpable mode.
    assert_restricted(installed, e, USER, b"dump mode 2")
    assert b"CapEff:\t0000000000002000" in field(e, "COREDUMP_PROC_STATUS")


def test_root_process_that_dropped_to_the_user(t0: float, installed: Harness) -> None:
    """uid == euid, AT_SECURE 0: only the dump mode (set to suid_dumpable by the kernel when the
    credentials changed) tells that this memory held root's secrets."""
    exe = privileged_copy(installed, "dropper")
    pid = crash_self([str(exe)], 0, 0, env={"DKL_SETUID": str(USER)})
    e, _full = restricted_entries(t0, pid, USER)
    assert field(e, "COREDUMP_DUMPABLE") == b"2"
    assert field(e, "DRKONQI_LITE_IDENTITY") == b"verified"
    assert_restricted(installed, e, USER, b"dump mode 2")


def test_pr_set_dumpable_0_is_never_handed_over(t0: float, installed: Harness) -> None:
    """The kernel does not dump a PR_SET_DUMPABLE 0 process even with fs.suid_dumpable=2
    (coredump_skip(): __get_dumpable() == 0): no core may appear from anywhere."""
    exe = privileged_copy(installed, "nodump")
    pid = crash_self([str(exe)], USER, USER, env={"DKL_NODUMP": "1"})
    # A control crash afterwards: once its entry is there, the first would have been too.
    control = crash_self([str(exe)], USER, USER)
    wait_entry_since(t0, COREDUMP_PID=control)
    assert entries_since(t0, COREDUMP_PID=pid) == []
    assert [p.name.split(".")[4] for p in installed.cores()] == [str(control)]


def test_non_dumpable_process_reported_with_mode_0(t0: float, harness: Harness) -> None:
    """Should a kernel hand over a dump-mode-0 process (%d = 0, e.g. the collector run by hand
    or a future kernel), the rule still keeps the core root-only."""
    which("gcc")
    proc = start_waiting([str(build_crashme())], USER, USER, env={"DKL_NODUMP": "1"})
    pidfd = os.pidfd_open(proc.pid)
    try:
        out = harness.run(
            harness.argv(proc.pid, USER, USER, dumpable=0, pidfd=pidfd),
            b"\x7fELF" + b"\0" * 4096,
            pass_fds=(pidfd,),
        )
        assert out.returncode == 0, out.stderr
        e, _full = restricted_entries(t0, proc.pid, USER)
        assert field(e, "DRKONQI_LITE_IDENTITY") == b"verified"
        assert_restricted(harness, e, USER, b"dump mode 0")
    finally:
        os.close(pidfd)
        stop(proc)
