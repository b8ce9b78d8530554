"""Run `python -m drkonqi_lite ARGS` with an audit hook recording opens and process launches.

Usage: audit_run.py LOGFILE ARGS... — every `open` (Python-level: open(), os.open, imports)
and every process-launching event is appended to LOGFILE as a JSON line. Used to prove that a
forged entry makes the app open nothing outside the storage dirs and run nothing (SECURITY 6).
"""

from __future__ import annotations

import json
import os
import runpy
import sys

LAUNCH = {"subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn",
          "os.fork", "os.forkpty", "pty.spawn", "os.startfile"}  # fmt: skip

log_fd = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)


def hook(event: str, args: tuple[object, ...]) -> None:
    if event == "open" or event in LAUNCH:
        line = json.dumps({"event": event, "args": [repr(a) for a in args]}) + "\n"
        os.write(log_fd, line.encode())


sys.addaudithook(hook)
sys.argv = ["drkonqi-lite", *sys.argv[2:]]
runpy.run_module("drkonqi_lite", run_name="__main__", alter_sys=True)
