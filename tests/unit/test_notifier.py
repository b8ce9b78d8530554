"""The app's first stage (drkonqi_lite/notifier.py): what is asked of the windows before Qt is
loaded is kept and handed over, in order, once it is."""

from __future__ import annotations

from drkonqi_lite.domain.inbox import CrashInbox
from drkonqi_lite.domain.seen import SeenState
from drkonqi_lite.notifier import PendingShell
from tests.entries import crash


class RecordingShell:
    def __init__(self) -> None:
        self.calls: list[tuple[str, ...]] = []

    def show_crash(self, crash_id: str) -> bool:
        self.calls.append(("crash", crash_id))
        return True

    def show_crash_list(self) -> None:
        self.calls.append(("list",))

    def balloon(self, title: str, body: str) -> None:
        self.calls.append(("balloon", title, body))

    def changed(self) -> None:
        self.calls.append(("changed",))

    def busy(self) -> str | None:
        return None


def test_requests_before_qt_are_handed_over() -> None:
    inbox = CrashInbox(SeenState())
    known = crash()
    inbox.add(known)
    pending = PendingShell(inbox)
    assert pending.show_crash(known.id), "a known crash: it will be shown"
    assert not pending.show_crash("c-no-such-crash"), "unknown: ShowCrash's error, not later"
    pending.balloon("kate crashed", "Segmentation fault")
    pending.show_crash_list()
    assert pending.busy() is not None, "the app does not end while its windows load"
    shell = RecordingShell()
    pending.hand_over(shell)
    assert shell.calls == [("balloon", "kate crashed", "Segmentation fault"), ("list",),
                           ("crash", known.id)]  # fmt: skip
