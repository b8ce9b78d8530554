"""The fleet's per-program rules ([Fleet Program NAME]) route a crash as the app's [Program NAME]
rules do, through the same code, but only for the fleet: neither set leaks into the other."""

from __future__ import annotations

import pytest

from drkonqi_lite.domain.dsn import DsnError
from drkonqi_lite.domain.reporting_policy import (
    NoDestinationError,
    destination,
    fleet_destination,
    fleet_dsns,
    parse_admin_policy,
)
from tests.entries import symbolized_crash as crash

ADMIN = """
[Reporting]
DSN = https://app@sentry.example.org/3

[Program kwrite]
Package = kwrite
DSN = https://kde@bugs.kde.example/7

[Fleet]
Enabled = yes
DSN = https://fleet@sentry.example.org/9

[Fleet Program kwrite]
Package = kw*
DSN = https://fleetkde@bugs.kde.example/8

[Fleet Program in-house]
Executable = /opt/acme/*
DSN =
"""


def test_first_matching_fleet_rule_wins_else_the_fleet_dsn() -> None:
    fleet = parse_admin_policy(ADMIN, pytest.fail).fleet
    assert fleet_destination(crash(), fleet).public_key == "fleetkde"  # package kwrite
    other = crash(COREDUMP_PACKAGE_NAME="gedit")
    assert fleet_destination(other, fleet).public_key == "fleet"
    acme = crash(COREDUMP_PACKAGE_NAME="", COREDUMP_EXE="/opt/acme/tool")
    with pytest.raises(NoDestinationError, match=r"\[Fleet Program in-house\] sends no reports"):
        fleet_destination(acme, fleet)


def test_the_app_and_the_fleet_keep_their_own_rules() -> None:
    admin = parse_admin_policy(ADMIN, pytest.fail)
    assert [r.name for r in admin.rules] == ["kwrite"]
    assert [r.name for r in admin.fleet.rules] == ["kwrite", "in-house"]
    acme = crash(COREDUMP_PACKAGE_NAME="", COREDUMP_EXE="/opt/acme/tool")
    assert destination(acme, "", "", admin).public_key == "app", "a fleet rule is not the app's"


def test_every_fleet_dsn_is_listed_for_the_start_up_check() -> None:
    fleet = parse_admin_policy(ADMIN + "[Fleet Program bad]\nPackage = x\nDSN = nonsense\n",
                               pytest.fail).fleet  # fmt: skip
    assert [where for where, _ in fleet_dsns(fleet)] == [
        "[Fleet]", "[Fleet Program kwrite]", "[Fleet Program bad]",
    ]  # fmt: skip
    bad = crash(COREDUMP_PACKAGE_NAME="x")
    with pytest.raises(DsnError, match=r"\[Fleet Program bad\]"):
        fleet_destination(bad, fleet)


def test_fleet_rules_without_a_fleet_section_are_kept_and_off() -> None:
    fleet = parse_admin_policy("[Fleet Program x]\nPackage = x\nDSN =\n", pytest.fail).fleet
    assert not fleet.enabled
    assert [r.name for r in fleet.rules] == ["x"]
