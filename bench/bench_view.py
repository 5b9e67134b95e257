"""`graphspec view` and `graphspec plot -o .dot` of generated 1,000- and 10,000-node specs, as
whole processes, side by side with `graphspec validate` of the same spec (loading it is most of
the work, and the part that is not the page's or the plot's)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from bench_validate import generated_spec
from harness import GRAPHSPEC, Row, time_process

TARGET = "10,000 nodes < 2 s, <= 12x 1,000 nodes"


def run() -> list[Row]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        specs = {}
        for nodes in (1_000, 10_000):
            specs[nodes] = Path(tmp) / f"generated_{nodes}.yaml"
            specs[nodes].write_text(generated_spec(nodes))
        validate = {n: time_process(GRAPHSPEC + ["validate", str(p)], repeats=3) for n, p in specs.items()}
        for command, output in (("view", "model.html"), ("plot", "model.dot")):
            timings = {
                n: time_process(GRAPHSPEC + [command, str(p), "-o", str(Path(tmp) / output)], repeats=3)
                for n, p in specs.items()
            }
            growth = timings[10_000].median / timings[1_000].median
            for nodes, timing in timings.items():
                large = nodes == 10_000
                rows.append(
                    Row(
                        f"{command} generated {nodes:,}-node spec (-o {output})",
                        str(timing),
                        f"validate of the same spec: {validate[nodes]}",
                        timing.median / validate[nodes].median,
                        TARGET if large else "linear growth",
                        (timing.median < 2.0 and growth <= 12) if large else True,
                        f"graphspec {command} generated_{nodes}.yaml -o {output}",
                        note=f"10,000 / 1,000 nodes: {growth:.2f}x" if large else "",
                    )
                )
    return rows
