"""Privacy: which fields of a crash may leave the app (DESIGN.md §4, SECURITY.md 9).

The environment of the crashed process holds tokens and passwords, and command lines often do
too (`--password=…`, URLs with tokens). Neither reaches notifications, D-Bus, CLI output, logs
or exports unless the user explicitly asks for it (SECURITY.md 9). Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping

from drkonqi_lite_collector.journal.schema import Field

#: Fields withheld unless the user reveals them.
SECRET_FIELDS: frozenset[str] = frozenset({Field.ENVIRON, Field.CMDLINE})
REDACTED = "(hidden: shown only on request, it may contain secrets)"


def public_fields(fields: Mapping[str, str]) -> dict[str, str]:
    """Every field except the secret ones (dropped, not masked: nothing to leak by length)."""
    return {k: v for k, v in fields.items() if k not in SECRET_FIELDS}


def redacted_fields(fields: Mapping[str, str]) -> dict[str, str]:
    """Every field, with the secret ones replaced by a note saying they were withheld."""
    return {k: (REDACTED if k in SECRET_FIELDS else v) for k, v in fields.items()}
