"""`drkonqi-lite report` against a real Sentry-protocol server (Bugsink), with real crashes through
the real collector and core_pattern, and the faults a user meets: the server away, 5xx, 429
with Retry-After, a slow server, a malformed DSN, a full disk, a crash whose core is gone.

What is asserted is what the server STORED (Bugsink's events and issues) and what the user
sees (exit status, one-line messages, the queue listing).
"""

from __future__ import annotations

import http.server
import json
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile
from elftools.elf.sections import NoteSection

from tests.conftest import need
from tests.entries import live_entry
from tests.integration import desktop as dk
from tests.integration.bugsink import Bugsink, bugsink_server
from tests.integration.desktop import Desktop, User, wait_for
from tests.integration.harness import Harness
from tests.integration.journal_read import wait_entry
from tests.integration.processes import crash_self, start_waiting

ENV_MARK = "ENVMARK-d41d8cd98f00"
ARG_MARK = "ARGMARK-8f00b204e980"
EX_TEMPFAIL = 75


@pytest.fixture(scope="module")
def bugsink() -> Iterator[Bugsink]:
    yield from bugsink_server()


@pytest.fixture(scope="module")
def desk(journald: None) -> Iterator[Desktop]:
    yield from dk.desktop_session(with_display=False)


@pytest.fixture
def user(desk: Desktop) -> User:
    return desk.user(with_display=False)


def real_crash(user: User, crashme: Path) -> int:
    """crashme faults by itself as `user`, through the installed collector; its entry is in."""
    pid = crash_self([str(crashme), f"--token={ARG_MARK}"], user.uid, user.uid,
                     env={"DKL_SECRET_TOKEN": ENV_MARK})  # fmt: skip
    wait_entry(COREDUMP_PID=pid)
    return pid


def report(user: User, *args: str) -> subprocess.CompletedProcess[str]:
    return user.cli("report", *args)


def one_line(out: subprocess.CompletedProcess[str]) -> str:
    assert out.stderr.count("\n") == 1, out.stderr
    assert "Traceback" not in out.stderr
    return out.stderr


def build_id(path: Path) -> str:
    with path.open("rb") as f:
        section = ELFFile(f).get_section_by_name(".note.gnu.build-id")
        assert isinstance(section, NoteSection)
        return str(next(iter(section.iter_notes()))["n_desc"])


@pytest.mark.crash
def test_a_real_crash_becomes_an_event_with_frames_images_and_threads(
    bugsink: Bugsink, user: User, installed: Harness, crashme: Path
) -> None:
    pid = real_crash(user, crashme)
    out = report(user, str(pid), "--dsn", bugsink.dsn, "--comment", "It died on start")
    assert out.returncode == 0, out.stderr
    event_id = out.stdout.strip()
    stored = bugsink.event(event_id)["data"]
    exc = stored["exception"]["values"][0]
    assert exc["type"] == "SIGSEGV"
    assert exc["mechanism"]["handled"] is False
    assert exc["mechanism"]["meta"]["signal"]["number"] == 11
    frames = exc["stacktrace"]["frames"]
    main = [f for f in frames if f.get("function") == "main"]
    assert main, frames
    assert main[0]["package"] == str(crashme)
    assert frames[-1]["function"] == "main"  # innermost last: crashme faults in main()
    [crashed] = [t for t in stored["threads"]["values"] if t["crashed"]]
    assert crashed["id"] == exc["thread_id"]
    images = {i["code_file"]: i for i in stored["debug_meta"]["images"]}
    exe = images[str(crashme)]
    assert exe["type"] == "elf"
    assert exe["code_id"] == build_id(crashme)
    raw = bytes.fromhex(exe["code_id"])[:16]
    assert exe["debug_id"] == str(uuid.UUID(bytes_le=raw.ljust(16, b"\0")))
    assert any(p.endswith("libc.so.6") for p in images)
    assert stored["extra"]["user_comment"] == "It died on start"
    assert stored["contexts"]["os"]["name"]
    # Never the environment; the command line only when asked.
    text = json.dumps(stored)
    assert ENV_MARK not in text
    assert ARG_MARK not in text
    # Reporting it again sends nothing: the same event id, still one event on the server.
    again = report(user, str(pid), "--dsn", bugsink.dsn)
    assert again.returncode == 0
    assert again.stdout.strip() == event_id
    assert [e["event_id"] for e in bugsink.events()].count(event_id) == 1


@pytest.fixture
def other_program(crashme: Path) -> Iterator[Path]:
    """crashme under another name: the same title on the server ("SIGSEGV: ... in main")."""
    d = Path(tempfile.mkdtemp(prefix="dkl-other-", dir="/tmp"))
    d.chmod(0o755)
    copy = d / "othercrash"
    shutil.copy2(crashme, copy)
    yield copy
    shutil.rmtree(d)


@pytest.mark.crash
def test_repeats_are_one_issue_and_other_crashes_are_others(
    bugsink: Bugsink, user: User, installed: Harness, crashme: Path, other_program: Path
) -> None:
    first, second = real_crash(user, crashme), real_crash(user, crashme)
    # Same signal, same function, same title: only the fingerprint tells them apart.
    other = real_crash(user, other_program)
    proc = start_waiting([str(crashme)], user.uid, user.uid)
    proc.send_signal(6)  # SIGABRT while it waits in pause(): another signature
    assert proc.wait(30) == -6
    wait_entry(COREDUMP_PID=proc.pid)
    ids = []
    for pid in (first, second, other, proc.pid):
        out = report(user, str(pid), "--dsn", bugsink.dsn, "--include-cmdline")
        assert out.returncode == 0, out.stderr
        ids.append(out.stdout.strip())
    events = [bugsink.event(i) for i in ids]
    issues = [e["issue"] for e in events]
    assert issues[0] == issues[1]
    assert len(set(issues)) == 3, issues
    titles = [(e["data"]["exception"]["values"][0]["type"],
               e["data"]["exception"]["values"][0]["value"]) for e in events]  # fmt: skip
    assert titles[0] == titles[2]
    # The user ticked the command line: it is there, the environment still is not.
    stored = events[0]["data"]
    assert ARG_MARK in stored["extra"]["cmdline"]
    assert ENV_MARK not in json.dumps(stored)


@pytest.mark.crash
def test_a_crash_whose_core_is_gone_is_still_reported(
    bugsink: Bugsink, user: User, installed: Harness, crashme: Path
) -> None:
    pid = real_crash(user, crashme)
    for core in installed.cores():
        core.unlink()
    out = report(user, str(pid), "--dsn", bugsink.dsn)
    assert out.returncode == 0, out.stderr
    stored = bugsink.event(out.stdout.strip())["data"]
    assert stored["exception"]["values"][0]["stacktrace"]["frames"]
    assert stored["tags"]["core"] != "present"


def test_server_away_then_back_is_queued_and_stored_once(bugsink: Bugsink, user: User) -> None:
    user.send_entry(live_entry(user.uid, comm="away", pid=4100), wake=False)
    time.sleep(0.5)
    bugsink.stop()
    try:
        out = report(user, "4100", "--dsn", bugsink.dsn)
        assert out.returncode == EX_TEMPFAIL
        assert "queued" in one_line(out)
        event_id = out.stdout.strip()
        [queued] = json.loads(report(user, "--list-queued", "--json").stdout)
        assert queued["event_id"] == event_id
        assert queued["attempts"] == 1
        # Still away: --send-queued keeps it and says so.
        still = report(user, "--send-queued")
        assert still.returncode == EX_TEMPFAIL
        assert "still queued 1" in still.stdout
    finally:
        bugsink.start()
    sent = report(user, "--send-queued")
    assert sent.returncode == 0, sent.stdout + sent.stderr
    assert "sent 1, still queued 0" in sent.stdout
    assert report(user, "--send-queued").stdout.startswith("sent 0")
    assert json.loads(report(user, "--list-queued", "--json").stdout) == []
    assert [e["event_id"] for e in bugsink.events()].count(event_id) == 1
    assert ENV_MARK not in json.dumps(bugsink.event(event_id)["data"])


class Answers(http.server.BaseHTTPRequestHandler):
    """A loopback server that answers with the status, headers and delay it is told."""

    status = 500
    headers_out: dict[str, str] = {}  # noqa: RUF012
    delay = 0.0
    hits: list[str] = []  # noqa: RUF012

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        type(self).hits.append(self.path)
        time.sleep(self.delay)
        self.send_response(self.status)
        for key, value in self.headers_out.items():
            self.send_header(key, value)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def answers() -> Iterator[tuple[type[Answers], str]]:
    handler = type("A", (Answers,), {"hits": [], "headers_out": {}})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield handler, f"http://key@127.0.0.1:{server.server_address[1]}/9"
    finally:
        server.shutdown()
        server.server_close()


def _entry(user: User, pid: int) -> str:
    user.send_entry(live_entry(user.uid, comm="faulty", pid=pid), wake=False)
    time.sleep(0.5)
    return str(pid)


def test_5xx_is_queued(user: User, answers: tuple[type[Answers], str]) -> None:
    handler, dsn = answers
    handler.status = 500
    out = report(user, _entry(user, 4201), "--dsn", dsn)
    assert out.returncode == EX_TEMPFAIL
    assert "HTTP 500" in one_line(out)
    assert len(json.loads(report(user, "--list-queued", "--json").stdout)) == 1


def test_429_retry_after_is_honoured(user: User, answers: tuple[type[Answers], str]) -> None:
    handler, dsn = answers
    handler.status = 429
    handler.headers_out = {"Retry-After": "3600"}
    out = report(user, _entry(user, 4202), "--dsn", dsn)
    assert out.returncode == EX_TEMPFAIL
    assert "HTTP 429" in one_line(out)
    [queued] = json.loads(report(user, "--list-queued", "--json").stdout)
    assert queued["next_attempt"] >= time.time() + 3000
    handler.status = 200
    again = report(user, "--send-queued")  # the server said not before an hour: not asked
    assert again.returncode == EX_TEMPFAIL
    assert len(handler.hits) == 1


def test_a_slow_server_times_out_into_the_queue(
    user: User, answers: tuple[type[Answers], str]
) -> None:
    handler, dsn = answers
    handler.status, handler.delay = 200, 3.0
    out = report(user, _entry(user, 4203), "--dsn", dsn, "--timeout", "0.5")
    assert out.returncode == EX_TEMPFAIL
    assert "did not answer within 0.5 s" in one_line(out)
    assert len(json.loads(report(user, "--list-queued", "--json").stdout)) == 1


def test_a_malformed_dsn_is_one_clear_line(user: User) -> None:
    pid = _entry(user, 4204)
    for dsn in ("not-a-dsn", "https://sentry.example.org/1", "https://k@h/x"):
        out = report(user, pid, "--dsn", dsn)
        assert out.returncode == 2
        assert one_line(out).startswith("drkonqi-lite: malformed DSN: --dsn: ")
    assert json.loads(report(user, "--list-queued", "--json").stdout) == []


def test_no_server_configured_says_where_to_configure_one(user: User) -> None:
    out = report(user, _entry(user, 4205))
    assert out.returncode == 1
    assert "no report server configured" in one_line(out)


@pytest.fixture
def full_state(user: User) -> Iterator[Path]:
    """The user's $XDG_STATE_HOME on a small tmpfs that is full."""
    mount = user.home / "full-state"
    mount.mkdir()
    opts = f"size=256k,uid={user.uid},gid={user.uid},mode=0700"
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(mount)], check=False)
    need(done.returncode == 0, "cannot mount a tmpfs")
    try:
        subprocess.run(["dd", "if=/dev/zero", f"of={mount}/filler", "bs=4k"],
                       capture_output=True, check=False)  # fmt: skip
        user.env["XDG_STATE_HOME"] = str(mount)
        yield mount
    finally:
        user.env.pop("XDG_STATE_HOME", None)
        subprocess.run(["umount", str(mount)], check=False)


def test_a_full_disk_is_said_and_a_reachable_server_still_gets_it(
    bugsink: Bugsink, user: User, full_state: Path, answers: tuple[type[Answers], str]
) -> None:
    handler, dsn = answers
    handler.status = 503
    pid = _entry(user, 4206)
    out = report(user, pid, "--dsn", dsn)
    assert out.returncode == 1  # neither sent nor queued: said, not silently lost
    message = one_line(out)
    assert "not sent (HTTP 503" in message
    assert "No space left on device" in message
    sent = report(user, pid, "--dsn", bugsink.dsn)
    assert sent.returncode == 0, sent.stderr
    assert bugsink.event(sent.stdout.strip())["data"]["exception"]["values"][0]["type"]


def user_settings(user: User, lines: str) -> Path:
    """The user's settings.ini with `lines` in [App], owned by the user."""
    settings = user.home / ".config/drkonqi-lite/settings.ini"
    settings.parent.mkdir(parents=True, exist_ok=True)
    settings.write_text(f"[App]\n{lines}\n")
    subprocess.run(["chown", "-R", f"{user.uid}:{user.uid}", str(user.home / ".config")],
                   check=True)  # fmt: skip
    return settings


def test_dbus_report_crash_sends_and_the_crash_dict_says_reported(
    bugsink: Bugsink, user: User
) -> None:
    settings = user_settings(user, f"report_dsn = {bugsink.dsn}")
    app = user.start_app()
    try:
        user.wait_app()
        user.send_entry(live_entry(user.uid, comm="viadbus", pid=4300))
        user.wait_detected(4300)
        [crash] = json.loads(user.cli("list", "--json").stdout)
        assert crash["reported"] == ""
        out = user.dbus_call("ReportCrash", f"string:{crash['id']}")
        assert out.returncode == 0, out.stderr
        event_id = out.stdout.split('"')[1]
        stored = bugsink.event(event_id)["data"]
        assert stored["exception"]["values"][0]["type"] == "SIGSEGV"
        assert "ENVSECRET" not in json.dumps(stored)
        got = user.dbus_call("GetCrash", f"string:{crash['id']}").stdout
        assert f'string "reported"\n         variant             string "{event_id}"' in got
        assert json.loads(user.cli("list", "--json").stdout)[0]["reported"] == event_id
        # Unknown crash and no destination are D-Bus errors with names.
        unknown = user.dbus_call("ReportCrash", "string:cnothere")
        assert "Error.UnknownCrash" in unknown.stderr
        settings.write_text("[App]\n")
        user.send_entry(live_entry(user.uid, comm="nodsn", pid=4301))
        user.wait_detected(4301)
        other = [c for c in json.loads(user.cli("list", "--json").stdout) if c["pid"] == 4301]
        failed = user.dbus_call("ReportCrash", f"string:{other[0]['id']}")
        assert failed.returncode != 0
        assert "Error.NoDestination" in failed.stderr
        assert "no report server configured" in failed.stderr
    finally:
        user.stop(app)


def test_report_crash_by_activation_is_sent(bugsink: Bugsink, user: User) -> None:
    """No app runs: ReportCrash starts it by D-Bus activation and is answered by its first
    stage (drkonqi_lite/notifier.py), before the windows and their reporting code are loaded."""
    user_settings(user, f"report_dsn = {bugsink.dsn}")
    user.send_entry(live_entry(user.uid, comm="activated", pid=4302), wake=False)
    [crash] = json.loads(user.cli("list", "--json").stdout)
    user.install_activation_file()
    try:
        out = user.dbus_call("ReportCrash", f"string:{crash['id']}")
        assert out.returncode == 0, out.stderr + user.app_log()
        event_id = out.stdout.split('"')[1]
        assert bugsink.event(event_id)["data"]["exception"]["values"][0]["type"] == "SIGSEGV"
    finally:
        owner = user.run(["dbus-send", "--session", "--print-reply=literal",
                          "--dest=org.freedesktop.DBus", "/",
                          "org.freedesktop.DBus.GetConnectionUnixProcessID",
                          "string:org.drkonqi_lite.CrashNotifier"])  # fmt: skip
        if owner.returncode == 0:
            subprocess.run(["kill", owner.stdout.split()[-1]], check=False)


def test_always_for_every_program_reports_a_new_crash_without_asking(
    bugsink: Bugsink, user: User
) -> None:
    user_settings(user, f"report_dsn = {bugsink.dsn}\nreport_always = yes")
    app = user.start_app()
    try:
        user.wait_app()
        user.send_entry(live_entry(user.uid, comm="automatic", pid=4400))
        wait_for(lambda: [c["reported"] for c in json.loads(user.cli("list", "--json").stdout)
                          if c["reported"]], 20, "the crash reported automatically")  # fmt: skip
    finally:
        user.stop(app)
    [crash] = json.loads(user.cli("list", "--json").stdout)
    assert crash["reported"]
    stored = bugsink.event(crash["reported"])["data"]
    assert stored["tags"]["program"] == "automatic"
    assert "CMDSECRET" not in json.dumps(stored)  # automatic reports never carry the cmdline
    assert "ENVSECRET" not in json.dumps(stored)
