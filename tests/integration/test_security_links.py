"""SECURITY.md 3: symlinks, hard links and FIFOs at predictable paths (CVE-2015-3315, -1325).

Links and FIFOs are planted at every path the collector writes or reads: the final core file
name, the rate-limit state file, spool entries, the storage, spool, rate-limit and state
directories themselves (as symlinks, world-writable, or owned by a user), and the crashing
process's working directory. Nothing may be written or read through them, no target may change,
the collector must not hang on a FIFO, and the crash's entry must still be written.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from drkonqi_lite_collector.journal.native import serialize
from drkonqi_lite_collector.journal.schema import MESSAGE_ID, core_filename
from drkonqi_lite_collector.worker.corefile import boot_id
from tests.integration.access import tree
from tests.integration.harness import Harness
from tests.integration.journal_read import Entry, entries_since, field, wait_entry_since
from tests.integration.processes import crash_self, start_waiting, stop

USER = 1000


PRECIOUS = b"precious, must not change\n"
#: A forged entry planted where a spooled entry would be: it must never be sent.
FORGED = serialize(
    [("MESSAGE_ID", MESSAGE_ID), ("MESSAGE", "FORGED-b41e"), ("COREDUMP_PID", "999999")]
)


@pytest.fixture
def target(crashme: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A live process of the user standing in for the crashed one."""
    proc = start_waiting([str(crashme)], USER, USER)
    try:
        yield proc
    finally:
        stop(proc)


class Plant:
    """Victims outside the collector's tree, and ways to aim links at them."""

    def __init__(self, h: Harness) -> None:
        self.h = h
        self.victim = h.prefix / "victim"
        self.victim.write_bytes(PRECIOUS)
        self.victim_dir = h.prefix / "victimdir"
        self.victim_dir.mkdir(mode=0o755)
        h.state.mkdir(mode=0o755, parents=True)

    def at(self, path: Path, kind: str) -> None:
        path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        if kind == "symlink":
            path.symlink_to(self.victim)
        elif kind == "hardlink":
            os.link(self.victim, path)
        elif kind == "fifo":
            os.mkfifo(path, 0o600)
        else:
            raise ValueError(kind)

    def assert_untouched(self) -> None:
        assert self.victim.read_bytes() == PRECIOUS
        st = self.victim.stat()
        assert (st.st_uid, st.st_mode & 0o7777) == (0, 0o644)
        assert list(self.victim_dir.iterdir()) == [], "something was written through a link"


@pytest.fixture
def plant(harness: Harness) -> Plant:
    return Plant(harness)


def run(
    t0: float, h: Harness, proc: subprocess.Popen[bytes], timestamp: int = 1_700_000_000
) -> Entry:
    """Hand over a crash of `proc` with its pidfd, as the kernel does; the entry it produced."""
    pidfd = os.pidfd_open(proc.pid)
    try:
        out = h.run(
            h.argv(proc.pid, USER, USER, pidfd=pidfd, timestamp=timestamp),
            b"\x7fELF" + os.urandom(65536),
            pass_fds=(pidfd,),
            timeout=30,
        )
    finally:
        os.close(pidfd)
    assert out.returncode == 0, out.stderr
    return wait_entry_since(t0, COREDUMP_PID=proc.pid, COREDUMP_TIMESTAMP=timestamp * 1_000_000)


@pytest.mark.parametrize("kind", ["symlink", "hardlink", "fifo"])
def test_planted_at_final_core_name(
    t0: float, plant: Plant, target: subprocess.Popen[bytes], kind: str
) -> None:
    ts = 1_700_000_000
    name = core_filename(b"crashme", USER, boot_id(), target.pid, ts * 1_000_000)
    planted = plant.h.storage / name
    plant.at(planted, kind)
    e = run(t0, plant.h, target, ts)
    plant.assert_untouched()
    kind_now = planted.lstat().st_mode
    assert {"symlink": stat.S_ISLNK, "hardlink": stat.S_ISREG, "fifo": stat.S_ISFIFO}[kind](
        kind_now
    )
    # The planted name is never reported as this crash's core.
    if "COREDUMP_FILENAME" in e:
        core = Path(field(e, "COREDUMP_FILENAME").decode())
        assert core != planted
        st = core.lstat()
        assert stat.S_ISREG(st.st_mode)
        assert (st.st_nlink, st.st_uid) == (1, 0)
    else:
        assert field(e, "DRKONQI_LITE_CORE_MISSING") == b"write-failed"


@pytest.mark.parametrize("kind", ["symlink", "hardlink", "fifo"])
def test_planted_at_ratelimit_state_file(
    t0: float, plant: Plant, target: subprocess.Popen[bytes], crashme: Path, kind: str
) -> None:
    key = hashlib.sha256(f"{USER}".encode() + b"\0" + bytes(crashme)).hexdigest()[:32]
    ratelimit = plant.h.state / "ratelimit"
    ratelimit.mkdir(mode=0o700)
    plant.at(ratelimit / key, kind)
    e = run(t0, plant.h, target)
    plant.assert_untouched()
    assert field(e, "COREDUMP_EXE") == bytes(crashme)
    # The crash itself is unaffected: entry and core are there.
    assert Path(field(e, "COREDUMP_FILENAME").decode()).is_file()


@pytest.mark.parametrize("kind", ["symlink", "fifo"])
def test_planted_in_spool(
    t0: float, plant: Plant, target: subprocess.Popen[bytes], kind: str
) -> None:
    """A spool entry name pointing elsewhere is never read (a FIFO would hang a reader), and
    the new crash is still delivered."""
    plant.victim.write_bytes(FORGED)
    spool = plant.h.spool
    spool.mkdir(mode=0o700)
    planted = spool / f"{1:020d}.1.{USER}.{USER}.entry"
    if kind == "symlink":
        planted.symlink_to(plant.victim)
    else:
        os.mkfifo(planted, 0o600)
    e = run(t0, plant.h, target)
    assert Path(field(e, "COREDUMP_FILENAME").decode()).is_file()
    assert plant.victim.read_bytes() == FORGED
    assert [
        x for x in entries_since(t0, COREDUMP_PID=999999) if x.get("MESSAGE") == b"FORGED-b41e"
    ] == []


DIRS: dict[str, Callable[[Harness], Path]] = {
    "state": lambda h: h.state,
    "storage": lambda h: h.storage,
    "spool": lambda h: h.spool,
    "ratelimit": lambda h: h.state / "ratelimit",
}


@pytest.mark.parametrize("which_dir", list(DIRS))
@pytest.mark.parametrize("how", ["symlink", "world-writable", "user-owned"])
def test_unsafe_directory(
    t0: float, plant: Plant, target: subprocess.Popen[bytes], which_dir: str, how: str
) -> None:
    """A directory of ours that is a symlink, or that others may write: never used."""
    d = DIRS[which_dir](plant.h)
    if which_dir == "state":
        shutil.rmtree(d)
    if how == "symlink":
        d.symlink_to(plant.victim_dir, target_is_directory=True)
    else:
        d.mkdir(mode=0o755)
        if how == "world-writable":
            d.chmod(0o1777 if which_dir == "state" else 0o777)
        else:
            os.chown(d, USER, USER)
    before = {p: p.lstat() for p in d.iterdir()} if not d.is_symlink() else {}
    e = run(t0, plant.h, target)
    plant.assert_untouched()
    if not d.is_symlink():
        assert {p: p.lstat() for p in d.iterdir()} == before, f"{d} was written into"
    if which_dir in ("state", "storage"):
        assert field(e, "DRKONQI_LITE_CORE_MISSING") == b"write-failed"
        assert "COREDUMP_FILENAME" not in e
    else:
        core = Path(field(e, "COREDUMP_FILENAME").decode())
        assert core.parent == plant.h.storage
        assert core.is_file()


@pytest.mark.parametrize("pattern_kind", ["pidfd", "no-pidfd"])
def test_planted_in_crashing_process_cwd(
    t0: float, harness: Harness, core_pattern: None, crashme: Path, pattern_kind: str
) -> None:
    """A real crash whose cwd is the user's own directory full of planted `core*` links and
    FIFOs: the collector never writes where the crashed process can write."""
    from tests.integration.harness import install_without_pidfd  # noqa: PLC0415

    victim = harness.prefix / "victim"
    victim.write_bytes(PRECIOUS)
    cwd = harness.prefix / "home"
    cwd.mkdir(mode=0o755)
    for name in ("core", "core.zst", "crashme.core", "core.crashme"):
        (cwd / name).symlink_to(victim)
    os.mkfifo(cwd / "core.fifo", 0o666)
    os.link(victim, cwd / "core.hard")
    (cwd / "core.dir").symlink_to(harness.prefix, target_is_directory=True)
    for p in cwd.iterdir():
        os.chown(p, USER, USER, follow_symlinks=False)
    os.chown(cwd, USER, USER)
    if pattern_kind == "pidfd":
        harness.install()
    else:
        install_without_pidfd(harness)
    before = tree(harness.prefix)  # after install: its launcher is setup, not the collector's
    pid = crash_self([str(crashme)], USER, USER, env={"DKL_CWD": str(cwd)})
    e = wait_entry_since(t0, COREDUMP_PID=pid)
    assert field(e, "COREDUMP_CWD") == bytes(cwd)
    assert victim.read_bytes() == PRECIOUS
    after = tree(harness.prefix)
    new = {k: v for k, v in after.items() if k not in before}
    ours = ("var", "var/lib", "var/lib/drkonqi-lite")
    assert all(k in ours or k.startswith("var/lib/drkonqi-lite/") for k in new), new
    assert {k: v for k, v in after.items() if k in before} == before
    core = Path(field(e, "COREDUMP_FILENAME").decode())
    assert core.parent == harness.storage
