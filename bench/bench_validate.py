"""`graphspec validate` as a whole process, against importing TensorFlow; validation's growth
with the number of nodes on generated specs; validate's start against Python's own with the two
libraries it cannot do without (issue 22: at most 0.15 s)."""

from __future__ import annotations

import compileall
import os
import resource
import subprocess
import tempfile
import time
from pathlib import Path

from harness import ENV, GRAPHSPEC, PYTHON, ROOT, Row, Timing, time_process

# What every validate process needs whatever graphspec does: Python itself, PyYAML, and pydantic
# with one model (a first model costs pydantic's lazy imports and its plugin scan).
BASELINE = "import yaml\nfrom pydantic import BaseModel\nclass A(BaseModel):\n    x: int\n"
# The same without pydantic's plugin loader, as validate runs (graphspec.main's stand-in): the
# floor left once no plugin is looked for, and what graphspec's own work is measured against.
FLOOR = (
    "import sys, types\n"
    "loader = types.ModuleType('pydantic.plugin._loader')\n"
    "loader.get_plugins = tuple\n"
    "sys.modules[loader.__name__] = loader\n" + BASELINE
)
TARGET_S = 0.15


def interleaved(commands: dict[str, list[str]], repeats: int = 21) -> dict[str, tuple[Timing, Timing]]:
    """Wall-clock and CPU (user + system) times of each command, run in turns so that every one
    meets the same load: {name: (wall, cpu)}. One warm-up round first."""
    walls: dict[str, list[float]] = {name: [] for name in commands}
    cpus: dict[str, list[float]] = {name: [] for name in commands}
    for round_ in range(repeats + 1):
        for name, args in commands.items():
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            start = time.perf_counter()
            result = subprocess.run(args, cwd=ROOT, env=ENV, capture_output=True, text=True)
            wall = time.perf_counter() - start
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            if result.returncode != 0:
                raise RuntimeError(f"{' '.join(args)} failed:\n{result.stderr[-2000:]}")
            if round_:
                walls[name].append(wall)
                cpus[name].append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    return {name: (Timing(walls[name]), Timing(cpus[name])) for name in commands}


def start_rows() -> list[Row]:
    """validate of a small and of the largest spec, beside `python -c pass` and the baseline."""
    # An installed package has its bytecode (pip compiles it, and Python writes it on first
    # import); where PYTHONDONTWRITEBYTECODE is set it would never be written, and each run
    # would compile graphspec's sources again (about 0.15 s here).
    compileall.compile_dir(str(ROOT / "graphspec"), quiet=1)
    commands = {
        "python -c pass": [PYTHON, "-c", "pass"],
        "baseline": [PYTHON, "-c", BASELINE],
        "floor": [PYTHON, "-c", FLOOR],
        "book_mlp.yaml": GRAPHSPEC + ["validate", "specs/book_mlp.yaml"],
        "resnet50.yaml": GRAPHSPEC + ["validate", "specs/resnet50.yaml"],
    }
    times = interleaved(commands)
    python, baseline, floor = times["python -c pass"], times["baseline"], times["floor"]
    load = os.getloadavg()[0]
    rows = []
    for name in ("book_mlp.yaml", "resnet50.yaml"):
        wall, cpu = times[name]
        rows.append(
            Row(
                f"validate {name}: whole process, turn about with its baselines",
                f"{wall}; CPU {cpu.median:.3f} s",
                f"python -c pass: {python[0].median:.3f} s (CPU {python[1].median:.3f}); python + yaml + "
                f"pydantic model: {baseline[0]} (CPU {baseline[1].median:.3f}); the same, no plugin "
                f"loader: {floor[0].median:.3f} s (CPU {floor[1].median:.3f})",
                wall.median / baseline[0].median,
                f"<= {TARGET_S} s",
                wall.median <= TARGET_S,
                f"graphspec validate specs/{name}",
                note=f"validate - baseline: {wall.median - baseline[0].median:+.3f} s wall, "
                f"{cpu.median - baseline[1].median:+.3f} s CPU; validate - the same without plugin loader: "
                f"{wall.median - floor[0].median:+.3f} s wall; load average {load:.2f}",
            )
        )
    return rows


def generated_spec(nodes: int) -> str:
    """A valid spec of `nodes` layer nodes: a chain of Dense blocks with a residual Add every 4."""
    lines = ["graphspec: 1", f"name: generated_{nodes}", "inputs:", "  x: {shape: [8]}", "layers:"]
    previous = "x"
    for i in range(nodes - 1):
        if i % 4 == 3:
            lines.append(f"  n{i}: {{type: Add, in: [n{i - 1}, n{i - 3}]}}")
        else:
            lines.append(f"  n{i}: {{type: Dense, units: 8, activation: relu, in: {previous}}}")
        previous = f"n{i}"
    lines.append(f"  out: {{type: Dense, units: 1, in: {previous}}}")
    lines += ["outputs:", "  out: {loss: mse}"]
    return "\n".join(lines) + "\n"


def run() -> list[Row]:
    rows = start_rows()
    tf_import = time_process([PYTHON, "-c", "import tensorflow"], repeats=3)
    specs = sorted((ROOT / "specs").glob("*.yaml"))
    for spec in specs:
        relative = spec.relative_to(ROOT)
        timing = time_process(GRAPHSPEC + ["validate", str(relative)], repeats=7)
        speedup = tf_import.median / timing.median
        rows.append(
            Row(
                f"validate {relative.name}",
                str(timing),
                f"import tensorflow: {tf_import}",
                speedup,
                "< 0.5 s and >= 6x faster than the import",
                timing.median < 0.5 and speedup >= 6,
                f"graphspec validate {relative}",
            )
        )
    with tempfile.TemporaryDirectory() as tmp:
        timings = {}
        for nodes in (100, 1_000, 10_000):
            path = Path(tmp) / f"generated_{nodes}.yaml"
            path.write_text(generated_spec(nodes))
            timings[nodes] = time_process(GRAPHSPEC + ["validate", str(path)], repeats=3)
        growth = timings[10_000].median / timings[1_000].median
        for nodes, timing in timings.items():
            rows.append(
                Row(
                    f"validate generated {nodes:,}-node spec",
                    str(timing),
                    f"1,000 nodes: {timings[1_000].median:.3f} s",
                    timing.median / timings[1_000].median,
                    "10,000 nodes < 2 s and <= 12x 1,000 nodes" if nodes == 10_000 else "linear growth",
                    (timing.median < 2.0 and growth <= 12) if nodes == 10_000 else True,
                    "python bench/run.py validate",
                )
            )
    return rows
