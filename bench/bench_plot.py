"""`graphspec plot` of ResNet-50 without shapes, as a whole process: it must not import
TensorFlow, so it is measured against the import of TensorFlow alone."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from harness import GRAPHSPEC, PYTHON, ROOT, Row, not_measured, time_process

SPEC = "specs/resnet50.yaml"
TARGET = "< 1 s, no TensorFlow import"


def run() -> list[Row]:
    if not (ROOT / SPEC).exists():
        return [
            not_measured(
                "plot resnet50.yaml", TARGET, f"graphspec plot {SPEC} -o r50.png", f"{SPEC} does not exist"
            )
        ]
    tf_import = time_process([PYTHON, "-c", "import tensorflow"], repeats=3)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for suffix in (".dot", ".svg", ".png"):
            command = f"graphspec plot {SPEC} -o resnet50{suffix}"
            if suffix != ".dot" and shutil.which("dot") is None:
                rows.append(
                    not_measured(f"plot resnet50{suffix}", TARGET, command, "Graphviz's dot is not installed")
                )
                continue
            timing = time_process(GRAPHSPEC + ["plot", SPEC, "-o", str(Path(tmp) / f"r{suffix}")], repeats=5)
            rows.append(
                Row(
                    f"plot resnet50{suffix} (no shapes)",
                    str(timing),
                    f"import tensorflow: {tf_import}",
                    tf_import.median / timing.median,
                    TARGET,
                    timing.median < 1.0,
                    command,
                )
            )
    return rows
