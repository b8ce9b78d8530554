"""Crash reports on the Sentry protocol: what they cost, side by side with KDE's DrKonqi.

Run as root: `sudo .venv/bin/python benchmarks/reporting.py [--crashes 20] [--queued 1000]`
(needs `make bugsink-venv`; DrKonqi's anchor needs Debian's drkonqi, python3-psutil and
python3-distro, which its gdb preamble imports). Holds the core_pattern lock while it crashes
processes and restores the pattern. Writes benchmarks/results/reporting-<time>.json.

1. Crash → event stored in a real Bugsink: crashme faults as a user, through our collector
   and core_pattern; `drkonqi-lite report PID --dsn` as that user; stored when the server's
   2xx came back (Bugsink digests the event inside the request). Median of N.
2. DrKonqi, same crashes: it builds its Sentry event by running gdb on the core with its
   preamble (/usr/share/drkonqi/gdb/preamble.py, `print_sentry_payload`; the command line of
   /usr/share/drkonqi/debuggers/internal/gdbrc [coredumpd]), before any upload. Median of N.
3. The cost of building one event (build_event + serialize) in-process, for the real crash
   and for a 64-thread x 32-frame trace.
4. Queue drain: N reports queued while the server was away, then sent in one round.
"""

from __future__ import annotations

import argparse
import datetime
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from drkonqi_lite.adapters.report_queue import ReportQueue
from drkonqi_lite.adapters.reporter import Reporter, host_facts
from drkonqi_lite.adapters.sentry_transport import Delivery, Outcome
from drkonqi_lite.domain.crash import Crash, crash_from_entry
from drkonqi_lite.domain.dsn import parse_dsn
from drkonqi_lite.domain.sentry_event import EventOptions, build_event, serialize
from drkonqi_lite_collector.journal.schema import Field
from tests.integration import harness as hn
from tests.integration import journal_read, processes
from tests.integration.bugsink import Bugsink
from tests.integration.desktop import User, desktop_session

LOCK = Path("/run/lock/drkonqi-lite-core_pattern.lock")
PREAMBLE = Path("/usr/share/drkonqi/gdb/preamble.py")
RESULTS = Path(__file__).resolve().parent / "results"


def median_ms(values: list[float]) -> float:
    return round(statistics.median(values) * 1000, 2)


def crash_and_report(user: User, h: hn.Harness, crashme: Path, dsn: str, n: int) -> dict:  # type: ignore[type-arg]
    to_entry, to_stored, entries = [], [], []
    for _ in range(n):
        t0 = time.monotonic()
        pid = processes.crash_self([str(crashme)], user.uid, user.uid)
        entry = journal_read.wait_entry(COREDUMP_PID=pid)
        t1 = time.monotonic()
        out = user.cli("report", str(pid), "--dsn", dsn)
        t2 = time.monotonic()
        assert out.returncode == 0, out.stderr
        to_entry.append(t1 - t0)
        to_stored.append(t2 - t0)
        entries.append(entry)
    after_entry = [b - a for a, b in zip(to_entry, to_stored, strict=True)]
    return {"entries": entries, "crash_to_entry_ms": median_ms(to_entry),
            "crash_to_stored_ms": median_ms(to_stored),
            "entry_to_stored_ms": median_ms(after_entry)}  # fmt: skip


def drkonqi_gdb(h: hn.Harness, crashme: Path, n: int) -> float | None:
    """Median seconds for DrKonqi's gdb preamble to write sentry_payload.json for one core."""
    if not PREAMBLE.exists() or shutil.which("gdb") is None:
        return None
    cores = h.cores()[:n]
    work = Path(tempfile.mkdtemp(prefix="dkl-drkonqi-"))
    times = []
    try:
        pre, batch = work / "preamble.gdb", work / "batch.gdb"
        pre.write_text(f"set width 200\nsource {PREAMBLE}\npy print_preamble()\n")
        batch.write_text("thread\nthread apply all bt\n")
        for i, core in enumerate(cores):
            raw = work / f"core{i}"
            subprocess.run(["zstd", "-q", "-d", str(core), "-o", str(raw)], check=True)
            env = {**os.environ, "DRKONQI_WITH_SENTRY": "1", "DRKONQI_TMP_DIR": str(work),
                   "DRKONQI_VERSION": "5.27.5", "DRKONQI_SIGNAL": "11"}  # fmt: skip
            payload = work / "sentry_payload.json"
            payload.unlink(missing_ok=True)
            t0 = time.monotonic()
            subprocess.run(["gdb", "--nw", "--nx", "--batch", f"--command={pre}",
                            f"--command={batch}", f"--core={raw}", str(crashme)],
                           env=env, capture_output=True, check=False, timeout=120)  # fmt: skip
            times.append(time.monotonic() - t0)
            assert payload.exists(), "DrKonqi's preamble wrote no sentry_payload.json"
            raw.unlink()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return statistics.median(times)


def build_cost(crash: Crash, rounds: int = 500) -> float:
    facts = host_facts()
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        serialize(build_event(crash, facts, EventOptions()))
        times.append(time.perf_counter() - t0)
    return median_ms(times)


def big_crash(crash: Crash) -> Crash:
    import dataclasses  # noqa: PLC0415

    frames = "\n".join(f"#{i}  0x{0x401000 + i * 16:016x} function_{i} (crashme + 0x{i * 16:x})"
                       for i in range(32))  # fmt: skip
    trace = "\n\n".join(f"Stack trace of thread {t}:\n{frames}" for t in range(1, 65))
    head = crash.message.partition("\n\n")[0]
    return dataclasses.replace(crash, message=f"{head}\n\n{trace}")


def drain(crash: Crash, dsn: str, n: int) -> dict[str, float]:
    work = Path(tempfile.mkdtemp(prefix="dkl-queue-"))
    try:
        queue = ReportQueue(work / "reports")
        away = Reporter(queue, lambda d, b: Delivery(Outcome.RETRY, "cannot reach"))
        facts, parsed = host_facts(), parse_dsn(dsn)
        t0 = time.monotonic()
        for _ in range(n):
            away.report(crash, parsed, facts, EventOptions())
        queued_s = time.monotonic() - t0
        t0 = time.monotonic()
        counts = Reporter(queue).send_queued(force=True)
        sent_s = time.monotonic() - t0
        assert counts[Outcome.SENT] == n, (counts, [r.last_error for r in queue.reports()][:3])
        return {"queue_per_report_ms": round(queued_s / n * 1000, 2),
                "drain_s": round(sent_s, 2), "drain_per_s": round(n / sent_s, 1)}  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--crashes", type=int, default=20)
    ap.add_argument("--queued", type=int, default=1000)
    args = ap.parse_args()
    crashme = processes.build_crashme()
    bugsink_dir = Path(tempfile.mkdtemp(prefix="dkl-bugsink-"))
    server = Bugsink(bugsink_dir, quota=100_000)
    server.start()
    result: dict[str, object] = {"crashes": args.crashes, "queued": args.queued}
    try:
        session = desktop_session(with_display=False)
        desk = next(session)
        user = desk.user(with_display=False)
        h = next(hn.make_prefix())
        h.configure("RateLimitBurst=1000\n")
        with LOCK.open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            pattern = Path("/proc/sys/kernel/core_pattern").read_bytes()
            limit = Path("/proc/sys/kernel/core_pipe_limit").read_bytes()
            try:
                h.install()
                measured = crash_and_report(user, h, crashme, server.dsn, args.crashes)
            finally:
                Path("/proc/sys/kernel/core_pattern").write_bytes(pattern)
                Path("/proc/sys/kernel/core_pipe_limit").write_bytes(limit)
        entries = measured.pop("entries")
        result.update(measured)
        gdb = drkonqi_gdb(h, crashme, min(5, args.crashes))
        result["drkonqi_gdb_event_ms"] = None if gdb is None else round(gdb * 1000, 1)
        # RawReader leaves a few fields as systemd-python's ints; the app's reader gives text.
        crash = crash_from_entry({k: v if isinstance(v, bytes) else str(v)
                                  for k, v in entries[0].items()})  # fmt: skip
        result["event_build_ms"] = build_cost(crash)
        result["event_build_64x32_ms"] = build_cost(big_crash(crash), 100)
        result["event_bytes"] = len(serialize(build_event(crash, host_facts(), EventOptions())))
        result["threads_in_trace"] = crash.message.count("Stack trace of thread")
        result["modules"] = len(crash.fields.get(Field.MODULES, "").splitlines())
        result.update(drain(crash, server.dsn, args.queued))
        desk.close()
    finally:
        server.stop()
        shutil.rmtree(bugsink_dir, ignore_errors=True)
    if result.get("drkonqi_gdb_event_ms"):
        result["ratio_stored_vs_drkonqi_event"] = round(
            float(result["crash_to_stored_ms"]) / float(result["drkonqi_gdb_event_ms"]), 3  # type: ignore[arg-type]
        )
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H%M")
    (RESULTS / f"reporting-{stamp}.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
