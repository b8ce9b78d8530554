"""SECURITY.md 10: nothing lost.

journald unreachable, the disk full or read-only, the collector killed mid-write: no partial core
is ever left under a final name, and every crash handed over ends up in the journal (at once, or
spooled and replayed in order, exactly once) saying why its core is missing.

journald is made unreachable for the collector alone, in a private mount namespace with an
empty /run/systemd/journal (no socket: ENOENT) or a dead socket (ECONNREFUSED), instead of
stopping the host's journald: that one is shared with everything else on the machine.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import which
from tests.integration.access import tree
from tests.integration.harness import COLLECTOR, Harness
from tests.integration.journal_read import Entry, entries_since, field, wait_entry_since
from tests.integration.processes import children, crash_self

USER = 1000


MiB = 1024**2


def no_journald_wrapper(h: Harness, how: str) -> Path:
    """A script that runs the collector with journald unreachable: in a private mount
    namespace, /run/systemd/journal is an empty tmpfs, or holds a socket nobody listens on."""
    which("unshare")
    dead = ""
    if how == "refused":
        dead_dir = h.prefix / "dead"
        dead_dir.mkdir()
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.bind(str(dead_dir / "socket"))  # closed at once: connect() says ECONNREFUSED
        dead = f" && mount --bind {dead_dir} /run/systemd/journal"
    script = h.prefix / "nojournal"
    script.write_text(
        "#!/bin/sh\n"
        "exec unshare --mount --propagation private /bin/sh -c "
        f"'mount -t tmpfs -o size=64k none /run/systemd/journal{dead}"
        ' && exec "$0" "$@"\' '
        f'{COLLECTOR} --prefix={h.prefix} "$@"\n'
    )
    script.chmod(0o755)
    return script


def spooled(h: Harness) -> list[str]:
    return sorted(p.name for p in h.spool.glob("*.entry")) if h.spool.exists() else []


@pytest.mark.parametrize("how", ["no-socket", "refused"])
def test_journald_unreachable_real_crash_spooled_then_replayed(
    t0: float, harness: Harness, core_pattern: None, crashme: Path, how: str
) -> None:
    wrapper = no_journald_wrapper(harness, how)
    Path("/proc/sys/kernel/core_pattern").write_text(f"|{wrapper} %P %u %g %s %t %c %h %d %F\n")
    Path("/proc/sys/kernel/core_pipe_limit").write_text("16\n")
    first = crash_self([str(crashme)], USER, USER)
    second = crash_self([str(crashme)], USER, USER)
    time.sleep(0.5)
    assert entries_since(t0, COREDUMP_PID=first) == [], "journald was reachable after all"
    assert len(spooled(harness)) == 2
    st = harness.spool.stat()
    assert (st.st_uid, st.st_mode & 0o777) == (0, 0o700)
    # The cores themselves were stored while journald was away.
    assert len(harness.cores()) == 2

    out = subprocess.run(
        [str(COLLECTOR), "--prefix", str(harness.prefix), "replay"],
        capture_output=True,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert b"replayed 2" in out.stdout
    assert spooled(harness) == []
    e1, e2 = wait_entry_since(t0, COREDUMP_PID=first), wait_entry_since(t0, COREDUMP_PID=second)
    for e in (e1, e2):
        assert int(field(e, "DRKONQI_LITE_SPOOLED_AT")) > 0
        assert Path(field(e, "COREDUMP_FILENAME").decode()).is_file()
    # In order, and filed in the user's own journal (sent with the user's credentials).
    assert int(e1["__REALTIME_TIMESTAMP"]) <= int(e2["__REALTIME_TIMESTAMP"])
    assert e1["_UID"] == str(USER).encode()
    # A second replay sends nothing again: exactly once.
    again = subprocess.run(
        [str(COLLECTOR), "--prefix", str(harness.prefix), "replay"],
        capture_output=True,
        check=False,
    )
    assert b"replayed 0" in again.stdout
    wait_entry_since(t0, COREDUMP_PID=first)
    wait_entry_since(t0, COREDUMP_PID=second)


def test_next_crash_replays_the_spool_first(
    t0: float, harness: Harness, waiting: subprocess.Popen[bytes]
) -> None:
    wrapper = no_journald_wrapper(harness, "no-socket")
    argv = harness.argv(waiting.pid, USER, USER, timestamp=1_700_000_001)
    out = harness.run([str(wrapper), *argv[2:]], b"\x7fELF" + bytes(4096))
    assert out.returncode == 0, out.stderr
    assert len(spooled(harness)) == 1
    assert entries_since(t0, COREDUMP_PID=waiting.pid) == []
    # journald is back (for the next collector): it sends the backlog, then its own entry.
    out = harness.run(harness.argv(waiting.pid, USER, USER, timestamp=1_700_000_002), b"x")
    assert out.returncode == 0, out.stderr
    assert spooled(harness) == []
    deadline = time.monotonic() + 15
    found: list[Entry] = []
    while len(found) < 2 and time.monotonic() < deadline:
        found = entries_since(t0, COREDUMP_PID=waiting.pid)
        time.sleep(0.05)
    assert [e["COREDUMP_TIMESTAMP"] for e in found] == [b"1700000001000000", b"1700000002000000"]
    assert "DRKONQI_LITE_SPOOLED_AT" in found[0]
    assert "DRKONQI_LITE_SPOOLED_AT" not in found[1]


def _writing_core(pid: int) -> bool:
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            if "/coredump/" in os.readlink(fd):
                return True
        except OSError:
            continue
    return False


def _feed_and_find_worker(
    h: Harness, proc: subprocess.Popen[bytes]
) -> tuple[subprocess.Popen[bytes], int]:
    collector = subprocess.Popen(h.argv(proc.pid, USER, USER), stdin=subprocess.PIPE)
    assert collector.stdin is not None
    collector.stdin.write(os.urandom(4 * MiB))
    collector.stdin.flush()
    deadline = time.monotonic() + 10
    workers: list[int] = []
    while not workers and time.monotonic() < deadline:
        workers = children(collector.pid)
        time.sleep(0.01)
    assert len(workers) == 1
    # Wait until the worker has its nameless core file open (it is streaming into it).
    while time.monotonic() < deadline and not _writing_core(workers[0]):
        time.sleep(0.01)
    time.sleep(0.2)
    return collector, workers[0]


def assert_no_partial_core(h: Harness) -> None:
    files = {k: v for k, v in tree(h.state).items() if v != "dir"}
    assert all(k.startswith("ratelimit/") for k in files), f"left behind: {files}"
    assert h.cores() == []


@pytest.mark.parametrize("victims", ["worker", "worker+supervisor"])
def test_collector_killed_mid_write(
    t0: float, harness: Harness, waiting: subprocess.Popen[bytes], victims: str
) -> None:
    collector, worker = _feed_and_find_worker(harness, waiting)
    try:
        if victims == "worker+supervisor":
            os.kill(collector.pid, signal.SIGKILL)
        os.kill(worker, signal.SIGKILL)
        assert collector.stdin is not None
        collector.stdin.close()
        collector.wait(timeout=30)
    finally:
        if collector.poll() is None:
            collector.kill()
            collector.wait()
    deadline = time.monotonic() + 5
    while Path(f"/proc/{worker}").exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert_no_partial_core(harness)
    if victims == "worker":
        e = wait_entry_since(t0, COREDUMP_PID=waiting.pid)
        assert field(e, "DRKONQI_LITE_CORE_MISSING") == b"collector-crash"
        assert b"SIGKILL" in field(e, "DRKONQI_LITE_STACKTRACE")


@pytest.fixture
def tmpfs_at(harness: Harness) -> Iterator[list[Path]]:
    """Mount points to unmount afterwards (lazily, even if the test failed midway)."""
    which("mount")
    mounted: list[Path] = []
    try:
        yield mounted
    finally:
        for m in reversed(mounted):
            subprocess.run(["umount", "-l", str(m)], check=False)


def mount_tmpfs(path: Path, mounted: list[Path], size: str, *, ro: bool = False) -> None:
    path.mkdir(mode=0o755, parents=True, exist_ok=True)
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "dkl-test", str(path)],
        check=True,
    )
    mounted.append(path)
    if ro:
        subprocess.run(["mount", "-o", "remount,ro", str(path)], check=True)


def test_disk_full(
    t0: float, harness: Harness, waiting: subprocess.Popen[bytes], tmpfs_at: list[Path]
) -> None:
    mount_tmpfs(harness.storage, tmpfs_at, "256k")
    out = harness.run(harness.argv(waiting.pid, USER, USER), os.urandom(2 * MiB))
    assert out.returncode == 0, out.stderr
    e = wait_entry_since(t0, COREDUMP_PID=waiting.pid)
    assert field(e, "DRKONQI_LITE_CORE_MISSING") == b"disk-full"
    assert "COREDUMP_FILENAME" not in e
    assert field(e, "DRKONQI_LITE_CORE_SIZE") == str(2 * MiB).encode()
    assert list(harness.storage.iterdir()) == []
    # The half-written temp file went with the collector: the space is free again.
    vfs = os.statvfs(harness.storage)
    assert vfs.f_bfree == vfs.f_blocks


@pytest.mark.parametrize("where", ["storage", "state"])
def test_read_only_storage(
    t0: float, harness: Harness, waiting: subprocess.Popen[bytes], tmpfs_at: list[Path], where: str
) -> None:
    mount_tmpfs(harness.storage if where == "storage" else harness.state, tmpfs_at, "1m", ro=True)
    out = harness.run(harness.argv(waiting.pid, USER, USER), b"\x7fELF" + bytes(65536))
    assert out.returncode == 0, out.stderr
    e = wait_entry_since(t0, COREDUMP_PID=waiting.pid)
    assert field(e, "DRKONQI_LITE_CORE_MISSING") == b"write-failed"
    assert "COREDUMP_FILENAME" not in e


def test_full_state_dir_and_no_journald_is_logged_as_dropped(
    harness: Harness, waiting: subprocess.Popen[bytes], tmpfs_at: list[Path]
) -> None:
    """Neither journald nor the spool can take the entry: the crash is dropped, but said so in
    the kernel log with the reason, and the collector exits non-zero."""
    mount_tmpfs(harness.state, tmpfs_at, "4k", ro=True)
    wrapper = no_journald_wrapper(harness, "no-socket")
    argv = harness.argv(waiting.pid, USER, USER)
    env = {**os.environ, "DRKONQI_LITE_STDERR_LOG": "1"}
    out = subprocess.run(
        [str(wrapper), *argv[2:]], input=b"core", capture_output=True, env=env, check=False
    )
    assert out.returncode != 0
    assert b"DROPPED" in out.stderr
    assert str(waiting.pid).encode() in out.stderr
