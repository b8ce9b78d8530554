"""Benchmark: the crash list window with 10,000 crashes (issue 5: open in <= 300 ms, stay
responsive while new crashes arrive). Not a test: prints numbers for benchmarks/WINDOWS.md.

    .venv/bin/python benchmarks/windows_list.py [--crashes 10000] [--runs 5]

Runs on $DISPLAY (e.g. under Xvfb: xvfb-run -s '-screen 0 1280x800x24') or offscreen. Measures
with a fresh window each run:
  open     construct the window through the router's factory (grouping 10,000 records), show
           it and process events until the first paint is done;
  storm    2,000 new crashes arriving in batches of 128 (the app's journal drain size), each
           batch followed by the app's refresh (`crashes_changed` -> model.sync), with a 5 ms
           heartbeat timer measuring how late the GUI thread serves it (= the UI's stall);
  search   one keystroke in the search box (filter 10,000 crashes), and clearing it;
  sort     sorting by Program, then back by When.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "build" / "mypy"))
if not os.environ.get("DISPLAY"):
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QElapsedTimer, QEventLoop, Qt, QTimer  # noqa: E402
from PySide6.QtTest import QTest  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from drkonqi_lite.domain.announcement import Program  # noqa: E402
from drkonqi_lite.domain.crash import Crash  # noqa: E402
from drkonqi_lite.domain.trust import TrustPolicy  # noqa: E402
from drkonqi_lite.qt.crash_list_model import Column  # noqa: E402
from drkonqi_lite.qt.crash_list_window import CrashListWindow  # noqa: E402
from drkonqi_lite.qt.crash_services import CrashServices  # noqa: E402
from drkonqi_lite.qt.crash_windows import CrashWindows  # noqa: E402
from tests.entries import NOW_US, crash  # noqa: E402


def make_crashes(n: int, start_us: int, first_pid: int) -> list[Crash]:
    """n crashes of 300 programs, each with 3 crash sites: ~900 groups, newest first."""
    return [
        crash(pid=first_pid + i, comm=f"prog{i % 300}", exe=f"/usr/bin/prog{i % 300}",
              ts=start_us - i * 1_000_000, func=f"site_{(i // 300) % 3}")
        for i in range(n)
    ]  # fmt: skip


class Inbox:
    def __init__(self, crashes: list[Crash]) -> None:
        self.crashes = crashes

    def newest_first(self) -> list[Crash]:
        return self.crashes

    def get(self, crash_id: str) -> Crash | None:
        return None

    def is_seen(self, crash_id: str) -> bool:
        return True


def program(c: Crash) -> Program:
    return Program(c.comm)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def open_once(app: QApplication, inbox: Inbox) -> tuple[float, CrashListWindow]:
    factory = CrashWindows(inbox, program, lambda _id: None,
                           CrashServices(TrustPolicy(os.getuid(), frozenset())))  # fmt: skip
    start = time.perf_counter()
    window = factory.crash_list()
    window.show()
    QTest.qWaitForWindowExposed(window)
    app.processEvents()
    assert isinstance(window, CrashListWindow)
    window.view.viewport().repaint()  # the first paint of the visible rows, synchronously
    elapsed = time.perf_counter() - start
    return elapsed, window


def storm(
    app: QApplication, window: CrashListWindow, inbox: Inbox, new: list[Crash]
) -> dict[str, float]:
    """Feed `new` in batches of 128 with the GUI loop running; measure stalls."""
    lateness: list[float] = []
    sync_times: list[float] = []
    beat = QElapsedTimer()
    heartbeat = QTimer()
    heartbeat.setInterval(5)
    heartbeat.setTimerType(Qt.TimerType.PreciseTimer)

    def on_beat() -> None:
        if beat.isValid():
            lateness.append(max(0.0, beat.nsecsElapsed() / 1e9 - 0.005))
        beat.restart()

    heartbeat.timeout.connect(on_beat)
    heartbeat.start()
    batches = [new[i : i + 128] for i in range(0, len(new), 128)]
    loop = QEventLoop()

    def feed() -> None:
        if not batches:
            loop.quit()
            return
        batch = batches.pop(0)
        inbox.crashes = sorted(batch + inbox.crashes, key=lambda c: -c.timestamp_us)
        t = time.perf_counter()
        window.sync(inbox.crashes)
        sync_times.append(time.perf_counter() - t)
        QTimer.singleShot(20, feed)  # the next journal batch 20 ms later: a crash storm

    QTimer.singleShot(0, feed)
    loop.exec()
    heartbeat.stop()
    return {
        "sync_median": statistics.median(sync_times),
        "sync_max": max(sync_times),
        "stall_p95": sorted(lateness)[int(len(lateness) * 0.95)],
        "stall_max": max(lateness),
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--crashes", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    app = QApplication([sys.argv[0]])
    print(f"platform: {app.platformName()}, Qt {__import__('PySide6').__version__}, "
          f"{args.crashes} crashes")  # fmt: skip
    base = make_crashes(args.crashes, NOW_US, 100_000)
    opens = []
    window = None
    for _ in range(args.runs):
        elapsed, window = open_once(app, Inbox(list(base)))
        opens.append(elapsed)
        window.close()
        window.deleteLater()
        app.processEvents()
    print(f"open: median {ms(statistics.median(opens))}, max {ms(max(opens))} "
          f"(runs: {', '.join(ms(o) for o in opens)})")  # fmt: skip
    inbox = Inbox(list(base))
    _, window = open_once(app, inbox)
    print(f"groups: {window.model.group_count()}")
    new = make_crashes(2_000, NOW_US + 3_000_000_000, 900_000)
    result = storm(app, window, inbox, new)
    print(f"storm (2000 new crashes in batches of 128 on top of {args.crashes}): "
          f"sync median {ms(result['sync_median'])}, max {ms(result['sync_max'])}; "
          f"GUI stall p95 {ms(result['stall_p95'])}, max {ms(result['stall_max'])}")  # fmt: skip
    t = time.perf_counter()
    window.search.setText("prog17")
    app.processEvents()
    key = time.perf_counter() - t
    shown = window.model.group_count()
    t = time.perf_counter()
    window.search.clear()
    app.processEvents()
    clear = time.perf_counter() - t
    print(f"search: filter {ms(key)} ({shown} groups shown), clear {ms(clear)}")
    t = time.perf_counter()
    window.view.sortByColumn(Column.PROGRAM, Qt.SortOrder.AscendingOrder)
    app.processEvents()
    by_program = time.perf_counter() - t
    t = time.perf_counter()
    window.view.sortByColumn(Column.WHEN, Qt.SortOrder.DescendingOrder)
    app.processEvents()
    print(f"sort: by program {ms(by_program)}, back by time {ms(time.perf_counter() - t)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
