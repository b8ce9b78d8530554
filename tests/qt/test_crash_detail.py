"""The crash detail window (pytest-qt, offscreen): header, tabs, secrets withheld everywhere
until revealed (SECURITY.md 9), hostile text shown literally (SECURITY.md 5), actions that say
why they are disabled, restart only through a .desktop id, delete only the user's own core."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QFontMetrics, QGuiApplication
from PySide6.QtWidgets import QLabel, QLineEdit, QPlainTextEdit, QTableWidget, QWidget
from pytestqt.qtbot import QtBot

from drkonqi_lite.adapters import stored_core
from drkonqi_lite.domain.announcement import Program
from drkonqi_lite.domain.crash import Crash
from drkonqi_lite.domain.kcrash import KCrashInfo
from drkonqi_lite.domain.plain_text import BREAK
from drkonqi_lite.domain.trust import TrustPolicy
from drkonqi_lite.qt.crash_detail_window import CrashDetailWindow
from drkonqi_lite.qt.crash_services import CrashServices
from tests import entries

SECRETS = (entries.SECRET, entries.ARG_SECRET)
R = TypeVar("R")


def record(calls: list[Any], call: object, result: R) -> R:
    calls.append(call)
    return result


@pytest.fixture
def services() -> CrashServices:
    return CrashServices(
        TrustPolicy.for_user(os.getuid(), frozenset()),
        process_log=lambda c: [f"07:00:01 kwrite[{c.pid}]: loading notes.txt"],
        restart_blocker=lambda _d, _e: "",
        bug_tracker=lambda d: "https://bugs.kde.org/enter_bug.cgi?product=kwrite" if d else "",
        delete_blocker=lambda _p, _f: "The core belongs to the system (it is owned by root).",
        debugger_blocker=lambda: "",
        user_name=lambda uid: "alice" if uid == 1000 else str(uid),
        now_us=lambda: entries.NOW_US,
    )


@pytest.fixture
def make(qtbot: QtBot, services: CrashServices) -> Callable[..., CrashDetailWindow]:
    def build(crash: Crash | None = None, program: Program | None = None,
              svc: CrashServices | None = None) -> CrashDetailWindow:  # fmt: skip
        crash = crash or entries.crash()
        program = program or Program("KWrite", "kwrite", "org.kde.kwrite")
        window = CrashDetailWindow(crash, program, svc or services)
        qtbot.addWidget(window)
        return window

    return build


def all_text(root: QWidget) -> str:
    """Every text any widget of the window shows or holds (labels, editors, tables, title)."""
    parts = [root.windowTitle()]
    for label in root.findChildren(QLabel):
        parts.append(label.text())
    for edit in root.findChildren(QPlainTextEdit):
        parts.append(edit.toPlainText())
    for line in root.findChildren(QLineEdit):
        parts.append(line.text())
    for table in root.findChildren(QTableWidget):
        for r in range(table.rowCount()):
            for c in range(table.columnCount()):
                item = table.item(r, c)
                parts.append(item.text() if item else "")
    return "\n".join(parts)


@pytest.fixture
def clipboard() -> Iterator[None]:
    QGuiApplication.clipboard().clear()
    yield
    QGuiApplication.clipboard().clear()


def test_header_says_what_crashed_when_and_who(make: Callable[..., CrashDetailWindow]) -> None:
    w = make()
    assert w.title.text() == "KWrite crashed with Aborted (SIGABRT)"
    assert w.facts["When"].text().startswith("5 minutes ago (")
    assert w.facts["Process"].text().replace(BREAK, "") == "PID 4242 · /usr/bin/kwrite"
    assert w.facts["User"].text() == "alice (uid 1000)"
    assert w.facts["Package"].text() == "kwrite 4:22.12.3-1"
    assert [w.tabs.tabText(i) for i in range(w.tabs.count())] == [
        "&Backtrace", "&Details", "&Process", "&Environment", "&Log"
    ]  # fmt: skip


def test_crashing_frame_highlighted_past_abort(make: Callable[..., CrashDetailWindow]) -> None:
    w = make(entries.crash(func="save_document"))
    assert "save_document (kwrite + 0x11a9)" in w.backtrace.highlighted_line()
    metrics = QFontMetrics(w.backtrace.text.font())
    assert metrics.horizontalAdvance("iiii") == metrics.horizontalAdvance("WWWW")  # monospace


def test_secrets_absent_everywhere_until_revealed(
    make: Callable[..., CrashDetailWindow], tmp_path: Path, clipboard: None
) -> None:
    w = make()
    w.show()
    for i in range(w.tabs.count()):  # visit every tab (the Log tab loads on first show)
        w.tabs.setCurrentIndex(i)
    w.details.table.selectAll()
    w.details.copy_selected()
    copied_fields = QGuiApplication.clipboard().text()
    assert "COREDUMP_ENVIRON=(hidden" in copied_fields
    w.copy_report()
    copied = QGuiApplication.clipboard().text()
    w.save_report(tmp_path / "r.txt")
    w.save_report(tmp_path / "r.json")
    saved_json = json.loads((tmp_path / "r.json").read_text())
    for secret in SECRETS:
        assert secret not in all_text(w)
        assert secret not in copied_fields
        assert secret not in copied
        assert secret not in (tmp_path / "r.txt").read_text()
        assert secret not in (tmp_path / "r.json").read_text()
    assert saved_json["pid"] == 4242
    assert saved_json["backtrace"].startswith("Stack trace")
    assert "KWrite crashed with Aborted (SIGABRT)" in copied
    # Reveal: shown in the window, still withheld from copies and saved reports.
    w.environment.reveal_button.click()
    assert w.environment.revealed
    assert entries.SECRET in w.environment.text.toPlainText()
    assert entries.ARG_SECRET in w.environment.text.toPlainText()
    w.copy_report()
    w.save_report(tmp_path / "after.json")
    for secret in SECRETS:
        assert secret not in QGuiApplication.clipboard().text()
        assert secret not in (tmp_path / "after.json").read_text()


def test_hostile_comm_and_exe_render_literally(make: Callable[..., CrashDetailWindow]) -> None:
    hostile = entries.crash(comm=entries.HOSTILE_COMM, exe=entries.HOSTILE_EXE, signo=11)
    w = make(hostile, Program(hostile.comm))
    assert w.title.text().replace(BREAK, "") == (
        "<b>evil</b>\\u202egnp.exe crashed with Segmentation fault (SIGSEGV)"
    )
    assert w.facts["Process"].text().replace(BREAK, "") == (
        "PID 4242 · /tmp/<i>x</i>/\\u202eevil\\nline2\\x1b[31m"
    )
    assert "\n" not in w.windowTitle()
    assert "\u202e" not in w.windowTitle()
    for label in w.findChildren(QLabel):
        assert label.textFormat().name in {"PlainText"} or not label.text()
    for control in ("\u202e", "\x1b"):
        assert control not in all_text(w)


def test_process_tab_sections(make: Callable[..., CrashDetailWindow]) -> None:
    w = make()
    w.process.sections.setCurrentRow(1)
    assert "/usr/lib/x86_64-linux-gnu/libc.so.6" in w.process.text.toPlainText()
    w.process.sections.setCurrentRow(4)  # Mounts: not in this entry
    assert w.process.text.toPlainText() == "Mounts: not recorded."


def test_log_tab_loads_when_shown(make: Callable[..., CrashDetailWindow]) -> None:
    w = make()
    assert not w.log.loaded
    w.tabs.setCurrentWidget(w.log)
    assert "kwrite[4242]: loading notes.txt" in w.log.text.toPlainText()


def test_restricted_core_explained_and_actions_say_why(
    make: Callable[..., CrashDetailWindow],
) -> None:
    crash = dataclasses.replace(
        entries.crash(core_state="inaccessible"), restricted=True, restricted_reason="set-uid"
    )
    w = make(crash)
    assert w.notice is not None
    assert "restricted (set-uid)" in w.notice.text()
    assert "still work" in w.notice.text()
    assert not w.backtrace.generate_button.isEnabled()
    assert "administrator" in w.backtrace.generate_button.toolTip()
    assert not w.debugger_button.isEnabled()
    assert w.debugger_button.toolTip()
    assert not w.delete_button.isEnabled()
    assert "owned by root" in w.delete_button.toolTip()
    assert w.copy_button.isEnabled()


def test_restart_only_through_the_desktop_id(
    make: Callable[..., CrashDetailWindow], services: CrashServices
) -> None:
    calls: list[tuple[str, str]] = []
    svc = dataclasses.replace(services, restart=lambda d, e: record(calls, (d, e), 777))
    w = make(svc=svc)
    w.restart_button.click()
    assert calls == [("org.kde.kwrite", "/usr/bin/kwrite")]  # never the entry's command line
    assert "started again (PID 777)" in w.status.text()
    unknown = make(program=Program("kwrite"), svc=svc)
    assert not unknown.restart_button.isEnabled()
    assert "never restarted from the crash's command line" in unknown.restart_button.toolTip()
    running = make(svc=dataclasses.replace(svc, restart_blocker=lambda _d, _e: "already running"))
    assert not running.restart_button.isEnabled()


def test_report_bug_opens_the_tracker_with_the_report_on_the_clipboard(
    make: Callable[..., CrashDetailWindow], services: CrashServices, clipboard: None
) -> None:
    opened: list[str] = []
    w = make(svc=dataclasses.replace(services, open_url=lambda u: record(opened, u, True)))
    w.bug_button.click()
    assert opened == ["https://bugs.kde.org/enter_bug.cgi?product=kwrite"]
    assert "KWrite crashed" in QGuiApplication.clipboard().text()
    nobody = make(program=Program("kwrite"))
    assert not nobody.bug_button.isEnabled()
    assert "No bug tracker" in nobody.bug_button.toolTip()


def test_delete_own_core_only(make: Callable[..., CrashDetailWindow], services: CrashServices,
                              tmp_path: Path) -> None:  # fmt: skip
    storage = tmp_path / "coredump"
    storage.mkdir()
    policy = TrustPolicy(os.getuid(), frozenset({0}), (str(storage),))
    own = storage / "core.kwrite.1000.b.4242.1.zst"
    own.write_bytes(b"core")
    svc = dataclasses.replace(
        services,
        policy=policy,
        delete_blocker=stored_core.deletable,
        delete_core=stored_core.delete_core,
    )
    w = make(entries.crash(COREDUMP_FILENAME=str(own)), svc=svc)
    assert w.delete_button.isEnabled()
    w.delete_core(confirm=False)
    assert not own.exists()
    assert not w.delete_button.isEnabled()
    assert not w.backtrace.generate_button.isEnabled()
    # A core someone else owns: disabled, with the reason.
    other = storage / "core.kwrite.1000.b.4243.1.zst"
    other.write_bytes(b"core")
    os.chown(other, 4242, 4242) if os.geteuid() == 0 else pytest.skip("needs root to chown")
    w2 = make(entries.crash(pid=4243, COREDUMP_FILENAME=str(other)), svc=svc)
    assert not w2.delete_button.isEnabled()
    assert w2.delete_button.toolTip() == "The core belongs to another user."
    assert other.exists()


def test_fits_1280x800_even_with_huge_names(make: Callable[..., CrashDetailWindow]) -> None:
    crash = entries.crash(comm="c" * 300, exe="/" + "e" * 4000)
    w = make(crash, Program("P" * 300))
    hint = w.minimumSizeHint()
    assert hint.width() <= 1280, hint
    assert hint.height() <= 760, hint


def test_thread_cause_and_kcrash_facts_in_the_header(
    make: Callable[..., CrashDetailWindow],
) -> None:
    info = KCrashInfo(display_name="KWrite", version="22.12.3", bug_address="<a href=x>bugs</a>",
                      product="kwrite", app_name="kwrite")  # fmt: skip
    crash = dataclasses.replace(
        entries.crash(signo=11, COREDUMP_TID="4243", COREDUMP_THREAD_NAME="<b>io</b>\u202e",
                 COREDUMP_CODE="2"),
        kcrash=info,
    )  # fmt: skip
    w = make(crash)
    assert w.facts["Thread"].text().replace(BREAK, "") == "TID 4243 (<b>io</b>\\u202e)"
    assert w.facts["Cause"].text() == "no permission for the mapped address (SEGV_ACCERR)"
    assert w.facts["Version"].text() == "22.12.3"
    assert w.facts["Bugs to"].text().replace(BREAK, "") == "<a href=x>bugs</a>"
    assert w.facts["Bugs to"].textFormat() == Qt.TextFormat.PlainText
    plain = make(entries.crash())
    assert not {"Thread", "Cause", "Version", "Bugs to"} & set(plain.facts), "only when known"
