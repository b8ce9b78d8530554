"""Restarting a crashed program and finding its bug tracker, from installed metadata only.

A crashed program is restarted only through its installed .desktop file (found by desktop id in
the XDG data directories), never through a command line from the journal entry, which anyone
who can crash a program controls (SECURITY.md 6, CVE-2016-9951). It is not restarted while a
process of the user already runs that executable. The bug tracker comes from the program's
AppStream metainfo (`<url type="bugtracker">`) or the .desktop file's X-KDE/X-GNOME keys; only
http(s) addresses are offered.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from pathlib import Path

from drkonqi_lite.adapters.desktop_entry import (
    MAX_DESKTOP_FILE,
    application_dirs,
    desktop_entry_values,
)

#: Exec field codes (Desktop Entry spec, "The Exec key"): dropped, we open no files.
_FIELD_CODES = {"%f", "%F", "%u", "%U", "%d", "%D", "%n", "%N", "%i", "%c", "%k", "%v", "%m"}
_BUG_KEYS = ("X-KDE-BugReport", "X-GNOME-Bugzilla-URL", "X-DocPath-BugReport")


class LaunchError(Exception):
    """The program cannot be restarted; the message says why, in words for the user."""


def desktop_file(desktop_id: str, env: Mapping[str, str] = os.environ) -> Path | None:
    """The installed .desktop file for `desktop_id` ("org.kde.kate"), by XDG priority."""
    if not desktop_id or "/" in desktop_id or desktop_id.startswith("."):
        return None
    for directory in application_dirs(env):
        candidate = directory / f"{desktop_id}.desktop"
        if candidate.is_file():
            return candidate
        # Desktop ids map "-" to sub-directories: kde4-kate.desktop = kde4/kate.desktop.
        nested = directory / (desktop_id.replace("-", "/", 1) + ".desktop")
        if "-" in desktop_id and nested.is_file():
            return nested
    return None


def _entry(path: Path) -> dict[str, str]:
    """The keys we use of the file's [Desktop Entry] group, read as the index reads them."""
    if path.stat().st_size > MAX_DESKTOP_FILE:
        raise LaunchError(f"{path} is too large")
    text = path.read_text(encoding="utf-8", errors="replace")
    entry = desktop_entry_values(text, ("Exec", "Path", *_BUG_KEYS))
    if entry is None:
        raise LaunchError(f"{path} has no [Desktop Entry]")
    return entry


def exec_argv(exec_line: str) -> list[str]:
    """The argv of an Exec= value without field codes (we pass no files or URLs)."""
    try:
        words = shlex.split(exec_line)
    except ValueError as exc:
        raise LaunchError(f"malformed Exec line: {exc}") from None
    argv = [w.replace("%%", "%") for w in words if w not in _FIELD_CODES]
    if not argv:
        raise LaunchError("the .desktop file has no Exec line")
    return argv


def running_pids(exe: str, uid: int | None = None, proc: Path = Path("/proc")) -> list[int]:
    """PIDs of the user's processes whose executable is `exe`."""
    uid = os.getuid() if uid is None else uid
    found: list[int] = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if entry.stat().st_uid != uid:
                continue
            target = str((entry / "exe").readlink())
        except OSError:
            continue
        if target.removesuffix(" (deleted)") == exe:
            found.append(int(entry.name))
    return found


def restart_blocker(desktop_id: str, exe: str) -> str:
    """Why Restart may not run now ("" when it may), for the disabled button."""
    if desktop_file(desktop_id) is None:
        return (
            "No installed application entry (.desktop file) matches this program; "
            "for your safety it is never restarted from the crash's command line."
        )
    if exe and running_pids(exe):
        return "The program is already running again."
    return ""


def restart(desktop_id: str, exe: str) -> int:
    """Start the program from its installed .desktop file, detached; its PID."""
    reason = restart_blocker(desktop_id, exe)
    if reason:
        raise LaunchError(reason)
    path = desktop_file(desktop_id)
    if path is None:  # pragma: no cover - restart_blocker checked it
        raise LaunchError("no .desktop file")
    entry = _entry(path)
    argv = exec_argv(entry.get("Exec", ""))
    cwd = entry.get("Path") or str(Path.home())
    try:
        proc = subprocess.Popen(
            argv,
            cwd=cwd if Path(cwd).is_dir() else None,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # outlives us, not our child in any way that matters
        )
    except OSError as exc:
        raise LaunchError(f"cannot start {argv[0]}: {exc.strerror}") from None
    return proc.pid


def metainfo_dirs(env: Mapping[str, str] = os.environ) -> list[Path]:
    dirs = env.get("XDG_DATA_DIRS") or "/usr/local/share:/usr/share"
    return [Path(d) / "metainfo" for d in dirs.split(":") if d.startswith("/")]


def _web(url: str) -> str:
    url = url.strip()
    return url if url.startswith(("https://", "http://")) and " " not in url else ""


def bug_tracker(desktop_id: str, env: Mapping[str, str] = os.environ) -> str:
    """The program's bug tracker URL from AppStream or its .desktop file, "" when unknown."""
    if not desktop_id:
        return ""
    for directory in metainfo_dirs(env):
        for suffix in (".metainfo.xml", ".appdata.xml"):
            path = directory / f"{desktop_id}{suffix}"
            if not path.is_file() or path.stat().st_size > MAX_DESKTOP_FILE:
                continue
            try:
                root = ET.parse(path).getroot()  # noqa: S314 (installed by the distribution)
            except ET.ParseError:
                continue
            for url in root.iter("url"):
                if url.get("type") == "bugtracker" and url.text and _web(url.text):
                    return _web(url.text)
    found = desktop_file(desktop_id, env)
    if found is not None:
        try:
            entry = _entry(found)
        except (LaunchError, OSError):
            return ""
        for key in _BUG_KEYS:
            if _web(entry.get(key, "")):
                return _web(entry.get(key, ""))
    return ""
