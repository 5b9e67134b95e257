"""`${name}` params and command-line overrides (`--set name=value`, `--set layers.x.units=64`).

Overrides are applied to the raw document before params are substituted, so an override may
itself use `${name}`. Each override is its own line of a pseudo-file named `--set`, so an error
in one points at it like an error in the spec points at its line.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from graphspec.errors import Diagnostics, Location, did_you_mean
from graphspec.spec.source import Path, Positions, _Loader

OVERRIDE_FILE = "--set"
PLACEHOLDER = re.compile(r"\$\{([^}]*)\}")
# Sections whose values are not substituted here: params are the values themselves, and a
# block's body is substituted with the block's own params when it is used (see blocks.py).
_UNSUBSTITUTED = ("params", "blocks", "include")
# Sections a spec may leave out (all their keys have defaults): an override such as
# `train.epochs=5` creates the section rather than pointing at nothing.
OPTIONAL_SECTIONS = ("compile", "train")


def parse_value(text: str) -> Any:
    """A command-line value read as YAML: `64` is an int, `[1, 2]` a list, `relu` a string."""
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.YAMLError:
        return text


def apply_overrides(
    data: dict, overrides: list[str] | dict[str, Any], positions: Positions, diagnostics: Diagnostics
) -> None:
    """Apply `name=value` overrides to `data` in place; problems go to `diagnostics`."""
    if isinstance(overrides, dict):
        items = [(str(k), v, f"{k}={v}") for k, v in overrides.items()]
    else:
        items = []
        for text in overrides:
            key, sep, value = text.partition("=")
            items.append((key.strip(), parse_value(value) if sep else None, text))
    diagnostics.sources[OVERRIDE_FILE] = "\n".join(line for _, _, line in items)
    params = data.get("params") if isinstance(data.get("params"), dict) else {}
    for line_no, (key, value, text) in enumerate(items, start=1):
        where = Location(OVERRIDE_FILE, line_no, 1, max(1, len(key)))
        if "=" not in text:
            diagnostics.error(f"override '{text}' has no value", where, hint="write NAME=VALUE")
            continue
        path = tuple(key.split(".")) if "." in key else ("params", key)
        if path[0] == "params" and len(path) == 2 and path[1] not in params:
            diagnostics.error(
                f"override sets param '{path[1]}', which the spec does not declare",
                where,
                hint=did_you_mean(path[1], params) or _declared(params),
            )
            continue
        if path[0] in OPTIONAL_SECTIONS and len(path) > 1 and path[0] not in data:
            data[path[0]] = {}
        if not _set_path(data, path, value):
            diagnostics.error(
                f"override path '{key}' points at nothing in the spec", where, hint=_path_hint(data, path)
            )
            continue
        positions.values[path] = Location(
            OVERRIDE_FILE, line_no, len(key) + 2, max(1, len(text) - len(key) - 1)
        )


def _declared(params: dict) -> str:
    return "declared params: " + ", ".join(params) if params else "the spec declares no params"


def settable(data: Any, path: Path) -> bool:
    """Whether an override could set `data[path]`: its parent exists (a new leaf key may be added)."""
    return _container(data, path) is not None


def _container(data: Any, path: Path) -> dict | list | None:
    """The mapping or list an override of `path` writes into, or None when there is none."""
    node = data
    for key in path[:-1]:
        if isinstance(node, dict) and key in node and isinstance(node[key], (dict, list)):
            node = node[key]
        elif isinstance(node, list) and str(key).isdigit() and int(key) < len(node):
            node = node[int(key)]
        else:
            return None
    if isinstance(node, dict):
        return node
    if isinstance(node, list) and str(path[-1]).isdigit() and int(path[-1]) < len(node):
        return node
    return None


def _set_path(data: Any, path: Path, value: Any) -> bool:
    """Set `data[path] = value`; the parent must exist (a new leaf key is allowed)."""
    node = _container(data, path)
    if node is None:
        return False
    if isinstance(node, dict):
        node[path[-1]] = value
    else:
        node[int(path[-1])] = value
    return True


def _path_hint(data: Any, path: Path) -> str | None:
    node = data
    for key in path[:-1]:
        if isinstance(node, dict) and key in node:
            node = node[key]
        else:
            return did_you_mean(key, node) if isinstance(node, dict) else None
    return None


def substitute(
    data: Any,
    params: dict[str, Any],
    positions: Positions,
    diagnostics: Diagnostics,
    path: Path = (),
    skip: tuple = _UNSUBSTITUTED,
) -> Any:
    """`data` with every `${name}` replaced by its param's value.

    A string that is exactly `${name}` takes the param's value with its type (an int stays an
    int); a placeholder inside a longer string is replaced by its text.
    """
    if isinstance(data, dict):
        return {
            k: (
                v
                if (not path and k in skip)
                else substitute(v, params, positions, diagnostics, path + (k,), skip)
            )
            for k, v in data.items()
        }
    if isinstance(data, list):
        return [substitute(v, params, positions, diagnostics, path + (i,), skip) for i, v in enumerate(data)]
    if not isinstance(data, str) or "${" not in data:
        return data
    whole = PLACEHOLDER.fullmatch(data)
    for match in PLACEHOLDER.finditer(data):
        name = match.group(1).strip()
        if name not in params:
            loc = positions.of(path)
            if loc is not None and loc.file != OVERRIDE_FILE:
                loc = Location(
                    loc.file,
                    loc.line,
                    loc.col + match.start() + _quote_offset(loc, data),
                    len(match.group(0)),
                )
            diagnostics.error(
                f"'${{{name}}}' names no param", loc, hint=did_you_mean(name, params) or _declared(params)
            )
            return data
    if whole:
        return params[whole.group(1).strip()]
    return PLACEHOLDER.sub(lambda m: str(params[m.group(1).strip()]), data)


def _quote_offset(loc: Location, value: str) -> int:
    # A quoted scalar's position is that of its opening quote: the text starts one later.
    return 1 if loc.length >= len(value) + 2 else 0
