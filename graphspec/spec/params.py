"""`${...}` params and command-line overrides (`--set name=value`, `--set layers.x.units=64`).

A `${...}` holds a param's name or an expression over params (expr.py); params may use each
other. Overrides are applied to the raw document before params are substituted, so an override
may itself use `${name}`. Each override is its own line of a pseudo-file named `--set`, so an error
in one points at it like an error in the spec points at its line.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

from graphspec import budget as command_budget
from graphspec.errors import Diagnostics, Location, SpecErrors, did_you_mean
from graphspec.spec import expr
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
# `--set "a=1 b=2"` (or the docs' old `--set a=1 b=2` pasted in quotes): a second NAME=VALUE after
# a space in an unquoted value. Shells split arguments, not graphspec: each override is one --set.
_ANOTHER_OVERRIDE = re.compile(r"\s+([A-Za-z_][\w.]*)=")


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
            another = _ANOTHER_OVERRIDE.search(value)
            if isinstance(source.data, str) and value[:1] not in "'\"" and another:
                col = len(key) + 2 + another.start(1)
                diagnostics.error(
                    f"override '{text}' holds a second override, '{another.group(1)}=...', after a space",
                    Location(OVERRIDE_FILE, line_no, col, len(another.group(1)) + 1),
                    hint="repeat --set for each value: " + " ".join(f"--set {part}" for part in text.split()),
                )
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

    def text(self, length: int, location: Location | None) -> None:
        """Charge a string of `length` characters, made by substitution, to the command's
        `text` budget before it is made; raise at `location` past it."""
        if location is not None and self.notes:
            location = replace(location, expansion=self.notes + location.expansion)
        meter = command_budget.current()
        meter.charge(
            "text",
            length,
            location,
            f"this string of {length:,} characters"
            + (f", after {meter.spent['text']:,} made before it," if meter.spent["text"] else ""),
            self.diagnostics.sources,
        )

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
    check_only: bool = False,
) -> Any:
    """`data` with every `${expression}` replaced by its value over `params`.

    A string that is exactly `${...}` takes the value with its type (`${width}` of an int is
    an int, `${width * 4}` too); one inside a longer string is replaced by its text. Errors
    (syntax, an unknown name, a value an operator cannot take) go to `diagnostics` at the
    column of the offending sub-expression, and leave the string as it was. What substitution
    adds is counted against `budget` (a new one, over `diagnostics`, when None): past it,
    `SpecErrors` is raised. With `check_only`, expressions are parsed and their names checked
    against `params`, and nothing is evaluated.

    The string values of a block use's `per_copy`, and the `in` of a use with `repeat`, are left
    as they are: they are evaluated for each copy, with `${copy}`, when the use is expanded
    (blocks.py).
    """
    if budget is None:
        budget = Budget(diagnostics)
    if isinstance(data, dict):
        result = {}
        for k, v in data.items():
            if not path and k in skip:
                result[k] = v
            elif k == "per_copy" and "block" in data and isinstance(v, dict):
                result[k] = _substitute_per_copy(
                    v, params, positions, diagnostics, path + (k,), budget, check_only
                )
            elif k == "in" and "block" in data and "repeat" in data:
                # A repeated use's inputs may read `${copy}`: computed for each copy (blocks.py).
                result[k] = v
            else:
                result[k] = substitute(
                    v, params, positions, diagnostics, path + (k,), skip, budget, check_only
                )
        return result
    if isinstance(data, list):
        return [
            substitute(v, params, positions, diagnostics, path + (i,), skip, budget, check_only)
            for i, v in enumerate(data)
        ]
    if not isinstance(data, str) or "${" not in data:
        return data
    return _substitute_string(data, params, positions, diagnostics, path, budget, check_only)


def _substitute_per_copy(
    per_copy: dict,
    params: dict,
    positions: Positions,
    diagnostics: Diagnostics,
    path: Path,
    budget,
    check_only,
) -> dict:
    """A use's `per_copy` with its lists substituted and its expressions left for each copy."""
    return {
        k: v
        if isinstance(v, str)
        else substitute(v, params, positions, diagnostics, path + (k,), (), budget, check_only)
        for k, v in per_copy.items()
    }


def _substitute_string(
    data: str,
    params: dict[str, Any],
    positions: Positions,
    diagnostics: Diagnostics,
    path: Path,
    budget: Budget,
    check_only: bool,
) -> Any:
    matches = list(PLACEHOLDER.finditer(data))
    if not matches:
        diagnostics.error(
            "'${' opens an expression that no '}' closes", positions.of(path), hint="write it as ${name}"
        )
        return data
    parsed: list[expr.Expression | str] = []
    for match in matches:
        if match.group(1).strip() in params:
            # A bare name, looked up as written: names such as `my-param`, which the format
            # has always allowed, are not Python names.
            parsed.append(match.group(1).strip())
            continue
        try:
            expression = expr.parse(match.group(1))
        except expr.ExprError as exc:
            diagnostics.error(exc.message, _expression_location(positions, path, data, match, exc), exc.hint)
            return data
        for name, offset, length in expression.names():
            if name in params:
                continue
            bare = expression.text.strip() == name
            location = (
                _placeholder_location(positions, path, data, match)
                if bare
                else _expression_location(positions, path, data, match, expr.ExprError("", offset, length))
            )
            diagnostics.error(
                f"'${{{name}}}' names no param" if bare else f"'{name}' names no param",
                location,
                hint=did_you_mean(name, params) or _declared(params),
            )
            return data
        parsed.append(expression)
    if check_only:
        return data
    values = []
    for match, expression in zip(matches, parsed, strict=True):
        try:
            value = params[expression] if isinstance(expression, str) else expr.evaluate(expression, params)
        except expr.ExprError as exc:
            diagnostics.error(exc.message, _expression_location(positions, path, data, match, exc), exc.hint)
            return data
        if not budget.take(value):
            budget.refuse(match.group(1).strip(), value, _placeholder_location(positions, path, data, match))
        values.append(value)
    if len(matches) == 1 and matches[0].group(0) == data:
        return values[0]
    # The string is charged by its length before it is made: a param used twice in another,
    # which is used twice in the next, doubles at each level (40 levels make 2^40 characters).
    pieces, end = [], 0
    for match, value in zip(matches, values, strict=True):
        pieces += [data[end : match.start()], value if isinstance(value, str) else str(value)]
        end = match.end()
    length = sum(map(len, pieces)) + len(data) - end
    budget.text(length, _placeholder_location(positions, path, data, matches[0]))
    return "".join(pieces) + data[end:]


def _strings(data: Any) -> Iterator[str]:
    """Every string in `data`, nested in lists and mappings, walked without recursion."""
    stack = [data]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, str):
            yield node


def referenced_names(data: Any) -> set[str]:
    """Every name the `${...}` expressions in `data` (strings, nested in lists and mappings)
    read; expressions that do not parse are skipped (substitution reports them)."""
    found: set[str] = set()
    for text in _strings(data):
        for match in PLACEHOLDER.finditer(text):
            found.add(match.group(1).strip())  # a bare name, however it is spelt
            try:
                found.update(name for name, _, _ in expr.parse(match.group(1)).names())
            except expr.ExprError:
                continue
    return found


def _has_placeholder(data: Any) -> bool:
    return any("${" in text for text in _strings(data))


def resolve_params(
    params: dict[str, Any],
    positions: Positions,
    diagnostics: Diagnostics,
    path: Path = ("params",),
    budget: Budget | None = None,
    given: dict[str, Any] | None = None,
) -> dict[str, Any] | None:
    """`params` with the expressions in their values computed: a param may use others, written
    in any order. `given` are names every param may read besides the others (`copy`).

    Returns None when a param could not be computed (a cycle, or an error in an expression);
    the problem is in `diagnostics`.
    """
    budget = budget if budget is not None else Budget(diagnostics)
    given = given or {}
    resolved: dict[str, Any] = {}
    failed: set[str] = set()
    before = len(diagnostics.errors)

    names = {**params, **given}  # what expressions read: each param replaced once computed

    def compute(name: str, uses: list[str]) -> None:
        if any(other in failed for other in uses):
            failed.add(name)
            return
        errors = len(diagnostics.errors)
        resolved[name] = substitute(params[name], names, positions, diagnostics, path + (name,), (), budget)
        names[name] = resolved[name]
        if len(diagnostics.errors) > errors:
            failed.add(name)

    # Depth first, without recursion (a chain of params may be long): a param is computed once
    # every param it uses is; one met again while its own uses are pending closes a cycle.
    for first in params:
        stack: list[tuple[str, list[str] | None]] = [(first, None)]
        chain: list[str] = []
        on_chain: set[str] = set()  # chain's names, for a test in constant time
        while stack:
            name, uses = stack.pop()
            if uses is not None:  # its uses are done
                on_chain.discard(chain.pop())
                if name not in failed:
                    compute(name, uses)
                continue
            if name in resolved or name in failed:
                continue
            if name in on_chain:
                cycle = " -> ".join(chain[chain.index(name) :] + [name])
                diagnostics.error(f"params form a cycle: {cycle}", positions.of(path + (name,)))
                failed.update(chain[chain.index(name) :])
                continue
            if not _has_placeholder(params[name]):  # most values: kept as they are, not copied
                resolved[name] = params[name]
                continue
            uses = [n for n in sorted(referenced_names(params[name])) if n in params and n not in given]
            chain.append(name)
            on_chain.add(name)
            stack.append((name, uses))
            stack.extend((other, None) for other in reversed(uses))
    return None if len(diagnostics.errors) > before else resolved


def _expression_location(
    positions: Positions, path: Path, value: str, match: re.Match, error: expr.ExprError
) -> Location | None:
    """Where the sub-expression `error` points at, inside the placeholder `match` of `value`."""
    loc = _placeholder_location(positions, path, value, match)
    if loc is None or loc.file == OVERRIDE_FILE:
        return loc
    return replace(loc, col=loc.col + 2 + error.offset, length=error.length)


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
