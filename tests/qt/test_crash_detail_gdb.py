"""Full backtrace from the detail window with a stand-in gdb (pytest-qt, offscreen): output shown
with secrets masked, one gdb at a time, Cancel and the timeout kill gdb's whole process group
(SECURITY.md 7), the core decompressed into a private 0700 directory that is removed afterwards.
The real gdb on a real core is tests/integration/test_gdb_full_backtrace.py."""

from __future__ import annotations

import dataclasses
import os
import stat
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest
import zstandard
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from drkonqi_lite.adapters.gdb import GdbResult, Outcome, batch_argv, gdb_environment
from drkonqi_lite.adapters.state_store import StateStore
from drkonqi_lite.domain.announcement import Program
from drkonqi_lite.domain.trust import TrustPolicy
from drkonqi_lite.qt.crash_detail_window import CrashDetailWindow
from drkonqi_lite.qt.crash_services import CrashServices
from tests import entries
from tests.integration.processes import group_alive

#: A gdb stand-in: records its argv, the core's directory mode and its process group, starts a
#: grandchild, prints a trace that quotes the planted secret, then waits for $FAKE_GDB_SLEEP s.
FAKE_GDB = """#!/bin/sh
out="$FAKE_GDB_DIR"
core=""
while [ $# -gt 0 ]; do [ "$1" = "-c" ] && core="$2"; shift; done
stat -c '%a' "$(dirname "$core")" > "$out/dirmode"
echo "$(dirname "$core")" > "$out/dir"
ps -o pgid= -p $$ | tr -d ' ' > "$out/pgid"
sleep 300 &
echo "#0  0x00007f raise (sig=6) at ../sysdeps/unix/sysv/linux/raise.c:50"
echo "#3  main (argc=2, argv=0x7ffe) token=\\"$FAKE_SECRET\\""
sleep "$FAKE_GDB_SLEEP"
echo done
"""


@pytest.fixture
def gdb_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    fake = tmp_path / "bin" / "gdb"
    fake.parent.mkdir()
    fake.write_text(FAKE_GDB)
    fake.chmod(0o755)
    out = tmp_path / "out"
    out.mkdir()
    monkeypatch.setenv("FAKE_GDB_DIR", str(out))
    monkeypatch.setenv("FAKE_SECRET", entries.SECRET)
    monkeypatch.setenv("FAKE_GDB_SLEEP", "0")
    return fake


@pytest.fixture
def make(qtbot: QtBot, tmp_path: Path, gdb_env: Path) -> Callable[..., CrashDetailWindow]:
    storage = tmp_path / "coredump"
    storage.mkdir()
    core = storage / f"core.kwrite.1000.{entries.BOOT}.4242.1.zst"
    core.write_bytes(zstandard.ZstdCompressor().compress(b"\x7fELF" + b"\0" * 4096))
    services = CrashServices(
        TrustPolicy(os.getuid(), frozenset({0}), (str(storage),)),
        gdb_path=str(gdb_env),
        debugger_blocker=lambda: "",
        bug_tracker=lambda _d: "",
        restart_blocker=lambda _d, _e: "",
        now_us=lambda: entries.NOW_US,
    )

    def build(timeout_s: float = 30.0, services_: CrashServices | None = None) -> CrashDetailWindow:
        svc = services_ or dataclasses.replace(services, gdb_timeout_s=timeout_s)
        w = CrashDetailWindow(entries.crash(COREDUMP_FILENAME=str(core)), Program("KWrite"), svc)
        qtbot.addWidget(w)
        return w

    return build




def run(
    qtbot: QtBot, w: CrashDetailWindow, action: Callable[[], object] | None = None
) -> GdbResult:
    with qtbot.waitSignal(w.backtrace.finished, timeout=20_000) as blocker:
        assert w.backtrace.generate()
        if action is not None:
            action()
    result = blocker.args[0]
    assert isinstance(result, GdbResult)
    return result


def test_full_backtrace_shown_masked_and_core_dir_private_and_removed(
    qtbot: QtBot, make: Callable[..., CrashDetailWindow], tmp_path: Path
) -> None:
    w = make()
    result = run(qtbot, w)
    assert result.outcome is Outcome.DONE, result.message
    out = tmp_path / "out"
    assert (out / "dirmode").read_text().strip() == "700"
    assert not Path((out / "dir").read_text().strip()).exists()  # removed afterwards
    shown = w.backtrace.text.toPlainText()
    assert "main (argc=2, argv=0x7ffe)" in shown
    assert entries.SECRET not in shown  # an environment value quoted by gdb is masked...
    assert entries.SECRET not in w.report()
    assert entries.SECRET not in w.report("json")
    w.reveal()
    assert entries.SECRET in w.backtrace.text.toPlainText()  # ...until the user reveals
    assert "Full backtrace (gdb)" in w.report()
    w.backtrace.view_choice.setCurrentIndex(1)  # back to the stack trace from the entry
    assert w.backtrace.text.toPlainText().startswith("Stack trace of thread 4242:")
    assert "main (kwrite + 0x11a9)" in w.backtrace.highlighted_line()
    w.backtrace.view_choice.setCurrentIndex(0)
    assert entries.SECRET in w.backtrace.text.toPlainText()
    assert group_alive(int((out / "pgid").read_text())) == []  # the grandchild is gone too


def test_cancel_kills_gdb_and_its_children(
    qtbot: QtBot, make: Callable[..., CrashDetailWindow], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setenv("FAKE_GDB_SLEEP", "300")
    w = make()
    pgid_file = tmp_path / "out" / "pgid"

    def cancel_when_running() -> None:
        qtbot.waitUntil(lambda: pgid_file.exists() and pgid_file.read_text().strip() != "")
        assert w.backtrace.cancel_button.isVisible() or not w.isVisible()
        w.backtrace.cancel()

    result = run(qtbot, w, cancel_when_running)
    assert result.outcome is Outcome.CANCELLED
    assert result.seconds < 20
    assert group_alive(int(pgid_file.read_text())) == []
    assert w.backtrace.generate_button.isEnabled()


def test_timeout_kills_gdb_and_its_children(
    qtbot: QtBot, make: Callable[..., CrashDetailWindow], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setenv("FAKE_GDB_SLEEP", "300")
    w = make(timeout_s=1.0)
    result = run(qtbot, w)
    assert result.outcome is Outcome.TIMED_OUT
    assert "longer than 1 s" in w.backtrace.status.text()
    assert group_alive(int((tmp_path / "out" / "pgid").read_text())) == []


def test_one_gdb_at_a_time(
    qtbot: QtBot, make: Callable[..., CrashDetailWindow], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setenv("FAKE_GDB_SLEEP", "300")
    first = make()
    second = make(services_=first._services)  # the factory shares one CrashServices
    pgid_file = tmp_path / "out" / "pgid"

    def try_second() -> None:
        qtbot.waitUntil(pgid_file.exists)
        assert not second.backtrace.generate()
        assert "one gdb at a time" in second.backtrace.status.text()
        first.close()  # closing the window cancels its gdb

    result = run(qtbot, first, try_second)
    assert result.outcome is Outcome.CANCELLED
    assert not first._services.runner.busy


def test_core_outside_storage_is_never_opened(
    qtbot: QtBot, make: Callable[..., CrashDetailWindow], tmp_path: Path
) -> None:
    w = make()
    w.crash = dataclasses.replace(w.crash, core_filename="/etc/shadow")
    w.backtrace._crash = w.crash
    result = run(qtbot, w)
    assert result.outcome is Outcome.FAILED
    assert "outside the crash storage" in result.message
    assert not (tmp_path / "out" / "dir").exists()  # gdb never ran


def test_debuginfod_only_when_opted_in(make: Callable[..., CrashDetailWindow]) -> None:
    w = make()
    assert not w.backtrace.debuginfod.isChecked()
    assert not w._services.gdb_options().debuginfod
    argv = batch_argv("gdb", None, Path("/c"), debuginfod=False, python=None)
    assert "set debuginfod enabled off" in argv
    os.environ["DEBUGINFOD_URLS"] = "https://debuginfod.debian.net"
    try:
        assert "DEBUGINFOD_URLS" not in gdb_environment(debuginfod=False)
        w.backtrace.debuginfod.setChecked(True)
        assert w._services.gdb_options().debuginfod
        assert gdb_environment(debuginfod=True)["DEBUGINFOD_URLS"]
    finally:
        del os.environ["DEBUGINFOD_URLS"]
    assert "set debuginfod enabled on" in batch_argv("gdb", None, Path("/c"), debuginfod=True,
                                                     python=None)  # fmt: skip
    assert stat.S_IMODE(0o700) == 0o700


def test_closing_the_window_mid_run_kills_gdb_and_frees_the_runner(
    qtbot: QtBot, make: Callable[..., CrashDetailWindow], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setenv("FAKE_GDB_SLEEP", "300")
    w = make()
    runner = w._services.runner
    w.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)  # as the window factory does
    pgid_file = tmp_path / "out" / "pgid"
    assert w.backtrace.generate()
    qtbot.waitUntil(lambda: pgid_file.exists() and pgid_file.read_text().strip() != "")
    with qtbot.waitSignal(w.destroyed):
        w.close()
    qtbot.waitUntil(lambda: not runner.busy, timeout=20_000)
    assert group_alive(int(pgid_file.read_text())) == []
    assert not Path((tmp_path / "out" / "dir").read_text().strip()).exists()


def test_debuginfod_opt_in_is_saved_in_settings_and_honoured_next_time(
    make: Callable[..., CrashDetailWindow], tmp_path: Path
) -> None:
    """Issue 5: debuginfod only when the user opted in, as a setting that lasts."""
    store = StateStore(tmp_path / "state", tmp_path / "config")
    (tmp_path / "config").mkdir()
    (tmp_path / "config/settings.ini").write_text("[App]\ntray_always = yes\n")
    assert store.settings().debuginfod is False
    base = make()._services
    services = dataclasses.replace(
        base,
        debuginfod=store.settings().debuginfod,
        remember_debuginfod=lambda on: store.save_setting("debuginfod", "yes" if on else "no"),
    )
    w = make(services_=services)
    assert not w.backtrace.debuginfod.isChecked()
    w.backtrace.debuginfod.setChecked(True)
    assert store.settings().debuginfod is True, "the tick is saved"
    assert store.settings().tray_always is True, "other settings are kept"
    again = make(services_=dataclasses.replace(base, debuginfod=store.settings().debuginfod))
    assert again.backtrace.debuginfod.isChecked(), "the next window starts opted in"
    w.backtrace.debuginfod.setChecked(False)
    assert store.settings().debuginfod is False
