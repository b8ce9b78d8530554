#!/usr/bin/env python3
"""Side-by-side benchmark: drkonqi-lite-collector vs the real systemd-coredump, same run.

Runs ../shared/tools/crashbench.py once per handler (interleaved scenario by scenario, so both
see the same machine state), then prints and writes ratios (ours / systemd's; below 1 is
better) to benchmarks/results/collector-<date>.json and a Markdown table to stdout.

    sudo .venv/bin/python benchmarks/collector.py [--quick] [--crashbench PATH]

Needs root, a running journald, gcc, and ../shared/tools/systemd-coredump-anchor (it installs
systemd-coredump if missing). core_pattern is restored by crashbench on exit; the global test
lock is held for the whole run so no test crashes anything meanwhile.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import fcntl
import json
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from drkonqi_lite_collector import config
from drkonqi_lite_collector.admin.pattern import PIPE_LIMIT

HERE = Path(__file__).resolve().parent
#: ../shared/tools from the integration tree (/work/main); from a worktree (/work/wt/NAME) the
#: same directory is one level further up.
SHARED = next(
    (p for p in (HERE.parents[1] / "shared/tools", HERE.parents[2] / "shared/tools") if p.is_dir()),
    HERE.parents[1] / "shared/tools",
)
LOCK = Path("/run/lock/drkonqi-lite-core_pattern.lock")
SYSTEMD = "|/lib/systemd/systemd-coredump %P %u %g %s %t 9223372036854775808 %h %d"
#: kernel.core_pipe_limit as each handler's installation sets it (systemd's 50-coredump.conf;
#: ours: `install`). With 0 the kernel no longer keeps /proc/PID for the handler, and the
#: crashed process is reaped as soon as the pipe is drained, whatever the handler still reads.
PIPE_LIMITS = {"drkonqi-lite": PIPE_LIMIT, "systemd-coredump": 16}
METRICS = [
    ("journal_ms", "crash → entry in journal (ms)"),
    ("exit_ms", "crash → process reaped, i.e. frozen (ms)"),
]
HANDLER_METRICS = [("cpu_ms", "handler CPU (ms)"), ("rss_mib", "handler peak RSS (MiB)")]


def our_pattern() -> str:
    collector = Path(sys.executable).with_name("drkonqi-lite-collector")
    out = subprocess.run(
        [str(collector), "install", "--force"], capture_output=True, text=True, check=True
    ).stdout
    subprocess.run([str(collector), "uninstall"], capture_output=True, check=True)
    # The pattern is the rest of its line; notes about the installation may follow.
    return out.split("core_pattern = ", 1)[1].splitlines()[0]


#: systemd-coredump has no crash-loop limit: ours is lifted for the run, or the 30 `sleep`
#: crashes of the small scenario would be measured mostly rate limited (released unread, no
#: core, no stack trace), which is not the work systemd-coredump does.
NO_RATE_LIMIT = Path(config.Paths("/").config_dir, "99-benchmark-no-rate-limit.conf")


@contextlib.contextmanager
def rate_limit_lifted() -> Iterator[None]:
    NO_RATE_LIMIT.parent.mkdir(parents=True, exist_ok=True)
    NO_RATE_LIMIT.write_text("[Coredump]\nRateLimitBurst=1000000\nRateLimitUserBurst=1000000\n")
    try:
        yield
    finally:
        NO_RATE_LIMIT.unlink(missing_ok=True)


def run(
    crashbench: Path, pattern: str, label: str, scenario: str, extra: list[str], comm: str | None
) -> dict[str, object]:
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        cmd = [
            sys.executable,
            str(crashbench),
            pattern,
            "--label",
            label,
            "--scenarios",
            scenario,
            "--json",
            out.name,
            "--core-pipe-limit",
            str(PIPE_LIMITS[label]),
            *extra,
        ]
        if comm:
            cmd += ["--handler-comm", comm]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        data: dict[str, object] = json.loads(Path(out.name).read_text())
        return data


def medians(result: dict[str, object], scenario: str) -> dict[str, float]:
    crashes = result["results"][scenario]["crashes"]  # type: ignore[index]
    row: dict[str, float] = {}
    for key, _ in METRICS:
        values = [c[key] for c in crashes if c.get(key) is not None]
        if values:
            row[key] = statistics.median(values)
    for key, _ in HANDLER_METRICS:
        values = [c["handler"][key] for c in crashes if c.get("handler", {}).get("procs")]
        if values:
            row[key] = statistics.median(values)
    return row


def _pooled(results: list[dict[str, object]], scenario: str) -> dict[str, object]:
    """Rounds of one handler's scenario as one result: every round's crashes together."""
    crashes = [
        c
        for r in results
        for c in r["results"][scenario]["crashes"]  # type: ignore[index]
    ]
    return {"results": {scenario: {"crashes": crashes}}}


def round_ratios(
    ours: list[dict[str, object]], theirs: list[dict[str, object]], scenario: str
) -> list[float]:
    """crash -> journal ratio of each round: how much the machine's noise moves it."""
    out = []
    for a, b in zip(ours, theirs, strict=True):
        a_v, b_v = medians(a, scenario).get("journal_ms"), medians(b, scenario).get("journal_ms")
        if a_v and b_v:
            out.append(round(a_v / b_v, 3))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--crashbench", type=Path, default=SHARED / "crashbench.py")
    ap.add_argument("--quick", action="store_true", help="fewer runs (a smoke test)")
    ap.add_argument(
        "--scenarios", default="small,threads,big,storm", help="comma separated (default: all)"
    )
    ap.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="alternate the two handlers this many times per scenario; medians over all rounds",
    )
    args = ap.parse_args()
    subprocess.run(
        [str(SHARED / "systemd-coredump-anchor"), "start"], check=True, stdout=subprocess.DEVNULL
    )
    runs = {
        "small": ["--small-runs", "5" if args.quick else "30", "--gap", "0.2"],
        "threads": ["--thread-runs", "2" if args.quick else "5"],
        "big": ["--big-runs", "1" if args.quick else "3", "--big-fill", "random"],
        "storm": ["--storm", "50"],
    }
    chosen = args.scenarios.split(",")
    report: dict[str, dict[str, object]] = {}
    LOCK.parent.mkdir(parents=True, exist_ok=True)
    with LOCK.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        with rate_limit_lifted():
            ours = our_pattern()
            for scenario, extra in runs.items():
                if scenario not in chosen:
                    continue
                a_runs, b_runs = [], []
                for _ in range(args.rounds):
                    a_runs.append(
                        run(args.crashbench, ours, "drkonqi-lite", scenario, extra, "collector")
                    )
                    b_runs.append(
                        run(args.crashbench, SYSTEMD, "systemd-coredump", scenario, extra, None)
                    )
                if scenario == "storm":
                    report[scenario] = {
                        "drkonqi-lite": a_runs[-1]["results"]["storm"]["info"],  # type: ignore[index]
                        "systemd-coredump": b_runs[-1]["results"]["storm"]["info"],  # type: ignore[index]
                    }
                    continue
                report[scenario] = {
                    "drkonqi-lite": medians(_pooled(a_runs, scenario), scenario),
                    "systemd-coredump": medians(_pooled(b_runs, scenario), scenario),
                }
                if args.rounds > 1:
                    report[scenario]["journal_ratio_by_round"] = round_ratios(
                        a_runs, b_runs, scenario
                    )
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H%M")
    out = HERE / "results" / f"collector-{stamp}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print_table(report)
    print(f"\nraw: {out}")
    return 0


def print_table(report: dict[str, dict[str, object]]) -> None:
    print("| scenario | metric | drkonqi-lite | systemd-coredump | ratio |")
    print("|---|---|---|---|---|")
    for scenario, pair in report.items():
        if scenario == "storm":
            print(f"| storm | {pair} | | | |")
            continue
        ours: dict[str, float] = pair["drkonqi-lite"]  # type: ignore[assignment]
        theirs: dict[str, float] = pair["systemd-coredump"]  # type: ignore[assignment]
        for key, label in METRICS + HANDLER_METRICS:
            a_v, b_v = ours.get(key), theirs.get(key)
            if a_v is None or b_v is None:
                continue
            print(f"| {scenario} | {label} | {a_v:.1f} | {b_v:.1f} | {a_v / b_v:.2f}x |")
        if "journal_ratio_by_round" in pair:
            print(f"| {scenario} | journal ratio by round | {pair['journal_ratio_by_round']} | | |")


if __name__ == "__main__":
    sys.exit(main())
