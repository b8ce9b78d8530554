"""The collector's reading of py-spy's and pystack's output, and which processes are Python."""

from __future__ import annotations

import json

from drkonqi_lite_collector.unwinder.python_core import from_pyspy, from_pystack, is_python

PYSTACK = b"""Traceback for thread 12 [] (most recent call last):
    (Python) File "/usr/lib/python3.11/threading.py", line 995, in _bootstrap
        self._bootstrap_inner()

Traceback for thread 11 [Has the GIL] (most recent call last):
    (Python) File "/tmp/a, line 3, in x.py", line 7, in <module>
        f()
    (Python) File "/tmp/b.py", line 2, in f", line 9, in g
        boom()
"""


def test_pystack_text_crashing_thread_first_names_kept() -> None:
    threads = from_pystack(PYSTACK, 11)
    assert [t["tid"] for t in threads] == [11, 12]
    assert threads[0]["crashed"] is True
    assert threads[0]["frames"] == [
        {"function": "<module>", "file": "/tmp/a, line 3, in x.py", "line": 7},
        # Ambiguous text is split at the last `", line `: still text, never more frames.
        {"function": "g", "file": '/tmp/b.py", line 2, in f', "line": 9},
    ]
    # Without a native trace, the GIL holder is the crashing thread.
    assert from_pystack(PYSTACK, None)[0]["tid"] == 11
    assert from_pystack(b"garbage\n\x00\xff", 1) == []


def test_pyspy_json_reversed_to_outermost_first() -> None:
    raw = json.dumps([
        {"os_thread_id": 5, "thread_name": "w", "owns_gil": False,
         "frames": [{"name": "inner", "filename": "/a.py", "line": 2},
                    {"name": "<module>", "filename": "/a.py", "line": 9}]},
        {"os_thread_id": 4, "thread_name": "MainThread", "owns_gil": True, "frames": []},
        "junk", {"frames": "no"},
    ]).encode()  # fmt: skip
    threads = from_pyspy(raw, 5)
    assert threads[0]["frames"] == [{"function": "<module>", "file": "/a.py", "line": 9},
                                    {"function": "inner", "file": "/a.py", "line": 2}]  # fmt: skip
    assert [t["crashed"] for t in threads] == [True, False]
    assert from_pyspy(b"Error: not json", 5) == []


def test_which_processes_are_python() -> None:
    assert is_python("/usr/bin/python3.11", [])
    assert is_python("/usr/bin/python3", [])
    assert is_python("/usr/bin/blender", ["/usr/lib/libpython3.11.so.1.0"])
    assert not is_python("/bin/sleep", ["/usr/lib/x86_64-linux-gnu/libc.so.6"])
    assert not is_python("/usr/bin/python3-config", [])
    assert not is_python("/home/u/python3-evil.sh", [])
