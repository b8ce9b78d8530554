"""SECURITY.md 5: crafted metadata (CVE-2022-28658 Apport, path traversal through names).

A real process crashes through core_pattern with a comm, executable path, command line,
environment and working directory full of `/`, `..`, spaces, newlines, control and bidi
characters, invalid UTF-8, shell syntax and `)` (which breaks a naive /proc/PID/stat parser),
and with a 128 KiB argv[0]. The stored core must stay inside the storage directory under a name
escaped like systemd's, every field must come back from the journal byte for byte (those that
coredumpctl prints through schema.unescape: they are stored escaped, SECURITY.md 14), and
nothing may be executed or evaluated.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from drkonqi_lite_collector.journal.schema import escape_comm, escape_name, unescape
from tests.integration.access import tree
from tests.integration.harness import Harness, copy_program, install_without_pidfd
from tests.integration.journal_read import Entry, field, wait_entry_since
from tests.integration.processes import crash_self

USER = 1000


BIDI = "\u202e".encode()  # RIGHT-TO-LEFT OVERRIDE
#: Shell syntax that leaves a file called `pwned` wherever it is evaluated.
EVAL = b"$(touch pwned)`touch pwned`;touch pwned"
DIR = b"we ird\n..\x01\x1b[31m" + BIDI + b")(\xff"
EXE = b"cr ash)\n" + EVAL + b"\x7f\xfe"
ARGS = [
    b"arg with  spaces",
    b"new\nline",
    b"\x01\x02\x1b[2J\x7f",
    BIDI + b"gnp.exe",
    b"\xff\xfe invalid \xc3(",
    b"",
    b"../../etc/shadow",
    EVAL,
    b"<b>markup</b>&amp;",
    b"last",
]
ENV_VALUE = b"v a l\nSECOND=line\x1b[0m" + BIDI + b"\xff" + EVAL
#: 15 bytes at most (TASK_COMM_LEN 16). The second one spoofs the fields after comm in
#: /proc/PID/stat: a parser that stops at the first `)` reads garbage for the flags.
COMMS = {
    "weird": b"a/../)\n\x1b\xff )x",
    "stat-spoof": b"x) R 1 1 1 1 1",
}


def assert_stored_safely(h: Harness, e: Entry, comm: bytes, pid: int) -> None:
    core = Path(os.fsdecode(field(e, "COREDUMP_FILENAME")))
    assert core.parent == h.storage
    assert core.is_file()
    assert h.cores() == [core]
    name = core.name
    assert re.fullmatch(r"core\.[!-~]+", name), f"unprintable or spaced file name {name!r}"
    assert name.split(".")[1] == escape_name(comm)
    assert name.split(".")[4] == str(pid)
    assert "/" not in escape_name(comm)
    assert ".." not in name


def printed(e: Entry, name: str) -> bytes:
    """A field coredumpctl prints: printable UTF-8 in the journal, its bytes via unescape."""
    value = field(e, name).decode("utf-8")  # raises on invalid UTF-8
    assert value.isprintable(), f"{name} holds control characters: {value!r}"
    return unescape(value)


def assert_nothing_evaluated(h: Harness, cwd: bytes) -> None:
    for d in (b"/", cwd, bytes(h.prefix), bytes(h.storage)):
        assert not os.path.exists(os.path.join(d, b"pwned")), f"something ran in {d!r}"


@pytest.mark.parametrize("comm_kind", list(COMMS))
@pytest.mark.parametrize("pattern_kind", ["pidfd", "no-pidfd"])
def test_hostile_metadata_round_trips(
    t0: float,
    harness: Harness,
    core_pattern: None,
    crashme: Path,
    comm_kind: str,
    pattern_kind: str,
) -> None:
    comm = COMMS[comm_kind]
    exe = copy_program(harness, crashme, DIR, EXE)
    cwd = os.path.dirname(exe)
    if pattern_kind == "pidfd":
        harness.install()
    else:
        install_without_pidfd(harness)
    before = tree(harness.prefix)  # after install: its launcher is setup, not the collector's
    argv = [exe, *ARGS]
    env = {b"DKL_COMM": comm, b"DKL_CWD": cwd, b"DKL_WEIRD": ENV_VALUE}
    pid = crash_self(argv, USER, USER, env=env)
    e = wait_entry_since(t0, COREDUMP_PID=pid)

    # Identity was proven: with %F from the pidfd, without it from PF_DUMPCORE in
    # /proc/PID/stat, parsed after the LAST `)` whatever comm holds.
    assert field(e, "DRKONQI_LITE_IDENTITY") == b"verified"
    assert field(e, "COREDUMP_COMM") == escape_comm(comm).encode()
    assert printed(e, "COREDUMP_COMM") == comm
    assert printed(e, "COREDUMP_EXE") == exe
    assert field(e, "COREDUMP_CWD") == cwd
    assert printed(e, "COREDUMP_CMDLINE") == b" ".join(argv)
    # systemd's format: VAR=value per line (a value's own newlines stay as they are).
    assert field(e, "COREDUMP_ENVIRON") == b"\n".join(k + b"=" + v for k, v in env.items())
    assert field(e, "MESSAGE").startswith(
        f"Process {pid} ({escape_comm(comm)}) of user {USER} dumped core.".encode()
    )
    assert_stored_safely(harness, e, comm, pid)
    assert_nothing_evaluated(harness, cwd)
    # Nothing appeared anywhere but in the collector's own state directory.
    new = [k for k in tree(harness.prefix) if k not in before]
    ours = ("var", "var/lib", "var/lib/drkonqi-lite")
    assert all(k in ours or k.startswith("var/lib/drkonqi-lite/") for k in new), new


def test_128k_argv0(t0: float, harness: Harness, core_pattern: None, crashme: Path) -> None:
    """argv[0] at the kernel's MAX_ARG_STRLEN (128 KiB with its NUL): recorded whole."""
    harness.install()
    argv0 = (b"A" * 1023 + b"\n") * 127 + b"Z" * 1023
    assert len(argv0) == 128 * 1024 - 1
    pid = crash_self([argv0, b"tail"], USER, USER, executable=crashme)
    e = wait_entry_since(t0, COREDUMP_PID=pid)
    assert printed(e, "COREDUMP_CMDLINE") == argv0 + b" tail"
    assert field(e, "COREDUMP_COMM") == b"crashme"
    assert_stored_safely(harness, e, b"crashme", pid)
