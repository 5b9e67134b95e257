"""Spec data written as YAML the way people write specs: sections in the usual order, one
input, layer or output per line as a flow mapping, names aligned. `graphspec expand` and
`graphspec export` both write through here. No TensorFlow.
"""

from __future__ import annotations

from typing import Any

import yaml

from graphspec.spec.source import _Loader

SECTION_ORDER = (
    "graphspec",
    "name",
    "doc",
    "inputs",
    "layers",
    "outputs",
    "structure",
    "trainable",
    "compile",
    "train",
    "data",
)
_ONE_PER_LINE = ("inputs", "layers", "outputs")
_MAX_ALIGN = 32
_WIDE = 1 << 30


class _Dumper(yaml.SafeDumper):
    """Quotes exactly the strings graphspec's loader would read as something else (`1e-4`)."""


_Dumper.yaml_implicit_resolvers = _Loader.yaml_implicit_resolvers


def spec_yaml(data: dict[str, Any], comments: list[str] = (), skip: tuple[str, ...] = ()) -> str:
    """`data` as spec YAML, headed by `comments` (each becomes a `# ` line); `skip` sections left out."""
    lines = [f"# {comment}" for comment in comments]
    keys = [k for k in SECTION_ORDER if k in data]
    keys += [k for k in data if k not in keys and k not in skip]
    for key in keys:
        value = data[key]
        if key in _ONE_PER_LINE and isinstance(value, dict) and value:
            lines += ["", f"{key}:"]
            names = {name: scalar(name) + ":" for name in value}
            width = min(max(len(n) for n in names.values()), _MAX_ALIGN + 1)
            for name, node in value.items():
                lines.append(f"  {names[name].ljust(width)} {flow(node)}")
        else:
            nested = isinstance(value, (dict, list))
            if nested:
                lines.append("")
            lines.append(
                yaml.dump(
                    {key: value},
                    Dumper=_Dumper,
                    sort_keys=False,
                    width=100,
                    allow_unicode=True,
                    default_flow_style=None if nested else False,
                ).rstrip()
            )
    return "\n".join(lines) + "\n"


def scalar(value: Any) -> str:
    """One value as YAML on one line, quoted only where graphspec's loader needs it."""
    text = yaml.dump(value, Dumper=_Dumper, width=_WIDE, allow_unicode=True)
    return text.removesuffix("\n").removesuffix("\n...").strip()


def flow(value: Any) -> str:
    """A value, collections included, as one line of YAML."""
    if not isinstance(value, (dict, list)):
        return scalar(value)
    return yaml.dump(
        value, Dumper=_Dumper, default_flow_style=True, sort_keys=False, width=_WIDE, allow_unicode=True
    ).strip()
