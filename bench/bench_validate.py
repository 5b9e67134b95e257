"""`graphspec validate` as a whole process, against importing TensorFlow; validation's growth
with the number of nodes on generated specs."""

from __future__ import annotations

import tempfile
from pathlib import Path

from harness import GRAPHSPEC, PYTHON, ROOT, Row, time_process


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
    rows = []
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
