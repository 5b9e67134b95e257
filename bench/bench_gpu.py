"""The GPU figure of `bench/gpu.py` as rows of BENCHMARKS.md: specs/resnet50.yaml against
keras.applications.ResNet50 on the first GPU, one row per precision policy. Without a GPU the
row says "not measured: no GPU". gpu.py runs in a subprocess, since it needs the JAX backend.
"""

from __future__ import annotations

import subprocess
import sys

from harness import ENV, ROOT, Row, not_measured

NAME = "ResNet-50 training images/s on GPU, resnet50.yaml vs keras.applications (JAX, batch 128)"
TARGET = ">= 0.95x"
COMMAND = "python bench/gpu.py"


def run() -> list[Row]:
    result = subprocess.run(
        [sys.executable, "bench/gpu.py"], cwd=ROOT, env=ENV, capture_output=True, text=True
    )
    if result.returncode != 0:
        return [not_measured(NAME, TARGET, COMMAND, f"failed: {result.stderr.strip()[-300:]}")]
    lines = result.stdout.splitlines()
    if lines and lines[0].startswith("no GPU"):
        return [not_measured(NAME, TARGET, COMMAND, "no GPU")]
    rows = []
    for line in lines[2:]:  # after the device line and the header: policy | spec | keras | ratio
        policy, spec_rate, keras_rate, ratio = (cell.strip() for cell in line.split("|"))
        rows.append(
            Row(
                f"{NAME}, {policy}",
                f"{spec_rate} images/s",
                f"keras.applications.ResNet50: {keras_rate} images/s",
                float(ratio),
                TARGET,
                float(ratio) >= 0.95,
                COMMAND,
                note=lines[0],
            )
        )
    return rows
