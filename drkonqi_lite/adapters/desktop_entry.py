"""Program names and icons from the installed .desktop files (XDG Desktop Entry spec).

A crash is presented as "Kate crashed" with Kate's icon when an installed, visible application
entry's TryExec or Exec program is the crashed executable; else by its comm. Only files in the
XDG data directories are read; nothing from them or from the entry is executed. The index is
built lazily once and rebuilt when an applications directory changes (its mtime).
"""

from __future__ import annotations

import logging
import os
import shlex
from collections.abc import Mapping
from pathlib import Path

from drkonqi_lite.domain.announcement import Program

log = logging.getLogger(__name__)
#: .desktop files larger than this are skipped (nobody writes a 1 MiB launcher).
MAX_DESKTOP_FILE = 1 << 20
#: Launchers that wrap the real program in Exec=; the program is the next word.
_WRAPPERS = {"env", "nice", "ionice", "taskset"}
_GROUP = "\n[Desktop Entry]"
#: The keys of an entry that name and find a program.
KEYS = ("Type", "Hidden", "Name", "Icon", "TryExec", "Exec")


def application_dirs(env: Mapping[str, str] = os.environ) -> list[Path]:
    """$XDG_DATA_HOME/applications then each $XDG_DATA_DIRS entry's, in priority order."""
    home = env.get("XDG_DATA_HOME") or (env.get("HOME", "/nonexistent") + "/.local/share")
    dirs = env.get("XDG_DATA_DIRS") or "/usr/local/share:/usr/share"
    return [Path(d) / "applications" for d in [home, *dirs.split(":")] if d.startswith("/")]


def _program_of(exec_line: str) -> str:
    try:
        words = shlex.split(exec_line)
    except ValueError:
        return ""
    while words and (words[0] in _WRAPPERS or "=" in words[0]):
        words = words[1:]
    return words[0] if words else ""


def desktop_entry_values(text: str, keys: tuple[str, ...] = KEYS) -> dict[str, str] | None:
    """The values of `keys` in a file's [Desktop Entry] group (None: it has none). Not
    configparser: it took ~0.5 ms a file, 150 ms for a desktop's 300 entries in a cold start's
    notification path (issue 12); this finds each key with str.rfind. Spaces around "=" are
    ignored (spec); a key given twice keeps its last value, as configparser's non-strict mode
    did; a localised key (Name[de]) or a comment is not the key."""
    start = 0 if text.startswith(_GROUP[1:]) else text.find(_GROUP)
    if start < 0:
        return None
    end = text.find("\n[", start + 1)
    group = text[start : end if end >= 0 else len(text)]
    values: dict[str, str] = {}
    for key in keys:
        value = _last_value(group, "\n" + key)
        if value is not None:
            values[key] = value
    return values


def _last_value(group: str, prefix: str) -> str | None:
    """The value of the group's last `prefix=value` line (spaces around "=" allowed)."""
    # One rfind for "Name=", as entries are written, not one per localised "Name[xx]=" line.
    plain = group.rfind(prefix + "=")
    at = len(group)
    while (at := max(group.rfind(prefix + " ", 0, at), group.rfind(prefix + "\t", 0, at))) > plain:
        head, sep, value = _rest_of_line(group, at + len(prefix)).partition("=")
        if sep and not head.strip():
            return value.strip()
    return None if plain < 0 else _rest_of_line(group, plain + len(prefix) + 1).strip()


def _rest_of_line(text: str, start: int) -> str:
    end = text.find("\n", start)
    return text[start : end if end >= 0 else None]


class DesktopEntryIndex:
    """Maps executables (full path or bare name) to the Program to show."""

    def __init__(self, dirs: list[Path]) -> None:
        self._dirs = dirs
        self._stamp: tuple[float, ...] | None = None
        self._by_path: dict[str, Program] = {}
        self._by_name: dict[str, Program] = {}

    @classmethod
    def from_environment(cls) -> DesktopEntryIndex:
        return cls(application_dirs())

    def _mtimes(self) -> tuple[float, ...]:
        out = []
        for d in self._dirs:
            try:
                out.append(d.stat().st_mtime)
            except OSError:
                out.append(0.0)
        return tuple(out)

    def _rebuild(self) -> None:
        self._by_path.clear()
        self._by_name.clear()
        seen_ids: set[str] = set()
        for directory in self._dirs:
            try:
                files = sorted(directory.rglob("*.desktop"))
            except OSError:
                continue
            for file in files:
                desktop_id = str(file.relative_to(directory)).replace("/", "-")
                if desktop_id in seen_ids:  # an earlier directory overrides (spec)
                    continue
                seen_ids.add(desktop_id)
                self._add(file, desktop_id.removesuffix(".desktop"))

    def _add(self, file: Path, desktop_id: str) -> None:
        try:
            if file.stat().st_size > MAX_DESKTOP_FILE:
                return
            text = file.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return
        entry = desktop_entry_values(text)
        if entry is None:
            return
        if entry.get("Type", "Application") != "Application" or entry.get("Hidden") == "true":
            return
        name = entry.get("Name", "").strip()
        if not name:
            return
        program = Program(
            name=name[:80], icon=entry.get("Icon", "").strip(), desktop_entry=desktop_id
        )
        for key in ("TryExec", "Exec"):
            target = (
                _program_of(entry.get(key, "")) if key == "Exec" else entry.get(key, "").strip()
            )
            if not target:
                continue
            if target.startswith("/"):
                self._by_path.setdefault(target, program)
            else:
                self._by_name.setdefault(target, program)

    def refresh(self) -> None:
        """Re-read the entries if an applications directory changed (cheap otherwise)."""
        stamp = self._mtimes()
        if stamp != self._stamp:
            self._stamp = stamp
            self._rebuild()

    def lookup(self, exe: str, comm: str) -> Program:
        """The Program for a crashed executable; its comm (or exe's name) when no entry matches."""
        self.refresh()
        if exe:
            found = self._by_path.get(exe) or self._by_name.get(Path(exe).name)
            if found is not None:
                return found
            try:
                real = str(Path(exe).resolve(strict=True))
            except (OSError, RuntimeError):
                real = ""
            if real and real in self._by_path:
                return self._by_path[real]
        return Program(name=comm or Path(exe).name or "A program")
