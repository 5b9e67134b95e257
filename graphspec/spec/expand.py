"""A spec as YAML with its blocks, repeats, params and overrides resolved: `graphspec expand`.

The text is the document that was validated, after expansion, so on its own it validates and
builds to the same model. It is written the way people write specs: one node per line as a
flow mapping, names aligned. No TensorFlow is imported.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import yaml

from graphspec.spec.source import _Loader

if TYPE_CHECKING:
    from graphspec.spec.load import LoadedSpec

SECTION_ORDER = ("graphspec", "name", "doc", "inputs", "layers", "outputs", "compile", "train")
# Sections that expansion has used up: nothing in the expanded document refers to them.
RESOLVED_SECTIONS = ("params", "blocks", "include")
_ONE_PER_LINE = ("inputs", "layers", "outputs")
_MAX_ALIGN = 32
_WIDE = 1 << 30


class _Dumper(yaml.SafeDumper):
    """Quotes exactly the strings graphspec's loader would read as something else (`1e-4`)."""


_Dumper.yaml_implicit_resolvers = _Loader.yaml_implicit_resolvers


def expanded_yaml(loaded: LoadedSpec) -> str:
    """The expanded spec as YAML text, headed by a comment saying where it came from."""
    data = loaded.expansion.data or loaded.resolved()
    origin = str(loaded.path) if loaded.path else "a spec"
    sets = "".join(f" --set {o}" for o in loaded.overrides)
    lines = [f"# Expanded from {origin} by `graphspec expand{sets}`:",
             "# blocks, repeats, params and overrides are resolved."]
    if any(node.spec for node in loaded.spec.layers.values()):
        lines.append("# Nested spec paths are relative to the folder of the original spec.")
    keys = [k for k in SECTION_ORDER if k in data]
    keys += [k for k in data if k not in keys and k not in RESOLVED_SECTIONS]
    for key in keys:
        if key in _ONE_PER_LINE and isinstance(data[key], dict) and data[key]:
            lines.append("")
            lines.append(f"{key}:")
            names = {name: _scalar(name) + ":" for name in data[key]}
            width = min(max(len(n) for n in names.values()), _MAX_ALIGN + 1)
            for name, value in data[key].items():
                lines.append(f"  {names[name].ljust(width)} {_flow(value)}")
        else:
            nested = isinstance(data[key], (dict, list))
            if nested:
                lines.append("")
            lines.append(yaml.dump({key: data[key]}, Dumper=_Dumper, sort_keys=False, width=100,
                                   allow_unicode=True, default_flow_style=None if nested else False).rstrip())
    return "\n".join(lines) + "\n"


def _scalar(value: Any) -> str:
    text = yaml.dump(value, Dumper=_Dumper, width=_WIDE, allow_unicode=True)
    return text.removesuffix("\n").removesuffix("\n...").strip()


def _flow(value: Any) -> str:
    if not isinstance(value, (dict, list)):
        return _scalar(value)
    return yaml.dump(value, Dumper=_Dumper, default_flow_style=True, sort_keys=False, width=_WIDE,
                     allow_unicode=True).strip()
