"""A spec as YAML with its blocks, repeats, params and overrides resolved: `graphspec expand`.

The text is the document that was validated, after expansion, so on its own it validates and
builds to the same model. It is written the way people write specs: one node per line as a
flow mapping, names aligned. No TensorFlow is imported.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from graphspec.errors import printable
from graphspec.spec.write import spec_yaml

if TYPE_CHECKING:
    from graphspec.spec.load import LoadedSpec

# Sections that expansion has used up: nothing in the expanded document refers to them. A
# `search:` goes too: its paths may name params, which the expanded document no longer has.
RESOLVED_SECTIONS = ("params", "blocks", "include", "search")


def expanded_yaml(loaded: LoadedSpec) -> str:
    """The expanded spec as YAML text, headed by a comment saying where it came from."""
    data = loaded.expansion.data or loaded.resolved()
    # A comment line: a newline or an escape in the path or a value is shown escaped, so it
    # neither ends the comment nor reaches the terminal.
    origin = printable(str(loaded.path), newlines=False) if loaded.path else "a spec"
    sets = "".join(f" --set {printable(o, newlines=False)}" for o in loaded.overrides)
    comments = [
        f"Expanded from {origin} by `graphspec expand{sets}`:",
        "blocks, repeats, params and overrides are resolved.",
    ]
    if any(node.spec for node in loaded.spec.layers.values()):
        comments.append("Nested spec paths are relative to the folder of the original spec.")
    return spec_yaml({k: v for k, v in data.items() if k not in RESOLVED_SECTIONS}, comments)
