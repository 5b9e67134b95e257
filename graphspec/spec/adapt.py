"""Preprocessing layers that learn their state from the data: which nodes are adapted, and the
checks of `adapt:` that need no TensorFlow.

A node written `{type: Normalization, adapt: true, in: x}` is made as the spec says, then, before
`fit`, adapted (Keras's `layer.adapt`) on what reaches it from the training split: the spec's
inputs, through the nodes between (graphspec/keras/adapt.py). The model is built before it is
adapted, so every shape after an adapted layer must be known without its state: an output whose
width is the vocabulary's size must be fixed by `max_tokens` and `pad_to_max_tokens: true`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from graphspec.spec.model import REFERENCE

if TYPE_CHECKING:
    from graphspec.spec.check import Context
    from graphspec.spec.model import AdaptSpec, Spec

# The keras.layers classes with an `adapt` method (tests/test_adapt.py compares with Keras).
ADAPTABLE = ("Discretization", "IntegerLookup", "Normalization", "StringLookup", "TextVectorization")
# Layers that hash their inputs: the same function for any data, so nothing to learn.
HASHING = ("HashedCrossing", "Hashing")
# The arguments that give a layer the state adapting would learn: one or the other, not both.
GIVEN_STATE = {
    "Normalization": ("mean", "variance"),
    "StringLookup": ("vocabulary", "idf_weights"),
    "IntegerLookup": ("vocabulary", "idf_weights"),
    "TextVectorization": ("vocabulary", "idf_weights"),
    "Discretization": ("bin_boundaries",),
}
# Lookup output modes whose width is the vocabulary's size, unless padded to `max_tokens`.
_VOCABULARY_WIDE = ("one_hot", "multi_hot", "count", "tf_idf")
_HINT_LAYERS = "the layers that adapt: " + ", ".join(ADAPTABLE)


def adapted_nodes(spec: Spec) -> dict[str, AdaptSpec]:
    """Each adapted layer node by name, in the spec's order, with how it is adapted."""
    return {name: node.adapted for name, node in spec.layers.items() if node.adapted is not None}


def check_adapt(ctx: Context) -> None:
    """`adapt:` is on a layer that adapts, reading one tensor, given none of the state it learns,
    with every output width known before it is adapted."""
    for name, node in ctx.spec.layers.items():
        if node.adapted is None:
            continue
        where = ("layers", name, "adapt")
        what = f"layer '{name}'"
        if node.share is not None:
            ctx.error(
                f"{what} shares '{node.share}' and is adapted; a shared layer is adapted where it is made",
                where,
                key=True,
                hint=f"write adapt on '{ctx.spec.owner(name) or node.share}'",
            )
            continue
        if node.type is None:
            ctx.error(
                f"{what} is adapted, and only a Keras preprocessing layer adapts; "
                f"this is a {node.node_kind} node",
                where,
                key=True,
                hint=_HINT_LAYERS,
            )
            continue
        if node.type not in ADAPTABLE:
            hint = (
                f"{node.type} hashes its inputs into bins, the same for any data: it needs no adapt"
                if node.type in HASHING
                else _HINT_LAYERS
            )
            ctx.error(
                f"{what}: {node.type} has no adapt method; it learns nothing from data",
                where,
                key=True,
                hint=hint,
            )
            continue
        for arg in GIVEN_STATE[node.type]:
            if node.args.get(arg) is not None:
                ctx.error(
                    f"{what} is adapted and sets '{arg}': it learns that from the data, or is given it, "
                    "not both",
                    ("layers", name, arg),
                    key=True,
                    hint=f"remove '{arg}', or remove adapt",
                )
        mode = node.args.get("output_mode")
        if node.type != "Discretization" and mode in _VOCABULARY_WIDE and not _padded(node.args):
            ctx.error(
                f"{what} is adapted with output_mode '{mode}', whose width is the size of the vocabulary "
                "it learns; the layers after it are built before it is adapted",
                where,
                key=True,
                hint="fix its width: set max_tokens: N and pad_to_max_tokens: true",
            )
        if not isinstance(node.inbound, str) or REFERENCE.match(node.inbound) is None:
            ctx.error(
                f"{what} is adapted, and an adapted layer reads one tensor",
                ("layers", name, "in"),
                hint="in: NAME, an input or a layer",
            )


def _padded(args: dict) -> bool:
    return isinstance(args.get("max_tokens"), int) and args.get("pad_to_max_tokens") is True
