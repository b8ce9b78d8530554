"""Collector configuration: coredump.conf's keys and meanings, under our own paths.

Read from `PREFIX/etc/drkonqi-lite/collector.conf` then `collector.conf.d/*.conf` in lexical
order (later wins), section `[Coredump]`, with the keys of systemd's coredump.conf(5). The
prefix is "/" on a real system and a scratch directory in tests. Unknown keys and bad values are
reported and ignored, never fatal: a collector that refuses to run loses crashes.
"""

from __future__ import annotations

import configparser
import dataclasses
import enum
import os
import re
from pathlib import Path

GiB = 1024**3
#: Defaults of systemd's coredump.conf on 64-bit systems (coredump.conf(5)).
PROCESS_SIZE_MAX = 32 * GiB
EXTERNAL_SIZE_MAX = 32 * GiB
#: journald's DATA_SIZE_MAX bounds a single field; systemd keeps cores below it.
JOURNAL_SIZE_MAX = 767 * 1024**2
#: MaxUse= and KeepFree= default to 10% and 15% of the file system, both capped at 4G.
MAX_USE_FRACTION = 0.10
KEEP_FREE_FRACTION = 0.15
VACUUM_CAP = 4 * GiB


class Storage(enum.StrEnum):
    NONE = "none"
    EXTERNAL = "external"
    JOURNAL = "journal"


@dataclasses.dataclass(frozen=True, slots=True)
class Paths:
    """Where the collector reads and writes; everything hangs off one prefix."""

    prefix: Path = Path("/")

    @property
    def config_file(self) -> Path:
        return self.prefix / "etc/drkonqi-lite/collector.conf"

    @property
    def config_dir(self) -> Path:
        return self.prefix / "etc/drkonqi-lite/collector.conf.d"

    @property
    def state_dir(self) -> Path:
        return self.prefix / "var/lib/drkonqi-lite"

    @property
    def storage_dir(self) -> Path:
        return self.state_dir / "coredump"

    @property
    def spool_dir(self) -> Path:
        return self.state_dir / "spool"

    @property
    def ratelimit_dir(self) -> Path:
        return self.state_dir / "ratelimit"

    @property
    def saved_pattern_file(self) -> Path:
        return self.state_dir / "saved-core_pattern.json"


@dataclasses.dataclass(frozen=True, slots=True)
class Config:
    storage: Storage = Storage.EXTERNAL
    compress: bool = True
    #: zstd level; systemd uses the library default (3). Levels >= 10 are far too slow for cores.
    compress_level: int = 3
    process_size_max: int = PROCESS_SIZE_MAX
    external_size_max: int = EXTERNAL_SIZE_MAX
    journal_size_max: int = JOURNAL_SIZE_MAX
    #: None: the file system dependent default (see vacuum).
    max_use: int | None = None
    keep_free: int | None = None
    #: Crash-loop limit: at most `rate_limit_burst` stored cores per program and user within
    #: `rate_limit_interval` seconds; further crashes are counted in their entries, not stored.
    rate_limit_interval: float = 60.0
    rate_limit_burst: int = 10
    #: Seconds the stack-trace child may take.
    stacktrace_timeout: float = 5.0
    warnings: tuple[str, ...] = ()


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGTPE]?)i?B?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4, "P": 1024**5, "E": 1024**6}


def parse_size(text: str) -> int:
    """A size as systemd writes it: `2G`, `512M`, `1024`, `infinity` (base 1024)."""
    if text.strip().lower() == "infinity":
        return 2**63 - 1
    m = _SIZE.match(text)
    if not m:
        raise ValueError(f"not a size: {text!r}")
    return int(float(m[1]) * _UNITS[m[2].upper()])


def parse_bool(text: str) -> bool:
    value = text.strip().lower()
    if value in {"1", "yes", "y", "true", "t", "on"}:
        return True
    if value in {"0", "no", "n", "false", "f", "off"}:
        return False
    raise ValueError(f"not a boolean: {text!r}")


def _parse_seconds(text: str) -> float:
    value = text.strip().lower().removesuffix("s").removesuffix("sec")
    return float(value)


_KEYS = {
    "storage": ("storage", Storage),
    "compress": ("compress", parse_bool),
    "compresslevel": ("compress_level", int),
    "processsizemax": ("process_size_max", parse_size),
    "externalsizemax": ("external_size_max", parse_size),
    "journalsizemax": ("journal_size_max", parse_size),
    "maxuse": ("max_use", parse_size),
    "keepfree": ("keep_free", parse_size),
    "ratelimitintervalsec": ("rate_limit_interval", _parse_seconds),
    "ratelimitburst": ("rate_limit_burst", int),
    "stacktracetimeoutsec": ("stacktrace_timeout", _parse_seconds),
}


def load(paths: Paths) -> Config:
    """Read the configuration files; problems become `warnings`, never exceptions."""
    files = [paths.config_file]
    if paths.config_dir.is_dir():
        files += sorted(p for p in paths.config_dir.iterdir() if p.suffix == ".conf")
    values: dict[str, object] = {}
    warnings: list[str] = []
    for file in files:
        parser = configparser.ConfigParser(interpolation=None, strict=False)
        parser.optionxform = str  # type: ignore[assignment,method-assign]
        try:
            with file.open(encoding="utf-8") as f:
                parser.read_file(f)
        except FileNotFoundError:
            continue
        except (OSError, UnicodeDecodeError, configparser.Error) as e:
            warnings.append(f"{file}: {e}")
            continue
        if not parser.has_section("Coredump"):
            continue
        for key, raw in parser.items("Coredump"):
            spec = _KEYS.get(key.lower())
            if spec is None:
                warnings.append(f"{file}: unknown key {key}=")
                continue
            attr, convert = spec
            try:
                values[attr] = convert(raw)  # type: ignore[operator]
            except ValueError as e:
                warnings.append(f"{file}: {key}={raw}: {e}")
    level = values.get("compress_level")
    if isinstance(level, int) and not 1 <= level <= 22:
        warnings.append(f"CompressLevel={level} out of range 1..22, using 3")
        values.pop("compress_level")
    return dataclasses.replace(Config(), **values, warnings=tuple(warnings))  # type: ignore[arg-type]


def prefix_from_environment() -> Path:
    """The prefix for command-line use (DRKONQI_LITE_PREFIX), "/" by default."""
    return Path(os.environ.get("DRKONQI_LITE_PREFIX", "/"))
