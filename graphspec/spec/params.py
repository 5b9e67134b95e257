"""`${name}` params and command-line overrides (`--set name=value`, `--set layers.x.units=64`).

Overrides are applied to the raw document before params are substituted, so an override may
itself use `${name}`. Each override is its own line of a pseudo-file named `--set`, so an error
in one points at it like an error in the spec points at its line.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

from graphspec.errors import Diagnostics, Location, SpecErrors, did_you_mean
from graphspec.spec.source import MAX_NODES, InvalidYAML, Path, Positions, Source, parse

OVERRIDE_FILE = "--set"
PLACEHOLDER = re.compile(r"\$\{([^}]*)\}")
# Sections whose values are not substituted here: params are the values themselves, and a
# block's body is substituted with the block's own params when it is used (see blocks.py).
_UNSUBSTITUTED = ("params", "blocks", "include")
# Sections a spec may leave out (all their keys have defaults): an override such as
# `train.epochs=5` creates the section rather than pointing at nothing.
OPTIONAL_SECTIONS = ("compile", "train")
_UNREADABLE = object()  # an override whose value broke a limit: reported, not applied


def parse_value(text: str, line: int = 1, col: int = 1) -> Any:
    """A command-line value read as YAML: `64` is an int, `[1, 2]` a list, `relu` a string.

    See `read_value`, which this is the data of.
    """
    return read_value(text, line, col).data


def read_value(text: str, line: int = 1, col: int = 1) -> Source:
    """An override's value, written at `line`, `col` of the `--set` pseudo-file, read as a spec
    file is: under the same limits (size, NUL byte, nesting, aliases) and with YAML's standard
    tags only. Text that is not YAML at all stays a string, as a shell user means it.

    Positions and errors are in the pseudo-file. Raises `SpecErrors` for any problem.
    """
    try:
        source = parse(text, OVERRIDE_FILE)
    except InvalidYAML:
        return Source(OVERRIDE_FILE, text, text, Positions(OVERRIDE_FILE), Diagnostics())
    except SpecErrors as exc:
        raise SpecErrors(_shifted(exc.diagnostics, line, col)) from None
    if source.diagnostics.errors:
        raise SpecErrors(_shifted(source.diagnostics, line, col))
    positions = Positions(OVERRIDE_FILE)
    positions.values = {p: _shift(loc, line, col) for p, loc in source.positions.values.items()}
    positions.keys = {p: _shift(loc, line, col) for p, loc in source.positions.keys.items()}
    return replace(source, positions=positions)


def _shift(location: Location | None, line: int, col: int) -> Location | None:
    """A location in a value's own text moved to where the value stands in the pseudo-file."""
    if location is None:
        return None
    return replace(
        location,
        line=line + location.line - 1,
        col=location.col + col - 1 if location.line == 1 else location.col,
    )


def _shifted(diagnostics: Diagnostics, line: int, col: int) -> Diagnostics:
    # Without sources: the caller holds the pseudo-file's text, of which the value is a part.
    return Diagnostics([replace(d, location=_shift(d.location, line, col)) for d in diagnostics.items])


def apply_overrides(
    data: dict, overrides: list[str] | dict[str, Any], positions: Positions, diagnostics: Diagnostics
) -> None:
    """Apply `name=value` overrides to `data` in place; problems go to `diagnostics`."""
    read: dict[int, Positions] = {}  # line -> positions inside the value written there
    if isinstance(overrides, dict):
        items = [(str(k), v, f"{k}={v}") for k, v in overrides.items()]
    else:
        items = []
        for line_no, text in enumerate(overrides, start=1):
            key, sep, value = text.partition("=")
            if not sep:
                items.append((key.strip(), None, text))
                continue
            try:
                source = read_value(value, line_no, len(key) + 2)
            except SpecErrors as exc:
                diagnostics.extend(exc.diagnostics)
                items.append((key.strip(), _UNREADABLE, text))
                continue
            read[line_no] = source.positions
            items.append((key.strip(), source.data, text))
    diagnostics.sources[OVERRIDE_FILE] = "\n".join(line for _, _, line in items)
    params = data.get("params") if isinstance(data.get("params"), dict) else {}
    for line_no, (key, value, text) in enumerate(items, start=1):
        where = Location(OVERRIDE_FILE, line_no, 1, max(1, len(key)))
        if value is _UNREADABLE:
            continue
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
        positions.merge(read.get(line_no, Positions(OVERRIDE_FILE)), prefix=path)
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


class Budget:
    """How many values substitution may still add to one document: MAX_NODES in all.

    A param holding a list or mapping is copied whole at each use, so params used in many
    places (or in a repeated block) could build what a "billion laughs" builds with aliases.
    Each value's size is computed once. `take` counts a use before it is made; `refuse`
    reports the use that passes the limit in `diagnostics` and raises `SpecErrors`.
    """

    def __init__(self, diagnostics: Diagnostics, limit: int = MAX_NODES):
        self.diagnostics = diagnostics
        self.limit = limit
        self.added = 0
        # Notes for the error's location: the block uses being expanded, innermost first.
        self.notes: tuple[tuple[str, Location], ...] = ()
        # id -> (the value, kept alive so that its id is not reused, its size)
        self._sizes: dict[int, tuple[Any, int]] = {}

    def size(self, value: Any) -> int:
        """What substituting `value` adds: 0 for a scalar (it takes the place of the string it
        is written in), else the list or mapping and every value in it, nested ones included."""
        if not isinstance(value, (dict, list)) or id(value) in self._sizes:
            return self._sizes[id(value)][1] if id(value) in self._sizes else 0
        # Lists and mappings not counted yet, each once, parents before children: without
        # recursion, and a list shared by several parents (a param used twice in another) is
        # walked once.
        order, seen, stack = [], {id(value)}, [value]
        while stack:
            node = stack.pop()
            order.append(node)
            for child in node.values() if isinstance(node, dict) else node:
                if isinstance(child, (dict, list)) and id(child) not in seen and id(child) not in self._sizes:
                    seen.add(id(child))
                    stack.append(child)
        for node in reversed(order):  # children before parents
            total = 1
            for child in node.values() if isinstance(node, dict) else node:
                if isinstance(child, (dict, list)):
                    # A child not counted yet contains its parent: no document can hold it.
                    total += self._sizes[id(child)][1] if id(child) in self._sizes else self.limit + 1
                else:
                    total += 1
            self._sizes[id(node)] = (node, min(total, self.limit + 1))
        return self._sizes[id(value)][1]

    def take(self, value: Any) -> bool:
        """Count one use of a param whose value is `value`; False when it passes the limit."""
        size = self.size(value)
        if self.added + size > self.limit:
            return False
        self.added += size
        return True

    def refuse(self, name: str, value: Any, location: Location | None) -> None:
        """Report that the use of param `name` at `location` passes the limit; raise."""
        size = self.size(value)
        if location is not None and self.notes:
            location = replace(location, expansion=self.notes + location.expansion)
        self.diagnostics.error(
            f"params may add at most {self.limit:,} values to a spec; '${{{name}}}' holds "
            f"{size:,} and this use takes the total past that",
            location,
            hint="each use of a param copies its whole value: a large list or mapping used in many "
            "places, or in a repeated block, multiplies",
        )
        raise SpecErrors(self.diagnostics)


def substitute(
    data: Any,
    params: dict[str, Any],
    positions: Positions,
    diagnostics: Diagnostics,
    path: Path = (),
    skip: tuple = _UNSUBSTITUTED,
    budget: Budget | None = None,
) -> Any:
    """`data` with every `${name}` replaced by its param's value.

    A string that is exactly `${name}` takes the param's value with its type (an int stays an
    int); a placeholder inside a longer string is replaced by its text. What substitution adds
    is counted against `budget` (a new one, over `diagnostics`, when None): past it,
    `SpecErrors` is raised.
    """
    if budget is None:
        budget = Budget(diagnostics)
    if isinstance(data, dict):
        return {
            k: (
                v
                if (not path and k in skip)
                else substitute(v, params, positions, diagnostics, path + (k,), skip, budget)
            )
            for k, v in data.items()
        }
    if isinstance(data, list):
        return [
            substitute(v, params, positions, diagnostics, path + (i,), skip, budget)
            for i, v in enumerate(data)
        ]
    if not isinstance(data, str) or "${" not in data:
        return data
    whole = PLACEHOLDER.fullmatch(data)
    for match in PLACEHOLDER.finditer(data):
        name = match.group(1).strip()
        if name not in params:
            diagnostics.error(
                f"'${{{name}}}' names no param",
                _placeholder_location(positions, path, data, match),
                hint=did_you_mean(name, params) or _declared(params),
            )
            return data
    for match in PLACEHOLDER.finditer(data):
        name = match.group(1).strip()
        if not budget.take(params[name]):
            budget.refuse(name, params[name], _placeholder_location(positions, path, data, match))
    if whole:
        return params[whole.group(1).strip()]
    return PLACEHOLDER.sub(lambda m: str(params[m.group(1).strip()]), data)


def _placeholder_location(positions: Positions, path: Path, value: str, match: re.Match) -> Location | None:
    """Where the placeholder `match` of the string `value` at `path` is written."""
    loc = positions.of(path)
    if loc is None or loc.file == OVERRIDE_FILE:
        return loc
    return Location(
        loc.file, loc.line, loc.col + match.start() + _quote_offset(loc, value), len(match.group(0))
    )


def _quote_offset(loc: Location, value: str) -> int:
    # A quoted scalar's position is that of its opening quote: the text starts one later.
    return 1 if loc.length >= len(value) + 2 else 0
