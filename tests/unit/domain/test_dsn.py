"""DSNs: the endpoint and auth they give, and what is wrong with a malformed one."""

from __future__ import annotations

import pytest

from drkonqi_lite.domain.dsn import DsnError, parse_dsn

DSN = "https://abc123@sentry.example.org/42"


def test_dsn_endpoint_and_auth() -> None:
    dsn = parse_dsn("https://abc123@sentry.example.org:8443/sub/path/42")
    assert dsn.envelope_url == "https://sentry.example.org:8443/sub/path/api/42/envelope/"
    assert "sentry_key=abc123" in dsn.auth_header
    assert "sentry_version=7" in dsn.auth_header
    assert parse_dsn(DSN).envelope_url == "https://sentry.example.org/api/42/envelope/"


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "empty"),
        ("sentry.example.org/42", "https://"),
        ("ftp://k@h/1", "https://"),
        ("https://sentry.example.org/42", "public key"),
        ("https://k@/42", "no host"),
        ("https://k@h/", "project id"),
        ("https://k@h/abc", "project id"),
        ("https://k@h:99999/1", "not a URL"),
        ("https://k@h/1?x=1", "query"),
        ("https://k@h/1 https://k@h/2", "spaces"),
    ],
)
def test_malformed_dsns_say_what_is_wrong(text: str, says: str) -> None:
    with pytest.raises(DsnError, match=says):
        parse_dsn(text)

