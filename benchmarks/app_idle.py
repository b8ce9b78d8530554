"""Idle cost of the running app: wake-ups (context switches of all its threads) and RSS.

DESIGN.md §5: zero wake-ups while idle (no polling timers). Starts the app as a fresh user
(own bus, dunst, Xvfb + trayer), lets it settle, then counts voluntary + involuntary context
switches of every thread over the window, and reads VmRSS/VmHWM.
Usage: python benchmarks/app_idle.py [--seconds 60]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.integration.desktop import desktop_session


def switches(pid: int) -> dict[str, int]:
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        status = (task / "status").read_text()
        total = 0
        for line in status.splitlines():
            if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                total += int(line.split()[1])
        name = (task / "comm").read_text().strip()
        out[f"{task.name}:{name}"] = total
    return out


def status_kib(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return -1


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--seconds", type=float, default=60)
    a = p.parse_args()
    gen = desktop_session(with_display=True)
    desktop = next(gen)
    try:
        user = desktop.user()
        user.start_dunst()
        app = user.start_app()
        user.wait_log("started:")
        time.sleep(3)  # let the catch-up step and Qt's start-up settle
        before = switches(app.pid)
        time.sleep(a.seconds)
        after = switches(app.pid)
        per_thread = {k: after[k] - before.get(k, 0) for k in after}
        result = {
            "seconds": a.seconds,
            "wakeups_total": sum(per_thread.values()),
            "wakeups_per_thread": {k: v for k, v in per_thread.items() if v},
            "threads": len(after),
            "rss_mib": round(status_kib(app.pid, "VmRSS") / 1024, 1),
            "peak_rss_mib": round(status_kib(app.pid, "VmHWM") / 1024, 1),
        }
        user.stop(app)
        print(json.dumps(result))
    finally:
        for _ in gen:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
