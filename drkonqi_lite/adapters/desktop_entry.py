"""Program names and icons from the installed .desktop files (XDG Desktop Entry spec).

A crash is presented as "Kate crashed" with Kate's icon when an installed, visible application
entry's TryExec or Exec program is the crashed executable; else by its comm. Only files in the
XDG data directories are read; nothing from them or from the entry is executed. The index is
built lazily once and rebuilt when an applications directory changes (its mtime).

What each file says is kept in `$XDG_CACHE_HOME/drkonqi-lite/applications.json` under its
mtime and size, so that a cold start (the socket unit started us for a crash) reads only the
files changed since (issue 12: a desktop's 300 entries cost 37 ms of its 200 ms even parsed
with str.rfind). A file changed within the last seconds is not cached (its mtime may not
change again at its next write); a cache that is not ours, too big or broken is rebuilt.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import time
from collections.abc import Mapping
from pathlib import Path

from drkonqi_lite.adapters.state_store import cache_dir, replace_file
from drkonqi_lite.domain.announcement import Program

log = logging.getLogger(__name__)
#: .desktop files larger than this are skipped (nobody writes a 1 MiB launcher).
MAX_DESKTOP_FILE = 1 << 20
#: A cache file larger than this is not ours: rebuilt (300 entries take ~60 KiB).
MAX_CACHE_FILE = 8 << 20
#: Files changed this recently are read but not cached (racy: their next change may keep the
#: same mtime).
RACY_S = 2.0
CACHE_VERSION = 1
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


#: One file's say: its (mtime_ns, size) stamp, then name, icon and the programs it names, or
#: nothing (not an application to show).
Record = tuple[list[int], list[str] | None, list[str]]


def read_record(path: str, stamp: list[int]) -> Record:
    """What the .desktop file at `path` says (nothing when unreadable or not an application)."""
    try:
        if stamp[1] > MAX_DESKTOP_FILE:
            return stamp, None, []
        with open(path, encoding="utf-8", errors="replace") as f:
            entry = desktop_entry_values(f.read())
    except OSError:
        return stamp, None, []
    if entry is None or entry.get("Type", "Application") != "Application":
        return stamp, None, []
    name = entry.get("Name", "")
    if entry.get("Hidden") == "true" or not name:
        return stamp, None, []
    targets = [entry.get("TryExec", ""), _program_of(entry.get("Exec", ""))]
    return stamp, [name[:80], entry.get("Icon", "")], [t for t in targets if t]


def desktop_files(directory: Path) -> list[tuple[str, str, list[int]]]:
    """(path, desktop id, stamp) of every .desktop file under `directory`, sorted by path
    (symlinked directories are not followed)."""
    found = []
    base = len(str(directory)) + 1
    pending = [str(directory)]
    while pending:
        try:
            entries = list(os.scandir(pending.pop()))
        except OSError:
            continue
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                pending.append(entry.path)
            elif entry.name.endswith(".desktop"):
                try:
                    st = entry.stat()
                except OSError:
                    continue
                desktop_id = entry.path[base:].replace("/", "-").removesuffix(".desktop")
                found.append((entry.path, desktop_id, [st.st_mtime_ns, st.st_size]))
    return sorted(found)


class DesktopEntryIndex:
    """Maps executables (full path or bare name) to the Program to show."""

    def __init__(self, dirs: list[Path], cache: Path | None = None) -> None:
        self._dirs = dirs
        self._cache = cache
        self._stamp: tuple[float, ...] | None = None
        self._by_path: dict[str, Program] = {}
        self._by_name: dict[str, Program] = {}

    @classmethod
    def from_environment(cls) -> DesktopEntryIndex:
        return cls(application_dirs(), cache_dir() / "applications.json")

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
        cached = self._load()
        records: dict[str, Record] = {}
        seen_ids: set[str] = set()
        for directory in self._dirs:
            for path, desktop_id, stamp in desktop_files(directory):
                if desktop_id in seen_ids:  # an earlier directory overrides (spec)
                    continue
                seen_ids.add(desktop_id)
                record = cached.get(path)
                if record is None or record[0] != stamp:
                    record = read_record(path, stamp)
                records[path] = record
                self._add(record, desktop_id)
        if records != cached:
            self._save(records)

    def _add(self, record: Record, desktop_id: str) -> None:
        _stamp, shown, targets = record
        if shown is None:
            return
        program = Program(name=shown[0], icon=shown[1], desktop_entry=desktop_id)
        for target in targets:
            if target.startswith("/"):
                self._by_path.setdefault(target, program)
            else:
                self._by_name.setdefault(target, program)

    def _load(self) -> dict[str, Record]:
        if self._cache is None:
            return {}
        try:
            with self._cache.open("rb") as f:
                raw = f.read(MAX_CACHE_FILE + 1)
            data = json.loads(raw) if len(raw) <= MAX_CACHE_FILE else None
        except (OSError, ValueError):
            return {}
        if not isinstance(data, dict) or data.get("version") != CACHE_VERSION:
            return {}
        files = data.get("files")
        if not isinstance(files, dict):
            return {}
        return {path: (rec[0], rec[1], rec[2]) for path, rec in files.items()
                if _is_record(rec)}  # fmt: skip

    def _save(self, records: dict[str, Record]) -> None:
        if self._cache is None:
            return
        settled = (time.time() - RACY_S) * 1e9
        files = {path: rec for path, rec in records.items() if rec[0][0] < settled}
        try:
            self._cache.parent.mkdir(parents=True, exist_ok=True)
            replace_file(self._cache, lambda f: json.dump(
                {"version": CACHE_VERSION, "files": files}, f, separators=(",", ":")))  # fmt: skip
        except OSError as exc:
            log.warning("cannot save %s: %s", self._cache, exc)

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


def _is_record(rec: object) -> bool:
    """A cache record as _save writes it (anything else in the file is dropped)."""
    if not (isinstance(rec, list) and len(rec) == 3):
        return False
    stamp, shown, targets = rec
    return (isinstance(stamp, list) and len(stamp) == 2 and all(type(n) is int for n in stamp)
            and (shown is None or (isinstance(shown, list) and len(shown) == 2
                                   and all(isinstance(t, str) for t in shown)))
            and isinstance(targets, list) and all(isinstance(t, str) for t in targets))  # fmt: skip
