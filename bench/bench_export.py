"""`graphspec export` against every keras.applications constructor: each model is built by Keras
(`weights=None`, its top included with 10 classes and no softmax, at the smallest input it
accepts, so that the biggest fit two cores; its non-trainable statistics set to values no
initializer gives, so that they must be copied too), exported, written, validated, built from
the spec, given the original's weights by layer name (`load_weights_by_name`, what `build
--weights` does) and run on the same random batch as the original. A model round-trips when
its outputs agree within 1e-5.

Each model runs in a process of its own (`python bench/bench_export.py --one NAME`), so that
one model's memory is given back before the next and a crash is that model's row, not the
bench's. Run this bench alone: `python bench/run.py export`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from harness import ENV, PYTHON, ROOT, Row  # noqa: E402

TOLERANCE = 1e-5
# The smallest input each constructor accepts (Keras checks it); 32x32 for all the others.
MIN_SIZE = {"Xception": 71, "InceptionV3": 75, "InceptionResNetV2": 75}
TIMEOUT_S = 900
COMMAND = "python bench/run.py export"


def constructors() -> list[str]:
    """Every model constructor keras.applications offers, as the catalog lists them."""
    from graphspec.spec import catalog

    return sorted(catalog.catalog()["applications"])


def arguments(name: str) -> dict:
    size = MIN_SIZE.get(name, 32)
    # Logits, not softmax: a saturated softmax would hide a difference behind equal 0s and 1s.
    return {"input_shape": (size, size, 3), "classes": 10, "classifier_activation": None}


def round_trip(name: str) -> dict:
    """Build, export, rebuild and compare `keras.applications.NAME`; what happened, as data."""
    import tempfile

    import keras
    import numpy as np

    import graphspec
    from graphspec.errors import SpecErrors
    from graphspec.keras.export import application, export_model
    from graphspec.keras.weights import load_weights_by_name

    sys.path.insert(0, str(ROOT / "tests"))
    from fixtures.applications import perturb_state  # the tests' own, so both check the same

    result: dict = {"name": name, "args": arguments(name), "exported": False, "rebuilt": False}
    start = time.perf_counter()
    original = application(f"applications.{name}", arguments(name))
    result["params"] = original.count_params()
    result["keras_s"] = time.perf_counter() - start
    perturb_state(original)
    start = time.perf_counter()
    try:
        exported = export_model(original, {})
    except SpecErrors as exc:
        result["reason"] = f"export refused: {exc}"
        return result
    result["exported"] = True
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{name}.yaml"
        exported.write(path)
        loaded = graphspec.load(path)
        if loaded.diagnostics.errors:
            result["reason"] = f"exported spec does not validate: {loaded.diagnostics.errors[0]}"
            return result
        try:
            rebuilt = loaded.build(compile=False)
            load_weights_by_name(rebuilt, original)
        except SpecErrors as exc:
            result["reason"] = f"build --weights failed: {exc}"
            return result
    result["rebuilt"] = True
    result["graphspec_s"] = time.perf_counter() - start
    batch = np.random.default_rng(0).uniform(0, 255, (2, *original.input_shape[1:])).astype("float32")
    expected = keras.tree.flatten(original(batch, training=False))
    actual = keras.tree.flatten(rebuilt(batch, training=False))
    if len(expected) != len(actual):
        result["reason"] = f"{len(actual)} outputs, the original has {len(expected)}"
        return result
    result["max_output"] = max(float(np.max(np.abs(np.asarray(e)))) for e in expected)
    result["max_diff"] = max(
        float(np.max(np.abs(np.asarray(a) - np.asarray(e)))) for a, e in zip(actual, expected, strict=True)
    )
    result["same_params"] = rebuilt.count_params() == original.count_params()
    return result


def _row(result: dict) -> Row:
    args = result.get("args") or arguments(result["name"])
    size = args["input_shape"][0]
    name = f"export applications.{result['name']} ({size}x{size}, 10 logits)"
    keras_s = result.get("keras_s")
    baseline = f"Keras builds it: {keras_s:.1f} s" if keras_s is not None else "-"
    diff = result.get("max_diff")
    if diff is None:
        # One line for the Markdown table: a SpecErrors message spans several.
        why = " ".join(str(result.get("reason", "no result")).split())[:400]
        exported, rebuilt = ("yes" if result[k] else "no" for k in ("exported", "rebuilt"))
        met = None if why.startswith("skipped") else False
        target = f"max abs diff <= {TOLERANCE:g}"
        return Row(
            name, f"exported {exported}, rebuilt {rebuilt}: {why}", baseline, None, target, met, COMMAND
        )
    took = result["graphspec_s"]
    measured = (
        f"exported yes, rebuilt yes, max abs diff {diff:.1e} (outputs up to {result['max_output']:.1e}), "
        f"export+build+weights {took:.1f} s, "
        f"{result['params']:,} params" + ("" if result["same_params"] else " (rebuilt has a different count)")
    )
    met = diff <= TOLERANCE and result["same_params"]
    return Row(name, measured, baseline, took / keras_s, f"max abs diff <= {TOLERANCE:g}", met, COMMAND)


def _one_in_a_process(name: str) -> dict:
    start = time.perf_counter()
    try:
        done = subprocess.run(
            [PYTHON, __file__, "--one", name],
            cwd=ROOT,
            env=ENV,
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        return {"name": name, "exported": False, "rebuilt": False, "reason": f"skipped: over {TIMEOUT_S} s"}
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        tail = " ".join(done.stderr.strip().splitlines()[-1:]) or f"exit status {done.returncode}"
        return {"name": name, "exported": False, "rebuilt": False, "reason": f"crashed: {tail[-300:]}"}
    result = json.loads(lines[-1])
    result["process_s"] = time.perf_counter() - start
    return result


def run() -> list[Row]:
    names = constructors()
    rows, passed = [], 0
    for name in names:
        result = _one_in_a_process(name)
        row = _row(result)
        passed += bool(row.met)
        print(f"  {row.name}: {row.measured}", flush=True)
        rows.append(row)
    rows.append(
        Row(
            "export: keras.applications round trips",
            f"{passed} of {len(names)} round-trip within {TOLERANCE:g}",
            "-",
            None,
            f"{len(names)} of {len(names)}",
            passed == len(names),
            COMMAND,
        )
    )
    return rows


if __name__ == "__main__":
    if sys.argv[1:2] == ["--one"]:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        outcome = round_trip(sys.argv[2])
        outcome["args"] = {k: list(v) if isinstance(v, tuple) else v for k, v in outcome["args"].items()}
        print(json.dumps(outcome), flush=True)
    else:
        for row in run():
            print(row)
