"""graphspec: declarative YAML specs compiled into Keras 3 functional models.

>>> import graphspec
>>> model = graphspec.load("specs/book_mlp.yaml").build()   # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from graphspec.errors import Diagnostic, Location, SpecErrors
    from graphspec.spec.load import LoadedSpec, load

__version__ = "0.2.0"
__all__ = ["Diagnostic", "LoadedSpec", "Location", "SpecErrors", "load", "__version__"]

# Where each public name is defined. They are imported on first use (PEP 562), not with the
# package: every command imports `graphspec` first, and `graphspec validate` must set up what
# pydantic loads before the spec models are built (graphspec/main.py, issue 22).
_PUBLIC = {
    "Diagnostic": "graphspec.errors",
    "Location": "graphspec.errors",
    "SpecErrors": "graphspec.errors",
    "LoadedSpec": "graphspec.spec.load",
    "load": "graphspec.spec.load",
}


def __getattr__(name: str) -> object:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'graphspec' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(_PUBLIC[name]), name)
