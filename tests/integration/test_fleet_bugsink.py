"""`drkonqi-lite-fleet`, the admin's forwarder, run for real (its installed entry point, as root,
as the unit runs it) against real journald, real crashes of two users through the real collector
(and the real systemd-coredump), and a real Sentry-protocol server (Bugsink).

Asserted is what the server STORED: one event per crash, grouped into issues, none twice across
a restart of the service, none skipped while it was stopped or the server was away, the admin's
redaction choices (the command line only when [Fleet] says so, never the environment).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration import desktop as dk
from tests.integration import test_report_bugsink as trb
from tests.integration.bugsink import Bugsink, free_port
from tests.integration.desktop import PYTHON, Desktop, User
from tests.integration.harness import Harness
from tests.integration.journal_read import wait_entry
from tests.integration.processes import crash_self

FLEET = Path(PYTHON).parent / "drkonqi-lite-fleet"
ENV_MARK = "ENVMARK-fleet-5f2b9c"
systemd_coredump = dk.systemd_coredump
# The same module-scoped server and session fixtures as `drkonqi-lite report`'s tests.
bugsink, desk = trb.bugsink, trb.desk


class Fleet:
    """The service's files (a prefix with etc/drkonqi-lite/reporting.conf, a state dir) and
    its process."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.state = root / "var/lib/drkonqi-lite"
        self.proc: subprocess.Popen[str] | None = None
        (root / "etc/drkonqi-lite").mkdir(parents=True)

    def configure(self, text: str) -> None:
        (self.root / "etc/drkonqi-lite/reporting.conf").write_text(text)

    def _env(self) -> dict[str, str]:
        return {"PATH": os.environ["PATH"], "DRKONQI_LITE_PREFIX": str(self.root),
                "STATE_DIRECTORY": str(self.state)}  # fmt: skip

    def start(self) -> None:
        assert FLEET.exists(), f"{FLEET}: the entry point is not installed"
        position = self.state / "reports/state/fleet-position.json"
        before = position.read_bytes() if position.exists() else b""
        # close_fds (the default) keeps the core_pattern lock out of the daemon.
        # Its log goes to a file: a pipe nobody reads would fill up and stall it.
        self.log = (self.root / "fleet.log").open("a")
        self.proc = subprocess.Popen([str(FLEET)], env=self._env(), text=True,
                                     stdout=self.log, stderr=self.log)  # fmt: skip
        if before:
            return  # it goes on from the saved cursor
        deadline = time.monotonic() + 30
        while not position.exists():  # first run: its floor is saved, crashes may come
            assert self.proc.poll() is None, (self.root / "fleet.log").read_text()
            assert time.monotonic() < deadline, "the fleet service did not start"
            time.sleep(0.1)

    def stop(self) -> str:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)  # what systemctl stop does
        self.proc.wait(timeout=30)
        self.proc = None
        self.log.close()
        err = (self.root / "fleet.log").read_text()
        assert "Traceback" not in err, err
        return err

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(FLEET), *args], env=self._env(), text=True,
                              capture_output=True, timeout=120, check=False)  # fmt: skip

    def queued(self) -> list[Path]:
        return sorted((self.state / "reports").glob("*.json"))


@pytest.fixture
def fleet() -> Iterator[Fleet]:
    root = Path(tempfile.mkdtemp(prefix="dkl-fleet-"))
    service = Fleet(root)
    yield service
    if service.proc is not None:
        service.proc.kill()
        service.proc.wait()
    log = root / "fleet.log"
    if log.exists():  # shown with a failing test's output
        print("drkonqi-lite-fleet's log:\n" + log.read_text()[-4000:])
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def programs(crashme: Path) -> Iterator[Callable[[str], Path]]:
    """crashme copies under names of this test's own: its events are told apart by path."""
    d = Path(tempfile.mkdtemp(prefix="dkl-fleetprog-", dir="/tmp"))
    d.chmod(0o755)

    def make(name: str) -> Path:
        copy = d / name
        if not copy.exists():
            shutil.copy2(crashme, copy)
        return copy

    yield make
    shutil.rmtree(d)


def only_ours(ours: Path, dsn: str) -> str:
    """[Fleet Program] rules that forward this test's programs only. The machine is shared: the
    other tests' crashes (hundreds, in a fuzzing run) would otherwise reach the server first."""
    return (f"\n[Fleet Program this test]\nExecutable = {ours}/*\nDSN = {dsn}\n"
            "\n[Fleet Program everything else]\nExecutable = *\nDSN =\n")  # fmt: skip


def crash(user: User, program: Path, marker: str) -> int:
    pid = crash_self([str(program), f"--who={marker}"], user.uid, user.uid,
                     env={"DKL_SECRET_TOKEN": ENV_MARK})  # fmt: skip
    wait_entry(COREDUMP_PID=pid)
    return pid


def stored(bugsink: Bugsink, prefix: Path, count: int, timeout: float = 90) -> list[dict[str, Any]]:
    """The server's events of the programs under `prefix`, once there are `count` (and a
    moment later, so that one too many would show)."""
    def mine() -> list[dict[str, Any]]:
        app = [(e, e["data"]["contexts"]["app"]) for e in bugsink.events()]
        return [e for e, a in app if a["app_identifier"].startswith(str(prefix))]

    deadline = time.monotonic() + timeout
    while len(mine()) < count and time.monotonic() < deadline:
        time.sleep(1)
    time.sleep(2)
    return mine()


def cmdline(event: dict[str, Any]) -> str:
    return str(event["data"].get("extra", {}).get("cmdline", ""))


@pytest.mark.crash
def test_two_users_crashes_are_forwarded_grouped_once_across_a_restart(
    bugsink: Bugsink, desk: Desktop, installed: Harness, fleet: Fleet,
    programs: Callable[[str], Path],
) -> None:  # fmt: skip
    alice, bob = desk.user(with_display=False), desk.user(with_display=False)
    prog, other = programs("fleetcrash"), programs("fleetother")
    fleet.configure(f"[Fleet]\nEnabled = yes\nDSN = {bugsink.dsn}\nIncludeCommandLine = yes\n"
                    + only_ours(prog.parent, bugsink.dsn))  # fmt: skip
    fleet.start()
    crash(alice, prog, "alice-1")
    crash(bob, prog, "bob-1")
    crash(bob, other, "bob-2")
    events = stored(bugsink, prog.parent, 3)
    assert sorted(cmdline(e).split("--who=")[1] for e in events) == ["alice-1", "bob-1", "bob-2"]
    by_who = {cmdline(e).split("--who=")[1]: e for e in events}
    # One program's crash of two users is one issue; another program's is another.
    assert by_who["alice-1"]["issue"] == by_who["bob-1"]["issue"] != by_who["bob-2"]["issue"]
    assert ENV_MARK not in json.dumps([e["data"] for e in events])
    assert by_who["alice-1"]["data"]["exception"]["values"][0]["stacktrace"]["frames"]
    # Stopped (SIGTERM, anywhere): the crashes meanwhile come when it is back; none twice.
    fleet.stop()
    crash(alice, other, "alice-2")
    fleet.start()
    crash(bob, prog, "bob-3")
    events = stored(bugsink, prog.parent, 5)
    whos = sorted(cmdline(e).split("--who=")[1] for e in events)
    assert whos == ["alice-1", "alice-2", "bob-1", "bob-2", "bob-3"], whos
    assert fleet.queued() == []


@pytest.mark.crash
def test_server_away_the_crash_is_queued_and_forwarded_when_back(
    bugsink: Bugsink, desk: Desktop, installed: Harness, fleet: Fleet,
    programs: Callable[[str], Path],
) -> None:  # fmt: skip
    user = desk.user(with_display=False)
    prog = programs("awaycrash")
    fleet.configure(f"[Fleet]\nEnabled = yes\nDSN = {bugsink.dsn}\n"
                    + only_ours(prog.parent, bugsink.dsn))  # fmt: skip
    fleet.start()
    bugsink.stop()
    try:
        crash(user, prog, "away")
        deadline = time.monotonic() + 60
        while not fleet.queued():
            assert time.monotonic() < deadline, "the report was not queued"
            time.sleep(0.2)
        # Killed while it waits: the queue and the cursor are on disk.
        fleet.stop()
    finally:
        bugsink.start()
    fleet.start()
    crash(user, prog, "back")  # a report that goes through: the queue need not wait its backoff
    events = stored(bugsink, prog.parent, 2)
    assert len(events) == 2
    # The admin did not ask for the command line: not there; the environment never.
    assert not any("--who=" in json.dumps(e["data"]) for e in events)
    assert ENV_MARK not in json.dumps([e["data"] for e in events])
    assert fleet.queued() == []


@pytest.mark.crash
def test_a_crash_written_by_the_real_systemd_coredump_is_forwarded(
    bugsink: Bugsink, desk: Desktop, systemd_coredump: None, fleet: Fleet,
    programs: Callable[[str], Path],
) -> None:  # fmt: skip
    user = desk.user(with_display=False)
    prog = programs("sdcrash")
    fleet.configure(f"[Fleet]\nEnabled = yes\nDSN = {bugsink.dsn}\n"
                    + only_ours(prog.parent, bugsink.dsn))  # fmt: skip
    fleet.start()
    pid = crash_self([str(prog)], user.uid, user.uid)
    wait_entry(COREDUMP_PID=pid, SYSLOG_IDENTIFIER="systemd-coredump")
    [event] = stored(bugsink, prog.parent, 1)
    assert event["data"]["tags"]["source"] == "systemd-coredump"
    assert event["data"]["exception"]["values"][0]["type"] == "SIGSEGV"


@pytest.mark.crash
def test_disabled_forwards_nothing(
    bugsink: Bugsink, desk: Desktop, installed: Harness, fleet: Fleet,
    programs: Callable[[str], Path],
) -> None:  # fmt: skip
    user = desk.user(with_display=False)
    prog = programs("offcrash")
    fleet.configure(f"[Fleet]\nDSN = {bugsink.dsn}\n")  # Enabled is "no" unless said
    crash(user, prog, "off")
    out = fleet.run("--once")
    assert out.returncode == 0
    assert out.stderr.count("\n") == 1, out.stderr
    assert "forwarding is off" in out.stderr
    assert stored(bugsink, prog.parent, 1, timeout=3) == []
    assert not fleet.state.exists()


def test_a_malformed_dsn_is_one_line(fleet: Fleet) -> None:
    fleet.configure("[Fleet]\nEnabled = yes\nDSN = not-a-dsn\n")
    out = fleet.run()
    assert out.returncode == 78, "EX_CONFIG: the unit does not restart it (Restart=on-failure)"
    assert out.stderr.count("\n") == 1, out.stderr
    assert "[Fleet] DSN" in out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.crash
def test_sigterm_ends_it_within_a_second_with_the_cursor_saved(
    desk: Desktop, installed: Harness, fleet: Fleet, programs: Callable[[str], Path],
) -> None:  # fmt: skip
    """`systemctl stop` sends SIGTERM while it waits for the journal: it must end at once (not
    at the end of its wait), cleanly, with the position of the last crash it handled saved."""
    user = desk.user(with_display=False)
    # Nobody listens there: the report is queued, and the cursor saved after it.
    away, prog = f"http://key@127.0.0.1:{free_port()}/1", programs("termcrash")
    fleet.configure(f"[Fleet]\nEnabled = yes\nDSN = {away}\n" + only_ours(prog.parent, away))
    fleet.start()
    pid = crash_self([str(prog)], user.uid, user.uid)
    entry = wait_entry(COREDUMP_PID=pid)
    position = fleet.state / "reports/state/fleet-position.json"
    deadline = time.monotonic() + 30
    while json.loads(position.read_text()).get("cursor") != entry["__CURSOR"]:
        assert time.monotonic() < deadline, position.read_text()
        time.sleep(0.1)
    assert len(fleet.queued()) == 1
    time.sleep(1)  # well inside its wait now
    assert fleet.proc is not None
    started = time.monotonic()
    fleet.proc.send_signal(signal.SIGTERM)
    status = fleet.proc.wait(timeout=30)
    took = time.monotonic() - started
    fleet.proc = None
    fleet.log.close()
    log = (fleet.root / "fleet.log").read_text()
    assert took < 1.0, f"SIGTERM took {took:.1f} s"
    assert status == 0, log
    assert "stopped; crashes forwarded since the start: 1" in log, log
    assert "Traceback" not in log, log
    assert json.loads(position.read_text())["cursor"] == entry["__CURSOR"]


@pytest.mark.crash
def test_a_fleet_rule_keeps_one_program_off_the_server(
    bugsink: Bugsink, desk: Desktop, installed: Harness, fleet: Fleet,
    programs: Callable[[str], Path],
) -> None:  # fmt: skip
    """[Fleet Program NAME] with an empty DSN: that program's crashes are never forwarded (nor
    queued), the others' still are; a later crash is not held up by the skipped one."""
    user = desk.user(with_display=False)
    secret, public = programs("ruleoff"), programs("ruleon")
    rule = f"[Fleet Program in-house]\nExecutable = {secret.parent}/ruleof*\nDSN =\n"
    fleet.configure(f"[Fleet]\nEnabled = yes\nDSN = {bugsink.dsn}\n\n{rule}"
                    + only_ours(secret.parent, bugsink.dsn))  # fmt: skip
    fleet.start()
    # Command-line words are masked wherever they appear in the event: markers with a "-",
    # which mkdtemp's random part never has, cannot be part of the programs' paths.
    crash(user, secret, "mark-1")
    crash(user, public, "mark-2")
    [event] = stored(bugsink, secret.parent, 1)
    assert event["data"]["contexts"]["app"]["app_identifier"] == str(public)
    assert fleet.queued() == []
    assert "[Fleet Program in-house] sends no reports" in fleet.stop()
