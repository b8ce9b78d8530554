"""The crash report a user copies or saves (text or JSON), with the secrets withheld.

The environment and the command line (redaction.SECRET_FIELDS) never go into a report: they are
replaced by a note. Their values are also masked wherever they appear elsewhere in the report
(a full gdb backtrace prints string arguments and locals, which may be a token read from the
environment). Pure: the caller writes the result to the clipboard or a file.
"""

from __future__ import annotations

import datetime
import json
import re

from drkonqi_lite.domain import crash_facts
from drkonqi_lite.domain.crash import Crash
from drkonqi_lite.domain.kcrash import kcrash_dict
from drkonqi_lite.domain.python_stack import format_text, thread_dicts
from drkonqi_lite.domain.redaction import REDACTED, redacted_fields
from drkonqi_lite.domain.summary import summary
from drkonqi_lite_collector.journal.schema import Field

#: Values shorter than this are not masked in free text ("1", "C", "yes" would mangle it).
MIN_SECRET_CHARS = 6
MASK = "(hidden)"
REPORT_FORMAT = 1
#: Variables whose values are common words or paths, never secrets, and everywhere in a trace.
_HARMLESS_VARIABLES = frozenset({"PATH", "HOME", "PWD", "OLDPWD", "SHELL", "LANG", "TERM", "USER",
                                 "LOGNAME", "LANGUAGE", "SHLVL", "_"})  # fmt: skip


def absolute_when(timestamp_us: int) -> str:
    """Local time, "2026-11-26 07:01:02"."""
    moment = datetime.datetime.fromtimestamp(timestamp_us / 1e6, tz=datetime.UTC).astimezone()
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def relative_when(timestamp_us: int, now_us: int) -> str:
    """How long ago, in words: "just now", "5 minutes ago", "2 days ago"."""
    seconds = max(0, (now_us - timestamp_us) // 1_000_000)
    for size, unit in ((86400, "day"), (3600, "hour"), (60, "minute")):
        if seconds >= size:
            n = seconds // size
            return f"{n} {unit}{'' if n == 1 else 's'} ago"
    return "just now"


def secret_values(crash: Crash) -> list[str]:
    """The values to mask in free text: environment values and command-line arguments."""
    values: set[str] = set()
    for line in crash.fields.get(Field.ENVIRON, "").split("\n"):
        name, sep, value = line.partition("=")
        if sep and name not in _HARMLESS_VARIABLES and len(value) >= MIN_SECRET_CHARS:
            values.add(value)
    # COREDUMP_CMDLINE is argv joined by spaces; argv[0] is the program (already shown as exe).
    for word in crash.cmdline.split(" ")[1:]:
        _name, sep, value = word.partition("=")
        for candidate in (word, value if sep else ""):
            if len(candidate) >= MIN_SECRET_CHARS:
                values.add(candidate)
    return sorted(values, key=len, reverse=True)


def mask_secrets(text: str, crash: Crash) -> str:
    """`text` with every environment value and command-line argument replaced by MASK."""
    values = secret_values(crash)
    if not values or not text:
        return text
    pattern = re.compile("|".join(re.escape(v) for v in values))
    return pattern.sub(MASK, text)


def reason_line(crash: Crash) -> str:
    """ "Segmentation fault (SIGSEGV)"; "Unhandled exception ValueError: bad" for exceptions."""
    if crash.exception_type:
        value = crash.exception_value.partition("\n")[0]
        return crash.reason + (f": {value}" if value else "")
    return f"{crash.reason} ({crash.signal_name})"


def _header(crash: Crash, program_name: str) -> list[tuple[str, str]]:
    version = f" {crash.package_version}" if crash.package_version else ""
    return [
        ("Program", program_name),
        ("Executable", crash.exe),
        ("Reason", reason_line(crash)),
        *crash_facts.facts(crash),
        ("When", absolute_when(crash.timestamp_us)),
        ("PID", str(crash.pid)),
        ("User", str(crash.uid)),
        ("Package", f"{crash.package}{version}" if crash.package else ""),
        ("Unit", crash.unit),
        ("Host", crash.hostname),
        ("Core", str(crash.core_state)),
        ("Crash id", crash.id),
        ("Command line", REDACTED),
        ("Environment", REDACTED),
    ]


def report_text(crash: Crash, program_name: str, full_backtrace: str = "") -> str:
    """The plain-text report (what Copy report puts on the clipboard)."""
    lines = [f"{program_name} crashed with {reason_line(crash)}", ""]
    lines += [f"{key + ':':<14}{value}" for key, value in _header(crash, program_name) if value]
    if crash.python_threads:  # a Python program: its own frames say more than the C ones
        lines += ["", "Python stack", "-" * 12, format_text(crash.python_threads)]
    lines += ["", "Stack trace (from the journal entry)", "-" * 36]
    lines.append(crash.backtrace or "(none)")
    if full_backtrace:
        lines += ["", "Full backtrace (gdb)", "-" * 20, full_backtrace]
    lines += ["", "Journal fields", "-" * 14]
    for name, value in sorted(redacted_fields(crash.fields).items()):
        if name == Field.MESSAGE:
            continue
        lines.append(f"{name}={value}")
    return mask_secrets("\n".join(lines) + "\n", crash)


def report_json(crash: Crash, program_name: str, full_backtrace: str = "") -> str:
    """The JSON report: the D-Bus crash dict keys, the traces and the redacted fields."""
    data: dict[str, object] = {
        "format": REPORT_FORMAT,
        **summary(crash, seen=True),
        "program": program_name,
        "reason": crash.reason,
        "package_version": crash.package_version,
        "backtrace": crash.backtrace,
        "python_threads": thread_dicts(crash.python_threads),
        "exception_type": crash.exception_type,
        "exception_value": crash.exception_value,
        "full_backtrace": full_backtrace,
        "fields": redacted_fields(crash.fields),
        "tid": crash_facts.thread_tid(crash),
        "signal_cause": crash_facts.signal_cause(crash),
        "kcrash": kcrash_dict(crash.kcrash),
    }
    del data["seen"]
    text = json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False)
    # Mask in the decoded values, then re-encode: escaping may differ from the raw text.
    masked = json.loads(text, object_hook=lambda d: {k: _mask_any(v, crash) for k, v in d.items()})
    return json.dumps(masked, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _mask_any(value: object, crash: Crash) -> object:
    return mask_secrets(value, crash) if isinstance(value, str) else value
