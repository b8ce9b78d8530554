"""Which redirects make a delivered report's link (domain/event_link.py): Bugsink's, to the
event's page or to its login on the way there, on the DSN's own server path; nothing else."""

from __future__ import annotations

from drkonqi_lite.domain.dsn import parse_dsn
from drkonqi_lite.domain.event_link import candidate, is_event_page

EVENT = "c26dd6f7adc446deb38de545437ee640"
ISSUE = "1b2c3d4e-0000-4000-8000-00000000beef"
PAGE = f"/issues/issue/{ISSUE}/event/0d7e1f3a-0000-4000-8000-000000000001/"


def test_the_candidate_takes_the_id_as_a_dashed_uuid() -> None:
    dsn = parse_dsn("https://key@bugs.example.org/3")
    assert candidate(dsn, EVENT) == (
        "https://bugs.example.org/issues/event/c26dd6f7-adc4-46de-b38d-e545437ee640/"
    )


def test_bugsinks_redirects_are_taken() -> None:
    dsn = parse_dsn("https://key@bugs.example.org/3")
    asked = candidate(dsn, EVENT)
    assert is_event_page(dsn, PAGE, asked)
    assert is_event_page(dsn, f"https://bugs.example.org{PAGE}", asked)
    login = "/accounts/login/?next=/issues/event/c26dd6f7-adc4-46de-b38d-e545437ee640/"
    assert is_event_page(dsn, login, asked)


def test_other_answers_are_not() -> None:
    dsn = parse_dsn("https://key@sentry.example.org/3")
    asked = candidate(dsn, EVENT)
    assert not is_event_page(dsn, "/auth/login/?next=/issues/event/x/", asked)  # Sentry's
    assert not is_event_page(dsn, "/accounts/login/?next=/elsewhere/", asked)
    assert not is_event_page(dsn, "/organizations/acme/issues/", asked)
    under = parse_dsn("https://key@example.org/bugsink/3")  # served below a path
    assert is_event_page(under, f"/bugsink{PAGE}", candidate(under, EVENT))
    assert not is_event_page(under, PAGE, candidate(under, EVENT))
