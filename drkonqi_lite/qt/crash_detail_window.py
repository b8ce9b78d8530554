"""The crash detail window: what crashed, when, why, and everything a developer needs.

Header (program icon and name, "crashed with Segmentation fault (SIGSEGV)", when, PID, user,
package, unit), a notice for restricted or missing cores saying why and what still works, the
tabs (Backtrace, Details, Process, Environment, Log) and the actions (copy/save a redacted
report, open gdb in a terminal, restart via the installed .desktop file, delete the user's own
core, report a bug). Disabled actions say why. Thin: the decisions come from domain/ and the
adapters through CrashServices; every entry text is plain text made inert.
"""

from __future__ import annotations

import threading
from pathlib import Path

from PySide6.QtCore import QObject, QSize, Qt, Signal
from PySide6.QtGui import QCloseEvent, QFont, QGuiApplication
from PySide6.QtWidgets import (
    QFileDialog,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QPushButton,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from drkonqi_lite.adapters.crash_reporting import report_outcome_text
from drkonqi_lite.domain import crash_facts
from drkonqi_lite.domain.announcement import Program
from drkonqi_lite.domain.crash import Crash
from drkonqi_lite.domain.dsn import DsnError
from drkonqi_lite.domain.plain_text import one_line, wrappable
from drkonqi_lite.domain.report import absolute_when, relative_when, report_json, report_text
from drkonqi_lite.domain.reporting_policy import NoDestinationError
from drkonqi_lite.domain.sentry_event import EventOptions
from drkonqi_lite.qt.backtrace_view import BacktraceView, full_backtrace_blocker
from drkonqi_lite.qt.crash_detail_tabs import DetailsTab, EnvironmentTab, LogTab, ProcessTab
from drkonqi_lite.qt.crash_services import CrashServices
from drkonqi_lite.qt.icons import IconSet
from drkonqi_lite.qt.report_dialog import ReportDialog
from drkonqi_lite.qt.reported_row import ReportedRow
from drkonqi_lite_collector.journal.schema import escape_name


def plain_label(text: str, parent: QWidget) -> QLabel:
    label = QLabel(parent)
    label.setTextFormat(Qt.TextFormat.PlainText)
    label.setText(text)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    return label


def core_notice(crash: Crash) -> str:
    """What the window says about a core that is not fully usable ("" when it is)."""
    state = str(crash.core_state)
    if state == "inaccessible" or crash.restricted:
        why = one_line(crash.restricted_reason, 120) if crash.restricted_reason else ""
        return (
            "This crash's core dump is restricted"
            + (f" ({why})" if why else "")
            + ". The program ran with other privileges than yours (set-uid, file capabilities) "
            "or asked not to be dumped, so its memory may hold secrets that are not yours: only "
            "the administrator can read the core. The stack trace, the details and the log "
            "still work; a full backtrace needs the administrator (coredumpctl gdb)."
        )
    if state == "missing":
        return "The core dump has been removed (storage limits or cleanup); the rest still works."
    if state == "truncated":
        return (
            "The core dump was cut at the size limit: a full backtrace may miss some threads "
            "or variables."
        )
    if state == "none":
        reason = one_line(crash.core_missing_reason, 60) if crash.core_missing_reason else ""
        return "No core dump was kept for this crash" + (f" ({reason})." if reason else ".")
    return ""


class _Bridge(QObject):
    message = Signal(str)
    report_done = Signal(str)


class CrashDetailWindow(QWidget):
    """One crash in full."""

    def __init__(
        self,
        crash: Crash,
        program: Program,
        services: CrashServices,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.crash = crash
        self.program = program
        self._services = services
        self._core_deleted = False
        self.icons = IconSet(self.palette())
        self._bridge = _Bridge(self)
        self._bridge.message.connect(self._debugger_result)
        self._bridge.report_done.connect(self._report_result)
        self.report_dialog: ReportDialog | None = None
        name = one_line(program.name, 80)
        self.setWindowTitle(f"{one_line(program.name, 60)} crash — Crash Reports")
        self.setWindowIcon(self.icons.program(program.icon))
        self.resize(920, 660)

        layout = QVBoxLayout(self)
        layout.addLayout(self._header(name))
        notice = core_notice(crash)
        self.notice: QLabel | None = None
        if notice:
            layout.addWidget(self._notice(notice))

        self.tabs = QTabWidget(self)
        self.backtrace = BacktraceView(crash, services, self.icons, self.tabs)
        self.details = DetailsTab(crash, self.tabs)
        self.process = ProcessTab(crash, self.tabs)
        self.environment = EnvironmentTab(crash, self.icons, self.tabs)
        self.environment.reveal_requested.connect(self.reveal)
        self.log = LogTab(crash, services.process_log, self.tabs)
        for widget, label in ((self.backtrace, "&Backtrace"), (self.details, "&Details"),
                              (self.process, "&Process"), (self.environment, "&Environment"),
                              (self.log, "&Log")):  # fmt: skip
            self.tabs.addTab(widget, label)
        self.tabs.currentChanged.connect(self._tab_changed)
        layout.addWidget(self.tabs, 1)
        self.reported = ReportedRow(self, services.open_url)
        layout.addWidget(self.reported)

        self.status = QLabel(self)
        self.status.setTextFormat(Qt.TextFormat.PlainText)
        self.status.setWordWrap(True)
        self.status.hide()
        layout.addWidget(self.status)
        layout.addLayout(self._actions())
        self._update_actions()

    # --- layout -----------------------------------------------------------------------------
    def _header(self, name: str) -> QHBoxLayout:
        crash = self.crash
        icon = QLabel(self)
        icon.setPixmap(self.icons.program(self.program.icon).pixmap(QSize(48, 48)))
        icon.setAlignment(Qt.AlignmentFlag.AlignTop)
        self.title = plain_label(
            wrappable(f"{name} crashed with {crash.reason} ({crash.signal_name})"), self
        )
        font = QFont(self.title.font())
        font.setPointSizeF(font.pointSizeF() * 1.35)
        font.setBold(True)
        self.title.setFont(font)
        self.title.setWordWrap(True)
        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        when = relative_when(crash.timestamp_us, self._services.now_us())
        rows = [
            ("When:", f"{when} ({absolute_when(crash.timestamp_us)})"),
            ("Process:", f"PID {crash.pid} · {one_line(crash.exe or crash.comm, 200)}"),
            ("User:", f"{self._services.user_name(crash.uid)} (uid {crash.uid})"),
        ]
        if crash.package:
            rows.append(("Package:", one_line(f"{crash.package} {crash.package_version}", 120)))
        if crash.unit:
            rows.append(("Unit:", one_line(crash.unit, 120)))
        # The crashing thread, why the signal came, and what KCrash said (version, bug address).
        rows += [(f"{label}:", one_line(value, 200)) for label, value in crash_facts.facts(crash)]
        self.facts: dict[str, QLabel] = {}
        for key, value in rows:
            label = plain_label(wrappable(value), self)
            label.setWordWrap(True)
            self.facts[key.rstrip(":")] = label
            form.addRow(plain_label(key, self), label)
        text = QVBoxLayout()
        text.addWidget(self.title)
        text.addLayout(form)
        header = QHBoxLayout()
        header.addWidget(icon)
        header.addLayout(text, 1)
        return header

    def _notice(self, text: str) -> QFrame:
        frame = QFrame(self)
        frame.setFrameShape(QFrame.Shape.StyledPanel)
        frame.setAutoFillBackground(True)
        frame.setBackgroundRole(self.palette().ColorRole.AlternateBase)
        icon = QLabel(frame)
        icon.setPixmap(self.icons.get("restricted").pixmap(QSize(22, 22)))
        icon.setAlignment(Qt.AlignmentFlag.AlignTop)
        self.notice = plain_label(text, frame)
        self.notice.setWordWrap(True)
        row = QHBoxLayout(frame)
        row.addWidget(icon)
        row.addWidget(self.notice, 1)
        return frame

    def _actions(self) -> QHBoxLayout:
        def button(icon: str, text: str, slot: object) -> QPushButton:
            b = QPushButton(self.icons.get(icon), text, self)
            b.clicked.connect(slot)
            row.addWidget(b)
            return b

        row = QHBoxLayout()
        self.copy_button = button("copy", "Copy report", self.copy_report)
        self.save_button = button("save", "Save report…", self.save_report_dialog)
        self.debugger_button = button("debugger", "Open in debugger", self.open_debugger)
        self.restart_button = button("restart", "Restart program", self.restart_program)
        self.delete_button = button("delete", "Delete core", self.delete_core)
        self.send_button = button("send", "Send report…", self.send_report_dialog)
        self.bug_button = button("report-bug", "Report bug", self.report_bug)
        row.addStretch(1)
        close = QPushButton("Close", self)
        close.clicked.connect(self.close)
        row.addWidget(close)
        return row

    @staticmethod
    def _allow(button: QPushButton, reason: str) -> None:
        button.setEnabled(not reason)
        button.setToolTip(reason)
        button.setAccessibleDescription(reason)

    def _update_actions(self) -> None:
        crash, services = self.crash, self._services

        core = full_backtrace_blocker(crash) or (
            "The core was deleted." if self._core_deleted else ""
        )
        self._allow(self.debugger_button, core or services.debugger_blocker())
        if self.program.desktop_entry:
            blocker = services.restart_blocker(self.program.desktop_entry, crash.program_path)
            self._allow(self.restart_button, blocker)
        else:
            self._allow(
                self.restart_button,
                "No installed application entry (.desktop file) matches this program; for your "
                "safety it is never restarted from the crash's command line.",
            )
        if crash.core_filename and not self._core_deleted:
            self._allow(
                self.delete_button, services.delete_blocker(services.policy, crash.core_filename)
            )
        else:
            self._allow(self.delete_button, "There is no stored core file to delete.")
        self._allow(self.send_button, self._report_blocker())
        reporting = services.reporting
        self.reported.show_for(reporting.sent.get(crash.id, ""), reporting.links.get(crash.id, ""))
        self._bug_url = services.bug_tracker(self.program.desktop_entry)
        self._allow(
            self.bug_button,
            ""
            if self._bug_url
            else "No bug tracker is known for this program (none in its "
            "AppStream metadata or .desktop file).",
        )

    # --- actions ------------------------------------------------------------------------------
    def _status(self, text: str) -> None:
        self.status.setText(text)
        self.status.show()

    def report(self, fmt: str = "text") -> str:
        """The redacted report (what Copy/Save write)."""
        make = report_json if fmt == "json" else report_text
        return make(self.crash, self.program.name, self.backtrace.full_backtrace)

    def copy_report(self) -> None:
        QGuiApplication.clipboard().setText(self.report())
        self._status("The report is on the clipboard (environment and command line withheld).")

    def save_report(self, path: Path) -> None:
        """Write the report; JSON when the name ends in .json, text otherwise."""
        fmt = "json" if path.suffix.lower() == ".json" else "text"
        path.write_text(self.report(fmt), encoding="utf-8")
        self._status(f"Report saved to {one_line(str(path), 200)}.")

    def save_report_dialog(self) -> None:
        stem = escape_name(self.crash.comm.encode("utf-8", "replace"))[:40] or "program"
        name, chosen = QFileDialog.getSaveFileName(
            self,
            "Save crash report",
            str(Path.home() / f"crash-{stem}-{self.crash.pid}.txt"),
            "Text report (*.txt);;JSON report (*.json)",
        )
        if not name:
            return
        path = Path(name)
        if "json" in chosen and path.suffix.lower() != ".json":
            path = path.with_suffix(".json")
        try:
            self.save_report(path)
        except OSError as exc:
            self._status(f"The report could not be saved: {exc.strerror}")

    def open_debugger(self) -> None:
        services, crash = self._services, self.crash
        self._status("Unpacking the core and starting gdb in a terminal…")
        self.debugger_button.setEnabled(False)

        def work() -> None:
            try:
                services.open_in_debugger(crash, services.policy, services.debuginfod)
            except Exception as exc:  # noqa: BLE001 (reported to the user, not raised in a thread)
                self._bridge.message.emit(f"The debugger could not be started: {exc}")
            else:
                self._bridge.message.emit("gdb is running in a terminal window.")

        threading.Thread(target=work, name="drkonqi-lite-debugger", daemon=True).start()

    def _debugger_result(self, text: str) -> None:
        self._status(text)
        self._update_actions()

    def restart_program(self) -> None:
        try:
            pid = self._services.restart(self.program.desktop_entry, self.crash.program_path)
        except Exception as exc:  # noqa: BLE001 (LaunchError and OSError: shown to the user)
            self._status(f"The program was not restarted: {exc}")
        else:
            self._status(f"{one_line(self.program.name, 60)} was started again (PID {pid}).")
        self._update_actions()

    def delete_core(self, *, confirm: bool = True) -> None:
        if confirm:
            answer = QMessageBox.question(
                self,
                "Delete core dump",
                "Delete the core dump of this crash? The report and the quick stack trace "
                "stay; a full backtrace will no longer be possible.",
            )
            if answer != QMessageBox.StandardButton.Yes:
                return
        try:
            self._services.delete_core(self._services.policy, self.crash.core_filename)
        except Exception as exc:  # noqa: BLE001 (CoreUnavailableError, OSError: shown)
            self._status(f"The core was not deleted: {exc}")
            return
        self._core_deleted = True
        self.backtrace.generate_button.setEnabled(False)
        self._status("The core dump was deleted.")
        self._update_actions()

    def _report_blocker(self) -> str:
        reporting = self._services.reporting
        if self.crash.id in reporting.sent:
            return f"Already reported (event id {reporting.sent[self.crash.id]})."
        try:
            self._report_server = reporting.destination(self.crash)
        except (DsnError, NoDestinationError) as exc:
            return one_line(str(exc)[:1].upper() + str(exc)[1:], 300) + "."
        return ""

    def send_report_dialog(self) -> None:
        """Show what would be sent; send it when the user says Send."""
        crash, reporting = self.crash, self._services.reporting
        dialog = ReportDialog(self.program.name, self._report_server,
                              lambda options: reporting.preview(crash, options), self)  # fmt: skip
        dialog.accepted.connect(lambda: self._accepted(dialog))
        self.report_dialog = dialog
        dialog.open()

    def _accepted(self, dialog: ReportDialog) -> None:
        auto = self._services.auto_report
        if dialog.always_program.isChecked() or dialog.always_all.isChecked():
            if dialog.always_program.isChecked():
                auto.programs.add(self.crash.program_key)
            auto.every_program = auto.every_program or dialog.always_all.isChecked()
            self._services.remember_auto_report(auto)
        self._send_report(dialog.options())

    def _send_report(self, options: EventOptions) -> None:
        self.send_button.setEnabled(False)
        self._status("Sending the crash report…")
        crash, reporting = self.crash, self._services.reporting

        def work() -> None:  # the network and the queue's fsyncs stay off the GUI thread
            self._bridge.report_done.emit(report_outcome_text(reporting, crash, options))

        threading.Thread(target=work, name="drkonqi-lite-report", daemon=True).start()

    def _report_result(self, text: str) -> None:
        self._status(text)
        self._update_actions()

    def report_bug(self) -> None:
        if not self._bug_url:
            return
        QGuiApplication.clipboard().setText(self.report())
        self._services.open_url(self._bug_url)
        self._status(
            "The program's bug tracker was opened; the report is on the clipboard to paste."
        )

    def reveal(self) -> None:
        """Show the secrets in this window (never in copies or saved reports)."""
        self.environment.reveal()
        self.details.set_revealed(True)
        self.backtrace.set_revealed(True)

    def _tab_changed(self, index: int) -> None:
        if self.tabs.widget(index) is self.log:
            self.log.load()

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802
        self.backtrace.cancel()
        super().closeEvent(event)
