"""Our session D-Bus service, exactly DESIGN.md §2.3 (other programs depend on it).

Bus name org.drkonqi_lite.CrashNotifier, object /org/drkonqi_lite/CrashNotifier, interface
org.drkonqi_lite.CrashNotifier1. The crash dicts come from `domain.summary` (no environment);
strings are made D-Bus-safe (no NUL: a NUL in a string would make the bus daemon drop us).
The shipped resources/org.drkonqi_lite.CrashNotifier1.xml must equal this interface's
introspection (a test checks it). Decisions are the backend's; this only translates.
"""
# dbus-next's decorators and DBusError are untyped: the only things silenced here.
# mypy: disable-error-code="untyped-decorator,no-untyped-call"

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol, TypeVar

from dbus_next.constants import PropertyAccess
from dbus_next.errors import DBusError
from dbus_next.service import ServiceInterface, dbus_property, method, signal
from dbus_next.signature import Variant

from drkonqi_lite.domain.report_choices import ReportFailedError
from drkonqi_lite.domain.summary import CrashDetail, CrashSummary

BUS_NAME = "org.drkonqi_lite.CrashNotifier"
OBJECT_PATH = "/org/drkonqi_lite/CrashNotifier"
INTERFACE = "org.drkonqi_lite.CrashNotifier1"
UNKNOWN_CRASH = f"{INTERFACE}.Error.UnknownCrash"
#: ReportCrash failures: f"{ERROR_PREFIX}NoDestination|Refused|Failed".
ERROR_PREFIX = f"{INTERFACE}.Error."
VERSION = "1.0"

#: D-Bus type of each crash dict key (DESIGN.md §2.3).
SIGNATURES: dict[str, str] = {
    "id": "s", "pid": "x", "uid": "u", "signal": "i", "signal_name": "s", "comm": "s",
    "exe": "s", "timestamp": "t", "hostname": "s", "unit": "s", "package": "s",
    "core_state": "s", "seen": "b", "reported": "s", "backtrace": "s", "fields": "a{ss}",
    "python_stack": "aa{sv}", "python_threads": "aa{sv}", "exception_type": "s",
    "exception_value": "s", "tid": "x", "thread_name": "s", "signal_cause": "s",
    "kcrash": "a{ss}",
}  # fmt: skip
#: The members of the python_stack / python_threads dicts (domain/python_stack.py).
_PY_SIGNATURES: dict[str, str] = {"function": "s", "file": "s", "line": "x", "tid": "x",
                                  "name": "s", "crashed": "b", "frames": "aa{sv}"}  # fmt: skip


_F = TypeVar("_F", bound=Callable[..., object])


def dbus_signature(returns: str = "", **args: str) -> Callable[[_F], _F]:
    """Give dbus-next the D-Bus signatures it reads from annotations, keeping the Python types.

    dbus-next takes `inspect.signature(fn)` annotations as D-Bus type strings; this replaces
    them (before dbus-next's decorator runs) so that mypy still sees real types.
    """

    def apply(fn: _F) -> _F:
        fn.__annotations__ = {**args, **({"return": returns} if returns else {})}
        return fn

    return apply


class CrashBackend(Protocol):
    """What the service asks the app."""

    def list_crashes(self) -> list[CrashSummary]: ...
    def get_crash(self, crash_id: str) -> CrashDetail | None: ...
    def show_crash(self, crash_id: str) -> bool: ...
    def show_crash_list(self) -> None: ...
    def dismiss(self, crash_id: str) -> bool: ...
    def dismiss_all(self) -> None: ...
    def unseen_count(self) -> int: ...
    async def report_crash(self, crash_id: str) -> str: ...


def _safe(text: str) -> str:
    return text.replace("\x00", "\ufffd")


def to_variants(
    crash: Mapping[str, object], signatures: Mapping[str, str] = SIGNATURES
) -> dict[str, Variant]:
    """A crash dict as a{sv}; uid is clamped into u (a bad entry must not break marshalling)."""
    out: dict[str, Variant] = {}
    for key, value in crash.items():
        sig = signatures.get(key)
        if sig is None:
            continue
        if sig == "aa{sv}" and isinstance(value, list):
            items = [to_variants(v, _PY_SIGNATURES) for v in value if isinstance(v, Mapping)]
            out[key] = Variant(sig, items)
        elif sig == "s":
            out[key] = Variant("s", _safe(str(value)))
        elif sig == "a{ss}" and isinstance(value, Mapping):
            out[key] = Variant(sig, {_safe(str(k)): _safe(str(v)) for k, v in value.items()})
        elif sig == "b":
            out[key] = Variant("b", bool(value))
        elif isinstance(value, int):
            lo, hi = {"x": (-(1 << 63), (1 << 63) - 1), "i": (-(1 << 31), (1 << 31) - 1),
                      "u": (0, (1 << 32) - 1), "t": (0, (1 << 64) - 1)}[sig]  # fmt: skip
            out[key] = Variant(sig, min(max(value, lo), hi))
    return out


class CrashNotifierService(ServiceInterface):
    """org.drkonqi_lite.CrashNotifier1."""

    def __init__(self, backend: CrashBackend) -> None:
        super().__init__(INTERFACE)
        self._backend = backend
        self._unseen = backend.unseen_count()

    def _known(self, crash_id: str) -> None:
        if self._backend.get_crash(crash_id) is None:
            raise DBusError(UNKNOWN_CRASH, f"no crash with id {_safe(crash_id)[:64]!r}")

    @method()
    @dbus_signature("aa{sv}")
    def ListCrashes(self) -> list[dict[str, Variant]]:  # noqa: N802 (D-Bus names)
        return [to_variants(c) for c in self._backend.list_crashes()]

    @method()
    @dbus_signature("a{sv}", id="s")
    def GetCrash(self, id: str) -> dict[str, Variant]:  # noqa: N802
        crash = self._backend.get_crash(id)
        if crash is None:
            raise DBusError(UNKNOWN_CRASH, f"no crash with id {_safe(id)[:64]!r}")
        return to_variants(crash)

    @method()
    @dbus_signature(id="s")
    def ShowCrash(self, id: str) -> None:  # noqa: N802
        self._known(id)
        self._backend.show_crash(id)

    @method()
    @dbus_signature()
    def ShowCrashList(self) -> None:  # noqa: N802
        self._backend.show_crash_list()

    @method()
    @dbus_signature(id="s")
    def Dismiss(self, id: str) -> None:  # noqa: N802
        self._known(id)
        self._backend.dismiss(id)

    @method()
    @dbus_signature()
    def DismissAll(self) -> None:  # noqa: N802
        self._backend.dismiss_all()

    @method()
    @dbus_signature("s", id="s")
    async def ReportCrash(self, id: str) -> str:  # noqa: N802
        """Send the crash's report to its developers (DESIGN.md §2.5); the event id, also when
        the report was queued because the server is away."""
        self._known(id)
        try:
            return await self._backend.report_crash(id)
        except ReportFailedError as exc:
            raise DBusError(ERROR_PREFIX + exc.kind, _safe(str(exc))[:512]) from None

    @signal()
    @dbus_signature("a{sv}", crash="a{sv}")
    def CrashDetected(self, crash: dict[str, Variant]) -> dict[str, Variant]:  # noqa: N802
        return crash

    @signal()
    @dbus_signature("s", id="s")
    def CrashDismissed(self, id: str) -> str:  # noqa: N802
        return id

    @dbus_property(access=PropertyAccess.READ)
    @dbus_signature("u")
    def UnseenCount(self) -> int:  # noqa: N802
        return self._unseen

    @dbus_property(access=PropertyAccess.READ)
    @dbus_signature("s")
    def Version(self) -> str:  # noqa: N802
        return VERSION

    def announce(self, crash: CrashSummary) -> None:
        """Emit CrashDetected for a new trusted crash."""
        self.CrashDetected(to_variants(crash))

    def dismissed(self, crash_id: str) -> None:
        self.CrashDismissed(crash_id)

    def refresh_unseen(self) -> None:
        """Emit PropertiesChanged when the unseen count changed."""
        count = self._backend.unseen_count()
        if count != self._unseen:
            self._unseen = count
            self.emit_properties_changed({"UnseenCount": count})
