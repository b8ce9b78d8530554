"""The "Send report…" dialog: what goes to the developers' server, shown before it goes.

The preview is the event itself (the same event id and options the send uses), so what the
user reads is exactly what is sent and nothing else. The comment and the command-line opt-in
rebuild it as the user types. Thin: the event comes from domain/sentry_event via the reporting
adapter; all text is plain (hostile names stay inert).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable

from PySide6.QtCore import Qt
from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QLabel,
    QPlainTextEdit,
    QVBoxLayout,
    QWidget,
)

from drkonqi_lite.domain.plain_text import one_line
from drkonqi_lite.domain.sentry_event import MAX_COMMENT, EventOptions

Preview = Callable[[EventOptions], dict[str, object]]


def _label(text: str, parent: QWidget) -> QLabel:
    label = QLabel(text, parent)
    label.setTextFormat(Qt.TextFormat.PlainText)
    label.setWordWrap(True)
    return label


class ReportDialog(QDialog):
    """Comment, command-line opt-in, the JSON that will be sent; Send or Cancel."""

    def __init__(self, program: str, server: str, preview: Preview, parent: QWidget | None = None):
        super().__init__(parent)
        self._preview = preview
        self._event_id = uuid.uuid4().hex
        self.setWindowTitle(f"Send a crash report — {one_line(program, 60)}")
        self.resize(760, 640)
        layout = QVBoxLayout(self)
        layout.addWidget(_label(
            f"The report goes to {one_line(server, 200)} for the developers of "
            f"{one_line(program, 80)}. Exactly what is shown below is sent, nothing else: "
            "never your environment variables, and the command line only if you tick it.",
            self,
        ))  # fmt: skip
        self.comment = QPlainTextEdit(self)
        self.comment.setPlaceholderText("What were you doing when it crashed? (optional)")
        self.comment.setFixedHeight(80)
        layout.addWidget(self.comment)
        self.cmdline = QCheckBox(
            "Include the command line (it can contain file names, passwords or tokens)", self
        )
        layout.addWidget(self.cmdline)
        self.always_program = QCheckBox(
            f"From now on, send reports of {one_line(program, 60)} without asking", self
        )
        self.always_all = QCheckBox("From now on, send reports of every program without asking",
                                    self)  # fmt: skip
        for box in (self.always_program, self.always_all):
            box.setToolTip("Automatic reports carry no comment and no command line; stop them "
                           "from the tray icon's menu.")  # fmt: skip
            layout.addWidget(box)
        layout.addWidget(_label("What will be sent:", self))
        self.json_view = QPlainTextEdit(self)
        self.json_view.setReadOnly(True)
        self.json_view.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.json_view.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        layout.addWidget(self.json_view, 1)
        buttons = QDialogButtonBox(self)
        self.send_button = buttons.addButton("Send", QDialogButtonBox.ButtonRole.AcceptRole)
        buttons.addButton(QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        self.comment.textChanged.connect(self._update)
        self.cmdline.toggled.connect(self._update)
        self._update()

    def options(self) -> EventOptions:
        """The options of the previewed event (the same event id: the send is the preview)."""
        return EventOptions(
            comment=self.comment.toPlainText()[:MAX_COMMENT],
            include_cmdline=self.cmdline.isChecked(),
            event_id=self._event_id,
        )

    def preview_text(self) -> str:
        return json.dumps(self._preview(self.options()), indent=2, ensure_ascii=False)

    def _update(self) -> None:
        bar = self.json_view.verticalScrollBar()
        position = bar.value()
        self.json_view.setPlainText(self.preview_text())
        bar.setValue(position)
