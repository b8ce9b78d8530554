"""Driving the real collector the way the kernel does, and reading what it wrote.

Two ways in: `Harness.run` executes the collector with the kernel's argv and a core on stdin
(for crafted cores, bad input and identity games), and `crash` kills a real process while
core_pattern points at the collector (for the whole path). Entries are read back from the real
journald as raw bytes (journal_read.py); the crash targets are in processes.py, the checks of what
a user may do to the collector's files in access.py.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from drkonqi_lite_collector import config
from drkonqi_lite_collector.admin import pattern
from tests.integration import journal_read

COLLECTOR = Path(sys.executable).with_name("drkonqi-lite-collector")


@dataclasses.dataclass
class Harness:
    prefix: Path

    @property
    def state(self) -> Path:
        return self.prefix / "var/lib/drkonqi-lite"

    @property
    def storage(self) -> Path:
        return self.state / "coredump"

    @property
    def spool(self) -> Path:
        return self.state / "spool"

    def configure(self, text: str) -> None:
        conf = self.prefix / "etc/drkonqi-lite/collector.conf"
        conf.parent.mkdir(parents=True, exist_ok=True)
        conf.write_text("[Coredump]\n" + text)

    def cores(self) -> list[Path]:
        return sorted(self.storage.glob("core.*")) if self.storage.exists() else []

    def install(self) -> str:
        """Point core_pattern at the collector (caller holds the `core_pattern` fixture)."""
        paths = config.Paths(str(self.prefix))
        pat = pattern.make_pattern(pattern.write_launcher(paths), paths.prefix)
        Path("/proc/sys/kernel/core_pipe_limit").write_text(f"{pattern.PIPE_LIMIT}\n")
        Path("/proc/sys/kernel/core_pattern").write_text(pat + "\n")
        return pat

    def argv(
        self,
        pid: int,
        uid: int,
        gid: int,
        sig: int = signal.SIGSEGV,
        *,
        dumpable: int = 1,
        timestamp: int | None = None,
        pidfd: int | None = None,
        hostname: str = "testhost",
    ) -> list[str]:
        ts = int(time.time()) if timestamp is None else timestamp
        args = [
            str(COLLECTOR),
            f"--prefix={self.prefix}",
            str(pid),
            str(uid),
            str(gid),
            str(int(sig)),
            str(ts),
            "18446744073709551615",
            hostname,
            str(dumpable),
        ]
        if pidfd is not None:
            args.append(str(pidfd))
        return args

    def run(
        self,
        argv: list[str],
        core: bytes | Path,
        *,
        pass_fds: tuple[int, ...] = (),
        timeout: float = 60.0,
    ) -> subprocess.CompletedProcess[bytes]:
        """Run the collector as the kernel would: the core on stdin, argv from the pattern."""
        if isinstance(core, Path):
            with core.open("rb") as f:
                return subprocess.run(
                    argv,
                    stdin=f,
                    capture_output=True,
                    timeout=timeout,
                    pass_fds=pass_fds,
                    check=False,
                )
        return subprocess.run(
            argv, input=core, capture_output=True, timeout=timeout, pass_fds=pass_fds, check=False
        )


def make_prefix() -> Iterator[Harness]:
    """A short, root-owned prefix (core_pattern is cut at 128 bytes, so no pytest tmp paths)."""
    journal_read.not_before_us[0] = time.time_ns() // 1000
    d = Path(tempfile.mkdtemp(prefix="dkl-", dir="/tmp"))
    d.chmod(0o755)
    try:
        yield Harness(d)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def run_measured(
    argv: list[str], core: Path, *, pass_fds: tuple[int, ...] = (), timeout: float = 300.0
) -> tuple[int, int]:
    """Like Harness.run with a file on stdin; returns (exit status, peak RSS in KiB of the
    collector and the worker it waited for).

    Measured by GNU time, not by our own wait4: Linux keeps a process's pre-exec high-water
    RSS across exec (signal->maxrss, fs/exec.c), so a child forked from this large pytest
    process would report pytest's peak. time's child starts from time's small image.
    """
    time_bin = shutil.which("time") or "/usr/bin/time"
    with tempfile.NamedTemporaryFile("r", suffix=".rss") as out, core.open("rb") as f:
        proc = subprocess.run(
            [time_bin, "-f", "%x %M", "-o", out.name, *argv],
            stdin=f,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            pass_fds=pass_fds,
            timeout=timeout,
            check=False,
        )
        words = out.read().split()
    assert len(words) >= 2, f"GNU time printed {words} (exit {proc.returncode})"
    return int(words[-2]), int(words[-1])


def install_without_pidfd(h: Harness) -> str:
    """core_pattern without %F: the collector must prove identity with pidfd_open + PF_DUMPCORE
    (kernels before 6.16). Caller holds the `core_pattern` fixture."""
    from drkonqi_lite_collector.stage import argv as kargv  # noqa: PLC0415

    pat = f"|{COLLECTOR} --prefix={h.prefix} {kargv.SPECIFIERS}"
    Path("/proc/sys/kernel/core_pipe_limit").write_text("16\n")
    Path("/proc/sys/kernel/core_pattern").write_text(pat + "\n")
    return pat


def copy_program(h: Harness, program: Path, directory: bytes, name: bytes) -> bytes:
    """`program` copied to PREFIX/`directory`/`name` (hostile bytes welcome), runnable by all."""
    d = os.path.join(bytes(h.prefix), directory)
    os.mkdir(d, 0o755)
    exe = os.path.join(d, name)
    with open(program, "rb") as src, open(exe, "wb") as dst:
        dst.write(src.read())
    os.chmod(exe, 0o755)  # noqa: S103 - the user must be able to run it
    return exe

