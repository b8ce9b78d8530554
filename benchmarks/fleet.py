"""drkonqi-lite-fleet, the admin's forwarder: how fast it forwards, what it costs while idle.

Run as root: `sudo .venv/bin/python benchmarks/fleet.py [--crashes 200] [--seconds 20]` (needs
`make bugsink-venv` for the Bugsink rows). Runs the installed entry point as the unit does
(follow mode, its own state directory), against the host journald. Writes
benchmarks/results/fleet-<time>.json.

1. Forwarding throughput: N crash entries (as our collector writes them: root-sent, so trusted)
   are put in the journal at once; time from the first until the forwarder recorded all N as
   sent. Against a trivial loopback HTTP server (the forwarder's own cost) and a real Bugsink
   (SQLite; it digests each event inside the request).
2. Idle: the forwarder following the journal with nothing to send, 20 s, with and without a
   busy journal (systemd-cat, 10 lines/s): wake-ups (context switches of all its threads) and
   RSS, beside the app's numbers (benchmarks/APP.md).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import http.server
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from systemd import journal

from benchmarks.app_idle import busy_journal, status_kib, switches
from drkonqi_lite_collector.journal.schema import MESSAGE_ID
from tests.entries import live_entry
from tests.integration.bugsink import Bugsink

FLEET = Path(sys.executable).parent / "drkonqi-lite-fleet"
RESULTS = Path(__file__).resolve().parent / "results"


class _Accept(http.server.BaseHTTPRequestHandler):
    """A Sentry envelope endpoint that takes everything (200 and the event id)."""

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        header = self.rfile.read(length).split(b"\n", 1)[0]
        body = json.dumps({"id": json.loads(header).get("event_id", "")}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: object) -> None:
        pass


@contextlib.contextmanager
def loopback_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Accept)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://bench@127.0.0.1:{server.server_address[1]}/1"
    finally:
        server.shutdown()


class Forwarder:
    """The installed forwarder with its own prefix (reporting.conf) and state directory."""

    def __init__(self, dsn: str) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="dkl-fleetbench-"))
        (self.root / "etc/drkonqi-lite").mkdir(parents=True)
        conf = self.root / "etc/drkonqi-lite/reporting.conf"
        conf.write_text(f"[Fleet]\nEnabled = yes\nDSN = {dsn}\n")
        self.state = self.root / "state"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> int:
        """Start following the journal (from the saved position); its PID."""
        env = {"PATH": "/usr/bin:/bin", "DRKONQI_LITE_PREFIX": str(self.root),
               "STATE_DIRECTORY": str(self.state)}  # fmt: skip
        with (self.root / "fleet.log").open("ab") as log:
            self.proc = subprocess.Popen([str(FLEET)], env=env, stdout=log, stderr=log)
        while not (self.state / "reports/state/fleet-position.json").exists():
            assert self.proc.poll() is None, (self.root / "fleet.log").read_text()
            time.sleep(0.05)
        return self.proc.pid

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(30)
            self.proc = None

    def sent(self) -> int:
        sent = self.state / "reports/sent"
        return len(list(sent.glob("*.json"))) if sent.is_dir() else 0


@contextlib.contextmanager
def forwarder(dsn: str) -> Iterator[Forwarder]:
    fwd = Forwarder(dsn)
    try:
        yield fwd
    finally:
        fwd.stop()
        shutil.rmtree(fwd.root, ignore_errors=True)


def throughput(dsn: str, n: int) -> dict[str, float]:
    """A backlog of `n` crashes that came while the forwarder was stopped, forwarded when it
    starts again (so the rate is its own, not the journal's batching or its coalescing)."""
    with forwarder(dsn) as fwd:
        fwd.start()
        fwd.stop()  # its floor is saved: what comes now is forwarded at the next start
        for i in range(n):
            fields = live_entry(0, comm=f"bench{i % 20}", exe=f"/usr/bin/bench{i % 20}")
            journal.send(MESSAGE_ID=MESSAGE_ID, **fields)
        time.sleep(1)  # journald has written them
        t0 = time.monotonic()
        fwd.start()
        proc = fwd.proc
        assert proc is not None
        while fwd.sent() < n:
            assert proc.poll() is None, "the forwarder died"
            assert time.monotonic() < t0 + 600, "forwarding stalled"
            time.sleep(0.02)
        took = time.monotonic() - t0
    return {"crashes": n, "seconds": round(took, 2), "per_s": round(n / took, 1),
            "ms_per_crash": round(took / n * 1000, 2)}  # fmt: skip


def idle(dsn: str, seconds: float, busy: bool) -> dict[str, float]:
    with forwarder(dsn) as fwd, busy_journal(busy):
        pid = fwd.start()
        time.sleep(2)  # past start-up
        before = switches(pid)
        time.sleep(seconds)
        after = switches(pid)
        rss = status_kib(pid, "VmRSS")
        anon = status_kib(pid, "RssAnon")
    wakeups = sum(after.get(k, 0) - v for k, v in before.items())
    return {"busy_journal": busy, "seconds": seconds, "wakeups": wakeups,
            "wakeups_per_20s": round(wakeups * 20 / seconds, 1),
            "threads": len(after), "rss_mib": round(rss / 1024, 1),
            "rss_anon_mib": round(anon / 1024, 1)}  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--crashes", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--no-bugsink", action="store_true")
    args = ap.parse_args()
    out: dict[str, object] = {"when": datetime.datetime.now(datetime.UTC).isoformat()}
    with loopback_server() as dsn:
        out["loopback"] = throughput(dsn, args.crashes)
        print("loopback", out["loopback"], flush=True)
        out["idle"] = [idle(dsn, args.seconds, False), idle(dsn, args.seconds, True)]
        print("idle", out["idle"], flush=True)
    if not args.no_bugsink:
        work = Path(tempfile.mkdtemp(prefix="dkl-bugsink-"))
        server = Bugsink(work, quota=100_000)
        server.start()
        try:
            out["bugsink"] = throughput(server.dsn, args.crashes)
            print("bugsink", out["bugsink"], flush=True)
        finally:
            server.stop()
            shutil.rmtree(work, ignore_errors=True)
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H%M")
    (RESULTS / f"fleet-{stamp}.json").write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
