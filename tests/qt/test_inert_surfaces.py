"""One escaper, every surface (SECURITY.md 5): a crashed program's name reaches the terminal,
the notification, the tray menu, the crash list, the crash window and the log as inert text,
and reaches D-Bus clients unchanged (data, not display: rendering is the client's business).

Each hidden character below is one that can move a terminal's cursor, forge a log line, or
reorder or hide what the user reads; each must arrive as a visible escape.
"""

from __future__ import annotations

import logging
import os
import re

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QIcon
from pytestqt.qtbot import QtBot

from drkonqi_lite.adapters.notification import log as notification_log
from drkonqi_lite.cli import _line as cli_line
from drkonqi_lite.domain.announcement import Announcer, Program, catch_up
from drkonqi_lite.domain.crash import Crash
from drkonqi_lite.domain.plain_text import BREAK, multi_line, one_line
from drkonqi_lite.domain.summary import summary
from drkonqi_lite.qt.crash_detail_window import CrashDetailWindow
from drkonqi_lite.qt.crash_list_model import CrashListModel
from drkonqi_lite.qt.crash_services import CrashServices
from drkonqi_lite.qt.tray import menu_text
from tests import entries
from tests.qt.test_crash_detail import all_text, services  # noqa: F401 (fixture)

#: (hidden character, the escape the user sees instead)
HIDDEN = [
    ("\x1b", "\\x1b"),  # ESC: terminal control sequences
    ("\x9b", "\\x9b"),  # C1 CSI: the one-byte ESC [
    ("\x07", "\\x07"),  # BEL
    ("\x7f", "\\x7f"),  # DEL
    ("\r", "\\x0d"),  # carriage return: overwrites a log line
    ("\u202e", "\\u202e"),  # right-to-left override
    ("\u2066", "\\u2066"),  # left-to-right isolate
    ("\u061c", "\\u061c"),  # Arabic letter mark
    ("\u200b", "\\u200b"),  # zero-width space
    ("\u2060", "\\u2060"),  # word joiner
    ("\u2028", "\\u2028"),  # line separator
    ("\ufeff", "\\ufeff"),  # byte order mark / zero-width no-break space
]
IDS = [f"U+{ord(c):04X}" for c, _ in HIDDEN]


def _crash(char: str) -> Crash:
    return entries.crash(comm=f"ev{char}il", exe=f"/opt/ev{char}il/bin")


def _assert_inert(shown: str, char: str, escape: str) -> None:
    assert char not in shown
    assert f"ev{escape}il" in shown


@pytest.mark.parametrize(("char", "escape"), HIDDEN, ids=IDS)
def test_escaper_itself(char: str, escape: str) -> None:
    _assert_inert(one_line(f"ev{char}il"), char, escape)
    _assert_inert(multi_line(f"ev{char}il\nnext"), char, escape)


@pytest.mark.parametrize(("char", "escape"), HIDDEN, ids=IDS)
def test_terminal(char: str, escape: str) -> None:
    _assert_inert(cli_line(_crash(char)), char, escape)


@pytest.mark.parametrize(("char", "escape"), HIDDEN, ids=IDS)
def test_notification_and_tray(char: str, escape: str) -> None:
    crash = _crash(char)
    program = Program(name=crash.comm)
    live = Announcer(60_000_000).live(crash, program, muted=False)
    assert live is not None
    _assert_inert(live.title, char, escape)
    login = catch_up([(crash, program)])
    assert login is not None
    _assert_inert(login.title, char, escape)
    _assert_inert(menu_text(crash.comm), char, escape)


@pytest.mark.parametrize(("char", "escape"), HIDDEN, ids=IDS)
def test_crash_list(qtbot: QtBot, char: str, escape: str) -> None:
    model = CrashListModel(lambda c: Program(name=c.comm), lambda _p: QIcon())
    model.set_crashes([_crash(char)])
    shown = [
        str(model.data(model.index(0, column), Qt.ItemDataRole.DisplayRole))
        for column in range(model.columnCount())
    ]
    _assert_inert(" ".join(shown), char, escape)


@pytest.mark.parametrize(("char", "escape"), HIDDEN, ids=IDS)
def test_crash_window(
    qtbot: QtBot,
    services: CrashServices,  # noqa: F811 (the fixture)
    char: str,
    escape: str,
) -> None:
    crash = _crash(char)
    window = CrashDetailWindow(crash, Program(name=crash.comm), services)
    qtbot.addWidget(window)
    # Our own line-break opportunities (plain_text.wrappable: after "/" and every 40 characters
    # of an unbroken run) are the only zero-width spaces the window may hold.
    shown = re.sub(rf"(?<=/){BREAK}|(?<=[^\s/]{{40}}){BREAK}", "", all_text(window))
    _assert_inert(shown, char, escape)


@pytest.mark.parametrize(("char", "escape"), HIDDEN, ids=IDS)
def test_log_line(caplog: pytest.LogCaptureFixture, char: str, escape: str) -> None:
    with caplog.at_level(logging.INFO):
        notification_log.info("notified %d: %s", 1, one_line(f"ev{char}il"))
    _assert_inert(caplog.text, char, escape)


@pytest.mark.parametrize(("char", "escape"), HIDDEN, ids=IDS)
def test_dbus_carries_the_name_unchanged(char: str, escape: str) -> None:
    crash = _crash(char)
    sent = summary(crash, seen=False)
    assert sent["comm"] == f"ev{char}il"  # byte-exact: a D-Bus client renders it itself
    assert sent["exe"] == f"/opt/ev{char}il/bin"
