"""One crash record as one native Sentry event (DESIGN.md §2.5), ready for any Sentry-protocol
server (Sentry, self-hosted Sentry, GlitchTip, Bugsink).

What goes in: the signal as `exception.mechanism.meta.signal` (handled: false), every thread of
the quick stack trace with its frames (oldest caller first, as Sentry orders them), the crashing
thread marked, `debug_meta.images` of type `elf` with the build-id as `code_id` and the
`debug_id` that Sentry's own native SDK derives from it (so a server with uploaded symbols can
symbolize), contexts (os, device, app, desktop), tags, and a fingerprint from our crash
signature (repeats are one issue on the server, different crashes are not merged).
What never goes in: the environment, the journal fields, the core. The command line only when
the user asked, the hostname only when the caller (an admin's fleet) asked. Every string and
list is bounded. Pure: the caller passes the host facts (os-release, kernel, arch, desktop).
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Mapping
from typing import Any

from drkonqi_lite.domain.crash import Crash, bounded
from drkonqi_lite.domain.python_stack import PythonFrame
from drkonqi_lite.domain.report import mask_secrets
from drkonqi_lite.domain.signature import SIGNAL_MACHINERY, signature
from drkonqi_lite.domain.trace import Frame, Thread, parse_threads
from drkonqi_lite_collector.journal.schema import Field

#: Who made the event (Sentry's `sdk` interface).
SDK_NAME = "drkonqi-lite"
SDK_VERSION = "0.1.0"
#: Bounds: Sentry drops events over 1 MB; ours stay well below whatever the crash looks like.
MAX_IMAGES = 512
MAX_TAG = 200
MAX_COMMENT = 8192
MAX_CMDLINE = 4096
MAX_PATH = 1024
MAX_EVENT_BYTES = 512 * 1024


@dataclasses.dataclass(frozen=True, slots=True)
class HostFacts:
    """What the event says about the machine (read by an adapter, passed in)."""

    os_release: Mapping[str, str]
    kernel: str
    arch: str
    desktop: str = ""


@dataclasses.dataclass(frozen=True, slots=True)
class EventOptions:
    """The user's (or the admin's) choices for one event."""

    comment: str = ""
    include_cmdline: bool = False
    include_hostname: bool = False
    event_id: str = ""


@dataclasses.dataclass(frozen=True, slots=True)
class Image:
    """One mapped ELF object: where it was loaded and its build-id (hex, "" when unknown)."""

    path: str
    start: int
    end: int
    build_id: str


def debug_id(build_id: str) -> str:
    """The debug id Sentry derives from a GNU build-id: the first 16 bytes (zero-padded) read as
    a little-endian GUID, i.e. the first three fields byte-swapped (sentry-native's
    sentry_modulefinder_linux.c; Symbolicator's "identifiers" documentation)."""
    raw = bytes.fromhex(build_id)[:16].ljust(16, b"\0")
    return str(uuid.UUID(bytes_le=raw))


def _build_ids(crash: Crash) -> dict[str, str]:
    """Module path → build-id, from our collector's MODULES field or systemd-coredump's
    PACKAGE_JSON (`{"PATH": {"buildId": ...}}`)."""
    ids: dict[str, str] = {}
    for line in crash.fields.get(Field.MODULES, "").split("\n"):
        path, _, build_id = line.rpartition(" ")
        if path and _is_hex(build_id):
            ids[path] = build_id.lower()
    if not ids and crash.fields.get(Field.PACKAGE_JSON):
        try:
            data = json.loads(crash.fields[Field.PACKAGE_JSON])
        except ValueError:
            data = {}
        if isinstance(data, dict):
            for path, info in data.items():
                value = info.get("buildId", "") if isinstance(info, dict) else ""
                if isinstance(value, str) and _is_hex(value):
                    ids[str(path)] = value.lower()
    return ids


def _is_hex(text: str) -> bool:
    return 0 < len(text) <= 128 and len(text) % 2 == 0 and all(c in "0123456789abcdefABCDEF"
                                                                for c in text)  # fmt: skip


def images(crash: Crash) -> list[Image]:
    """The mapped ELF objects with their load ranges (from /proc/PID/maps in the entry), in
    address order: files with a build-id or an executable mapping (not fonts or locales)."""
    ranges: dict[str, list[int]] = {}
    executable: set[str] = set()
    for line in crash.fields.get(Field.PROC_MAPS, "").split("\n"):
        parts = line.split(None, 5)
        if len(parts) < 6 or not parts[5].startswith("/"):
            continue
        lo, _, hi = parts[0].partition("-")
        try:
            start, end = int(lo, 16), int(hi, 16)
        except ValueError:
            continue
        span = ranges.setdefault(parts[5], [start, end])
        span[0], span[1] = min(span[0], start), max(span[1], end)
        if "x" in parts[1]:
            executable.add(parts[5])
    ids = _build_ids(crash)
    found = [
        Image(path, lo, hi, ids.get(path, ""))
        for path, (lo, hi) in ranges.items()
        if path in ids or path in executable
    ]
    return sorted(found, key=lambda i: i.start)[:MAX_IMAGES]


def _image_of(frame: Frame, found: list[Image]) -> Image | None:
    for image in found:
        if image.start <= frame.pc < image.end:
            return image
    return None


def _frame(frame: Frame, found: list[Image], exe: str) -> dict[str, Any]:
    image = _image_of(frame, found)
    package = image.path if image is not None else frame.module
    out: dict[str, Any] = {"instruction_addr": f"0x{frame.pc:x}"}
    if frame.function:
        out["function"] = frame.function
    if package:
        out["package"] = bounded(package, MAX_PATH)
        out["in_app"] = package == exe
    if image is not None:
        out["image_addr"] = f"0x{image.start:x}"
    return out


def _stacktrace(thread: Thread, found: list[Image], exe: str) -> dict[str, Any]:
    # Sentry orders frames oldest caller first; the quick trace lists the innermost first.
    return {"frames": [_frame(f, found, exe) for f in reversed(thread.frames)]}


def _debug_meta(found: list[Image]) -> dict[str, Any]:
    out = []
    for image in found:
        entry: dict[str, Any] = {
            "type": "elf",
            "code_file": bounded(image.path, MAX_PATH),
            "image_addr": f"0x{image.start:x}",
            "image_size": image.end - image.start,
        }
        if image.build_id:
            entry["code_id"] = image.build_id
            entry["debug_id"] = debug_id(image.build_id)
        out.append(entry)
    return {"images": out}


def _contexts(crash: Crash, facts: HostFacts) -> dict[str, Any]:
    osr = facts.os_release
    contexts: dict[str, Any] = {
        "os": {
            "type": "os",
            "name": bounded(osr.get("NAME", "Linux")),
            "version": bounded(osr.get("VERSION_ID", "")),
            "build": bounded(osr.get("VERSION_CODENAME", "")),
            "kernel_version": bounded(facts.kernel),
        },
        "device": {"type": "device", "arch": bounded(facts.arch)},
        "app": {
            "type": "app",
            "app_name": crash.package or crash.comm,
            "app_version": crash.package_version,
            "app_identifier": bounded(crash.exe, MAX_PATH),
        },
    }
    if facts.desktop:
        contexts["desktop"] = {"type": "default", "name": bounded(facts.desktop)}
    return contexts


def _tags(crash: Crash, facts: HostFacts) -> dict[str, str]:
    tags = {
        "signal": crash.signal_name,
        "program": crash.comm,
        "package": crash.package,
        "os.id": facts.os_release.get("ID", ""),
        "arch": facts.arch,
        "source": str(crash.source),
        "core": str(crash.core_state),
    }
    return {k: bounded(v, MAX_TAG) for k, v in tags.items() if v}


def fingerprint(crash: Crash) -> list[str]:
    """What the server groups by: the program and our crash signature (signal + top frames)."""
    return ["drkonqi-lite", bounded(crash.program_key, MAX_PATH), bounded(signature(crash), 1024)]


def release(crash: Crash) -> str:
    """`package@version` (Sentry's release name: no slashes or newlines), "" without both."""
    if not crash.package or not crash.package_version:
        return ""
    text = f"{crash.package}@{crash.package_version}"
    return bounded("".join("-" if c in "/\n\r\t" else c for c in text), 200)


def _signal_meta(crash: Crash) -> dict[str, Any]:
    meta: dict[str, Any] = {"number": crash.signal, "name": crash.signal_name}
    code = crash.fields.get(Field.CODE, "")
    if code.lstrip("-").isdigit():
        meta["code"] = int(code)  # si_code: why the signal came (SEGV_MAPERR=1, SI_USER=0, ...)
    return meta


def _python_stacktrace(frames: tuple[PythonFrame, ...]) -> dict[str, Any]:
    # Already outermost first, as Sentry wants them.
    return {
        "frames": [
            {"function": f.function, "filename": bounded(f.file, MAX_PATH), "abs_path":
             bounded(f.file, MAX_PATH), "platform": "python"} | ({"lineno": f.line} if f.line > 0
                                                               else {})
            for f in frames
        ]
    }  # fmt: skip


def _exceptions(crash: Crash, crashed: Thread | None, found: list[Image]) -> list[dict[str, Any]]:
    """Sentry's exception values, the main one last: an unhandled Python exception, or the
    signal (with the Python stack before it when the crashed program was a Python script)."""
    if crash.is_exception:
        return [{
            "type": bounded(crash.exception_type),
            "value": bounded(crash.exception_value, 1024),
            "mechanism": {"type": "excepthook", "handled": False},
            "stacktrace": _python_stacktrace(crash.python_stack),
        }]  # fmt: skip
    named = [f.function for f in crashed.frames if f.function] if crashed else []
    # The frame a developer looks at first: past abort()/raise(), which every abort shares.
    top = next((f for f in named if f not in SIGNAL_MACHINERY), named[0] if named else None)
    value: dict[str, Any] = {
        "type": crash.signal_name or f"signal {crash.signal}",
        "value": f"{crash.reason} in {top or crash.comm or crash.exe}",
        "mechanism": {
            "type": "signalhandler",
            "handled": False,
            "synthetic": True,
            "meta": {"signal": _signal_meta(crash)},
        },
    }
    if crashed is not None:
        value["thread_id"] = crashed.tid
        value["stacktrace"] = _stacktrace(crashed, found, crash.exe)
    if not crash.python_stack:
        return [value]
    python = {
        "type": "PythonStack",
        "value": "the Python code that was running when the signal came",
        "mechanism": {"type": "chained", "handled": False, "synthetic": True},
        "stacktrace": _python_stacktrace(crash.python_stack),
    }
    return [python, value]


def _threads(crash: Crash, threads: list[Thread], found: list[Image]) -> list[dict[str, Any]]:
    out = []
    for t in threads:
        entry: dict[str, Any] = {"id": t.tid, "crashed": t.crashed, "current": t.crashed}
        if t.crashed and crash.fields.get(Field.THREAD_NAME):
            entry["name"] = bounded(crash.fields[Field.THREAD_NAME], 64)
        if not t.crashed:  # the crashing thread's frames are on the exception
            entry["stacktrace"] = _stacktrace(t, found, crash.exe)
        out.append(entry)
    return out


def build_event(crash: Crash, facts: HostFacts, options: EventOptions) -> dict[str, Any]:
    """The Sentry event for `crash` (a JSON-ready dict, at most MAX_EVENT_BYTES serialized)."""
    threads = parse_threads(crash.backtrace)
    found = images(crash)
    crashed = threads[0] if threads else None
    event: dict[str, Any] = {
        "event_id": options.event_id or uuid.uuid4().hex,
        "timestamp": crash.timestamp_us / 1e6,
        "platform": "python" if crash.is_exception else "native",
        "level": "fatal",
        "sdk": {"name": SDK_NAME, "version": SDK_VERSION},
        "exception": {"values": _exceptions(crash, crashed, found)},
        "threads": {"values": _threads(crash, threads, found)},
        "debug_meta": _debug_meta(found),
        "contexts": _contexts(crash, facts),
        "tags": _tags(crash, facts),
        "fingerprint": fingerprint(crash),
        "extra": {"crash_id": crash.id, "core_state": str(crash.core_state)},
    }
    if rel := release(crash):
        event["release"] = rel
    if options.include_hostname and crash.hostname:
        event["server_name"] = crash.hostname
    if options.comment:
        event["extra"]["user_comment"] = bounded(options.comment, MAX_COMMENT)
    event = _masked(event, crash)
    if options.include_cmdline and crash.cmdline:  # after masking: the user chose to send it
        event["extra"]["cmdline"] = bounded(crash.cmdline, MAX_CMDLINE)
    return _fit(event)


def _masked(event: dict[str, Any], crash: Crash) -> dict[str, Any]:
    """The event with every environment value and argument masked wherever it appears (a
    function or path name can carry a token as well as a field can)."""
    text = json.dumps(event, ensure_ascii=False)
    masked = mask_secrets(text, crash)
    if masked == text:
        return event
    return json.loads(  # type: ignore[no-any-return]
        text, object_hook=lambda d: {k: _mask_any(v, crash) for k, v in d.items()}
    )


def _mask_any(value: object, crash: Crash) -> object:
    if isinstance(value, str):
        return mask_secrets(value, crash)
    if isinstance(value, list):
        return [_mask_any(v, crash) for v in value]
    return value


def _fit(event: dict[str, Any]) -> dict[str, Any]:
    """Drop the other threads' frames, then images without a build-id, until the event fits."""
    if len(serialize(event)) <= MAX_EVENT_BYTES:
        return event
    for thread in event["threads"]["values"]:
        thread.pop("stacktrace", None)
    if len(serialize(event)) > MAX_EVENT_BYTES:
        images_ = event["debug_meta"]["images"]
        event["debug_meta"]["images"] = [i for i in images_ if "code_id" in i]
    if len(serialize(event)) > MAX_EVENT_BYTES:
        frames = event["exception"]["values"][-1].get("stacktrace", {}).get("frames", [])
        del frames[: max(0, len(frames) - 32)]
    return event


def serialize(event: Mapping[str, Any]) -> bytes:
    """The event as the envelope item carries it (compact UTF-8 JSON)."""
    return json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode()
