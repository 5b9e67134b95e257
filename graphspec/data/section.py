"""Checks of a spec's `data:` section against the spec itself, with no data and no TensorFlow.

Run with the spec's other checks (`graphspec validate`): each entry names an input or output of
the spec, reads one source, and agrees with what it feeds (an image's size and channels with
the input's shape, an encoding with the output's loss, a text with a string input). Against a
table's header, columns are checked in `graphspec.data.examples`, before anything is built.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from graphspec import arrays
from graphspec.errors import did_you_mean

if TYPE_CHECKING:
    from graphspec.spec.check import Context

# The encoding each loss family takes (None: any).
ENCODING_OF = {
    arrays.SPARSE: "sparse",
    arrays.ONE_HOT: "one-hot",
    arrays.BINARY: "binary",
    arrays.REAL: "regression",
    arrays.POSITIVE: "regression",
}


def encoding_for(loss) -> str | None:
    """The target encoding an output's loss takes (None: no loss, or one of its own form)."""
    target = arrays.target_for(loss)
    return ENCODING_OF.get(target.family) if target is not None else None


def check_data(ctx: Context) -> None:
    """Report each problem of the `data:` section in `ctx.diagnostics`, at its place."""
    data = ctx.spec.data
    if data is None:
        return
    for name, entry in data.inputs.items():
        path = ("data", "inputs", name)
        if name not in ctx.spec.inputs:
            ctx.error(
                f"data: inputs names '{name}', which is not an input of the spec",
                path,
                hint=did_you_mean(name, ctx.spec.inputs) or "its inputs: " + ", ".join(ctx.spec.inputs),
                key=True,
            )
            continue
        spec_input = ctx.spec.inputs[name]
        shape = list(spec_input.shape)
        if entry.image is not None:
            _check_image(ctx, name, entry.image, shape, path + ("image",))
        if entry.text and spec_input.dtype != "string":
            ctx.error(
                f"data: input '{name}' reads text files, and input '{name}' is {spec_input.dtype}",
                path + ("text",),
                hint="give the input dtype: string (and shape: [])",
            )
        if isinstance(entry.columns, list):
            size = math.prod(dim for dim in shape if dim is not None)
            if None in shape or size != len(entry.columns):
                ctx.error(
                    f"data: input '{name}' reads {len(entry.columns)} columns, and input '{name}' "
                    f"has shape {shape} ({size} values)",
                    path + ("columns",),
                )
            if len(set(entry.columns)) != len(entry.columns):
                ctx.error(f"data: input '{name}' names a column twice", path + ("columns",))
    for name, entry in data.outputs.items():
        path = ("data", "outputs", name)
        output = ctx.spec.outputs.get(name)
        if output is None:
            ctx.error(
                f"data: outputs names '{name}', which is not an output of the spec",
                path,
                hint=did_you_mean(name, ctx.spec.outputs) or "its outputs: " + ", ".join(ctx.spec.outputs),
                key=True,
            )
            continue
        if not output.takes_data:
            ctx.error(
                f"data: output '{name}' takes no targets (it has no loss that reads data)", path, key=True
            )
            continue
        wanted = encoding_for(output.loss)
        if entry.encoding is not None and wanted is not None and entry.encoding != wanted:
            ctx.error(
                f"data: output '{name}' has encoding {entry.encoding}, and its loss "
                f"'{arrays.target_for(output.loss).loss}' takes {wanted} targets",
                path + ("encoding",),
                hint=f"leave encoding out (it follows the loss), or write {wanted}",
            )
        if entry.classes is not None:
            if len(set(entry.classes)) != len(entry.classes):
                twice = next(c for c in entry.classes if entry.classes.count(c) > 1)
                ctx.error(f"data: output '{name}' names class '{twice}' twice", path + ("classes",))
            if (entry.encoding or wanted) == "binary" and len(entry.classes) != 2:
                ctx.error(
                    f"data: output '{name}' is binary and names {len(entry.classes)} classes",
                    path + ("classes",),
                    hint="a binary target has two classes: [negative, positive]",
                )


def _check_image(ctx: Context, name: str, image, shape: list, path: tuple) -> None:
    if len(shape) != 3:
        ctx.error(
            f"data: input '{name}' reads images, and input '{name}' has shape {shape}",
            path,
            hint="an image input has shape [height, width, channels]",
        )
        return
    height, width, channels = shape
    if image.channels is not None and channels is not None and image.channels != channels:
        ctx.error(
            f"data: input '{name}' makes images of {image.channels} channels, and input '{name}' "
            f"takes {channels}",
            path + ("channels",),
        )
    if image.channels is None and channels not in (1, 3, 4):
        ctx.error(
            f"input '{name}' has {channels} channels; images have 1, 3 or 4",
            path,
            hint="say image: {channels: N}, with the input's last dimension N",
        )
    if image.size is not None and (height, width) != (None, None):
        if [height, width] != list(image.size):
            ctx.error(
                f"data: input '{name}' resizes images to {list(image.size)}, and input '{name}' takes "
                f"[{height}, {width}]",
                path + ("size",),
            )
    if image.size is None and (height is None or width is None):
        ctx.error(
            f"input '{name}' has images of any size, and data: says no size to resize them to",
            path,
            hint="say image: {size: [height, width]}",
        )
