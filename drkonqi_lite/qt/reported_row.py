"""The crash window's "Reported" row: the event id of the delivered report, selectable, and a
button that opens the event's page on its server where the server has one (Bugsink: see
domain/event_link.py; Sentry and GlitchTip find the event by pasting the id in their search).
Plain text and a button, no rich-text link: nothing here is markup.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QWidget


class ReportedRow(QWidget):
    """Hidden until the crash was reported."""

    def __init__(self, parent: QWidget, open_url: Callable[[str], bool]) -> None:
        super().__init__(parent)
        self._open_url = open_url
        self._link = ""
        self.label = QLabel(self)
        self.label.setTextFormat(Qt.TextFormat.PlainText)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.open_button = QPushButton("Open on the server", self)
        self.open_button.clicked.connect(self.open_event)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.label, 1)
        row.addWidget(self.open_button)
        self.hide()

    def show_for(self, event_id: str, link: str) -> None:
        """`event_id` "" : not reported (hidden); `link` "" : no page to open."""
        self._link = link
        self.setVisible(bool(event_id))
        self.label.setText(f"Reported: event id {event_id}" if event_id else "")
        self.open_button.setVisible(bool(link))
        self.open_button.setToolTip(link)
        self.open_button.setAccessibleDescription(link)

    def open_event(self) -> None:
        if self._link:
            self._open_url(self._link)
