"""Sentry DSNs and envelopes: where a report goes and what the HTTP body looks like.

A DSN is `SCHEME://PUBLIC_KEY[:SECRET]@HOST[:PORT]/[PATH/]PROJECT_ID` (Sentry's "DSN" and
"Envelopes" developer documentation); the same format serves Sentry, self-hosted Sentry,
GlitchTip and Bugsink. Events are posted as an envelope to `/[PATH/]api/PROJECT_ID/envelope/`
with an `X-Sentry-Auth` header. Pure: no network, no clock (callers pass `sent_at`).
"""

from __future__ import annotations

import dataclasses
import json
import urllib.parse
from collections.abc import Mapping
from typing import Any

CLIENT = "drkonqi-lite/0.1.0"
#: A DSN longer than this is not a DSN (it would end up in every queued report).
MAX_DSN = 2048


class DsnError(ValueError):
    """A malformed DSN; the message says what is wrong, in one line."""


@dataclasses.dataclass(frozen=True, slots=True)
class Dsn:
    """A parsed DSN."""

    scheme: str
    public_key: str
    host: str
    port: int | None
    path: str
    project_id: str
    text: str

    @property
    def envelope_url(self) -> str:
        netloc = self.host if self.port is None else f"{self.host}:{self.port}"
        if ":" in self.host:  # an IPv6 literal
            netloc = f"[{self.host}]" + ("" if self.port is None else f":{self.port}")
        return f"{self.scheme}://{netloc}{self.path}api/{self.project_id}/envelope/"

    @property
    def auth_header(self) -> str:
        return f"Sentry sentry_version=7, sentry_key={self.public_key}, sentry_client={CLIENT}"

    @property
    def server(self) -> str:
        """The server's base URL (for messages and links)."""
        return self.envelope_url.removesuffix(f"api/{self.project_id}/envelope/")


def parse_dsn(text: str) -> Dsn:
    """Parse `text`; raise DsnError saying what is wrong."""
    raw = text.strip()
    if not raw:
        raise DsnError("the DSN is empty")
    if len(raw) > MAX_DSN or any(c.isspace() or ord(c) < 0x20 for c in raw):
        raise DsnError("the DSN has spaces or control characters, or is too long")
    try:
        url = urllib.parse.urlsplit(raw)
        port = url.port
    except ValueError as exc:
        raise DsnError(f"the DSN is not a URL ({exc})") from None
    if url.scheme not in {"http", "https"}:
        raise DsnError("the DSN must start with https:// or http://")
    if not url.username:
        raise DsnError("the DSN has no public key (https://KEY@HOST/PROJECT)")
    if not url.hostname:
        raise DsnError("the DSN has no host")
    if url.query or url.fragment:
        raise DsnError("the DSN must not have a query or fragment")
    path, _, project = url.path.rstrip("/").rpartition("/")
    if not project.isdigit():
        raise DsnError("the DSN has no project id at the end of its path")
    return Dsn(
        scheme=url.scheme,
        public_key=urllib.parse.unquote(url.username),
        host=url.hostname,
        port=port,
        path=path + "/",
        project_id=project,
        text=raw,
    )


def envelope(event: Mapping[str, Any], payload: bytes, dsn: Dsn, sent_at: str) -> bytes:
    """One envelope with one event item (`payload` is the serialized event)."""
    header = {"event_id": event["event_id"], "dsn": dsn.text, "sent_at": sent_at}
    item = {"type": "event", "length": len(payload), "content_type": "application/json"}
    return b"\n".join([json.dumps(header).encode(), json.dumps(item).encode(), payload]) + b"\n"
