"""SECURITY.md 13: what a restricted crash may tell its user.

Real crashes through core_pattern of processes the kernel keeps from their user: a set-uid-root
program that opens and maps root-only files, an execute-only (0711) binary and a binary with
file capabilities. Each carries marker text in its environment, open fds, maps and symbol
names, and has a build-id. The user's own entry, and what the app shows the user (its command
line prints the D-Bus crash dictionaries), must hold none of it, only what /proc shows any user;
the full entry, with every marker, is in the system journal for root. And a crash the user
may see whose program lives in a root-only directory: its stack trace reaches the user without
that program's symbol names and build-id.
"""

from __future__ import annotations

import grp
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import which
from tests.integration import desktop as dk
from tests.integration.desktop import Desktop, User, wait_for
from tests.integration.harness import Harness
from tests.integration.journal_read import Entry, field, restricted_entries
from tests.integration.processes import crash_self

app_desktop = dk.app_desktop

MARK = b"dklsecret"
PROGRAM_C = r"""
#include <fcntl.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <unistd.h>

__attribute__((noinline)) void dklsecret_function(void) { *(volatile int *)0 = 0; }

int main(void) {
    const char *v;
    if ((v = getenv("DKL_DROP"))) {  /* a root daemon that becomes the user, dumpable again */
        if (setresgid(atoi(v), atoi(v), atoi(v)) || setresuid(atoi(v), atoi(v), atoi(v))) return 5;
        prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
    }
    if ((v = getenv("DKL_OPEN")) && open(v, O_RDONLY) < 0) return 3;
    if ((v = getenv("DKL_MAP"))) {
        int fd = open(v, O_RDONLY);
        if (fd < 0 || mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, fd, 0) == MAP_FAILED) return 4;
    }
    dklsecret_function();
    return 1;
}
"""
ENV = {"DKLSECRET_TOKEN": "dklsecret-environ", "PATH": "/usr/bin:/bin"}
#: Fields behind a ptrace check in /proc, or read as root from the core and module files.
WITHHELD = {
    "COREDUMP_EXE",
    "COREDUMP_CWD",
    "COREDUMP_ROOT",
    "COREDUMP_ENVIRON",
    "COREDUMP_OPEN_FDS",
    "COREDUMP_PROC_MAPS",
    "COREDUMP_PROC_AUXV",
    "DRKONQI_LITE_MODULES",
    "COREDUMP_PACKAGE_JSON",
}


@pytest.fixture
def secrets(harness: Harness, core_pattern: None, suid_dumpable: None) -> Iterator[Path]:
    """A root-owned directory with the program and two root-only marker files."""
    which("gcc")
    d = harness.prefix / "bin"
    d.mkdir(mode=0o755)
    src = d / "secret.c"
    src.write_text(PROGRAM_C)
    subprocess.run(["gcc", "-O0", "-o", str(d / "restricted-prog"), str(src)], check=True)
    for name in ("dklsecret-opened", "dklsecret-mapped"):
        (d / name).write_bytes(b"x" * 4096)
        (d / name).chmod(0o600)
    harness.install()
    yield d
    shutil.rmtree(d, ignore_errors=True)


def build_id(exe: Path) -> bytes:
    out = subprocess.run(["readelf", "-n", str(exe)], capture_output=True, check=True).stdout
    found = re.search(rb"Build ID: ([0-9a-f]+)", out)
    assert found is not None, "the test program has no build-id"
    return found.group(1)


def leaks(e: Entry, secret: list[bytes]) -> list[str]:
    """The names of the fields of `e` that carry one of `secret`."""
    return sorted(k for k, v in e.items() if isinstance(v, bytes) and any(s in v for s in secret))


def check(user: User, t0: float, exe: Path, pid: int, markers: list[bytes]) -> None:
    own, full = restricted_entries(t0, pid, user.uid)
    secret = [MARK, build_id(exe)]
    # The full entry has everything (so the test can see a leak), the user's none of it.
    for marker in markers:
        assert leaks(full, [marker]), f"{marker!r} is not in the full entry: the test is blind"
    assert b"Stack trace of thread" in field(full, "MESSAGE")
    assert build_id(exe) in field(full, "DRKONQI_LITE_MODULES")
    assert leaks(own, secret) == [], "a restricted crash discloses to its user"
    assert WITHHELD.isdisjoint(own)
    # (this program belongs to no package: it has no COREDUMP_PACKAGE_JSON to withhold)
    listed = set(field(own, "DRKONQI_LITE_WITHHELD").decode().split())
    assert listed >= WITHHELD - {"COREDUMP_PACKAGE_JSON"}
    assert (
        field(own, "MESSAGE")
        == f"Process {pid} (restricted-prog) of user {user.uid} dumped core.".encode()
    )
    assert field(own, "DRKONQI_LITE_RESTRICTED") == b"1"
    # What /proc shows any user stays: the status with its euid, the command line.
    assert b"Uid:" in field(own, "COREDUMP_PROC_STATUS")
    assert field(own, "COREDUMP_CMDLINE") == str(exe).encode()
    # The app, as the user: the crash is there, restricted, and says nothing more.
    shown = user.cli("show", str(pid), "--json", "--reveal")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["pid"] == pid
    crash_list = user.cli("list", "--json").stdout
    trace = user.cli("backtrace", str(pid)).stdout
    for text in (shown.stdout, crash_list, trace):
        assert not any(s.decode() in text for s in secret), text


@pytest.fixture
def user(app_desktop: Desktop) -> User:
    return app_desktop.user(with_display=False)


def test_setuid_root_program_discloses_nothing_the_kernel_hides(
    t0: float, secrets: Path, user: User
) -> None:
    exe = secrets / "restricted-prog"
    os.chown(exe, 0, 0)
    exe.chmod(0o4755)
    env = ENV | {
        "DKL_OPEN": str(secrets / "dklsecret-opened"),
        "DKL_MAP": str(secrets / "dklsecret-mapped"),
    }
    pid = crash_self([str(exe)], user.uid, user.uid, env=env)
    markers = [
        b"dklsecret-environ",
        b"dklsecret-opened",
        b"dklsecret-mapped",
        b"dklsecret_function",
    ]
    check(user, t0, exe, pid, markers)


def test_execute_only_binary_discloses_no_symbols_or_build_id(
    t0: float, secrets: Path, user: User
) -> None:
    """The user may run it but not read it: the kernel makes such a process non-dumpable
    (would_dump()), and its symbol names and build-id come only from reading the file."""
    exe = secrets / "restricted-prog"
    exe.chmod(0o711)
    pid = crash_self([str(exe)], user.uid, user.uid, env=ENV)
    check(user, t0, exe, pid, [b"dklsecret-environ", b"dklsecret_function"])


def test_file_capabilities_binary_discloses_nothing_the_kernel_hides(
    t0: float, secrets: Path, user: User
) -> None:
    exe = secrets / "restricted-prog"
    subprocess.run([which("setcap"), "cap_net_raw+ep", str(exe)], check=True)
    pid = crash_self([str(exe)], user.uid, user.uid, env=ENV)
    check(user, t0, exe, pid, [b"dklsecret-environ", b"dklsecret_function"])


def test_module_in_a_root_only_directory_keeps_its_symbols_from_the_user(
    t0: float, secrets: Path, user: User
) -> None:
    """Dump mode 1 (the user may have the core), but the program file is root's alone."""
    private = secrets / "private"
    private.mkdir(mode=0o700)
    exe = private / "restricted-prog"
    shutil.copy(secrets / "restricted-prog", exe)
    pid = crash_self([str(exe)], 0, 0, env={**ENV, "DKL_DROP": str(user.uid)})
    own, full = restricted_entries(t0, pid, user.uid)
    secret = [b"dklsecret_function", build_id(exe)]
    assert b"dklsecret_function" in field(full, "MESSAGE"), "the test is blind"
    assert build_id(exe) in field(full, "DRKONQI_LITE_MODULES")
    assert field(own, "COREDUMP_DUMPABLE") == b"1"
    assert "DRKONQI_LITE_RESTRICTED" not in own
    assert leaks(own, secret) == [], "symbols of a file the user cannot read reached them"
    # What the user may read stays: the rest of the stack trace (libc's frames), the maps.
    assert b"__libc_start" in field(own, "MESSAGE")
    assert str(exe).encode() in field(own, "COREDUMP_PROC_MAPS")
    assert "MESSAGE" in field(own, "DRKONQI_LITE_WITHHELD").decode().split()
    shown = user.cli("show", str(pid), "--json")
    assert shown.returncode == 0, shown.stderr
    assert not any(s.decode() in shown.stdout for s in secret), shown.stdout


def test_an_admin_sees_a_restricted_crash_once_with_everything(
    t0: float, secrets: Path, app_desktop: Desktop
) -> None:
    """A user in systemd-journal reads the system journal too, so both entries of their own
    restricted crash: the app and the command line show it once, as the full entry, and the
    login notification counts one crash, not two."""
    admin = app_desktop.user()
    journal_group = (grp.getgrnam("systemd-journal").gr_gid,)
    exe = secrets / "restricted-prog"
    os.chown(exe, 0, 0)
    exe.chmod(0o4755)
    pid = crash_self([str(exe)], admin.uid, admin.uid, env=ENV)
    restricted_entries(t0, pid, admin.uid)
    listed = json.loads(admin.cli("list", "--json", groups=journal_group).stdout)
    assert [c["pid"] for c in listed].count(pid) == 1, listed
    trace = admin.cli("backtrace", str(pid), groups=journal_group).stdout
    assert "dklsecret_function" in trace, "the admin was shown the user's reduced entry"
    admin.start_dunst()
    app = admin.start_app(groups=journal_group)
    try:
        notes = wait_for(admin.notifications, what="the login notification")
        time.sleep(1.0)  # a second notification, if any, has been sent by now
        notes = admin.notifications()
    finally:
        admin.stop(app)
    assert len(notes) == 1, notes
    assert "restricted-prog" in notes[0]["summary"] + notes[0]["body"], notes
    assert "2 times" not in notes[0]["body"], notes
    assert "programs" not in notes[0]["summary"], notes
