"""Compare stack-trace engines on the same real kernel cores (benchmarks/UNWINDERS.md).

Run as root from the repository: `.venv/bin/python benchmarks/unwinders.py [--runs N]`.
It holds the global core_pattern lock, points core_pattern at tests/fixtures/tap_handler.py
(our engine exactly as the collector runs it: CoreTap on the pipe, analyze() in a sandboxed
child), crashes real targets, then runs eu-stack and gdb on the very cores the kernel wrote,
and restores core_pattern.  Prints one JSON document.

Targets: `sleep` (the small crash of DESIGN.md §5), the 8-thread -O2 stripped crasher from
tests/fixtures, and a 512 MiB Python process (tap throughput and RSS on a big core).
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
HANDLER = ROOT / "tests" / "fixtures" / "tap_handler.py"
PATTERN = Path("/proc/sys/kernel/core_pattern")
PIPE_LIMIT = Path("/proc/sys/kernel/core_pipe_limit")
LOCK = Path("/run/lock/drkonqi-lite-core_pattern.lock")
BIG = (
    "import os,signal,time; b=bytearray(os.urandom(512<<20)); print('ready',flush=True); "
    "os.kill(os.getpid(), signal.SIGSEGV)"
)


def crash(argv: list[str], extra: str = "", *, kill: bool = True) -> tuple[dict[str, Any], Path]:
    """Crash argv through our handler; return its result and the saved core."""
    out = Path(tempfile.mkdtemp(prefix="dkl-"))
    PATTERN.write_text(f"|{sys.executable} {HANDLER} %P {out} {extra}".rstrip())
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE)
    assert proc.stdout is not None
    proc.stdout.readline()
    if kill:
        time.sleep(0.1)  # let it settle in its sleep (TESTING.md: not the shell's crash)
        proc.send_signal(11)
    proc.wait()
    for _ in range(1200):
        if (out / "result.json").exists():
            return json.loads((out / "result.json").read_text()), out / "core"
        time.sleep(0.01)
    raise RuntimeError("no result from the handler")


SYSTEMD = "|/lib/systemd/systemd-coredump %P %u %g %s %t 9223372036854775808 %h %d"


def systemd_trace(argv: list[str]) -> str:
    """The stack trace systemd-coredump writes for a crash of argv (needs the anchor running:
    /work/shared/tools/systemd-coredump-anchor start)."""
    PATTERN.write_text(SYSTEMD)
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE)
    assert proc.stdout is not None
    proc.stdout.readline()
    time.sleep(0.1)
    proc.send_signal(11)
    proc.wait()
    for _ in range(100):
        out = subprocess.run(
            [
                "journalctl",
                "-o",
                "json",
                "--no-pager",
                "MESSAGE_ID=fc2e22bc6ee647b6b90729ab34a250b1",
                f"COREDUMP_PID={proc.pid}",
            ],
            capture_output=True,
            text=True,
            check=False,
        ).stdout
        if out.strip():
            return str(json.loads(out.splitlines()[-1])["MESSAGE"])
        time.sleep(0.1)
    return ""


def compare_with_systemd(argv: list[str]) -> dict[str, Any]:
    """Same program crashed under each handler: threads, and frames named by each."""
    theirs = systemd_trace(argv)
    ours, core = crash(argv)
    shutil.rmtree(core.parent, ignore_errors=True)

    def shape(text: str) -> list[list[str]]:
        blocks = [b for b in text.split("\n\n") if b.startswith("Stack trace of thread")]
        return [
            [line.split()[2] for line in b.splitlines()[1:] if line.startswith("#")] for b in blocks
        ]

    a, b = shape(ours["text"]), shape(theirs)
    return {
        "argv": argv[-1],
        "threads_ours": len(a),
        "threads_systemd": len(b),
        "frames_ours": sum(map(len, a)),
        "frames_systemd": sum(map(len, b)),
        "named_ours": sum(f != "n/a" for t in a for f in t),
        "named_systemd": sum(f != "n/a" for t in b for f in t),
        "crashing_thread_ours": a[0] if a else [],
        "crashing_thread_systemd": b[0] if b else [],
        "systemd_text": theirs,
    }


def timed(argv: list[str]) -> tuple[float, int, str]:
    """(wall ms, max RSS KiB, stdout) of one run of argv."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    out = proc.stdout.read().decode(errors="replace")
    _, _, usage = os.wait4(proc.pid, 0)
    return (time.perf_counter() - t0) * 1e3, usage.ru_maxrss, out


def named_frames(text: str, prefix: str) -> tuple[int, int]:
    """(frames, frames with a function name) in a trace printed by one of the tools."""
    frames = [line for line in text.splitlines() if line.lstrip().startswith(prefix)]
    unnamed = sum(
        1
        for f in frames
        if " n/a " in f or (f.rstrip().endswith(tuple("0123456789abcdef")) and len(f.split()) == 2)
    )
    return len(frames), len(frames) - unnamed


def summary(values: list[float]) -> dict[str, float]:
    return {
        "median": round(statistics.median(values), 1),
        "min": round(min(values), 1),
        "max": round(max(values), 1),
    }


def bench_target(name: str, argv: list[str], exe: str, runs: int) -> dict[str, Any]:
    ours: list[dict[str, Any]] = []
    cores: list[Path] = []
    plain: list[float] = []
    for _ in range(runs):
        doc, core = crash(argv)
        ours.append(doc)
        cores.append(core)
        doc, core = crash(argv, extra="nosave,noprepare")
        plain.append(doc["analyze_ms"])
        shutil.rmtree(core.parent, ignore_errors=True)
    eu = [timed(["eu-stack", "--core", str(c), "-e", exe]) for c in cores]
    gdb = [
        timed(["gdb", "-batch", "-nx", "-ex", "thread apply all bt", exe, str(c)])
        for c in cores[:3]
    ]
    res = {
        "target": name,
        "core_bytes": cores[0].stat().st_size,
        "ours_analyze_ms": summary([d["analyze_ms"] for d in ours]),
        "ours_analyze_ms_without_prepare": summary(plain),
        "ours_stream_ms": summary([d["stream_ms"] for d in ours]),
        "ours_unwinder_maxrss_kib": max(d["unwinder_maxrss_kib"] for d in ours),
        "ours_handler_maxrss_kib": max(d["handler_maxrss_kib"] for d in ours),
        "ours_frames_named": named_frames(ours[0]["text"], "#"),
        "ours_status": ours[0]["status"],
        "eu_stack_ms": summary([e[0] for e in eu]),
        "eu_stack_maxrss_kib": max(e[1] for e in eu),
        "eu_stack_frames_named": named_frames(eu[0][2], "#"),
        "gdb_ms": summary([g[0] for g in gdb]),
        "gdb_maxrss_kib": max(g[1] for g in gdb),
        "sample": ours[0]["text"].split("\n\n")[0],
    }
    for c in cores:
        shutil.rmtree(c.parent, ignore_errors=True)
    return res


def bench_big() -> dict[str, Any]:
    doc, core = crash([sys.executable, "-c", BIG], extra="nosave", kill=False)
    shutil.rmtree(core.parent, ignore_errors=True)
    return {
        "target": "python 512 MiB (core streamed, not saved)",
        "stream_ms": round(doc["stream_ms"], 1),
        "analyze_ms": round(doc["analyze_ms"], 1),
        "handler_maxrss_kib": doc["handler_maxrss_kib"],
        "unwinder_maxrss_kib": doc["unwinder_maxrss_kib"],
        "status": doc["status"],
    }


def build_dir_exe(name: str, flags: list[str]) -> Path:
    exe = Path(tempfile.mkdtemp(prefix="dkl-bin-")) / name
    subprocess.run(
        ["gcc", *flags, "-pthread", "-o", exe, ROOT / "tests" / "fixtures" / "crasher.c"],
        check=True,
    )
    if "-g" not in flags:
        subprocess.run(["strip", exe], check=True)
    return exe


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument(
        "--systemd",
        action="store_true",
        help="also compare traces with systemd-coredump's (anchor running)",
    )
    args = ap.parse_args()
    build = Path(tempfile.mkdtemp(prefix="dkl-bin-"))
    crasher = build / "crash_o2"
    subprocess.run(
        ["gcc", "-O2", "-pthread", "-o", crasher, ROOT / "tests" / "fixtures" / "crasher.c"],
        check=True,
    )
    subprocess.run(["strip", crasher], check=True)
    sleep = shutil.which("sleep") or "/bin/sleep"
    LOCK.parent.mkdir(parents=True, exist_ok=True)
    with LOCK.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        saved = PATTERN.read_bytes(), PIPE_LIMIT.read_bytes()
        try:
            PIPE_LIMIT.write_text("16")
            results = [
                bench_target(
                    "sleep",
                    ["sh", "-c", f"echo ready; exec {sleep} 1000"],
                    os.path.realpath(sleep),
                    args.runs,
                ),
                bench_target(
                    "crasher -O2 stripped, 9 threads",
                    [str(crasher), "threads"],
                    str(crasher),
                    args.runs,
                ),
                bench_big(),
            ]
            if args.systemd:
                for name, flags in (("crash_g", ["-g"]), ("crash_o2s", ["-O2"])):
                    target = build_dir_exe(name, flags)
                    results.append(compare_with_systemd([str(target), "threads"]))
                    shutil.rmtree(target.parent, ignore_errors=True)
        finally:
            PATTERN.write_bytes(saved[0])
            PIPE_LIMIT.write_bytes(saved[1])
    shutil.rmtree(build, ignore_errors=True)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
