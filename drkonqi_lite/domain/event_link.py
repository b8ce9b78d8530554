"""A link to a delivered report's page on its server, where the event id alone can reach one.

Bugsink's `issues/event/<event id>/` (its `event_by_id` view, issues/urls.py) takes the id the
client sent and redirects to the event's page `issues/issue/<issue uuid>/event/<event uuid>/`
(through its login page, for a visitor who is not logged in). Sentry and GlitchTip reach an
event only through the organization's slug, which a DSN does not carry: for them the event id
is shown as text, to paste into the server's search. The reporter probes the link once, when
the report was sent (sentry_transport.event_link), and keeps it only when the server answered
with one of those redirects: the link shown is one the server said leads to the event. Pure.
"""

from __future__ import annotations

import re
import urllib.parse
import uuid

from drkonqi_lite.domain.dsn import Dsn

_UUID = r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}"
_EVENT_PAGE = re.compile(
    rf"^(?:https?://[^/]+)?(?P<path>/(?:.*/)?)issues/issue/{_UUID}/event/{_UUID}/$"
)


def candidate(dsn: Dsn, event_id: str) -> str:
    """Where Bugsink would show `event_id` (the server says whether it is Bugsink). Its URL
    takes the id as a dashed UUID (Django's `uuid` path converter), not the envelope's hex."""
    return f"{dsn.server}issues/event/{uuid.UUID(hex=event_id)}/"


def is_event_page(dsn: Dsn, location: str, asked: str) -> bool:
    """Whether a redirect from `asked` (the candidate) went to an event's page on the same
    server path, or to Bugsink's login on the way there (a visitor not logged in: Bugsink
    2.6 asks for the login before it looks the event up)."""
    match = _EVENT_PAGE.match(location)
    if match is not None:
        return match["path"] == (dsn.path or "/")
    url = urllib.parse.urlsplit(location)
    wanted = urllib.parse.urlsplit(asked).path
    return url.path == f"{dsn.path or '/'}accounts/login/" and urllib.parse.parse_qs(url.query).get(
        "next"
    ) == [wanted]
