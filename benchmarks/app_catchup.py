"""Login catch-up: K crashes among N journal entries → the grouped notification (≤ 1 s target).

Builds the journal file (app_catchup_fixture.py), places it beside the live journal files as an
archived user journal of a fresh uid (readable by that uid through an ACL, like journald's
own), starts dunst and the real app as that uid and times: process start → Notify seen on the
bus (dbus-monitor), then one DismissAll over every unseen crash. The file is removed
afterwards.
Usage: python benchmarks/app_catchup.py [--entries 1000000] [--crashes 1000]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

from app_latency import NotifyMonitor  # type: ignore[import-not-found]  # noqa: E402

from tests.integration.desktop import desktop_session  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--entries", type=int, default=1_000_000)
    p.add_argument("--crashes", type=int, default=1000)
    a = p.parse_args()
    gen = desktop_session(with_display=True)
    desktop = next(gen)
    machine = Path("/etc/machine-id").read_text().strip()
    placed: list[Path] = []
    try:
        user = desktop.user()
        # journal-remote rotates its output: build in a private dir, then move every file in.
        build = desktop.workdir / "fixture"
        build.mkdir()
        t = time.monotonic()
        subprocess.run([sys.executable, str(HERE / "app_catchup_fixture.py"),
                        str(build / "bench.journal"), str(user.uid), "--entries",
                        str(a.entries), "--crashes", str(a.crashes)], check=True)  # fmt: skip
        files = sorted(build.glob("*.journal"))
        size = sum(f.stat().st_size for f in files)
        print(
            f"fixture: {a.entries} entries in {time.monotonic() - t:.1f} s, {len(files)} files, "
            f"{size >> 20} MiB",
            flush=True,
        )
        for n, f in enumerate(files):
            target = Path(f"/var/log/journal/{machine}/user-{user.uid}@dklbench-{n}.journal")
            shutil.move(f, target)
            placed.append(target)
            subprocess.run(["setfacl", "-m", f"u:{user.uid}:r", str(target)], check=True)
        user.start_dunst()
        mon = NotifyMonitor(user)
        t0 = time.time()
        app = user.start_app()
        try:
            t_notify = mon.wait_one(30)
            user.wait_log("started:")
            # The user then clears everything: one DismissAll over all unseen crashes.
            t_dismiss = time.monotonic()
            out = user.run(["dbus-send", "--session", "--print-reply", "--reply-timeout=600000",
                            "--dest=org.drkonqi_lite.CrashNotifier",
                            "/org/drkonqi_lite/CrashNotifier",
                            "org.drkonqi_lite.CrashNotifier1.DismissAll"], timeout=600)  # fmt: skip
            dismiss_ms = round((time.monotonic() - t_dismiss) * 1000, 1)
            assert out.returncode == 0, out.stderr
        finally:
            user.stop(app)
            mon.close()
        started = [line for line in user.app_log().splitlines() if "started:" in line]
        result = {"entries": a.entries, "crashes": a.crashes, "log": started,
                  "start_to_notify_ms": round((t_notify - t0) * 1000, 1),
                  "dismiss_all_ms": dismiss_ms}  # fmt: skip
        notes = user.notifications()
        result["notification"] = notes[0]["summary"] if notes else None
        print(json.dumps(result))
    finally:
        for path in placed:
            path.unlink(missing_ok=True)
        for _ in gen:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
