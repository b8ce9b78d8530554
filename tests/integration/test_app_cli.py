"""`drkonqi-lite list/show/backtrace/watch` against the real journal, as an unprivileged user."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from tests.entries import live_entry
from tests.integration import desktop as dk
from tests.integration.desktop import Desktop, User

app_desktop = dk.app_desktop


@pytest.fixture
def user_with_crashes(app_desktop: Desktop) -> User:
    user = app_desktop.user(with_display=False)
    user.send_entry(live_entry(user.uid, comm="older", pid=4001), wake=False)
    time.sleep(0.01)
    user.send_entry(live_entry(user.uid, comm="newer", pid=4002, signo=6), wake=False)
    time.sleep(0.5)
    return user


def test_list_json_and_text(user_with_crashes: User) -> None:
    user = user_with_crashes
    out = user.cli("list", "--json")
    assert out.returncode == 0, out.stderr
    crashes = json.loads(out.stdout)
    assert [c["comm"] for c in crashes] == ["newer", "older"]  # newest first
    assert set(crashes[0]) == {
        "id", "pid", "uid", "signal", "signal_name", "comm", "exe", "timestamp", "hostname",
        "unit", "package", "core_state", "seen", "reported",
    }  # fmt: skip
    text = user.cli("list").stdout.splitlines()
    assert len(text) == 2
    assert "newer" in text[0]
    assert "Aborted" in text[0]


def test_list_since(user_with_crashes: User) -> None:
    user = user_with_crashes
    assert len(json.loads(user.cli("list", "--json", "--since", "1h").stdout)) == 2
    future = f"@{int(time.time()) + 3600}"
    assert json.loads(user.cli("list", "--json", "--since", future).stdout) == []
    bad = user.cli("list", "--since", "the day after tomorrow")
    assert bad.returncode == 2
    assert bad.stderr.count("\n") == 1
    assert bad.stderr.startswith("drkonqi-lite: --since")


def test_show_by_id_and_pid_backtrace(user_with_crashes: User) -> None:
    user = user_with_crashes
    crash_id = json.loads(user.cli("list", "--json").stdout)[0]["id"]
    by_id = json.loads(user.cli("show", crash_id, "--json").stdout)
    by_pid = json.loads(user.cli("show", "4002", "--json").stdout)
    assert by_id == by_pid
    assert by_id["signal_name"] == "SIGABRT"
    assert "crash_here" in by_id["backtrace"]
    human = user.cli("show", crash_id)
    assert "reason: Aborted" in human.stdout
    bt = user.cli("backtrace", crash_id)
    assert bt.stdout.startswith("Stack trace of thread 4002:")
    # These entries have no stored core: --full (gdb on the core) says so in one line.
    full = user.cli("backtrace", crash_id, "--full")
    assert full.returncode != 0
    assert f"no full backtrace for crash {crash_id}" in full.stderr
    assert len(full.stderr.strip().splitlines()) == 1


def test_errors_are_one_line(user_with_crashes: User) -> None:
    user = user_with_crashes
    for args in (("show", "cdeadbeef"), ("show", "999999"), ("backtrace", "nope")):
        out = user.cli(*args)
        assert out.returncode == 1, args
        assert out.stderr.count("\n") == 1, out.stderr
        assert "Traceback" not in out.stderr
    usage = user.cli("frobnicate")
    assert usage.returncode == 2


def test_watch_prints_one_line_per_new_crash(app_desktop: Desktop) -> None:
    user = app_desktop.user(with_display=False)
    watch = subprocess.Popen(user.argv([dk.PYTHON, "-m", "drkonqi_lite", "watch", "--json"]),
                             stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        time.sleep(1.0)
        user.send_entry(live_entry(user.uid, comm="watched"), wake=False)
        assert watch.stdout is not None
        line = json.loads(watch.stdout.readline())
        assert line["comm"] == "watched"
        assert "ENVSECRET" not in json.dumps(line)
    finally:
        watch.terminate()
        watch.wait(10)
    assert watch.returncode == 0


def test_tray_app_refuses_root(root: None) -> None:
    out = subprocess.run([sys.executable, "-m", "drkonqi_lite"], capture_output=True, text=True,
                         timeout=30, check=False, cwd=dk.REPO)  # fmt: skip
    assert out.returncode == 1
    assert "refusing to run the tray app as root" in out.stderr
