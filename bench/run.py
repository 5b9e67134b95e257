"""`make bench`: run every benchmark under bench/ and write BENCHMARKS.md.

Each `bench/bench_*.py` has `run() -> list[Row]`. A benchmark that cannot run here (no Graphviz,
a spec not written yet, a failure) gives rows marked "not measured" instead of stopping the rest.
Run one: `python bench/run.py validate build`.
"""

from __future__ import annotations

import importlib
import os
import platform
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from harness import ROOT, Row, not_measured  # noqa: E402

OUTPUT = ROOT / "BENCHMARKS.md"


def machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        from importlib.metadata import version

        tf = version("tensorflow-cpu") if _installed("tensorflow-cpu") else version("tensorflow")
        keras = version("keras")
    except Exception:
        tf = keras = "not installed"
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (
        f"{os.cpu_count()} cores, {cpu}, Python {platform.python_version()}, TensorFlow {tf}, "
        f"Keras {keras}, load average {load:.2f} at start"
    )


def _installed(name: str) -> bool:
    from importlib.metadata import PackageNotFoundError, version

    try:
        version(name)
        return True
    except PackageNotFoundError:
        return False


def render(rows: list[Row], header: str) -> str:
    lines = [
        "# Benchmarks",
        "",
        "Written by `make bench` (`python bench/run.py`). Every row is measured side by side with",
        "its baseline in the same run; times are medians with (min-max, number of runs).",
        "",
        f"Machine: {header}",
        "",
        "| benchmark | measured | baseline | ratio | target | verdict | reproduce |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        ratio = f"{row.ratio:.2f}" if row.ratio is not None else "-"
        verdict = row.verdict + (f" ({row.note})" if row.note else "")
        lines.append(
            f"| {row.name} | {row.measured} | {row.baseline} | {ratio} | {row.target} | "
            f"{verdict} | `{row.command}` |"
        )
    return "\n".join(lines) + "\n"


def _sections(path: Path) -> str:
    """The hand-written sections of `path` (from its first `## ` heading on), which `make bench`
    keeps below the table it writes: figures measured by other means (lines, agreement, test time)."""
    if not path.exists():
        return ""
    text = path.read_text()
    at = text.find("\n## ")
    return "" if at < 0 else text[at:]


def main(selected: list[str]) -> int:
    modules = sorted(p.stem for p in Path(__file__).parent.glob("bench_*.py"))
    if selected:
        modules = [m for m in modules if m.removeprefix("bench_") in selected]
    header = machine()
    rows: list[Row] = []
    for name in modules:
        start = time.perf_counter()
        print(f"running {name} ...", flush=True)
        try:
            rows += importlib.import_module(name).run()
        except Exception as exc:
            traceback.print_exc()
            rows.append(
                not_measured(
                    name,
                    "-",
                    f"python bench/run.py {name.removeprefix('bench_')}",
                    f"failed: {type(exc).__name__}: {exc}",
                )
            )
        print(f"  {time.perf_counter() - start:.1f} s", flush=True)
    text = render(rows, header)
    if not selected:
        OUTPUT.write_text(text + _sections(OUTPUT))
        print(f"wrote {OUTPUT.relative_to(ROOT)}")
    print(text)
    missed = [r for r in rows if r.met is False]
    for row in missed:
        print(f"MISSED: {row.name}: {row.measured} against {row.target}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
