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
