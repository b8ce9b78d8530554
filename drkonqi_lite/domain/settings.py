"""User settings of the tray app (pure: parsing and defaults, no file access).

Stored by the state adapter as `$XDG_CONFIG_HOME/drkonqi-lite/settings.ini`, section `[App]`.
Unknown keys and bad values fall back to the defaults with a warning instead of failing: a
broken settings file must never keep crash notifications from a user.
"""

from __future__ import annotations

import configparser
import dataclasses
from collections.abc import Callable

_TRUE = {"1", "yes", "true", "on"}
_FALSE = {"0", "no", "false", "off"}


@dataclasses.dataclass(frozen=True, slots=True)
class Settings:
    """What the user can configure."""

    #: Crashes older than this are not announced at login (nor listed by default).
    catchup_days: float = 3.0
    #: Extra delay after login before the catch-up notification (the server is awaited anyway).
    catchup_delay_ms: int = 0
    #: How long to wait for a notification server at login before using the tray balloon.
    notification_server_wait_ms: int = 5000
    #: Show the tray icon even when there is no unseen crash.
    tray_always: bool = False
    #: A crash of the same program within this window updates the same notification.
    group_window_s: float = 600.0
    #: How many recent crashes the tray menu lists.
    tray_menu_items: int = 10
    #: Let gdb download missing debug symbols from the distribution's debuginfod server when
    #: it makes a full backtrace (this sends the build-ids of the crashed program's libraries
    #: over the network, so it is off until the user opts in).
    debuginfod: bool = False
    #: Where this user's crash reports go (a Sentry DSN; empty: the administrator's choice,
    #: /etc/drkonqi-lite/reporting.conf). `drkonqi-lite report --dsn` overrides it.
    report_dsn: str = ""
    #: Send the report of every new crash without asking (the crash window's "for every
    #: program"; undone from the tray menu), and of these programs (a JSON list of paths).
    report_always: bool = False
    report_programs: str = ""


def parse_settings(text: str, warn: Callable[[str], None]) -> Settings:
    """Settings from the ini text; every problem is reported through `warn` and skipped."""
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(text)
    except configparser.Error as exc:
        warn(f"settings ignored: {exc}")
        return Settings()
    if not parser.has_section("App"):
        return Settings()
    defaults = Settings()
    values: dict[str, object] = {}
    for field in dataclasses.fields(Settings):
        raw = parser.get("App", field.name, fallback=None)
        if raw is None:
            continue
        current = getattr(defaults, field.name)
        try:
            if isinstance(current, bool):
                low = raw.strip().lower()
                if low not in _TRUE | _FALSE:
                    raise ValueError(raw)
                values[field.name] = low in _TRUE
            elif isinstance(current, str):
                values[field.name] = raw.strip()
            elif isinstance(current, int):
                values[field.name] = max(0, int(raw))
            else:
                values[field.name] = max(0.0, float(raw))
        except ValueError:
            warn(f"settings: {field.name}={raw!r} is not valid, using {current!r}")
    for key in parser.options("App"):
        if key not in {f.name for f in dataclasses.fields(Settings)}:
            warn(f"settings: unknown key {key!r} ignored")
    return dataclasses.replace(defaults, **values)  # type: ignore[arg-type]
