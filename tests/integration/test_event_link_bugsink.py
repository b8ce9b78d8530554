"""The link to a delivered report's page, asked of a real Bugsink: the server's own redirect for
the event id is what makes the link (domain/event_link.py); a server without that page, and an
event Bugsink does not have, give no link. Asserted on what the server answers."""

from __future__ import annotations

import http.server
import threading
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from drkonqi_lite.adapters.report_queue import ReportQueue
from drkonqi_lite.adapters.reporter import Reporter
from drkonqi_lite.adapters.sentry_transport import Outcome, event_link
from drkonqi_lite.domain.dsn import parse_dsn
from drkonqi_lite.domain.sentry_event import EventOptions, HostFacts
from tests import entries
from tests.integration.bugsink import Bugsink, bugsink_server

#: The link followed by a logged-in user, through Django's test client inside the server.
_LOGGED_IN = """
from django.contrib.auth import get_user_model
from django.test import Client
user = get_user_model().objects.create_superuser("linkcheck", "l@example.org", "pw-unused")
client = Client()
client.force_login(user)
answer = client.get("{path}", HTTP_HOST="127.0.0.1")
print(answer.status_code, answer.get("Location"))
"""
FACTS = HostFacts({"NAME": "Debian GNU/Linux", "VERSION_ID": "12"}, "6.1.0", "x86_64", "KDE")


@pytest.fixture(scope="module")
def bugsink() -> Iterator[Bugsink]:
    yield from bugsink_server()


def test_a_report_sent_to_bugsink_records_the_page_bugsink_redirects_to(
    bugsink: Bugsink, tmp_path: Path
) -> None:
    dsn = parse_dsn(bugsink.dsn)
    reporter = Reporter(ReportQueue(tmp_path / "reports"), find_link=event_link)
    crash = entries.symbolized_crash()
    result = reporter.report(crash, dsn, FACTS, EventOptions())
    assert result.outcome is Outcome.SENT, result.message
    link = reporter.sent_links()[crash.id]
    assert link == f"{dsn.server}issues/event/{uuid.UUID(result.event_id)}/"
    # What a browser gets: Bugsink's login, then the page of this very event in its issue.
    [stored] = [e for e in bugsink.events() if e["event_id"] == result.event_id]
    no_redirect = urllib.request.build_opener(_Refuse)
    with pytest.raises(urllib.error.HTTPError) as answer:
        no_redirect.open(urllib.request.Request(link), timeout=10)
    path = urllib.parse.urlsplit(link).path
    assert answer.value.code == 302
    assert answer.value.headers["Location"] == f"/accounts/login/?next={path}"
    where = bugsink.shell(_LOGGED_IN.format(path=path)).strip().splitlines()[-1]
    assert where.startswith(f"302 /issues/issue/{uuid.UUID(stored['issue'])}/event/"), where


def test_no_link_from_a_server_without_that_page() -> None:
    """A Sentry-protocol server that answers the id with a page of its own (as a single-page
    UI does) is not taken for Bugsink."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        dsn = parse_dsn(f"http://key@127.0.0.1:{server.server_address[1]}/1")
        assert event_link(dsn, "0123456789abcdef0123456789abcdef") == ""
    finally:
        server.shutdown()


def test_no_link_when_the_server_is_away(tmp_path: Path) -> None:
    assert event_link(parse_dsn("http://key@127.0.0.1:9/1"), "0" * 32, timeout=2) == ""


class _Refuse(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *_args: object, **_kw: object) -> None:
        return None


class _Page(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *_args: object) -> None:
        pass
