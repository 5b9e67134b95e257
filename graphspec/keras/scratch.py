"""Scratch computations that find, while a model is built, what Keras refuses only in training.

Keras takes any value for most of an optimizer's numbers, and for some of a loss's or a metric's,
when it constructs them (`clipnorm: "1.0"`, `label_smoothing: "abc"`): it refuses them at the
first training step, after the model is built, with no line of the spec to blame. So does a
constraint (`max_value: "abc"`), applied only after an update, and OrthogonalRegularizer's factor,
read only when the penalty is computed. `build` makes the same computations on scratch values
first: two updates of a scratch kernel by the optimizer, each loss's and metric's value on a
scratch batch shaped like its output, each constraint and regularizer written with arguments
applied to its layer's weight, and each op written with an argument Keras reads only when it
computes (`elu`'s alpha, `percentile`'s method: the catalog's `computed`) computed on ones.
tests/test_catalog_types.py checks the catalog's types with these same computations.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import keras
import numpy as np

from graphspec import arrays as arr

# The most values a scratch batch holds; an output larger than that (two samples of it) is left
# to training, so that the check costs no more than a small part of a training step.
MAX_SCRATCH_VALUES = 1 << 22


def scratch_steps(optimizer: keras.optimizers.Optimizer) -> None:
    """Two updates of a scratch (4, 3) kernel and bias by `optimizer`, and a loss scaled: where
    Keras first reads an optimizer's numbers."""
    weights = [keras.Variable(keras.ops.ones((4, 3))), keras.Variable(keras.ops.ones((3,)))]
    for _ in range(2):
        optimizer.apply([keras.ops.ones((4, 3)), keras.ops.ones((3,))], weights)
    optimizer.scale_loss(keras.ops.ones(()))


def scratch_batch(target: arr.Target, shape: tuple) -> tuple[np.ndarray, np.ndarray] | None:
    """Targets and predictions for two samples of an output of symbolic shape `shape` (its batch
    axis first; an unknown length taken as 2): targets fitting the loss's kind, predictions
    strictly between 0 and 1 (a probability, a logit and a value alike). None where that is
    more than `MAX_SCRATCH_VALUES` values."""
    per_sample = tuple(2 if d is None else d for d in shape[1:])
    if 2 * math.prod(per_sample) > MAX_SCRATCH_VALUES:
        return None
    if target.family in (arr.ONE_HOT, arr.SPARSE) and not per_sample:
        return None  # classes need a last axis
    rng = np.random.default_rng(0)
    y_pred = rng.uniform(0.1, 0.9, size=(2,) + per_sample).astype("float32")
    return arr.random_target(target, per_sample, rng, 2), y_pred


def scratch_value(made: Any, y_true: Any, y_pred: Any) -> None:
    """Compute loss or metric `made` on `y_true` and `y_pred`, as a training step would."""
    if isinstance(made, keras.metrics.Metric):
        made.update_state(y_true, y_pred)
        made.result()
    else:
        made(y_true, y_pred)


def refused_argument(
    cls: type, args: dict[str, Any], required: list[str], use: Callable[[Any], Any]
) -> tuple[str | None, Exception] | None:
    """Whether Keras refuses class `cls` with `args` when `use`d (a loss or metric computed on a
    scratch batch, a constraint applied to its weight) where it takes the same class with the
    required arguments alone: None where it takes it (or refuses both: something else is wrong,
    which training will say), else the argument that alone makes it fail (None where only their
    combination does) and Keras's error."""
    suspects = [a for a in args if a not in required]
    return _blamed(lambda given: use(cls(**given)), args, suspects, {})


def _blamed(
    compute: Callable[[dict[str, Any]], Any],
    args: dict[str, Any],
    suspects: list[str],
    stand_ins: dict[str, Any],
) -> tuple[str | None, Exception] | None:
    """None where `compute(args)` succeeds, or where it also fails with `suspects` left out (their
    value of `stand_ins` in their place, where they have one); else the suspect that alone makes
    it fail (None where only their combination does) and Keras's error."""

    def fails(given: dict[str, Any]) -> Exception | None:
        try:
            compute(given)
        except Exception as exc:
            return exc
        return None

    base = {k: v for k, v in args.items() if k not in suspects}
    base |= {a: stand_ins[a] for a in suspects if a in stand_ins}
    error = fails(args)
    if error is None or fails(base) is not None:
        return None
    for arg in suspects:
        if (alone := fails({**base, arg: args[arg]})) is not None:
            return arg, alone
    return None, error


def scratch_tensors(value: Any) -> list[Any]:
    """The values in `value`, a value or lists and dicts of them, nested (a node's operands)."""
    if isinstance(value, dict):
        return [t for v in value.values() for t in scratch_tensors(v)]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in scratch_tensors(v)]
    return [value]


def _scratch_shape(tensor: Any) -> tuple[int, ...]:
    return tuple(2 if d is None else d for d in tensor.shape)


def scratch_operands(operands: dict[str, Any], output: Any = None) -> dict[str, Any] | None:
    """Ones in the shape and dtype of each symbolic operand (lists of them alike; an unknown
    length taken as 2); None where an operand is not a numeric tensor, or where the operands
    and the symbolic `output` they make hold more than `MAX_SCRATCH_VALUES` values together
    (a Resizing to 10^5 by 10^5 pixels), checked before any is made."""
    tensors = scratch_tensors(operands)
    if not all(isinstance(t, keras.KerasTensor) for t in tensors):
        return None
    if any(t.dtype == "string" for t in tensors):
        return None
    outputs = [t for t in scratch_tensors(output) if isinstance(t, keras.KerasTensor)]
    if sum(math.prod(_scratch_shape(t)) for t in tensors + outputs) > MAX_SCRATCH_VALUES:
        return None

    def ones(value: Any) -> Any:
        if isinstance(value, (list, tuple)):
            return [ones(v) for v in value]
        return keras.ops.ones(_scratch_shape(value), dtype=value.dtype)

    return {name: ones(value) for name, value in operands.items()}


def computed_refusal(
    compute: Callable[[dict[str, Any]], Any],
    args: dict[str, Any],
    computed: list[str],
    stand_ins: dict[str, Any] | None = None,
) -> tuple[str, Exception] | None:
    """The argument among `computed` (arguments Keras reads only when it computes) that alone
    makes `compute(args)` fail where the same arguments without it (or with its value of
    `stand_ins`, for a required one) succeed, and Keras's error; None where none does (a
    computation that fails without them too fails for another reason, which training will
    say)."""
    written = [a for a in computed if a in args]
    if not written:
        return None
    found = _blamed(compute, args, written, stand_ins or {})
    return None if found is None or found[0] is None else (found[0], found[1])
