#!/usr/bin/env python3
"""Python programs: the Python stack of a native crash, and the exception hook's start-up cost.

    sudo .venv/bin/python benchmarks/python_stack.py [--crashes N] [--starts N]

1. readers: N real crashes of Debian's python3.11 (stripped) written as plain cores by the
   kernel; py-spy 0.4.3 (`dump --core --json`) and pystack 1.7.2 (`core`) run by hand on each
   core: wall time, peak RSS, whether the crashing thread's frames are right, all threads.
2. latency: the same script crashed through our collector (core_pattern, a scratch prefix)
   until its journal entry carries the Python stack, against the kernel writing the core to a
   file followed by py-spy / pystack by hand (the fastest "by hand" path).
3. start-up: `python3 empty.py` with and without the hook's .pth in the site directory
   (interleaved runs, medians), and `-X importtime` of the hook module.

Holds the core_pattern lock while it crashes anything and restores core_pattern. Writes
benchmarks/results/python-<time>.json and prints Markdown tables.
"""

from __future__ import annotations

import argparse
import datetime
import fcntl
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from systemd import journal

from drkonqi_lite_collector import config
from drkonqi_lite_collector.admin import hook_install, pattern
from drkonqi_lite_collector.journal.schema import MESSAGE_ID, Field

HERE = Path(__file__).resolve().parent
LOCK = Path("/run/lock/drkonqi-lite-core_pattern.lock")
CORE_PATTERN = Path("/proc/sys/kernel/core_pattern")
PYTHON = "/usr/bin/python3.11"
BIN = Path(sys.executable).parent
SCRIPT = """\
import ctypes, threading, time

def idle():
    time.sleep(100)

for i in range(2):
    threading.Thread(target=idle, daemon=True).start()
time.sleep(0.1)

def do_crash():
    print(time.time(), flush=True)
    ctypes.string_at(0)

do_crash()
"""
EXPECTED = [("<module>", 14), ("do_crash", 12)]


def commands(core: Path) -> dict[str, list[str]]:
    """The two readers on one core, as a user runs them by hand."""
    return {"py-spy": [str(BIN / "py-spy"), "dump", "--core", str(core), "--json"],
            "pystack": [str(BIN / "pystack"), "core", str(core), PYTHON]}  # fmt: skip


def timed(cmd: list[str]) -> tuple[float, float, str]:
    """(wall ms, peak RSS MiB of the child, stdout)."""
    t = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, errors="replace", check=False)
    ms = (time.perf_counter() - t) * 1000
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return ms, rss, out.stdout


def crash_once(script: Path) -> tuple[int, float]:
    """Run the script until it dies; (pid, the time it printed just before the fault)."""
    proc = subprocess.Popen(["prlimit", "--core=unlimited", PYTHON, "-I", str(script)],
                            stdout=subprocess.PIPE, text=True)  # fmt: skip
    line = proc.stdout.readline() if proc.stdout else ""
    proc.wait()
    return proc.pid, float(line or 0)


def readers(work: Path, n: int) -> dict[str, object]:
    cores = work / "cores"
    cores.mkdir()
    CORE_PATTERN.write_text(f"{cores}/core.%p\n")
    script = work / "crash.py"
    for _ in range(n):
        crash_once(script)
    rows: dict[str, dict[str, list[float]]] = {"py-spy": {}, "pystack": {}}
    for core in sorted(cores.iterdir()):
        for name, cmd in commands(core).items():
            ms, _rss, out = timed(cmd)
            r = rows[name]
            r.setdefault("ms", []).append(ms)
            r.setdefault("ok", []).append(float(_right(name, out)))
            r.setdefault("threads", []).append(float(_threads(name, out)))
    # Peak RSS: one more run of each, alone (RUSAGE_CHILDREN keeps the maximum so far).
    core = next(iter(sorted(cores.iterdir())))
    rss = {name: _peak(cmd) for name, cmd in commands(core).items()}
    return {name: {"median_ms": statistics.median(r["ms"]), "max_ms": max(r["ms"]),
                   "correct": f"{int(sum(r['ok']))}/{len(r['ok'])}",
                   "all_threads": f"{sum(1 for t in r['threads'] if t == 3)}/{len(r['threads'])}",
                   "peak_rss_mib": rss[name]} for name, r in rows.items()}  # fmt: skip


def _peak(cmd: list[str]) -> float:
    out = subprocess.run(["/usr/bin/time", "-f", "%M", *cmd], capture_output=True, text=True,
                         check=False)  # fmt: skip
    return int(out.stderr.strip().splitlines()[-1]) / 1024


def _right(name: str, out: str) -> bool:
    if name == "py-spy":
        try:
            threads = json.loads(out)
            stacks = [[(f["name"], f["line"]) for f in t["frames"][::-1]] for t in threads]
        except (ValueError, LookupError, TypeError):
            return False
        return any(got[:2] == EXPECTED for got in stacks)
    return 'line 14, in <module>' in out and 'line 12, in do_crash' in out


def _threads(name: str, out: str) -> int:
    if name == "py-spy":
        try:
            return len(json.loads(out))
        except ValueError:
            return 0
    return out.count("Traceback for thread ")


def latency(work: Path, n: int) -> dict[str, float]:
    """ms from the fault to: our entry with the Python stack; the kernel's core file + a tool."""
    prefix = work / "prefix"
    prefix.mkdir()
    paths = config.Paths(str(prefix))
    CORE_PATTERN.write_text(pattern.make_pattern(pattern.write_launcher(paths), str(prefix)) + "\n")
    script = work / "crash.py"
    ours = []
    for _ in range(n):
        pid, t_fault = crash_once(script)
        entry = _wait_entry(pid)
        if entry is not None and Field.PYTHON_STACK in entry:
            ours.append(entry["__REALTIME_TIMESTAMP"].timestamp() * 1000 - t_fault * 1000)
    files = work / "bycore"
    files.mkdir()
    CORE_PATTERN.write_text(f"{files}/core.%p\n")
    by_hand: dict[str, list[float]] = {"py-spy": [], "pystack": []}
    for _ in range(n):
        pid, t_fault = crash_once(script)
        reaped = time.time()
        core = files / f"core.{pid}"
        for name, cmd in commands(core).items():
            ms, _rss, _out = timed(cmd)
            by_hand[name].append((reaped - t_fault) * 1000 + ms)
        core.unlink()
    return {"ours_entry_with_python_stack_ms": statistics.median(ours) if ours else -1.0,
            "ours_count": len(ours),
            "kernel_file_then_pyspy_ms": statistics.median(by_hand["py-spy"]),
            "kernel_file_then_pystack_ms": statistics.median(by_hand["pystack"])}  # fmt: skip


def _wait_entry(pid: int, timeout: float = 10.0) -> dict[str, Any] | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        reader = journal.Reader()
        reader.add_match(MESSAGE_ID=MESSAGE_ID, COREDUMP_PID=str(pid))
        reader.seek_realtime(time.time() - 60)
        found: list[dict[str, Any]] = [e for e in reader if e.get("COREDUMP_PID") == pid]
        reader.close()
        if found:
            return found[-1]
        time.sleep(0.05)
    return None


def startup(work: Path, n: int) -> dict[str, float]:
    """Median ms of `python3 empty.py` without / with the hook, and its import time."""
    empty = work / "empty.py"
    empty.write_text("")
    venvs = {}
    for label in ("without", "with"):
        venv = work / f"venv-{label}"
        subprocess.run([PYTHON, "-m", "venv", "--without-pip", str(venv)], check=True)
        venvs[label] = venv / "bin" / "python"
        if label == "with":
            prefix = work / "hookprefix"
            site = next((venv / "lib").glob("python3*/site-packages"))
            paths = config.Paths(str(prefix))
            target = hook_install.site_dir(paths)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.rmtree(site)
            site.symlink_to(target)
            hook_install.install(paths, pattern.collector_lib(paths))
    times: dict[str, list[float]] = {"without": [], "with": []}
    for _ in range(n):
        for label, python in venvs.items():
            t = time.perf_counter()
            subprocess.run([str(python), str(empty)], check=True)
            times[label].append((time.perf_counter() - t) * 1000)
    imp = subprocess.run([str(venvs["with"]), "-X", "importtime", str(empty)],
                         capture_output=True, text=True, check=True).stderr  # fmt: skip
    hook_us = next((int(line.split("|")[1]) for line in imp.splitlines()
                    if "drkonqi_lite_python_hook" in line), -1)  # fmt: skip
    without, with_ = statistics.median(times["without"]), statistics.median(times["with"])
    return {"without_ms": without, "with_ms": with_, "added_ms": with_ - without,
            "hook_import_cumulative_us": hook_us, "runs": n}  # fmt: skip


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--crashes", type=int, default=20)
    p.add_argument("--starts", type=int, default=200)
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="dkl-pybench-", dir="/tmp"))
    work.chmod(0o755)
    (work / "crash.py").write_text(SCRIPT)
    result: dict[str, object] = {"when": datetime.datetime.now(datetime.UTC).isoformat()}
    try:
        result["startup"] = startup(work, args.starts)
        with LOCK.open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            saved = CORE_PATTERN.read_text()
            try:
                result["readers"] = readers(work, args.crashes)
                result["latency"] = latency(work, args.crashes)
            finally:
                CORE_PATTERN.write_text(saved)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out = HERE / "results" / f"python-{datetime.datetime.now(datetime.UTC):%Y-%m-%dT%H%M}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    os.umask(0o022)
    sys.exit(main())
