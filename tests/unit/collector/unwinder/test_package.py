"""Which package a program came from: the package note's JSON."""

from __future__ import annotations

import json

from drkonqi_lite_collector.unwinder.package import package_metadata


def test_package_note_metadata() -> None:
    meta = {"type": "deb", "name": "demo", "version": "1.0-1"}
    assert package_metadata(json.dumps(meta).encode() + b"\0") == meta
    assert package_metadata(b"[1, 2]") is None
    assert package_metadata(b"\xff{") is None
    assert package_metadata(json.dumps(meta).encode()[:-8]) is None
