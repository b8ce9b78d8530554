"""One desktop user's session: their processes, session bus and notification server (dunst).

Only the uid that started a session bus may connect to it, so the bus, dunst, the app and the
D-Bus clients of a user all run as that user: setpriv, then `env -i` with the session's
environment only (setpriv and env exec, so a spawned process keeps the PID it was given).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from drkonqi_lite.session.process import stop, wait_for

#: Debian's session.conf policy (the rule with only eavesdrop= is what allows receiving), with
#: only our service directory: no activatable notification server sneaks in from /usr/share.
SESSION_CONF = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <keep_umask/>
  <listen>unix:path={bus}</listen>
  <auth>EXTERNAL</auth>
  <servicedir>{services}</servicedir>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"""
#: Notifications stay until acted on (timeout 0), so a test or the demo's screenshot sees them.
DUNSTRC = """[global]
  width = {width}
  origin = top-left
  offset = 10x50
  font = {font}
  mouse_left_click = do_action, close_current
{extra}[urgency_low]
  timeout = 0
[urgency_normal]
  timeout = 0
[urgency_critical]
  timeout = 0
"""
NOTIFICATIONS = "org.freedesktop.Notifications"


class SessionUser:
    """The processes of one uid with a session environment; logs go to `logs`/NAME.{out,log}."""

    def __init__(self, uid: int, gid: int, env: dict[str, str], logs: Path) -> None:
        self.uid, self.gid = uid, gid
        self.env = env
        self.logs = logs
        self._procs: list[subprocess.Popen[bytes]] = []

    def argv(self, argv: list[str], groups: tuple[int, ...] = ()) -> list[str]:
        """argv run as this user; `groups` adds supplementary groups (e.g. systemd-journal)."""
        grouping = f"--groups={','.join(map(str, groups))}" if groups else "--clear-groups"
        return ["setpriv", f"--reuid={self.uid}", f"--regid={self.gid}", grouping,
                "--", "env", "-i", *(f"{k}={v}" for k, v in self.env.items()), *argv]  # fmt: skip

    def spawn(
        self, argv: list[str], log: str, groups: tuple[int, ...] = ()
    ) -> subprocess.Popen[bytes]:
        """Start argv as this user; ended by close(). stdout in LOG.out, stderr in LOG.log."""
        with (
            (self.logs / f"{log}.out").open("ab") as out,
            (self.logs / f"{log}.log").open("ab") as err,
        ):
            proc = subprocess.Popen(self.argv(argv, groups), stdin=subprocess.DEVNULL,
                                    stdout=out, stderr=err)  # fmt: skip
        self._procs.append(proc)
        return proc

    def run(
        self, argv: list[str], timeout: float = 30, groups: tuple[int, ...] = ()
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.argv(argv, groups), capture_output=True, text=True,
                              timeout=timeout, check=False)  # fmt: skip

    def on_bus(self, name: str) -> bool:
        """Whether `name` has an owner on this user's session bus."""
        out = self.run(["dbus-send", "--session", "--print-reply", "--dest=org.freedesktop.DBus",
                        "/", "org.freedesktop.DBus.NameHasOwner", f"string:{name}"])  # fmt: skip
        return "boolean true" in out.stdout

    def start_bus(self, bus: Path, services: Path, config: Path) -> None:
        """A session dbus-daemon listening at `bus`, activating only from `services`."""
        config.write_text(SESSION_CONF.format(services=services, bus=bus))
        self.spawn(["dbus-daemon", f"--config-file={config}", "--nofork", "--nopidfile"], "dbus")
        wait_for(bus.exists, what="session bus")

    def start_notification_server(self, rc: Path, width: int, font: str, extra: str = "") -> None:
        """dunst on this user's bus, configured in `rc` (`extra`: more [global] lines)."""
        rc.write_text(DUNSTRC.format(width=width, font=font, extra=extra))
        self.spawn(["dunst", "-config", str(rc)], "dunst")
        wait_for(lambda: self.on_bus(NOTIFICATIONS), what="dunst on the bus")

    def dunstctl(self, *args: str) -> str:
        out = self.run(["dunstctl", *args])
        if out.returncode != 0:
            raise RuntimeError(f"dunstctl {' '.join(args)}: {out.stderr.strip()}")
        return out.stdout

    def close(self) -> None:
        """End every process this user's session started, newest first."""
        for proc in reversed(self._procs):
            stop(proc)
