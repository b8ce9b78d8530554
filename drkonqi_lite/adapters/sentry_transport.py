"""HTTP delivery of one envelope to a Sentry-protocol server (urllib only: no new dependency).

The outcome decides what the caller does with the report: SENT (2xx: remove it from the queue),
RETRY (no connection, timeout, 5xx, 429: keep it queued; `retry_after` carries a 429's or 503's
Retry-After in seconds), REJECTED (any other 4xx: the server will never take this report, so
retrying is pointless). Never raises for a network failure.
"""

from __future__ import annotations

import dataclasses
import email.utils
import enum
import http.client
import time
import urllib.error
import urllib.request

from drkonqi_lite.domain.dsn import CLIENT, Dsn
from drkonqi_lite.domain.event_link import candidate as event_link_candidate
from drkonqi_lite.domain.event_link import is_event_page

#: Seconds to wait for the server (connect and each read).
TIMEOUT_S = 10.0
#: The link probe is a nicety after a report went through: it must not hold the user up.
LINK_TIMEOUT_S = 3.0
#: Bytes of an error response kept for the message.
MAX_BODY = 4096


class Outcome(enum.StrEnum):
    SENT = "sent"
    RETRY = "retry"
    REJECTED = "rejected"


@dataclasses.dataclass(frozen=True, slots=True)
class Delivery:
    """What happened to one envelope; `reason` is one line for the user."""

    outcome: Outcome
    reason: str
    retry_after: float | None = None


def retry_after(value: str | None, now: float) -> float | None:
    """Retry-After as seconds from now: delta-seconds or an HTTP date (RFC 9110 §10.2.3)."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        moment = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - now)


def send_envelope(dsn: Dsn, body: bytes, timeout: float = TIMEOUT_S) -> Delivery:
    """POST `body` to the DSN's envelope endpoint."""
    request = urllib.request.Request(  # noqa: S310 (the scheme is checked by parse_dsn)
        dsn.envelope_url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/x-sentry-envelope",
            "X-Sentry-Auth": dsn.auth_header,
            "User-Agent": CLIENT,
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            response.read(MAX_BODY)
            return Delivery(Outcome.SENT, f"HTTP {response.status}")
    except urllib.error.HTTPError as exc:
        return _http_error(exc)
    except TimeoutError:
        return Delivery(Outcome.RETRY, f"{dsn.server} did not answer within {timeout:g} s")
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, TimeoutError):
            return Delivery(Outcome.RETRY, f"{dsn.server} did not answer within {timeout:g} s")
        return Delivery(Outcome.RETRY, f"cannot reach {dsn.server}: {_reason(exc.reason)}")
    except (OSError, http.client.HTTPException) as exc:
        return Delivery(Outcome.RETRY, f"connection to {dsn.server} failed: {_reason(exc)}")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *_args: object, **_kw: object) -> None:
        return None  # the redirect is the answer (an HTTPError carrying its Location)


def event_link(dsn: Dsn, event_id: str, timeout: float = LINK_TIMEOUT_S) -> str:
    """The page of `event_id` on its server when the server has one for the id alone, else ""
    (domain/event_link.py). One GET, no redirect followed, nothing sent but the id."""
    url = event_link_candidate(dsn, event_id)
    opener = urllib.request.build_opener(_NoRedirect)
    request = urllib.request.Request(url, headers={"User-Agent": CLIENT})  # noqa: S310
    try:
        with opener.open(request, timeout=timeout) as response:
            response.read(MAX_BODY)
            return ""  # a page, but not the redirect to the event: not Bugsink's view
    except urllib.error.HTTPError as exc:
        location = exc.headers.get("Location", "") if exc.headers else ""
        redirect = exc.code in {301, 302, 303, 307, 308}
        return url if redirect and is_event_page(dsn, location, url) else ""
    except (OSError, http.client.HTTPException, ValueError):
        return ""


def _reason(reason: object) -> str:
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror
    return str(reason) or type(reason).__name__


def _http_error(exc: urllib.error.HTTPError) -> Delivery:
    try:
        detail = exc.read(MAX_BODY).decode("utf-8", "replace").strip().replace("\n", " ")[:200]
    except OSError:
        detail = ""
    reason = f"HTTP {exc.code} {exc.reason}" + (f": {detail}" if detail else "")
    delay = retry_after(exc.headers.get("Retry-After") if exc.headers else None, time.time())
    if exc.code == 429 or exc.code >= 500:
        return Delivery(Outcome.RETRY, reason, delay)
    return Delivery(Outcome.REJECTED, reason)
