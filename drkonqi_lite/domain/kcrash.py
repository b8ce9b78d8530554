"""What KCrash told us about a KDE program's crash: its metadata file, parsed and matched.

KCrash (KDE Frameworks) writes `~/.cache/kcrash-metadata/<appname>.<bootid>.<pid>.ini` (KF6;
KF5 5.103, Debian 12's, writes `<pid>.ini`) from its signal handler, just before the program
dumps core, and only where systemd-coredump is the kernel's handler and DrKonqi's processor is
installed (kcrash.cpp shouldWriteMetadataToDisk). The file is `key=value` lines in groups:
`[KCrash]` holds exe, appname, appversion, programname (KAboutData's display name), bugaddress,
productname, pid, signal, ...; `[KCrashTags]`, `[KCrashExtra]` and `[KCrashGPU]` what the
program added; `[KCrashComplete]` ends it (KF6). A newline in a value is written as `\\n`.
Nothing removes it but DrKonqi's cleanup, so this reads it and never deletes it.

Every byte of it was written by the crashed program: bounded here, shown only as inert text
(plain_text), never executed or opened. Pure: adapters/kcrash_file.py finds and opens the file.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from drkonqi_lite.domain.announcement import Program
from drkonqi_lite.domain.crash import bounded

#: The biggest file we read (KCrash's own are well under 4 KiB).
MAX_BYTES = 64 * 1024
#: Longest value kept, and most keys kept per group.
MAX_VALUE_CHARS = 512
MAX_KEYS = 64
#: A file written by the crash's own KCrash handler is written a moment before the kernel
#: stamps the crash (%t, whole seconds) and at most KCrash's alarm(3) later.
MTIME_SLACK_S = 10
DIRECTORY = "kcrash-metadata"


@dataclasses.dataclass(frozen=True, slots=True)
class KCrashInfo:
    """The fields of a KCrash metadata file that the app shows and reports."""

    #: KAboutData's display name ("Kate"), "" when the program set none.
    display_name: str
    version: str
    #: Where the program's bugs go: an e-mail address or a URL (shown as text, never opened).
    bug_address: str
    #: KAboutData's product name on the KDE bug tracker ("kate").
    product: str
    app_name: str
    tags: Mapping[str, str] = dataclasses.field(default_factory=dict)


def parse_groups(text: str) -> dict[str, dict[str, str]]:
    """The `[Group]` → {key: value} of an ini file as KCrash writes it (bounded)."""
    groups: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    for line in text.splitlines():
        if line.startswith("[") and line.endswith("]"):
            name = bounded(line[1:-1], 64)
            current = groups.setdefault(name, {}) if len(groups) < MAX_KEYS else None
            continue
        key, sep, value = line.partition("=")
        if current is None or not sep or not key or len(current) >= MAX_KEYS:
            continue
        current[bounded(key, 64)] = bounded(value.replace("\\n", "\n"), MAX_VALUE_CHARS)
    return groups


def matching_info(text: str, *, pid: int, exe: str) -> KCrashInfo | None:
    """The info in a metadata file's text if it describes the crash of `pid` running `exe`:
    KCrash records both (`pid=`, `exe=`), so a stale file of a recycled PID or another
    program does not match. None when it does not."""
    groups = parse_groups(text)
    kcrash = groups.get("KCrash")
    if kcrash is None or kcrash.get("pid") != str(pid):
        return None
    if exe and kcrash.get("exe", exe) != exe:
        return None

    def value(key: str) -> str:
        return bounded(kcrash.get(key, ""), 200)

    return KCrashInfo(
        display_name=value("programname"),
        version=value("appversion"),
        bug_address=value("bugaddress"),
        product=value("productname"),
        app_name=value("appname"),
        tags=dict(groups.get("KCrashTags", {})),
    )


def presented(program: Program, info: KCrashInfo | None) -> Program:
    """How to name a crashed KDE program: KCrash's display name (KAboutData's, what the program
    calls itself at the moment of the crash) over the .desktop lookup; the icon stays."""
    if info is None or not info.display_name.strip():
        return program
    return dataclasses.replace(program, name=info.display_name)


def kcrash_dict(info: KCrashInfo | None) -> dict[str, str]:
    """The D-Bus / JSON form (a{ss}); {} without KCrash metadata."""
    if info is None:
        return {}
    return {
        "display_name": info.display_name,
        "version": info.version,
        "bug_address": info.bug_address,
        "product": info.product,
        "app_name": info.app_name,
    }
