"""Where a report goes (the admin's policy, the user's DSN, --dsn) and automatic reporting."""

from __future__ import annotations

import pytest

from drkonqi_lite.domain.dsn import DsnError
from drkonqi_lite.domain.reporting_policy import (
    NoDestinationError,
    destination,
    parse_admin_policy,
)
from tests.entries import symbolized_crash as crash

DSN = "https://abc123@sentry.example.org/42"


ADMIN = """
[Reporting]
DSN = https://default@sentry.example.org/1

[Program kwrite]
Package = kwrite
DSN = https://kde@bugs.kde.example/7

[Program secret]
Executable = /opt/secret/*
DSN =
"""


def test_destination_precedence_and_rules() -> None:
    admin = parse_admin_policy(ADMIN, pytest.fail)
    kwrite = crash()
    assert destination(kwrite, "", "", admin).public_key == "kde"
    assert destination(kwrite, "", "https://mine@me.example/3", admin).public_key == "mine"
    assert destination(kwrite, DSN, "https://mine@me.example/3", admin).public_key == "abc123"
    other = crash(COREDUMP_PACKAGE_NAME="gedit")
    assert destination(other, "", "", admin).public_key == "default"
    hidden = crash(COREDUMP_PACKAGE_NAME="", COREDUMP_EXE="/opt/secret/tool")
    with pytest.raises(NoDestinationError, match="sends no reports"):
        destination(hidden, "", "", admin)
    with pytest.raises(NoDestinationError, match="bug tracker"):
        destination(other, "", "", parse_admin_policy("", pytest.fail))
    with pytest.raises(DsnError, match="--dsn"):
        destination(other, "nonsense", "", admin)


def test_a_broken_admin_file_is_a_warning() -> None:
    warnings: list[str] = []
    policy = parse_admin_policy("[Reporting\nDSN=x", warnings.append)
    assert policy.default_dsn == ""
    assert len(warnings) == 1
    assert "\n" not in warnings[0]
