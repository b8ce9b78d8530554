"""Driving the real collector the way the kernel does, and reading what it wrote.

Two ways in: `Harness.run` executes the collector with the kernel's argv and a core on stdin
(for crafted cores, bad input and identity games), and `crash` kills a real process while
core_pattern points at the collector (for the whole path). Entries are read back from the real
journald with systemd-python, as raw bytes.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

from systemd import journal

from drkonqi_lite_collector import config, pattern
from drkonqi_lite_collector.schema import MESSAGE_ID

COLLECTOR = Path(sys.executable).with_name("drkonqi-lite-collector")
Entry = Mapping[str, bytes]


class RawReader(journal.Reader):  # type: ignore[misc]
    """A journal reader that leaves every field as the bytes journald stored."""

    def _convert_field(self, key: str, value: bytes) -> bytes:
        return value


def entries(**match: str | int) -> list[Entry]:
    """All crash entries matching `match` (field=value), oldest first."""
    reader = RawReader()
    try:
        reader.add_match(MESSAGE_ID=MESSAGE_ID)
        for key, value in match.items():
            reader.add_match(**{key: str(value)})
        return [dict(e) for e in reader]
    finally:
        reader.close()


def wait_entry(timeout: float = 15.0, **match: str | int) -> Entry:
    """The one entry matching `match`, waiting for journald to write it."""
    deadline = time.monotonic() + timeout
    while True:
        found = entries(**match)
        if found:
            assert len(found) == 1, f"{len(found)} entries for {match}: one crash, one entry"
            return found[0]
        if time.monotonic() > deadline:
            raise AssertionError(f"no crash entry for {match} within {timeout}s")
        time.sleep(0.05)


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
        Path("/proc/sys/kernel/core_pipe_limit").write_text("16\n")
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
    d = Path(tempfile.mkdtemp(prefix="dkl-", dir="/tmp"))
    d.chmod(0o755)
    try:
        yield Harness(d)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def spawn_as(cmd: list[str], uid: int, gid: int, **kw: object) -> subprocess.Popen[bytes]:
    """Start `cmd` as uid/gid (no groups), dumpable, with an unlimited core limit."""

    def become() -> None:
        import resource  # noqa: PLC0415

        resource.setrlimit(resource.RLIMIT_CORE, (resource.RLIM_INFINITY,) * 2)
        os.setgroups([])
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)

    return subprocess.Popen(cmd, preexec_fn=become, cwd="/", **kw)  # type: ignore[call-overload,no-any-return] # noqa: PLW1509


def wait_running(proc: subprocess.Popen[bytes], exe: str, timeout: float = 5.0) -> None:
    """Wait until `proc` has exec'd `exe` (so a signal kills it, not the forked Python)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if os.readlink(f"/proc/{proc.pid}/exe").endswith(exe):
                # and it is past the dynamic loader: it is sleeping in its main loop
                stat = Path(f"/proc/{proc.pid}/stat").read_text()
                if stat[stat.rfind(")") + 2] in "SR":
                    time.sleep(0.05)
                    return
        except OSError:
            pass
        time.sleep(0.01)
    raise AssertionError(f"{exe} did not start")


def crash(
    cmd: list[str], uid: int, gid: int, sig: int = signal.SIGSEGV, exe: str | None = None
) -> int:
    """Run `cmd` as uid/gid, kill it with `sig` once it runs, return its PID."""
    proc = spawn_as(cmd, uid, gid)
    wait_running(proc, exe or Path(cmd[0]).name)
    os.kill(proc.pid, sig)
    proc.wait(timeout=60)
    assert proc.returncode == -sig, f"{cmd} ended with {proc.returncode}, not -{sig}"
    return proc.pid


def journald_socket_alive() -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        try:
            s.connect("/run/systemd/journal/socket")
        except OSError:
            return False
    return True


def field(entry: Entry, name: str) -> bytes:
    value = entry.get(name)
    assert value is not None, f"{name} missing from the entry"
    return value
