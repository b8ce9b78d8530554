"""A real Sentry-protocol server for the reporting tests: Bugsink (PyPI `bugsink`), SQLite, on
loopback, in its own venv (`make bugsink-venv`, which .ci/run builds; DKL_BUGSINK_VENV
overrides the path).

The tests assert on what Bugsink stored (its Event rows, `get_parsed_data()`, and its Issue
grouping), read through `bugsink-manage shell`, never on what the client meant to send.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.conftest import need

REPO = Path(__file__).resolve().parents[2]
VENV = Path(os.environ.get("DKL_BUGSINK_VENV", REPO / "build/bugsink-venv"))

_PROJECT = """
from teams.models import Team
from projects.models import Project
team = Team.objects.create(name="drkonqi-lite tests")
print(Project.objects.create(team=team, name="desktop crashes").dsn)
"""
_STORED = """
import json
from events.models import Event
print(json.dumps([{"event_id": e.event_id.hex, "issue": str(e.issue_id),
                   "data": e.get_parsed_data()} for e in Event.objects.order_by("digested_at")]))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Bugsink:
    """One Bugsink instance with one project; `dsn` reaches it."""

    def __init__(self, workdir: Path, quota: int | None = None) -> None:
        """`quota`: events per 5 minutes (Bugsink's default, 1,000, answers 429 beyond)."""
        self.workdir = workdir
        self.port = free_port()
        self._proc: subprocess.Popen[bytes] | None = None
        self._manage("bugsink-create-conf", "--template=local", f"--port={self.port}",
                     "--host=127.0.0.1")  # fmt: skip
        if quota is not None:
            with (workdir / "bugsink_conf.py").open("a") as conf:
                for key in ("MAX_EVENTS_PER_PROJECT_PER_5_MINUTES", "MAX_EVENTS_PER_5_MINUTES",
                            "MAX_EVENTS_PER_PROJECT_PER_HOUR", "MAX_EVENTS_PER_HOUR"):
                    conf.write(f"BUGSINK[{key!r}] = {quota}\n")
        self._manage("bugsink-manage", "migrate", "-v0")
        self._manage("bugsink-manage", "migrate", "snappea", "--database=snappea", "-v0")
        self.dsn = self.shell(_PROJECT).strip().splitlines()[-1]

    def _manage(self, tool: str, *args: str) -> str:
        out = subprocess.run([str(VENV / "bin" / tool), *args], cwd=self.workdir,
                             capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
        assert out.returncode == 0, f"{tool} {args}: {out.stderr[-2000:]}"
        return out.stdout

    def shell(self, code: str) -> str:
        return self._manage("bugsink-manage", "shell", "-c", code)

    def start(self) -> None:
        log = (self.workdir / "server.log").open("ab")
        # close_fds (the default) keeps the core_pattern lock's fd out of the server.
        self._proc = subprocess.Popen(
            [str(VENV / "bin/bugsink-manage"), "runserver", "--noreload", f"127.0.0.1:{self.port}"],
            cwd=self.workdir, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
            start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            assert self._proc.poll() is None, (self.workdir / "server.log").read_text()[-2000:]
            time.sleep(0.1)
        raise AssertionError("bugsink did not start")

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            self._proc.wait(30)
        self._proc = None

    def events(self) -> list[dict[str, Any]]:
        """What the server stored: event id (hex), issue id, the event as parsed."""
        return json.loads(self.shell(_STORED).strip().splitlines()[-1])  # type: ignore[no-any-return]

    def event(self, event_id: str) -> dict[str, Any]:
        [found] = [e for e in self.events() if e["event_id"] == event_id]
        return found


def bugsink_server() -> Iterator[Bugsink]:
    need((VENV / "bin/bugsink-manage").exists(), f"no Bugsink venv at {VENV} (make bugsink-venv)")
    workdir = Path(tempfile.mkdtemp(prefix="dkl-bugsink-"))
    server = Bugsink(workdir)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
