"""Output shapes and dtypes of each node of a spec, read from the model Keras builds."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from graphspec.keras.build import build_model_and_tensors, declared_tensors

if TYPE_CHECKING:
    from graphspec.spec.load import LoadedSpec

# (which output: "" for a node's only one, "[1]" or "[name]" for one of several; shape; dtype)
Signature = tuple[str, tuple, str]


def flatten(value: Any) -> list[tuple[str, Any]]:
    """A node's value as (suffix, tensor) pairs: one tensor, a list of them, or a dict."""
    if isinstance(value, dict):
        return [(f"[{key}]", tensor) for key, tensor in value.items()]
    if isinstance(value, (list, tuple)):
        return [(f"[{i}]", tensor) for i, tensor in enumerate(value)]
    return [("", value)]


def node_signatures(loaded: LoadedSpec) -> dict[str, list[Signature]]:
    """For each input and built layer node, the shape (batch axis first, None where unknown)
    and dtype of each tensor it outputs. Builds the model, so TensorFlow is imported."""
    _, tensors = build_model_and_tensors(loaded, compile=False)
    return signatures(tensors)


def declared_signatures(loaded: LoadedSpec) -> dict[str, list[Signature]]:
    """`node_signatures` of every input and each node an output needs, without allocating a
    weight or making the model (graphspec.keras.build.declared_tensors): what the language
    server's hover shows, for a spec of any size."""
    return signatures(declared_tensors(loaded))


def signatures(tensors: dict[str, Any]) -> dict[str, list[Signature]]:
    """Each node's tensors (one, a list or a dict: `flatten`) as signatures."""
    return {
        name: [(suffix, tuple(tensor.shape), str(tensor.dtype)) for suffix, tensor in flatten(value)]
        for name, value in tensors.items()
    }
