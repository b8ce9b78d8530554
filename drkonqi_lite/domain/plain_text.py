"""Hostile text made inert for display: control, bidi and invisible characters shown as escapes.

A comm, exe, command line or backtrace may carry newlines, terminal escapes, or bidi overrides
(U+202E) that would reorder what the user reads (SECURITY.md 5). Qt widgets are always given
plain text (never rich text); this module also makes the characters themselves visible, the same
way `drkonqi-lite show` and the log lines print them (`\\x1b`, `\\u202e`). Pure: no I/O.
"""

from __future__ import annotations

import re

#: C0/C1 controls except tab and newline, bidi embeddings/overrides/isolates, marks, zero-width
#: characters, line/paragraph separators and the BOM (Unicode TR#9, TR#36).
_HIDDEN = re.compile(
    r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]"
)


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def one_line(text: str, limit: int | None = 300) -> str:
    """One line of inert text: newlines and tabs escaped too, cut at `limit` (None: never) with
    an ellipsis. The one escaper for hostile text on every surface: widgets, terminal, logs."""
    flat = _HIDDEN.sub(_escape, text).replace("\n", "\\n").replace("\t", "\\t")
    return flat if limit is None or len(flat) <= limit else flat[: limit - 1] + "…"


def multi_line(text: str) -> str:
    """Inert text that keeps its line breaks and tabs."""
    return _HIDDEN.sub(_escape, text)


#: Zero-width space: a line-break opportunity that draws nothing (Unicode UAX #14, class ZW).
BREAK = "\u200b"
_LONG_RUN = re.compile(r"[^\s/]{40}(?=[^\s/])|/(?=[^\s/])")


def wrappable(text: str) -> str:
    """Inert `text` that a word-wrapping label can break: after each "/" and every 40 characters
    of a run without spaces (a 4 KiB path must not widen the window past the screen)."""
    return _LONG_RUN.sub(lambda m: m.group() + BREAK, text)
