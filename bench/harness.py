"""Side-by-side measurements: each row is a measurement, its baseline from the same run, a ratio
and a target. Benchmarks report medians of repeated runs with their spread (min-max).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
GRAPHSPEC = [PYTHON, "-m", "graphspec"]
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}


@dataclass
class Timing:
    """Repeated wall-clock times of one thing, in seconds."""

    samples: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    def __str__(self) -> str:
        return f"{self.median:.3f} s ({min(self.samples):.3f}-{max(self.samples):.3f}, n={len(self.samples)})"


@dataclass
class Row:
    """One line of BENCHMARKS.md."""

    name: str
    measured: str
    baseline: str
    ratio: float | None
    target: str
    met: bool | None  # None: could not be measured, or reported without a target
    command: str
    note: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def verdict(self) -> str:
        if self.met is None and self.measured != "-":
            return "reported"  # measured, with no target to meet (latencies shown, not gated)
        return {True: "met", False: "MISSED", None: "not measured"}[self.met]


def time_call(func: Callable[[], object], repeats: int = 5, warmup: int = 1) -> Timing:
    for _ in range(warmup):
        func()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        func()
        samples.append(time.perf_counter() - start)
    return Timing(samples)


def time_process(args: list[str], repeats: int = 5, warmup: int = 1, env: dict | None = None) -> Timing:
    """Wall-clock times of a whole process; raises if it fails."""

    def run() -> None:
        result = subprocess.run(args, cwd=ROOT, env=env or ENV, capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed:\n{result.stderr[-2000:]}")

    return time_call(run, repeats, warmup)


def not_measured(name: str, target: str, command: str, why: str) -> Row:
    return Row(name, "-", "-", None, target, None, command, note=why)


# One line a script ends with, so that `run_with_peak` can read its peak resident memory: VmHWM is
# the process's own peak (ru_maxrss would carry a forking parent's across exec).
PRINT_PEAK = (
    'print("PEAK_RSS_KB=" + next(l.split()[1] for l in open("/proc/self/status") '
    'if l.startswith("VmHWM:")), file=sys.stderr)'
)

# `python -c GRAPHSPEC_PEAK ARGS...` runs `graphspec ARGS...` in a process that reports its peak.
GRAPHSPEC_PEAK = f"""
import runpy, sys
sys.argv = ["graphspec", *sys.argv[1:]]
code = 0
try:
    runpy.run_module("graphspec", run_name="__main__")
except SystemExit as exc:
    code = exc.code if isinstance(exc.code, int) else 1
{PRINT_PEAK}
sys.exit(code)
"""


def run_with_peak(args: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one process that prints `PRINT_PEAK`'s line; raises
    if it fails."""
    env = {**ENV, "PYTHONPATH": str(ROOT), "TF_ENABLE_ONEDNN_OPTS": "0"}
    start = time.perf_counter()
    result = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, args))} failed:\n{result.stderr[-2000:]}")
    peak = [line for line in result.stderr.splitlines() if line.startswith("PEAK_RSS_KB=")]
    return seconds, int(peak[-1].split("=")[1]) / 1024


def graphspec_with_peak(*args: object) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of `graphspec ARGS...` as a whole process."""
    return run_with_peak([PYTHON, "-c", GRAPHSPEC_PEAK, *map(str, args)])


@dataclass
class Marginal:
    """Whole-process runs of several sides on a large and a small input (`large` and `small`
    rows), each side's rate taken over the rows the large one has beyond the small one: what a
    side pays once (start, imports, build, save) cancels out."""

    large: int
    small: int
    epochs: int
    runs: dict[str, dict[int, list[tuple[float, float]]]]  # side -> rows -> [(seconds, peak MiB)]

    @classmethod
    def measure(
        cls,
        sides: dict[str, Callable[[int], tuple[float, float]]],
        large: int,
        small: int,
        epochs: int,
        repeats: int,
    ) -> Marginal:
        """Runs each side `repeats` times on both sizes, the order of the sides reversed every
        other repeat so that load from outside weighs on all alike."""
        runs: dict[str, dict[int, list[tuple[float, float]]]] = {
            name: {large: [], small: []} for name in sides
        }
        order = list(sides.items())
        for repeat in range(repeats):
            for name, side in order if repeat % 2 == 0 else order[::-1]:
                for rows in (large, small):
                    runs[name][rows].append(side(rows))
        return cls(large, small, epochs, runs)

    def seconds(self, name: str, rows: int) -> float:
        return statistics.median(s for s, _ in self.runs[name][rows])

    def rate(self, name: str) -> float:
        """Rows per second of the rows beyond the small input's, medians of the wall times."""
        return (
            (self.large - self.small)
            * self.epochs
            / (self.seconds(name, self.large) - self.seconds(name, self.small))
        )

    def peak(self, name: str, rows: int) -> float:
        """The highest peak RSS (MiB) of the side's runs on `rows`."""
        return max(p for _, p in self.runs[name][rows])

    def whole(self, name: str) -> str:
        """The side's whole-process times, for a row's text."""
        times = [s for s, _ in self.runs[name][self.large]]
        return (
            f"whole process {self.seconds(name, self.large):.1f} s ({min(times):.1f}-{max(times):.1f}, "
            f"n={len(times)}), {self.small:,} rows {self.seconds(name, self.small):.1f} s"
        )
