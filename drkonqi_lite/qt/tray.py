"""The tray icon: shown while there are unseen crashes, with a count and a menu.

QSystemTrayIcon (Qt uses StatusNotifierItem by itself when a watcher is on the bus, XEmbed
otherwise). Thin: it shows what it is given and emits requests; what to show and what a request
does are decided by the app. Every label is hostile text: `&` is doubled so a program name can't
create a mnemonic, and the tooltip carries only the count (some hosts render it as rich text).
"""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import QObject, Signal, SignalInstance
from PySide6.QtGui import QAction, QIcon
from PySide6.QtWidgets import QMenu, QSystemTrayIcon

from drkonqi_lite.domain.plain_text import one_line


def menu_text(text: str) -> str:
    """Inert menu label: no mnemonics, no line breaks, no hidden characters, bounded."""
    words = text.replace("\t", " ").replace("\n", " ").split(" ")
    flat = one_line(" ".join(w for w in words if w), None)
    return (flat[:77] + "…" if len(flat) > 80 else flat).replace("&", "&&")


class CrashTray(QObject):
    """Tray icon + menu. Emits requests; `update` sets what it shows."""

    show_crash = Signal(str)
    show_list = Signal()
    unmute = Signal(str)
    #: Stop sending a program's reports without asking ("" = the "every program" choice).
    stop_auto_report = Signal(str)
    quit_requested = Signal()

    def __init__(self, icon: QIcon, *, always_visible: bool, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._always = always_visible
        self._icon = QSystemTrayIcon(icon, self)
        self._menu = QMenu()
        self._icon.setContextMenu(self._menu)
        self._icon.activated.connect(self._activated)
        self.update_state(0, [], [])

    @property
    def visible(self) -> bool:
        return self._icon.isVisible()

    def _activated(self, reason: QSystemTrayIcon.ActivationReason) -> None:
        if reason in {QSystemTrayIcon.ActivationReason.Trigger,
                      QSystemTrayIcon.ActivationReason.DoubleClick}:  # fmt: skip
            self.show_list.emit()

    def update_state(
        self,
        unseen: int,
        recent: Sequence[tuple[str, str]],
        muted: Sequence[tuple[str, str]],
        auto_report: Sequence[tuple[str, str]] = (),
    ) -> None:
        """unseen count; recent crashes as (id, label); muted programs as (key, name);
        programs whose reports are sent without asking as (key, name), "" for all."""
        self._menu.clear()
        if recent:
            header = self._menu.addAction("Recent crashes")
            header.setEnabled(False)
        for crash_id, label in recent:
            action = QAction(menu_text(label), self._menu)
            action.triggered.connect(lambda _=False, c=crash_id: self.show_crash.emit(c))
            self._menu.addAction(action)
        self._menu.addSeparator()
        self._menu.addAction("Show all crashes").triggered.connect(self.show_list.emit)
        self._undo_menu("Muted programs", "Unmute {}", muted, self.unmute)
        self._undo_menu("Automatic crash reports", "Stop sending reports of {}", auto_report,
                        self.stop_auto_report)  # fmt: skip
        self._menu.addSeparator()
        self._menu.addAction("Quit").triggered.connect(self.quit_requested.emit)
        self._icon.setToolTip(
            "No unseen crashes" if unseen == 0
            else f"{unseen} unseen crash" + ("" if unseen == 1 else "es")
        )  # fmt: skip
        self._icon.setVisible(unseen > 0 or self._always)

    def _undo_menu(
        self, title: str, label: str, items: Sequence[tuple[str, str]], signal: SignalInstance
    ) -> None:
        """A submenu with one action per (key, name) that emits `signal(key)`."""
        menu = self._menu.addMenu(title)
        menu.setEnabled(bool(items))
        for key, name in items:
            action = QAction(label.format(menu_text(name)), menu)
            action.triggered.connect(lambda _=False, k=key: signal.emit(k))
            menu.addAction(action)

    def balloon(self, title: str, body: str) -> None:
        """The fallback when there is no notification server."""
        self._icon.setVisible(True)
        self._icon.showMessage(title, body, QSystemTrayIcon.MessageIcon.Warning, 10_000)
