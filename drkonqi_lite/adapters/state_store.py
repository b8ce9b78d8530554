"""Persistence of the user's seen-state and settings, in the XDG base directories.

`$XDG_STATE_HOME/drkonqi-lite/state.json` (cursor, seen crashes, muted programs) is replaced
atomically (write a temporary file in the same directory, fsync, rename(2)), so a crash or power
loss leaves the old or the new state, never a torn one: a torn cursor would announce crashes
twice. Settings are read from `$XDG_CONFIG_HOME/drkonqi-lite/settings.ini`.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TextIO

from drkonqi_lite.domain.seen import SeenState
from drkonqi_lite.domain.settings import Settings, parse_settings

log = logging.getLogger(__name__)
APP_DIR = "drkonqi-lite"
#: A state file larger than this is not ours (or is corrupt): ignored, not loaded.
MAX_STATE_BYTES = 4 << 20


def _base(env: Mapping[str, str], var: str, fallback: str) -> Path:
    value = env.get(var, "")
    if value.startswith("/"):
        return Path(value)
    home = env.get("HOME", "")
    if not home.startswith("/"):
        # Path.home() falls back to the passwd entry; a uid without one needs $HOME or $XDG_*.
        try:
            return Path.home() / fallback
        except (RuntimeError, KeyError) as exc:
            raise OSError(f"neither ${var} nor $HOME is set") from exc
    return Path(home) / fallback


def state_dir(env: Mapping[str, str] = os.environ) -> Path:
    return _base(env, "XDG_STATE_HOME", ".local/state") / APP_DIR


def cache_dir(env: Mapping[str, str] = os.environ) -> Path:
    return _base(env, "XDG_CACHE_HOME", ".cache") / APP_DIR


def config_dir(env: Mapping[str, str] = os.environ) -> Path:
    return _base(env, "XDG_CONFIG_HOME", ".config") / APP_DIR


class StateStore:
    """Loads and atomically saves SeenState; reads Settings."""

    def __init__(self, state_directory: Path, config_directory: Path) -> None:
        self._dir = state_directory
        self._config = config_directory

    @classmethod
    def from_environment(cls, env: Mapping[str, str] = os.environ) -> StateStore:
        return cls(state_dir(env), config_dir(env))

    @property
    def path(self) -> Path:
        return self._dir / "state.json"

    def load(self) -> SeenState:
        try:
            with self.path.open("rb") as f:
                data = f.read(MAX_STATE_BYTES + 1)
        except FileNotFoundError:
            return SeenState()
        except OSError as exc:
            log.warning("cannot read %s: %s", self.path, exc)
            return SeenState()
        if len(data) > MAX_STATE_BYTES:
            log.warning("ignoring oversized %s", self.path)
            return SeenState()
        try:
            return SeenState.from_json(json.loads(data))
        except ValueError as exc:
            log.warning("ignoring corrupt %s: %s", self.path, exc)
            return SeenState()

    def save(self, state: SeenState) -> None:
        """Write atomically; errors are logged (the app keeps working from memory)."""
        try:
            self._dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            replace_file(self.path, lambda f: json.dump(state.to_json(), f, separators=(",", ":")))
        except OSError as exc:
            log.warning("cannot save %s: %s", self.path, exc)

    def settings(self) -> Settings:
        path = self._config / "settings.ini"
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return Settings()
        except OSError as exc:
            log.warning("cannot read %s: %s", path, exc)
            return Settings()
        return parse_settings(text, log.warning)

    def save_setting(self, key: str, value: str) -> None:
        """Set one key of settings.ini's [App] section, keeping the others (atomic rename)."""
        import configparser  # noqa: PLC0415 - only when the user changes a setting

        path = self._config / "settings.ini"
        parser = configparser.ConfigParser(interpolation=None)
        try:
            parser.read_string(path.read_text(encoding="utf-8", errors="replace"))
        except FileNotFoundError:
            pass
        except (OSError, configparser.Error) as exc:
            log.warning("not saving %s=%s: %s is unreadable (%s)", key, value, path, exc)
            return
        if not parser.has_section("App"):
            parser.add_section("App")
        parser.set("App", key, value)
        try:
            self._config.mkdir(parents=True, exist_ok=True)
            replace_file(path, parser.write)
        except OSError as exc:
            log.warning("cannot save %s: %s", path, exc)


def replace_file(path: Path, write: Callable[[TextIO], object]) -> None:
    """Replace `path` with what `write` writes, atomically: a new file under an unpredictable
    name in the same directory (O_CREAT|O_EXCL|O_NOFOLLOW, as mkstemp, so a planted symlink or
    file at any name is never followed or reused), fsync, then rename(2) over `path`, which
    replaces a symlink there rather than writing through it. (Not tempfile: its import, with
    shutil's and random's, costs a cold start ~3 ms of its 200.)"""
    fd, tmp = _new_file(path)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _new_file(path: Path) -> tuple[int, str]:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    for _ in range(100):
        tmp = str(path.parent / f".{path.name}.{os.urandom(6).hex()}")
        try:
            return os.open(tmp, flags, 0o600), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name beside {path}")
