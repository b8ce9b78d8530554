#!/usr/bin/env python3
"""The collector on the worst inputs a crashing user can choose, beside systemd-coredump.

Real crashes through core_pattern, one handler after the other on the same target shape (so
both see the same machine state): 1,000 fds whose fdinfo lists 1,000 POSIX locks each (80 MB of
fdinfo; more would flood the machine's shared journald through systemd-coredump),
60,000 mappings, 5,000 mounts in the target's own mount namespace, a 4 GiB sparse core, and a
1 GiB incompressible core made cheaply (one 64 MiB file mapped 16 times, coredump_filter 0x3f).
For each: how long the crashed process stays frozen (kill → reaped) and the handler's CPU and
peak RSS (the kernel's taskstats exit records, crashbench's TaskStats), as ratios ours/theirs.

    sudo .venv/bin/python benchmarks/hostile.py [--runs N] [--only SHAPE,...] [--tools DIR]

Needs root, a running journald, gcc and ../shared/tools/systemd-coredump-anchor. Holds the
global core_pattern lock; restores core_pattern and core_pipe_limit on exit.
"""

from __future__ import annotations

import argparse
import datetime
import fcntl
import importlib.util
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

HERE = Path(__file__).resolve().parent

SHARED = HERE.parent.parent / "shared" / "tools"
LOCK = Path("/run/lock/drkonqi-lite-core_pattern.lock")
SYSTEMD = "|/lib/systemd/systemd-coredump %P %u %g %s %t 9223372036854775808 %h %d"
PATTERN = Path("/proc/sys/kernel/core_pattern")
PIPE_LIMIT = Path("/proc/sys/kernel/core_pipe_limit")
USER = 1000

#: Each target prints "ready" once it has its shape, then waits for the benchmark's SIGSEGV.
TARGETS = {
    "fdinfo": r"""
import fcntl, os, resource, sys, time
hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
resource.setrlimit(resource.RLIMIT_NOFILE, (1100, hard))
fd = os.open(sys.argv[1] + "/locked", os.O_RDWR | os.O_CREAT, 0o600)
for i in range(1000):
    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, 2 * i)
for _ in range(1000):
    os.dup(fd)
print("ready", flush=True); time.sleep(600)
""",
    "maps": r"""
import mmap, time
# Alternating protections: neighbouring mappings cannot merge into one.
maps = [mmap.mmap(-1, 4096, prot=mmap.PROT_READ | (mmap.PROT_WRITE if i % 2 else 0))
        for i in range(60000)]
print("ready", flush=True); time.sleep(600)
""",
    "mountinfo": r"""
import ctypes, os, sys, time
libc = ctypes.CDLL(None, use_errno=True)
os.makedirs(sys.argv[1] + "/mnt", exist_ok=True)
for i in range(5000):
    if libc.mount(b"none", (sys.argv[1] + "/mnt").encode(), b"tmpfs", 0, b"size=4k") != 0:
        raise OSError(ctypes.get_errno(), "mount")
print("ready", flush=True); time.sleep(600)
""",
    "sparse-4g": r"""
import mmap, time
m = mmap.mmap(-1, 4 << 30, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
m[0] = 1
print("ready", flush=True); time.sleep(600)
""",
    "mapped-1g": r"""
import mmap, os, sys, time
with open("/proc/self/coredump_filter", "w") as f:
    f.write("0x3f")
fd = os.open(sys.argv[1] + "/random", os.O_RDONLY)
maps = [mmap.mmap(fd, 64 << 20, mmap.MAP_SHARED, mmap.PROT_READ) for _ in range(16)]
print("ready", flush=True); time.sleep(600)
""",
}
#: mountinfo needs its own mount namespace (as root: unshare -m), the others run as USER.
AS_ROOT = {"mountinfo": ["unshare", "-m", "--propagation", "private"]}


def load_script(path: Path, name: str) -> ModuleType:
    """A script as a module: crashbench.py, and collector.py (its our_pattern, by path: the
    name `collector` is also the collector's source folder)."""
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def our_pattern() -> str:
    pattern: str = load_script(HERE / "collector.py", "collector_benchmark").our_pattern()
    return pattern


def _become_user() -> None:
    import resource  # noqa: PLC0415

    resource.setrlimit(resource.RLIMIT_CORE, (resource.RLIM_INFINITY,) * 2)
    os.setgroups([])
    os.setresgid(USER, USER, USER)
    os.setresuid(USER, USER, USER)


def _unlimited_core() -> None:
    import resource  # noqa: PLC0415

    resource.setrlimit(resource.RLIMIT_CORE, (resource.RLIM_INFINITY,) * 2)


def crash_once(shape: str, work: Path) -> tuple[float, float, float]:
    """Start the target, SIGSEGV it when ready; (kill, reaped) monotonic times and its pid."""
    script = work / f"{shape}.py"
    script.write_text(TARGETS[shape])
    script.chmod(0o644)
    cmd = [*AS_ROOT.get(shape, []), "/usr/bin/python3", "-I", str(script), str(work)]
    preexec: Callable[[], None] = _unlimited_core if shape in AS_ROOT else _become_user
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, preexec_fn=preexec)  # noqa: PLW1509
    assert proc.stdout is not None
    if proc.stdout.readline() != b"ready\n":
        proc.kill()
        raise RuntimeError(f"{shape}: the target did not start")
    killed = time.monotonic()
    os.kill(proc.pid, signal.SIGSEGV)
    proc.wait(timeout=600)
    return killed, time.monotonic(), float(proc.pid)


def measure(cb: ModuleType, pattern: str, comm: str, shape: str, work: Path) -> dict[str, float]:
    stats = cb.TaskStats([comm])
    stats.start()
    PATTERN.write_text(pattern + "\n")
    try:
        killed, reaped, _ = crash_once(shape, work)
        time.sleep(3)  # let the handler (and systemd-coredump's children) exit and be recorded
        summary = cb.resource_summary(stats.between(killed - 0.5, time.monotonic()))
    finally:
        stats.stop()
    return {"frozen_ms": (reaped - killed) * 1000, **{k: summary.get(k, 0.0) for k in
            ("cpu_ms", "rss_mib")}}  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--only", default=",".join(TARGETS))
    ap.add_argument("--tools", type=Path, default=SHARED, help="crashbench.py and the anchor")
    args = ap.parse_args()
    cb = load_script(args.tools / "crashbench.py", "crashbench")
    subprocess.run([str(args.tools / "systemd-coredump-anchor"), "start"], check=True,
                   stdout=subprocess.DEVNULL)  # fmt: skip
    # Our launcher is /run/drkonqi-lite/collector (comm "collector"), see benchmarks/collector.py.
    handlers = {"drkonqi-lite": (None, "collector"), "systemd-coredump": (SYSTEMD,
                "systemd-coredum")}  # fmt: skip
    report: dict[str, dict[str, dict[str, float]]] = {}
    LOCK.parent.mkdir(parents=True, exist_ok=True)
    with LOCK.open("a") as lock, tempfile.TemporaryDirectory(prefix="dkl-hostile-") as tmp:
        fcntl.flock(lock, fcntl.LOCK_EX)
        saved = PATTERN.read_text(), PIPE_LIMIT.read_text()
        work = Path(tmp)
        work.chmod(0o755)
        (work / "random").write_bytes(os.urandom(64 << 20))
        (work / "random").chmod(0o644)
        (work / "locked").touch()
        os.chown(work / "locked", USER, USER)
        try:
            ours = our_pattern()
            PIPE_LIMIT.write_text("64\n")
            for shape in args.only.split(","):
                rows: dict[str, list[dict[str, float]]] = {h: [] for h in handlers}
                for _ in range(args.runs):
                    for name, (pat, comm) in handlers.items():
                        rows[name].append(measure(cb, pat or ours, comm, shape, work))
                report[shape] = {
                    n: {k: statistics.median(r[k] for r in runs) for k in runs[0]}
                    for n, runs in rows.items()
                }
                print(shape, json.dumps(report[shape]), flush=True)
        finally:
            PATTERN.write_text(saved[0])
            PIPE_LIMIT.write_text(saved[1])
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H%M")
    out = HERE / "results" / f"hostile-{stamp}.json"
    out.write_text(json.dumps(report, indent=2))
    print("| input | metric | drkonqi-lite | systemd-coredump | ratio |")
    print("|---|---|---|---|---|")
    for shape, pair in report.items():
        for key in ("frozen_ms", "cpu_ms", "rss_mib"):
            a, b = pair["drkonqi-lite"][key], pair["systemd-coredump"][key]
            ratio = f"{a / b:.2f}x" if b else "n/a"
            print(f"| {shape} | {key} | {a:.1f} | {b:.1f} | {ratio} |")
    print(f"\nraw: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
