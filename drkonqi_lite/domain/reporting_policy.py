"""Where a crash's report goes: the DSN from the command line, the user's setting or the
admin's `/etc/drkonqi-lite/reporting.conf` (per-program rules).

The admin file (ini):

    [Reporting]
    DSN = https://KEY@sentry.example.org/3     # every program without a rule of its own

    [Program kwrite]                            # one section per rule, first match wins
    Package = kwrite                            # fnmatch globs, either or both
    Executable = /usr/bin/kwrite*
    DSN = https://KEY@bugs.kde.example/7        # empty: never report this program

    [Fleet]                                     # drkonqi-lite-fleet: every crash of the machine
    Enabled = no                                # off unless the admin says yes
    DSN = https://KEY@sentry.example.org/9
    IncludeCommandLine = no                     # command lines may hold secrets
    IncludeHostname = no

    [Fleet Program in-house]                    # the fleet's own rules, as [Program NAME]
    Executable = /opt/acme/*
    DSN =                                       # empty: the fleet never forwards these

Precedence for the app: `--dsn`, then the user's `report_dsn` setting, then the first matching
[Program] rule, then the admin default; for the fleet: the first matching [Fleet Program] rule,
then [Fleet] DSN (one code path, `_route`). Bad files and bad DSNs become warnings, never a crash
of the app. Pure.
"""

from __future__ import annotations

import configparser
import dataclasses
import fnmatch
from collections.abc import Callable

from drkonqi_lite.domain.crash import Crash
from drkonqi_lite.domain.dsn import Dsn, DsnError, parse_dsn

ADMIN_SECTION = "Reporting"
FLEET_SECTION = "Fleet"
RULE_PREFIX = "Program "
FLEET_RULE_PREFIX = "Fleet Program "


@dataclasses.dataclass(frozen=True, slots=True)
class Rule:
    name: str
    package: str
    executable: str
    dsn: str

    def matches(self, crash: Crash) -> bool:
        if not self.package and not self.executable:
            return False
        if self.package and not fnmatch.fnmatchcase(crash.package, self.package):
            return False
        return not self.executable or fnmatch.fnmatchcase(crash.exe, self.executable)


@dataclasses.dataclass(frozen=True, slots=True)
class FleetPolicy:
    """The [Fleet] section: whether the machine's crashes are forwarded, where, and with what.
    The environment is never sent, whatever this says."""

    enabled: bool = False
    dsn: str = ""
    include_cmdline: bool = False
    include_hostname: bool = False
    rules: tuple[Rule, ...] = ()


@dataclasses.dataclass(frozen=True, slots=True)
class AdminPolicy:
    default_dsn: str = ""
    rules: tuple[Rule, ...] = ()
    fleet: FleetPolicy = FleetPolicy()


class NoDestinationError(LookupError):
    """No DSN for this crash (the message says where one can be configured)."""


def parse_admin_policy(text: str, warn: Callable[[str], None]) -> AdminPolicy:
    parser = configparser.ConfigParser(interpolation=None, inline_comment_prefixes=("#",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    try:
        parser.read_string(text)
    except configparser.Error as exc:
        warn(f"reporting.conf ignored: {' '.join(str(exc).split())}")
        return AdminPolicy()
    for section in parser.sections():
        if section not in {ADMIN_SECTION, FLEET_SECTION} and not section.startswith(
            (RULE_PREFIX, FLEET_RULE_PREFIX)
        ):
            warn(f"reporting.conf: unknown section [{section}] ignored")
    rules = _rules(parser, RULE_PREFIX)
    fleet = _fleet(parser, warn)
    return AdminPolicy(parser.get(ADMIN_SECTION, "DSN", fallback=""), rules, fleet)


def _rules(parser: configparser.ConfigParser, prefix: str) -> tuple[Rule, ...]:
    """The `[PREFIX NAME]` sections, in file order (first match wins)."""
    out = []
    for section in parser.sections():
        if section.startswith(prefix):
            get = parser[section].get
            out.append(Rule(section[len(prefix) :], get("Package", ""), get("Executable", ""),
                            get("DSN", "")))  # fmt: skip
    return tuple(out)


def _fleet(parser: configparser.ConfigParser, warn: Callable[[str], None]) -> FleetPolicy:
    rules = _rules(parser, FLEET_RULE_PREFIX)
    if not parser.has_section(FLEET_SECTION):
        return FleetPolicy(rules=rules)
    section = parser[FLEET_SECTION]

    def flag(key: str) -> bool:
        try:
            return section.getboolean(key, fallback=False)
        except ValueError:
            warn(f"reporting.conf [Fleet] {key}={section.get(key)!r} is not yes/no; taken as no")
            return False

    return FleetPolicy(flag("Enabled"), section.get("DSN", ""), flag("IncludeCommandLine"),
                       flag("IncludeHostname"), rules)  # fmt: skip


def destination(crash: Crash, cli_dsn: str, user_dsn: str, admin: AdminPolicy) -> Dsn:
    """The DSN for `crash`; DsnError for a malformed one, NoDestinationError for none."""
    if cli_dsn:
        return _parse(cli_dsn, "--dsn")
    if user_dsn:
        return _parse(user_dsn, "the report_dsn setting")
    return _route(crash, admin.rules, RULE_PREFIX, admin.default_dsn, ADMIN_SECTION,
                  "no report server configured (use --dsn, the report_dsn setting, or "
                  "/etc/drkonqi-lite/reporting.conf); report the crash on the program's bug "
                  "tracker")  # fmt: skip


def fleet_destination(crash: Crash, fleet: FleetPolicy) -> Dsn:
    """Where drkonqi-lite-fleet forwards `crash`: DsnError, NoDestinationError as above."""
    return _route(crash, fleet.rules, FLEET_RULE_PREFIX, fleet.dsn, FLEET_SECTION,
                  "reporting.conf [Fleet] has no DSN")  # fmt: skip


def fleet_dsns(fleet: FleetPolicy) -> list[tuple[str, str]]:
    """(where, DSN) of every non-empty DSN the fleet may use, to check them all at start."""
    named = [(f"[{FLEET_RULE_PREFIX}{r.name}]", r.dsn) for r in fleet.rules if r.dsn]
    return [(f"[{FLEET_SECTION}]", fleet.dsn), *named]


def _route(crash: Crash, rules: tuple[Rule, ...], prefix: str, default_dsn: str,
           default_section: str, none: str) -> Dsn:  # fmt: skip
    """The first rule matching `crash` decides (an empty DSN: not reported), else the default."""
    for rule in rules:
        if rule.matches(crash):
            if not rule.dsn:
                raise NoDestinationError(
                    f"the administrator's rule [{prefix}{rule.name}] sends no reports for this "
                    "program"
                )
            return _parse(rule.dsn, f"reporting.conf [{prefix}{rule.name}]")
    if default_dsn:
        return _parse(default_dsn, f"reporting.conf [{default_section}]")
    raise NoDestinationError(none)


def _parse(text: str, where: str) -> Dsn:
    try:
        return parse_dsn(text)
    except DsnError as exc:
        raise DsnError(f"{where}: {exc}") from None
