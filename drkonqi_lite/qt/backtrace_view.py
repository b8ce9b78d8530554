"""The Backtrace tab: the Python stack of a Python program, the quick trace from the entry, and
a full gdb backtrace on request.

The quick trace is shown monospaced with the crashing frame (frame #0 of the thread that got
the signal) highlighted in the palette's highlight colour. "Generate full backtrace" runs gdb
through the GdbRunner (adapters/gdb.py) in a worker thread; its stage and result come back to
the GUI thread as Qt signals (queued across threads), never by touching widgets from the worker.
Progress is shown, Cancel kills gdb's process group, and only one gdb runs at a time. Text from
gdb and the entry is hostile: plain text only, control and bidi characters made visible, and the
values of environment variables and arguments masked until the user reveals them.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QColor, QFontDatabase, QPalette, QTextCursor, QTextFormat
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QTextEdit,
    QVBoxLayout,
    QWidget,
)

from drkonqi_lite.adapters.gdb import FullBacktraceJob, GdbResult, Outcome
from drkonqi_lite.domain.crash import Crash
from drkonqi_lite.domain.plain_text import multi_line
from drkonqi_lite.domain.python_stack import format_text
from drkonqi_lite.domain.report import mask_secrets
from drkonqi_lite.domain.signature import crashing_frame_line
from drkonqi_lite.qt.crash_services import CrashServices
from drkonqi_lite.qt.icons import IconSet

NO_TRACE = "The journal entry has no stack trace."
#: The traces the view offers (QComboBox item data).
FULL, PYTHON, QUICK = "full", "python", "quick"


def full_backtrace_blocker(crash: Crash) -> str:
    """Why a full backtrace cannot be made for this crash ("" when it can)."""
    # core_state values are the D-Bus contract's strings (DESIGN.md §2.3; CoreState is a StrEnum).
    if crash.core_state in {"present", "truncated"} and crash.core_filename:
        return ""
    if crash.core_state == "inaccessible":
        return "The core is restricted: only the administrator can read it."
    if crash.core_in_journal:
        return "The core is stored inside the journal; use coredumpctl gdb for it."
    return "No core file was kept for this crash."


class _Bridge(QObject):
    """Carries worker-thread callbacks to the GUI thread (AutoConnection queues them)."""

    stage = Signal(str)
    done = Signal(object)


class BacktraceView(QWidget):
    """Quick trace + full backtrace controls for one crash."""

    full_backtrace_ready = Signal(str)
    finished = Signal(object)  # GdbResult, after the view updated itself

    def __init__(
        self,
        crash: Crash,
        services: CrashServices,
        icons: IconSet,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self._crash = crash
        self._services = services
        self._job: FullBacktraceJob | None = None
        self._full = ""
        self._revealed = False
        self._bridge = _Bridge(self)
        self._bridge.stage.connect(self._on_stage)
        self._bridge.done.connect(self._on_done)

        self.text = QPlainTextEdit(self)
        self.text.setReadOnly(True)
        self.text.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.text.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.text.setTextInteractionFlags(
            Qt.TextInteractionFlag.TextSelectableByMouse
            | Qt.TextInteractionFlag.TextSelectableByKeyboard
        )

        self.generate_button = QPushButton(icons.get("generate"), "Generate full backtrace", self)
        self.generate_button.clicked.connect(self.generate)
        self.cancel_button = QPushButton(icons.get("cancel"), "Cancel", self)
        self.cancel_button.clicked.connect(self.cancel)
        self.cancel_button.hide()
        self.progress = QProgressBar(self)
        self.progress.setRange(0, 0)  # gdb reports no progress: a busy indicator
        self.progress.setTextVisible(False)
        self.progress.setMaximumWidth(160)
        self.progress.hide()
        self.debuginfod = QCheckBox("Download missing debug symbols (debuginfod)", self)
        self.debuginfod.setChecked(services.debuginfod)
        self.debuginfod.setToolTip(
            "Lets gdb fetch debug information from your distribution's debuginfod server. "
            "This sends the build IDs of the crashed program's libraries over the network."
        )
        self.debuginfod.toggled.connect(services.set_debuginfod)
        self.status = QLabel(self)
        self.status.setTextFormat(Qt.TextFormat.PlainText)
        self.status.setWordWrap(True)

        bar = QHBoxLayout()
        bar.addWidget(self.generate_button)
        bar.addWidget(self.progress)
        bar.addWidget(self.cancel_button)
        bar.addWidget(self.debuginfod)
        bar.addStretch(1)
        self.view_choice = QComboBox(self)
        # A Python program's own frames first; the native trace (or Python's traceback of an
        # unhandled exception) one choice away; gdb's backtrace on top once it is made.
        if crash.python_threads:
            self.view_choice.addItem("Python stack", PYTHON)
        quick = "Traceback" if crash.is_exception else "Stack trace from the crash"
        self.view_choice.addItem(quick, QUICK)
        self.view_choice.setToolTip("Which trace to show")
        self.view_choice.currentIndexChanged.connect(self._show_chosen)
        self.view_choice.setVisible(self.view_choice.count() > 1)
        bar.addWidget(self.view_choice)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(bar)
        layout.addWidget(self.status)
        layout.addWidget(self.text, 1)

        blocker = full_backtrace_blocker(crash)
        if blocker:
            self.generate_button.setEnabled(False)
            self.generate_button.setToolTip(blocker)
            self.debuginfod.setEnabled(False)
            self.status.setText(f"Full backtrace not available: {blocker}")
        elif crash.python_threads:
            self.status.setText(
                "The Python stack of every thread at the time of the crash, the crashing thread "
                "first. The interpreter's own stack trace is one choice away; a full backtrace "
                "(arguments, local variables) is made with gdb from the stored core."
            )
        else:
            self.status.setText(
                "This is the quick stack trace recorded at the time of the crash. A full "
                "backtrace (all threads, arguments, local variables"
                + (", Python frames" if "python" in crash.comm.lower() else "")
                + ") is made with gdb from the stored core."
            )
        self._show_chosen(0)

    # --- text -------------------------------------------------------------------------------
    def _show_quick(self) -> None:
        trace = self._crash.backtrace
        self.text.setPlainText(multi_line(trace) if trace else NO_TRACE)
        self._highlight(crashing_frame_line(trace) if trace and not self._crash.is_exception
                        else None)  # fmt: skip

    def _show_python(self) -> None:
        threads = self._crash.python_threads
        self.text.setPlainText(multi_line(format_text(threads)))
        # The crashing thread's innermost frame: the last line of the first block.
        self._highlight(len(threads[0].frames) if threads and threads[0].frames else None)

    def _highlight(self, line: int | None) -> None:
        if line is None:
            self.text.setExtraSelections([])
            return
        selection = QTextEdit.ExtraSelection()
        highlight = QColor(self.palette().color(QPalette.ColorRole.Highlight))
        highlight.setAlpha(90)
        selection.format.setBackground(highlight)
        selection.format.setProperty(QTextFormat.Property.FullWidthSelection, True)
        cursor = QTextCursor(self.text.document().findBlockByNumber(line))
        selection.cursor = cursor
        self.text.setExtraSelections([selection])
        self.text.setTextCursor(cursor)
        self.text.centerCursor()

    def _show_full(self) -> None:
        shown = self._full if self._revealed else mask_secrets(self._full, self._crash)
        self.text.setExtraSelections([])
        self.text.setPlainText(multi_line(shown))

    def _show_chosen(self, index: int) -> None:
        view = self.view_choice.itemData(index)
        if view == FULL and self._full:
            self._show_full()
        elif view == PYTHON:
            self._show_python()
        else:
            self._show_quick()

    def set_revealed(self, revealed: bool) -> None:
        """Show the full backtrace with (True) or without secret values."""
        self._revealed = revealed
        if self._full and self.view_choice.currentData() == FULL:
            self._show_full()

    @property
    def full_backtrace(self) -> str:
        """The gdb output (unmasked: the report masks it), "" before it is made."""
        return self._full

    def highlighted_line(self) -> str:
        """The text of the highlighted (crashing) frame line, "" when none."""
        selections = self.text.extraSelections()
        if not selections:
            return ""
        return selections[0].cursor.block().text()

    # --- gdb ----------------------------------------------------------------------------------

    def generate(self) -> bool:
        """Start gdb; False (with a message) when another backtrace is being made."""
        if self._job is not None:
            return False
        services = self._services
        job = FullBacktraceJob(
            self._crash, services.policy, services.gdb_options(), self._bridge.stage.emit
        )
        if not services.runner.start(job, self._bridge.done.emit):
            self.status.setText(
                "Another full backtrace is being made (one gdb at a time); try again when it "
                "has finished."
            )
            return False
        self._job = job
        self.generate_button.setEnabled(False)
        self.debuginfod.setEnabled(False)
        self.progress.show()
        self.cancel_button.show()
        self.status.setText("Starting…")
        return True

    def cancel(self) -> None:
        if self._job is not None:
            self.status.setText("Cancelling…")
            self._job.cancel()

    def _on_stage(self, text: str) -> None:
        if self._job is not None:
            self.status.setText(text)

    def _on_done(self, result: object) -> None:
        if not isinstance(result, GdbResult):  # pragma: no cover - only GdbResults are sent
            return
        self._job = None
        self.progress.hide()
        self.cancel_button.hide()
        self.generate_button.setEnabled(True)
        self.debuginfod.setEnabled(True)
        if result.outcome is Outcome.DONE:
            self._full = result.text
            if self.view_choice.itemData(0) != FULL:
                self.view_choice.insertItem(0, "Full backtrace (gdb)", FULL)
            self.view_choice.setCurrentIndex(0)
            self.view_choice.show()
            self._show_full()
            self.status.setText(f"Full backtrace made by gdb in {result.seconds:.1f} s.")
            self.full_backtrace_ready.emit(result.text)
        else:
            self.status.setText(result.message)
            if result.outcome is Outcome.FAILED and result.text:
                self._full = ""
                self.text.setPlainText(multi_line(mask_secrets(result.text, self._crash)))
        self.finished.emit(result)
