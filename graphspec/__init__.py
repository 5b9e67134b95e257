"""graphspec: declarative YAML specs compiled into Keras 3 functional models.

>>> import graphspec
>>> model = graphspec.load("specs/book_mlp.yaml").build()   # doctest: +SKIP
"""

from graphspec.errors import Diagnostic, Location, SpecErrors
from graphspec.spec.load import LoadedSpec, load

__version__ = "0.2.0"
__all__ = ["Diagnostic", "LoadedSpec", "Location", "SpecErrors", "load", "__version__"]
