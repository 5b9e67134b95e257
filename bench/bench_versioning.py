"""`graphspec fingerprint` and `graphspec diff` on ResNet-50's spec as whole processes, against
`graphspec validate` of the same spec: what hashing and comparing cost on top of loading."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

from harness import ENV, GRAPHSPEC, ROOT, Row, Timing, not_measured, time_call, time_process

SPEC = "specs/resnet50.yaml"
TARGET = "< 0.5 s"
# One change deep inside a repeated block: conv4 loses an identity block (10 layers, 2 rewired).
CHANGE = ("identities: 5", "identities: 4")


def _time_diff(args: list[str], repeats: int = 7) -> Timing:
    """Like `time_process`, but a diff that finds differences exits 1, which is success here."""

    def run() -> None:
        result = subprocess.run(args, cwd=ROOT, env=ENV, capture_output=True, text=True)
        if result.returncode not in (0, 1):
            raise RuntimeError(f"{' '.join(args)} failed:\n{result.stderr[-2000:]}")

    return time_call(run, repeats)


def run() -> list[Row]:
    path = ROOT / SPEC
    if not path.exists():
        why = f"{SPEC} does not exist yet"
        return [
            not_measured("fingerprint resnet50.yaml", TARGET, f"graphspec fingerprint {SPEC}", why),
            not_measured("diff resnet50.yaml", TARGET, f"graphspec diff {SPEC} CHANGED", why),
        ]
    rows = []
    validate = time_process(GRAPHSPEC + ["validate", SPEC], repeats=7)
    baseline = f"validate: {validate}"
    fingerprint = time_process(GRAPHSPEC + ["fingerprint", SPEC], repeats=7)
    rows.append(
        Row(
            "fingerprint resnet50.yaml",
            str(fingerprint),
            baseline,
            fingerprint.median / validate.median,
            TARGET,
            fingerprint.median < 0.5,
            f"graphspec fingerprint {SPEC}",
        )
    )
    text = path.read_text()
    if CHANGE[0] not in text:
        rows.append(
            not_measured(
                "diff resnet50.yaml",
                TARGET,
                f"graphspec diff {SPEC} CHANGED",
                f"'{CHANGE[0]}' is no longer in {SPEC}",
            )
        )
        return rows
    with tempfile.TemporaryDirectory() as tmp:
        changed = Path(tmp) / "resnet50.yaml"
        changed.write_text(text.replace(CHANGE[0], CHANGE[1], 1))
        diff = _time_diff(GRAPHSPEC + ["diff", SPEC, str(changed)])
    rows.append(
        Row(
            "diff resnet50.yaml (one stage one block shorter)",
            str(diff),
            baseline,
            diff.median / validate.median,
            TARGET,
            diff.median < 0.5,
            f"graphspec diff {SPEC} CHANGED",
            note="two specs loaded, one validated by the baseline",
        )
    )
    return rows
