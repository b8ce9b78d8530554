"""Bad input to the collector: broken core streams, malformed arguments, a vanishing process.

The kernel's pipe is the collector's only input besides /proc; whatever arrives, the crash gets
its entry (or, for arguments that make no sense, one clear line and a non-zero exit), the pipe
never stays blocked, and what is stored is exactly what was handed over.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import zstandard

from tests.integration.access import readable_as
from tests.integration.harness import COLLECTOR, Harness
from tests.integration.journal_read import RawReader, field, wait_entry_since
from tests.integration.processes import start_waiting, stop

USER = 1000


MiB = 1024**2


def elf_core_head(size: int) -> bytes:
    """The start of an ELF core file (e_type ET_CORE), cut off after `size` bytes."""
    exe = Path("/proc/self/exe").read_bytes()
    head = bytearray(exe[:size])
    head[16:18] = (4).to_bytes(2, "little")  # ET_CORE
    return bytes(head)


def stored(path: Path) -> bytes:
    with path.open("rb") as f, zstandard.ZstdDecompressor().stream_reader(f) as r:
        return r.read()


STREAMS = {
    "truncated-elf": elf_core_head(3000),
    "garbage": b"this is not an ELF core\n" * 4096 + bytes(range(256)),
    "single-byte": b"\x7f",
}


@pytest.mark.parametrize("kind", list(STREAMS))
def test_broken_core_stream_is_stored_as_handed_over(
    t0: float, harness: Harness, waiting: subprocess.Popen[bytes], kind: str
) -> None:
    data = STREAMS[kind]
    pidfd = os.pidfd_open(waiting.pid)
    try:
        out = harness.run(
            harness.argv(waiting.pid, USER, USER, pidfd=pidfd), data, pass_fds=(pidfd,)
        )
    finally:
        os.close(pidfd)
    assert out.returncode == 0, out.stderr
    e = wait_entry_since(t0, COREDUMP_PID=waiting.pid)
    assert field(e, "DRKONQI_LITE_CORE_SIZE") == str(len(data)).encode()
    assert "DRKONQI_LITE_CORE_MISSING" not in e
    core = Path(field(e, "COREDUMP_FILENAME").decode())
    assert stored(core) == data
    assert readable_as(core, USER, USER)


def test_empty_core_stream(t0: float, harness: Harness, waiting: subprocess.Popen[bytes]) -> None:
    out = harness.run(harness.argv(waiting.pid, USER, USER), b"")
    assert out.returncode == 0, out.stderr
    e = wait_entry_since(t0, COREDUMP_PID=waiting.pid)
    assert field(e, "DRKONQI_LITE_CORE_MISSING") == b"empty"
    assert field(e, "DRKONQI_LITE_CORE_SIZE") == b"0"
    assert "COREDUMP_FILENAME" not in e
    assert harness.cores() == []


def _pidfd_cases(h: Harness, pid: int) -> dict[str, tuple[list[str], tuple[int, ...]]]:
    plain = os.open("/etc/hostname", os.O_RDONLY)
    return {
        "fd-not-open": (h.argv(pid, USER, USER, pidfd=777), ()),
        "fd-not-a-pidfd": (h.argv(pid, USER, USER, pidfd=plain), (plain,)),
    }


@pytest.mark.parametrize("case", ["fd-not-open", "fd-not-a-pidfd"])
def test_bad_pidfd_argument_fails_closed(
    t0: float, harness: Harness, waiting: subprocess.Popen[bytes], case: str
) -> None:
    argv, fds = _pidfd_cases(harness, waiting.pid)[case]
    try:
        out = harness.run(argv, b"\x7fELF" + bytes(4096), pass_fds=fds)
    finally:
        for fd in fds:
            os.close(fd)
    assert out.returncode == 0, out.stderr
    e = wait_entry_since(t0, COREDUMP_PID=waiting.pid)
    assert field(e, "DRKONQI_LITE_IDENTITY") == b"unverified"
    assert field(e, "DRKONQI_LITE_RESTRICTED") == b"1"
    assert not readable_as(Path(field(e, "COREDUMP_FILENAME").decode()), USER, USER)


def _kernel_args(h: Harness) -> list[str]:
    return h.argv(4242, USER, USER)[2:]


MALFORMED: dict[str, Callable[[list[str]], list[str]]] = {
    "too-few": lambda a: a[:5],
    "too-many": lambda a: [*a, "5", "6"],
    "pid-not-numeric": lambda a: ["12a", *a[1:]],
    "pid-negative": lambda a: ["-5", *a[1:]],
    "pid-zero": lambda a: ["0", *a[1:]],
    "uid-not-numeric": lambda a: [a[0], "root", *a[2:]],
    "signal-out-of-range": lambda a: [*a[:3], "99", *a[4:]],
    "dump-mode-3": lambda a: [*a[:7], "3"],
    "pidfd-below-3": lambda a: [*a, "0"],
}


def _dropped_messages(since_usec: int) -> list[bytes]:
    reader = RawReader()
    try:
        reader.add_match(SYSLOG_IDENTIFIER="drkonqi-lite-collector")
        reader.seek_realtime(since_usec / 1e6)
        return [e["MESSAGE"] for e in reader if b"a crash was dropped" in e.get("MESSAGE", b"")]
    finally:
        reader.close()


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_arguments(harness: Harness, case: str) -> None:
    """Non-zero exit, exactly one clear line, and the kernel's pipe is not left blocked: a core
    far larger than the pipe buffer is being written while the collector gives up."""
    args = MALFORMED[case](_kernel_args(harness))
    env = {**os.environ, "DRKONQI_LITE_STDERR_LOG": "1"}
    started = time.time()
    proc = subprocess.Popen(
        [str(COLLECTOR), f"--prefix={harness.prefix}", *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    )
    writer_done = threading.Event()

    def write_core() -> None:
        assert proc.stdin is not None
        try:
            proc.stdin.write(bytes(16 * MiB))
            proc.stdin.close()
        except BrokenPipeError:
            pass
        writer_done.set()

    threading.Thread(target=write_core, daemon=True).start()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        pytest.fail("the collector hung on malformed arguments")
    assert writer_done.wait(10), "the writer of the core stayed blocked on the pipe"
    assert proc.stderr is not None
    stderr = proc.stderr.read()
    assert proc.returncode != 0
    lines = [line for line in stderr.decode(errors="replace").splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one clear line, got {lines}"
    assert "malformed arguments" in lines[0] or "expected" in lines[0], lines[0]
    assert harness.cores() == []
    # And the drop is in the journal for the admin, not only on a stderr nobody reads.
    deadline = time.monotonic() + 10
    while not _dropped_messages(int(started * 1e6)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _dropped_messages(int(started * 1e6)), "no journal message about the dropped crash"


@pytest.mark.parametrize("delay", [0.0, 0.002, 0.005, 0.01, 0.02, 0.05])
def test_process_exits_during_capture(
    t0: float, harness: Harness, crashme: Path, delay: float
) -> None:
    """The crashed process is killed and reaped while the collector reads /proc. Whatever the
    timing: one entry, exit 0, the core stored; and whenever identity could no longer be
    proven, nothing readable by the user."""
    proc = start_waiting([str(crashme)], USER, USER, env={"DKL_SECRET": "mine"})
    pidfd = os.pidfd_open(proc.pid)
    try:
        collector = subprocess.Popen(
            harness.argv(proc.pid, USER, USER, pidfd=pidfd),
            stdin=subprocess.PIPE,
            pass_fds=(pidfd,),
        )
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        collector.communicate(b"\x7fELF" + bytes(MiB), timeout=30)
    finally:
        os.close(pidfd)
        stop(proc)
    assert collector.returncode == 0
    e = wait_entry_since(t0, COREDUMP_PID=proc.pid)
    core = Path(field(e, "COREDUMP_FILENAME").decode())
    assert stored(core) == b"\x7fELF" + bytes(MiB)
    if field(e, "DRKONQI_LITE_IDENTITY") == b"unverified":
        assert field(e, "DRKONQI_LITE_RESTRICTED") == b"1"
        assert not readable_as(core, USER, USER)
        assert "COREDUMP_ENVIRON" not in e
    elif "COREDUMP_ENVIRON" in e:
        # Verified: the metadata is the crashed process's own. It can be incomplete: killed
        # after the /proc reads began but before it was reaped, the process is a zombie whose
        # pidfd still pins its PID (identity holds) while its environment is already gone.
        assert b"DKL_SECRET=mine" in field(e, "COREDUMP_ENVIRON")
    else:
        assert field(e, "COREDUMP_COMM") == b"crashme", "what was read is the process's own"
