"""SECURITY.md 7 and 11: the collector run exactly as the kernel runs it, on a few hundred
mutated cores, argv and /proc shapes.

Each run gets the pattern's argv and a core on stdin, under GNU time (peak RSS of the collector
and the worker it waits for). Every run must end with exit 0 and exactly one entry (matched by
PID and a timestamp unique to the run) or exit 2 and one clear line saying the crash was
dropped; never a traceback, never more than RSS_BOUND_KIB, never longer than RUN_TIMEOUT.
Seeded: a failure names its case and reproduces.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import which
from tests.integration.harness import Harness
from tests.integration.journal_read import entries
from tests.integration.processes import spawn_as, start_waiting, stop

SEED = 20261201
CASES = 240
RSS_BOUND_KIB = 64 * 1024
RUN_TIMEOUT = 30.0
USER = 1000
#: A timestamp range no real crash uses: each case has its own second.
TS0 = 1_000_000_000

#: 300 fds of one file with 300 POSIX locks: 300 x 300 fdinfo lines (see the hostile-user suite).
LOCKER = r"""
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR)
for i in range(300):
    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, 2 * i)
for _ in range(300):
    os.dup(fd)
print("ready", flush=True)
time.sleep(600)
"""


@dataclass
class Case:
    name: str
    argv: list[str]
    core: bytes


@pytest.fixture(scope="module")
def base_core(crashme: Path) -> Iterator[bytes]:
    """A real core of crashme (gdb's gcore of a waiting target): the mutations start here."""
    gcore = which("gcore")
    proc = start_waiting([str(crashme)], USER, USER)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            subprocess.run(
                [gcore, "-o", f"{tmp}/core", str(proc.pid)], check=True, capture_output=True
            )
        finally:
            stop(proc)
        yield Path(f"{tmp}/core.{proc.pid}").read_bytes()


def _mutate_core(rng: random.Random, core: bytes) -> tuple[str, bytes]:
    kind = rng.choice(["flip-head", "flip-notes", "truncate", "random", "empty", "phdr-sizes"])
    data = bytearray(core)
    if kind == "flip-head":
        for _ in range(rng.randint(1, 16)):
            data[rng.randrange(64)] = rng.randrange(256)
    elif kind == "flip-notes":
        for _ in range(rng.randint(1, 64)):
            data[rng.randrange(min(len(data), 64 * 1024))] = rng.randrange(256)
    elif kind == "truncate":
        data = data[: rng.randrange(len(data))]
    elif kind == "random":
        data = bytearray(rng.randbytes(rng.randrange(1, 256 * 1024)))
        if rng.random() < 0.5:
            data[:4] = b"\x7fELF"
    elif kind == "empty":
        data = bytearray()
    else:  # program headers that promise far more than there is
        phoff = int.from_bytes(data[32:40], "little")
        for _ in range(rng.randint(1, 8)):
            at = phoff + 56 * rng.randrange(8) + rng.choice([8, 32, 40])
            if at + 8 <= len(data):
                data[at : at + 8] = rng.getrandbits(64).to_bytes(8, "little")
    return kind, bytes(data)


def _hostname(rng: random.Random) -> str:
    raw = bytes(rng.randrange(1, 256) for _ in range(rng.randint(0, 64)))
    return raw.decode("utf-8", "surrogateescape")


def _mutate_argv(rng: random.Random, argv: list[str]) -> tuple[str, list[str], bool]:
    """(kind, argv, well formed?)."""
    out = list(argv)
    kind = rng.choice(["plain", "hostname", "signal", "dumpable", "junk", "count"])
    if kind == "hostname":
        out[8] = _hostname(rng)
    elif kind == "signal":
        out[5] = str(rng.choice([1, 6, 7, 8, 11, 31, 34, 64]))
    elif kind == "dumpable":
        out[9] = str(rng.choice([0, 1, 2]))
    elif kind == "junk":
        at = rng.randrange(2, len(out))
        out[at] = rng.choice(["", "-1", "x", "99999999999999999999999", "\udcff", "1e3"])
        return kind, out, False
    elif kind == "count":
        # At least one word after the prefix: the kernel always gives the pattern's words.
        return kind, out[: rng.randrange(3, len(out))], False
    return kind, out, True


def _run(case: Case, prefix: Path) -> tuple[int, int, bytes, float]:
    """(exit status, peak RSS KiB, stderr, seconds) of one collector run."""
    time_bin = shutil.which("time") or "/usr/bin/time"
    with tempfile.NamedTemporaryFile("r", dir=prefix, suffix=".rss") as rss:
        start = time.monotonic()
        proc = subprocess.run(
            [time_bin, "-f", "%x %M", "-o", rss.name, *case.argv],
            input=case.core,
            capture_output=True,
            timeout=RUN_TIMEOUT,
            check=False,
        )
        took = time.monotonic() - start
        words = rss.read().split()
    return int(words[-2]), int(words[-1]), proc.stderr, took


@pytest.fixture
def targets(harness: Harness, crashme: Path) -> Iterator[list[int]]:
    """Live processes of different shapes the cases point at, and one PID that is gone."""
    lockfile = harness.prefix / "locked"
    lockfile.touch()
    os.chown(lockfile, USER, USER)
    script = harness.prefix / "locker.py"
    script.write_text(LOCKER)
    locker = spawn_as([sys.executable, "-I", str(script), str(lockfile)], USER, USER,
                      stdout=subprocess.PIPE)  # fmt: skip
    assert locker.stdout is not None
    assert locker.stdout.readline() == b"ready\n"
    plain = start_waiting([str(crashme)], USER, USER)
    odd = start_waiting([str(crashme)], USER, USER, env={"DKL_COMM": "\x1b[2J)\n(x"})
    gone = subprocess.Popen(["true"])
    gone.wait()
    try:
        yield [plain.pid, odd.pid, locker.pid, gone.pid]
    finally:
        for proc in (plain, odd, locker):
            stop(proc)


def _cases(harness: Harness, base: bytes, pids: list[int]) -> list[Case]:
    rng = random.Random(SEED)
    cases = []
    for i in range(CASES):
        core_kind, core = _mutate_core(rng, base)
        pid = rng.choice(pids)
        argv = harness.argv(pid, USER, USER, timestamp=TS0 + i)
        argv_kind, argv, _ = _mutate_argv(rng, argv)
        cases.append(Case(f"#{i} pid {pid} core:{core_kind} argv:{argv_kind}", argv, core))
    return cases


def test_fuzzed_kernel_calls(harness: Harness, base_core: bytes, targets: list[int]) -> None:
    harness.configure("RateLimitBurst=100000\nRateLimitUserBurst=100000\n")
    cases = _cases(harness, base_core, targets)

    def run(case: Case) -> tuple[int, int, bytes, float]:
        return _run(case, harness.prefix)

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(run, cases))
    recorded: list[tuple[str, int]] = []
    for case, (code, rss, stderr, took) in zip(cases, results, strict=True):
        what = f"{case.name}: exit {code}, {rss} KiB, {took:.1f}s, stderr {stderr[-400:]!r}"
        assert b"Traceback" not in stderr, what
        assert rss < RSS_BOUND_KIB, what
        if code == 0:
            pid, ts = int(case.argv[2]), int(case.argv[6])
            recorded.append((str(pid), ts * 1_000_000))
        else:
            assert code == 2, what
            assert b"crash dropped" in stderr, what
    assert len(recorded) > CASES // 2, "most cases are well formed and must be recorded"
    deadline = time.monotonic() + 60
    while True:
        found = {(e["COREDUMP_PID"].decode(), int(e["COREDUMP_TIMESTAMP"])) for e in entries()}
        missing = [r for r in recorded if r not in found]
        if not missing or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert not missing, f"{len(missing)} runs exited 0 without an entry: {missing[:5]}"
    counts: dict[tuple[str, int], int] = {}
    for e in entries(_UID=USER):  # a restricted crash has a second, admin-only entry
        key = (e["COREDUMP_PID"].decode(), int(e["COREDUMP_TIMESTAMP"]))
        counts[key] = counts.get(key, 0) + 1
    doubled = [r for r in recorded if counts.get(r) != 1]
    assert not doubled, f"one crash, one entry in the user's journal: {doubled[:5]}"
