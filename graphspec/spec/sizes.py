"""Tensor sizes known at validation, charged to the command's `elements` budget before anything
is allocated. No TensorFlow here.

An input's shape is written in the spec, so its size per sample is known (a null dimension
counts as the `seq_len` synthetic data would give it). An op's output is not known without
building, but some arguments fix a lower bound on it whatever its operands are: `tile`'s
`repeats`, `broadcast_to`'s `shape`, `one_hot`'s `num_classes`, `pad`'s `pad_width`. An op
whose bound passes the limit is refused at that argument, before Keras is asked to build it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from graphspec import budget

_UNKNOWN = None


def _ints(value: Any) -> list[int] | None:
    """The integers in `value` (a number or nested lists of them), or None when it holds
    anything else (a type problem reported by another check)."""
    found, stack = [], [value]
    while stack:
        item = stack.pop()
        if isinstance(item, list | tuple):
            stack.extend(item)
        elif isinstance(item, bool) or not isinstance(item, int | float):
            return None
        elif isinstance(item, float) and not math.isfinite(item):
            return None
        else:
            found.append(int(item))
    return found


def _product(value: Any) -> int | None:
    ints = _ints(value)
    return None if ints is None else math.prod(max(1, i) for i in ints)


def _largest(value: Any) -> int | None:
    ints = _ints(value)
    return None if not ints else max(abs(i) for i in ints)


def _padded(value: Any) -> int | None:
    """`pad`'s `pad_width`: each axis grows by its two widths, so the output has at least the
    product of (1 + before + after) elements."""
    if isinstance(value, list) and value and all(isinstance(row, list) for row in value):
        rows = [_ints(row) for row in value]
        if any(row is None for row in rows):
            return None
        return math.prod(1 + sum(max(0, i) for i in row) for row in rows)
    ints = _ints(value)
    return None if ints is None else 1 + 2 * sum(max(0, i) for i in ints)


# op -> (argument, the least number of output elements per sample its value implies)
OUTPUT_BOUNDS: dict[str, tuple[str, Callable[[Any], int | None]]] = {
    "tile": ("repeats", _product),
    "repeat": ("repeats", _largest),
    "broadcast_to": ("shape", _product),
    "reshape": ("newshape", _product),
    "scatter": ("shape", _product),
    "one_hot": ("num_classes", _largest),
    "multi_hot": ("num_classes", _largest),
    "pad": ("pad_width", _padded),
    "bincount": ("minlength", _largest),
    "histogram": ("bins", _largest),
    "vander": ("N", _largest),
    "segment_max": ("num_segments", _largest),
    "segment_min": ("num_segments", _largest),
    "segment_prod": ("num_segments", _largest),
    "segment_sum": ("num_segments", _largest),
    "rfft": ("fft_length", _largest),
    "irfft": ("fft_length", _largest),
    "stft": ("fft_length", _largest),
    "istft": ("length", _largest),
    "adaptive_average_pool": ("output_size", _product),
    "adaptive_max_pool": ("output_size", _product),
    "fold": ("output_size", _product),
    "unique": ("size", _largest),
    "top_k": ("k", _largest),
    "diag": ("k", _largest),
    "diagflat": ("k", _largest),
}


def input_elements(shape: list[int | None], seq_len: int) -> int:
    """Elements of one sample of an input of `shape`, a null dimension taken as `seq_len`."""
    return math.prod(seq_len if dim is None else max(1, dim) for dim in shape)


def check_sizes(ctx: Any) -> None:
    """Refuse an input, or an op's output, larger per sample than the command's `elements`
    budget allows: an error at the shape or argument, naming `--limit elements=N`."""
    meter = budget.current()
    limit = meter.limits["elements"]
    hint = budget.option_hint("elements")
    counts = budget.LIMITS["elements"].counts
    train = getattr(ctx.spec, "train", None)
    default_len = getattr(train, "seq_len", None) or 1
    for name, spec_input in ctx.spec.inputs.items():
        size = input_elements(spec_input.shape, spec_input.seq_len or default_len)
        if size > limit:
            ctx.error(
                f"input '{name}' has {_shown(size)} elements per sample, over the limit of "
                f"{limit:,} {counts}",
                ("inputs", name, "shape"),
                hint,
            )
    for name, node in ctx.spec.layers.items():
        bound = OUTPUT_BOUNDS.get(node.op) if node.op is not None else None
        if bound is None or bound[0] not in node.args:
            continue
        argument, least = bound
        size = least(node.args[argument])
        if size is not None and size > limit:
            ctx.error(
                f"op node '{name}': {node.op} with this {argument} makes at least {_shown(size)} "
                f"elements per sample, over the limit of {limit:,} {counts}",
                ("layers", name, argument),
                hint,
            )


def _shown(size: int) -> str:
    return f"{size:,}" if size.bit_length() < 100 else f"about 2**{size.bit_length() - 1}"
