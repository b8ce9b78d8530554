"""The crash window's "Send report…" (pytest-qt, offscreen): no server configured says so and
leaves the bug tracker; the dialog shows exactly what is sent, and nothing else is sent."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QMenu
from pytestqt.qtbot import QtBot

from drkonqi_lite.adapters.crash_reporting import AppReporting
from drkonqi_lite.adapters.report_queue import ReportQueue
from drkonqi_lite.adapters.reporter import Reporter
from drkonqi_lite.adapters.sentry_transport import Delivery, Outcome
from drkonqi_lite.domain.announcement import Program
from drkonqi_lite.domain.dsn import Dsn
from drkonqi_lite.domain.report_choices import AutoReport
from drkonqi_lite.domain.trust import TrustPolicy
from drkonqi_lite.qt.crash_detail_window import CrashDetailWindow
from drkonqi_lite.qt.crash_list_model import Column
from drkonqi_lite.qt.crash_list_window import CrashListWindow
from drkonqi_lite.qt.crash_services import CrashServices
from drkonqi_lite.qt.tray import CrashTray
from tests import entries

REPO = Path(__file__).resolve().parents[2]
DSN = "https://pubkey@errors.example.org/7"


class Server:
    def __init__(self, answer: Delivery) -> None:
        self.answer = answer
        self.bodies: list[bytes] = []

    def __call__(self, dsn: Dsn, body: bytes) -> Delivery:
        self.bodies.append(body)
        return self.answer

    def events(self) -> list[dict[str, object]]:
        return [json.loads(b.split(b"\n", 2)[2]) for b in self.bodies]


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("DRKONQI_LITE_PREFIX", str(tmp_path / "root"))  # no admin file
    return tmp_path


def configure(home: Path, dsn: str = DSN) -> None:
    settings = home / "config/drkonqi-lite/settings.ini"
    settings.parent.mkdir(parents=True)
    settings.write_text(f"[App]\nreport_dsn = {dsn}\n")


#: What the server said the event's page is (sentry_transport.event_link; Bugsink's scheme).
LINK = "https://errors.example.org/issues/event/{event_id}/"


@pytest.fixture
def opened() -> list[str]:
    """The URLs the window asked the desktop to open."""
    return []


@pytest.fixture
def window(qtbot: QtBot, home: Path, opened: list[str]) -> Callable[..., CrashDetailWindow]:
    def build(server: Server, link: str = "") -> CrashDetailWindow:
        queue = ReportQueue(home / "state/drkonqi-lite/reports")
        reporter = Reporter(queue, server, find_link=lambda _d, eid: link.format(event_id=eid))
        services = CrashServices(
            TrustPolicy.for_user(os.getuid(), frozenset()),
            bug_tracker=lambda d: "https://bugs.kde.org/enter_bug.cgi?product=kwrite",
            reporting=AppReporting(reporter),
            open_url=lambda url: not opened.append(url),  # type: ignore[func-returns-value]
        )
        kwrite = Program("KWrite", "kwrite", "org.kde.kwrite")
        w = CrashDetailWindow(entries.crash(), kwrite, services)
        qtbot.addWidget(w)
        return w

    return build


def test_no_server_configured_says_so_and_keeps_the_bug_tracker(
    window: Callable[[Server], CrashDetailWindow],
) -> None:
    w = window(Server(Delivery(Outcome.SENT, "HTTP 200")))
    assert not w.send_button.isEnabled()
    assert "No report server configured" in w.send_button.toolTip()
    assert "bug tracker" in w.send_button.toolTip()
    assert w.bug_button.isEnabled()


def test_the_dialog_shows_exactly_what_is_sent(
    qtbot: QtBot, home: Path, window: Callable[..., CrashDetailWindow], opened: list[str]
) -> None:
    configure(home)
    server = Server(Delivery(Outcome.SENT, "HTTP 200"))
    w = window(server, LINK)
    w.show()
    assert not w.reported.isVisible(), "not reported yet"
    assert w.send_button.isEnabled(), w.send_button.toolTip()
    w.send_report_dialog()
    dialog = w.report_dialog
    assert dialog is not None
    assert dialog.isVisible()
    preview = dialog.json_view.toPlainText()
    assert '"type": "SIGABRT"' in preview
    assert entries.SECRET not in preview
    assert entries.ARG_SECRET not in preview
    dialog.comment.setPlainText("I pressed Save")
    dialog.cmdline.setChecked(True)
    preview = dialog.json_view.toPlainText()
    assert "I pressed Save" in preview
    assert entries.ARG_SECRET in preview  # ticked: shown, so it is sent
    assert entries.SECRET not in preview  # the environment never
    if os.environ.get("DKL_SCREENSHOTS"):
        dialog.grab().save(str(REPO / "docs/screenshots/report-dialog.png"))
    dialog.accept()
    qtbot.waitUntil(lambda: "event id" in w.status.text(), timeout=5000)
    assert w.status.text().startswith("Report sent to https://errors.example.org/")
    [sent] = server.events()
    assert sent == json.loads(preview)  # the send is the preview, byte for byte of JSON
    assert not w.send_button.isEnabled()
    assert "Already reported" in w.send_button.toolTip()
    # The event id, and the button to its page on the server, which the server confirmed.
    event_id = sent["event_id"]
    assert w.reported.isVisible()
    assert w.reported.label.text() == f"Reported: event id {event_id}"
    assert w.reported.open_button.isVisible()
    w.reported.open_button.click()
    assert opened == [LINK.format(event_id=event_id)]
    if os.environ.get("DKL_SCREENSHOTS"):
        w.grab().save(str(REPO / "docs/screenshots/report-sent.png"))


def test_a_server_that_is_away_queues_and_says_so(
    qtbot: QtBot, home: Path, window: Callable[[Server], CrashDetailWindow]
) -> None:
    configure(home)
    w = window(Server(Delivery(Outcome.RETRY, "cannot reach https://errors.example.org/")))
    w.send_report_dialog()
    assert w.report_dialog is not None
    w.report_dialog.accept()
    qtbot.waitUntil(lambda: "queued" in w.status.text(), timeout=5000)
    assert "cannot reach" in w.status.text()
    assert w.send_button.isEnabled()  # not reported yet: it can be tried again
    assert not w.reported.isVisible()
    assert len(ReportQueue(home / "state/drkonqi-lite/reports").reports()) == 1


def test_cancel_sends_nothing(home: Path, window: Callable[[Server], CrashDetailWindow]) -> None:
    configure(home)
    server = Server(Delivery(Outcome.SENT, "HTTP 200"))
    w = window(server)
    w.send_report_dialog()
    assert w.report_dialog is not None
    w.report_dialog.reject()
    assert server.bodies == []
    assert ReportQueue(home / "state/drkonqi-lite/reports").reports() == []


def test_the_crash_list_shows_the_event_id_of_reported_crashes(qtbot: QtBot) -> None:
    crashes = [
        entries.crash(pid=100, comm="one", exe="/usr/bin/one"),
        entries.crash(pid=200, comm="two", exe="/usr/bin/two"),
    ]
    sent = {crashes[0].id: "d69d7dd1effe45e8b92c994f2ae8fe59"}
    w = CrashListWindow(lambda c: Program(c.comm, "", ""), lambda _id: None,
                        reported=lambda crash_id: sent.get(crash_id, ""))  # fmt: skip
    qtbot.addWidget(w)
    w.set_crashes(crashes)
    assert w.model.headerData(Column.REPORTED, Qt.Orientation.Horizontal) == "Reported"
    shown = {
        w.model.index(r, Column.PROGRAM).data(): w.model.index(r, Column.REPORTED).data()
        for r in range(w.model.rowCount())
    }
    assert shown == {"one": "d69d7dd1effe45e8b92c994f2ae8fe59", "two": ""}


def test_always_choices_are_remembered_and_the_tray_can_stop_them(
    qtbot: QtBot, home: Path, window: Callable[[Server], CrashDetailWindow]
) -> None:
    configure(home)
    w = window(Server(Delivery(Outcome.SENT, "HTTP 200")))
    remembered: list[AutoReport] = []
    w._services.remember_auto_report = remembered.append
    w.send_report_dialog()
    assert w.report_dialog is not None
    w.report_dialog.always_program.setChecked(True)
    w.report_dialog.accept()
    qtbot.waitUntil(lambda: "event id" in w.status.text(), timeout=5000)
    assert remembered[-1].programs == {"/usr/bin/kwrite"}
    assert not remembered[-1].every_program
    assert remembered[-1].applies(entries.crash(pid=999))
    assert not remembered[-1].applies(entries.crash(exe="/usr/bin/kate"))
    # Undo: the tray menu lists it; its action asks the app to stop.
    tray = CrashTray(QIcon(), always_visible=True)
    tray.update_state(0, [], [], [("/usr/bin/kwrite", "kwrite"), ("", "every program")])
    menu = next(a.menu() for a in tray._menu.actions() if a.text() == "Automatic crash reports")
    assert isinstance(menu, QMenu)
    actions = {a.text(): a for a in menu.actions()}
    with qtbot.waitSignal(tray.stop_auto_report) as stopped:
        actions["Stop sending reports of kwrite"].trigger()
    assert stopped.args == ["/usr/bin/kwrite"]
    assert "Stop sending reports of every program" in actions
