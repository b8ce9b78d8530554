"""Reading the packaging files the tests check: unit files as systemd parses them.

Kept small and strict on purpose: a key the tests look for must be spelled exactly as systemd
spells it, and a directive is seen in the section it is in.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGING = ROOT / "packaging"
SYSTEM_UNITS = sorted((PACKAGING / "systemd").iterdir())
#: Added by the tray app's branch; tested when present.
USER_UNIT = PACKAGING / "drkonqi-lite.service"
#: Every systemd user unit: the app, its wake-up socket, the login check (issue 12).
USER_UNITS = sorted(
    p for p in PACKAGING.iterdir() if p.suffix in {".service", ".socket"} and "." not in p.stem
)
DESKTOP_FILES = sorted(PACKAGING.glob("*.desktop"))
METAINFO = sorted(PACKAGING.glob("*.metainfo.xml"))
MAN_PAGES = sorted((PACKAGING / "man").iterdir())
EXEC_KEYS = (
    "ExecCondition",
    "ExecStart",
    "ExecStartPre",
    "ExecStartPost",
    "ExecStop",
    "ExecReload",
)
_SECTION = re.compile(r"^\[(.+)\]$")


@dataclasses.dataclass(frozen=True, slots=True)
class Directive:
    """One `Key=value` line, its section, and the contiguous block of lines it stands in."""

    section: str
    key: str
    value: str
    line: int
    #: The comment lines that open this directive's block (empty: an uncommented block).
    block_comment: tuple[str, ...]


def directives(path: Path) -> list[Directive]:
    """Every directive of a unit file, with the comment that opens its block of lines."""
    out: list[Directive] = []
    section = ""
    comment: list[str] = []
    block_comment: tuple[str, ...] = ()
    in_block = False
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line:
            comment, block_comment, in_block = [], (), False
            continue
        if line.startswith(("#", ";")):
            if in_block:  # a comment inside a block opens a new block
                in_block = False
                comment = []
            comment.append(line)
            continue
        header = _SECTION.match(line)
        if header:
            section = header[1]
            comment, block_comment, in_block = [], (), False
            continue
        if not in_block:
            block_comment = tuple(comment)
            comment = []
            in_block = True
        key, _, value = line.partition("=")
        out.append(Directive(section, key.strip(), value.strip(), number, block_comment))
    return out


def exec_paths(path: Path) -> list[str]:
    """The programs a unit runs (ExecStart= and friends, without systemd's prefixes)."""
    found = []
    for d in directives(path):
        if d.key in EXEC_KEYS and d.value:
            found.append(d.value.split()[0].lstrip("-@:+!"))
    return found


def value(path: Path, section: str, key: str) -> str:
    """The value of a directive that must be there exactly once."""
    values = [d.value for d in directives(path) if d.section == section and d.key == key]
    assert len(values) == 1, f"{path.name}: [{section}] {key}= appears {len(values)} times"
    return values[0]
