"""The D-Bus service: its shipped introspection and the variants it puts on the bus."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

from drkonqi_lite.adapters.service import SIGNATURES, CrashNotifierService, to_variants
from tests.conftest import REPO


def test_shipped_introspection_xml_matches_the_service() -> None:
    class Backend:
        def unseen_count(self) -> int:
            return 0

    live = CrashNotifierService(Backend()).introspect().to_xml()  # type: ignore[arg-type]
    shipped = ET.parse(REPO / "resources/org.drkonqi_lite.CrashNotifier1.xml").getroot()  # noqa: S314
    (iface,) = shipped.findall("interface")

    def shape(element: ET.Element) -> set[tuple[str, str, tuple[str, ...]]]:
        out = set()
        for child in element:
            if child.tag in {"method", "signal", "property"}:
                args = tuple(f"{a.get('direction', 'out')}:{a.get('type')}" for a in child
                             if a.tag == "arg")  # fmt: skip
                out.add((child.tag, str(child.get("name")), args or (str(child.get("type")),)))
        return out

    assert shape(iface) == shape(live)
    assert iface.get("name") == live.get("name") == "org.drkonqi_lite.CrashNotifier1"


def test_variants_are_bus_safe() -> None:
    crash = {"id": "c1", "pid": 1 << 70, "uid": -5, "comm": "a\x00b", "seen": 1,
             "fields": {"K\x00": "v\x00"}, "unknown": "dropped"}  # fmt: skip
    out = to_variants(crash)
    assert out["pid"].value == (1 << 63) - 1
    assert out["uid"].value == 0
    assert out["comm"].value == "a\ufffdb"
    assert out["seen"].value is True
    assert out["fields"].value == {"K\ufffd": "v\ufffd"}
    assert "unknown" not in out
    assert set(SIGNATURES) >= {"id", "backtrace", "fields"}
    json.dumps({k: v.signature for k, v in out.items()})


def test_python_stack_marshals_as_list_of_dicts() -> None:
    from dbus_next.message import Message  # noqa: PLC0415

    frames = [{"function": "f\x00", "file": "/a.py", "line": 7}]
    threads = [{"tid": 3, "name": "MainThread", "crashed": True, "frames": frames}]
    out = to_variants({"python_stack": frames, "python_threads": threads})
    assert out["python_stack"].signature == "aa{sv}"
    assert out["python_stack"].value[0]["function"].value == "f\ufffd"
    assert out["python_stack"].value[0]["line"].value == 7
    assert out["python_threads"].value[0]["frames"].value[0]["file"].value == "/a.py"
    # The real marshaller takes it (a wrong nesting raises here, not on the user's bus).
    Message(path="/x", interface="a.b", member="C", signature="a{sv}", body=[out])._marshall()  # type: ignore[no-untyped-call]
