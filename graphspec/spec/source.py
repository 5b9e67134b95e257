"""YAML text to plain data, with the position of every key and value kept beside it.

Positions live in a `Positions` map keyed by the path to a value (a tuple of keys and list
indices), not inside the data, so the data stays plain dicts, lists and scalars for pydantic.
Loading is safe by construction: only YAML's standard scalar tags are understood; any other tag
(`!!python/object`, `!include`, ...) is an error at its line, never a constructor call.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from graphspec import budget
from graphspec.errors import Diagnostic, Diagnostics, Location, SpecErrors

Path = tuple  # keys and list indices from the document root to a value

MAX_BYTES = 5_000_000
MAX_NODES = 1_000_000  # values after aliases are expanded: stops "billion laughs"
MAX_DEPTH = 64  # nesting of mappings and lists; a real spec needs about 6

_STR = "tag:yaml.org,2002:str"
_STANDARD_TAGS = {
    "tag:yaml.org,2002:str",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:null",
    "tag:yaml.org,2002:map",
    "tag:yaml.org,2002:seq",
}


# YAML forbids `{` and `}` in plain scalars inside flow collections, so the format's spelling
# there is quoted: `{units: "${width}"}` (docs/format.md). Specs written before that say
# `{units: ${width}}`, which no other YAML tool reads: they still load, with a warning. Before
# parsing, each `${name}` becomes `$⦃name⦄` (same length, so columns stay true), and every
# string is turned back after parsing. Expressions (`${width * 4}`) are not protected: they
# were never written unquoted, and a `,` in one would split a flow collection anyway.
_PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][\w.\-]*)\}")
_OPEN, _CLOSE = "\u2983", "\u2984"


def _protect(text: str) -> str:
    return _PLACEHOLDER.sub(lambda m: f"${_OPEN}{m.group(1)}{_CLOSE}", text)


def _unprotect(value: str) -> str:
    return value.replace("$" + _OPEN, "${").replace(_CLOSE, "}")


# libyaml's parser, where PyYAML was built with it, reads a large spec ten times faster.
_BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_BaseLoader):
    """SafeLoader that also reads `1e-4` as a float, as YAML 1.2 and every Keras user expect."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:\d[\d_]*)?(?:\.\d*)?[eE][-+]?\d+$"),
    list("-+0123456789."),
)


@dataclass
class Positions:
    """Where each value (and each mapping key) of a document stands in its source."""

    file: str
    values: dict[Path, Location] = field(default_factory=dict)
    keys: dict[Path, Location] = field(default_factory=dict)

    def of(self, path: Path, key: bool = False) -> Location | None:
        """The location of `path`, or of its nearest recorded ancestor."""
        table = self.keys if key else self.values
        path = tuple(path)
        while path:
            if path in table:
                return table[path]
            if key and path in self.values:
                return self.values[path]
            path = path[:-1]
        return self.values.get((), None)

    def key_of(self, path: Path) -> Location | None:
        return self.of(path, key=True)

    def merge(self, other: Positions, prefix: Path = ()) -> None:
        for p, loc in other.values.items():
            self.values[prefix + p] = loc
        for p, loc in other.keys.items():
            self.keys[prefix + p] = loc


@dataclass
class Source:
    """A loaded YAML document: its data, its text and the positions of its values.

    `diagnostics` holds problems that do not stop reading (a duplicate key keeps its first
    value, a forbidden tag reads as null), so later checks still report everything else.
    `unquoted` holds the warnings for each old, unquoted `${name}` in a flow collection: the
    loader shows them only for a spec without errors, where they are not noise.
    """

    file: str
    text: str
    data: Any
    positions: Positions
    diagnostics: Diagnostics
    unquoted: list[Diagnostic] = field(default_factory=list)


def _location(file: str, node: yaml.Node) -> Location:
    start, end = node.start_mark, node.end_mark
    length = end.column - start.column if end.line == start.line else 1
    return Location(file, start.line + 1, start.column + 1, max(1, length))


class InvalidYAML(SpecErrors):
    """The text is not YAML at all (a syntax error), as opposed to YAML that breaks a limit."""


def parse(text: str, file: str = "<string>") -> Source:
    """Parse YAML text into plain data with positions.

    Raises `SpecErrors` when the text is not YAML at all (`InvalidYAML`) or breaks a limit
    (size, NUL byte, nesting, aliases expanding past MAX_NODES values, a recursive alias);
    every limit is checked before the work it bounds. Other problems are collected in the
    returned source's `diagnostics`.
    """
    sources = {file: text}
    _check_text(text, file, sources)
    root = _compose(text, file, sources)
    positions = Positions(file)
    diagnostics = Diagnostics(sources=sources)
    if root is None:
        return Source(file, text, None, positions, diagnostics)
    # Without an anchor (&) and an alias (*) no node is shared, and the converter's own count
    # bounds the work: the walk over the node graph is only for documents that may need it.
    if "&" in text and "*" in text:
        _check_expansion(root, file, sources)
    meter = budget.current()
    converter = _Converter(file, positions, diagnostics, meter.left("values"))
    data = converter.convert(root, ())
    meter.charge("values", converter.visited, Location(file, 1, 1), "this document's values")
    return Source(file, text, data, positions, diagnostics, converter.unquoted)


def unquoted_placeholders(text: str) -> list[tuple[int, int]]:
    """Where the old, unquoted `${name}` scalars inside flow collections are written in `text`:
    (start, end) character offsets of each whole scalar, in document order. Text that is not
    YAML has none."""
    try:
        root = yaml.compose(_protect(text), Loader=_Loader)
    except (yaml.YAMLError, RecursionError):
        return []
    found, stack = [], [(root, False)]
    while stack:
        node, in_flow = stack.pop()
        if isinstance(node, yaml.ScalarNode):
            if _unquoted_in_flow(node, in_flow):
                found.append((node.start_mark.index, node.end_mark.index))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((child, node.flow_style) for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                stack.extend([(key, node.flow_style), (value, node.flow_style)])
    return sorted(set(found))


def requote(text: str) -> str:
    """`text` with each old, unquoted `${name}` scalar in a flow collection double-quoted, and
    nothing else changed (comments, spacing, order): what `graphspec fmt` writes.

    >>> requote("layers: {h: {units: ${width}, in: x}}  # hidden\\n")
    'layers: {h: {units: "${width}", in: x}}  # hidden\\n'
    """
    # Pieces joined once: splicing each quote into the whole text made this quadratic.
    pieces, done = [], 0
    for start, end in unquoted_placeholders(text):
        scalar = text[start:end]
        pieces += [text[done:start], '"' + scalar.replace("\\", "\\\\").replace('"', '\\"') + '"']
        done = end
    return "".join(pieces) + text[done:]


def _unquoted_in_flow(node: yaml.ScalarNode, in_flow: bool) -> bool:
    return bool(in_flow) and not node.style and _OPEN in node.value  # libyaml says "" for plain


def _check_text(text: str, file: str, sources: dict[str, str]) -> None:
    """The limits checked on the text itself, before the YAML parser sees it."""
    size = len(text.encode("utf-8", "replace"))
    if size > MAX_BYTES:
        raise SpecErrors.single(
            f"file is {size:,} bytes; a spec may have at most {MAX_BYTES:,}",
            Location(file, 1, 1),
            sources=sources,
        )
    if "\x00" in text:
        line = text[: text.index("\x00")].count("\n") + 1
        raise SpecErrors.single(
            "file contains a NUL byte: a spec is text", Location(file, line, 1), sources=sources
        )
    depth = _max_flow_depth(text)
    if depth > MAX_DEPTH:
        raise SpecErrors.single(
            f"values nest {depth} deep; a spec may nest at most {MAX_DEPTH}",
            Location(file, 1, 1),
            sources=sources,
        )


def _compose(text: str, file: str, sources: dict[str, str]) -> yaml.Node | None:
    """The YAML node graph of `text`: an alias is the very node its anchor names, not a copy."""
    try:
        return yaml.compose(_protect(text), Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        loc = Location(file, mark.line + 1, mark.column + 1) if mark else None
        message = exc.problem or exc.context or "invalid YAML"
        hint = None
        if exc.problem and exc.context and exc.context_mark and exc.context_mark is not mark:
            context = exc.context_mark
            hint = f"{exc.context}, which starts at line {context.line + 1}, column {context.column + 1}"
        if mark is not None:
            hint = _quoting_hint(text, mark, exc.context_mark if exc.context else None) or hint
        raise InvalidYAML.single(f"invalid YAML: {message}", loc, hint=hint, sources=sources) from None
    except RecursionError:
        raise SpecErrors.single(
            f"values nest too deep; a spec may nest at most {MAX_DEPTH}",
            Location(file, 1, 1),
            sources=sources,
        ) from None
    except yaml.YAMLError as exc:
        raise InvalidYAML.single(f"invalid YAML: {exc}", Location(file, 1, 1), sources=sources) from None


_INDEXED = re.compile(r"[A-Za-z_][\w.\-]*\[[^\]\[,]*\]")


def _quoting_hint(text: str, mark: yaml.Mark, context: yaml.Mark | None) -> str | None:
    """The fix for the two syntax errors a spec's author most often meets: `${...}` and
    `node[1]` written unquoted inside a flow collection, where YAML reads `{` and `[` as the
    start of another collection."""
    lines = text.splitlines()
    line = lines[mark.line] if mark.line < len(lines) else ""
    col = mark.column
    start = line.rfind("${", 0, col + 2)
    if start != -1 and start >= col - 1:
        end = line.find("}", start)
        written = line[start : end + 1] if end != -1 else line[start:]
        return f'inside {{...}} or [...], quote a value with ${{...}}: "{written}"'
    if line[col : col + 1] != "[" or not re.search(r"[\w.\-]$", line[:col]):
        return None
    if context is None or context.line != mark.line or line[context.column : context.column + 1] != "[":
        return None
    depth, end = 0, None
    for i in range(context.column, len(line)):
        depth += {"[": 1, "]": -1}.get(line[i], 0)
        if depth == 0:
            end = i
            break
    if end is None:
        return None
    items = [item.strip() for item in line[context.column + 1 : end].split(",")]
    quoted = ", ".join(f'"{item}"' if _INDEXED.fullmatch(item) else item for item in items)
    return f"quote each reference, as '[' starts a list: [{quoted}]"


def _children(node: yaml.Node) -> list[yaml.Node]:
    """The nodes `_Converter` visits under `node`: items of a list, values of a mapping."""
    if node.tag not in _STANDARD_TAGS:
        return []  # converted to None, its contents never visited
    if isinstance(node, yaml.SequenceNode):
        return node.value
    if isinstance(node, yaml.MappingNode):
        return [
            value
            for key, value in node.value
            if isinstance(key, yaml.ScalarNode) and key.tag != "tag:yaml.org,2002:merge"
        ]
    return []


def _check_expansion(root: yaml.Node, file: str, sources: dict[str, str]) -> None:
    """Refuse a document whose aliases expand it past MAX_NODES values, or that contains itself.

    Each distinct node's expanded size is computed once (an alias is the node it names), so a
    "billion laughs" costs the size of its text, not of its expansion. The error is at the
    value whose visit, in document order, would pass the limit.
    """
    sizes: dict[int, int] = {}
    entered: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:  # depth-first, without recursion: block nesting is not bounded before this
        node, finished = stack.pop()
        key = id(node)
        if finished:
            total = 1 + sum(sizes[id(child)] for child in _children(node))
            sizes[key] = min(total, MAX_NODES + 1)  # past the limit, how far past is moot
            continue
        if key in sizes:
            continue
        if key in entered:  # entered and not finished: it is its own descendant
            raise SpecErrors.single(
                "this value contains an alias to itself; a spec's values cannot be recursive",
                _location(file, node),
                sources=sources,
            )
        entered.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in _children(node) if id(child) not in sizes)
    if sizes[id(root)] <= MAX_NODES:
        return
    # Walk down, in the order the converter visits values, to the one it would pass the limit
    # in: at each level, the child whose values, added to those before it, pass MAX_NODES. The
    # walk stops at an alias, whose node is written elsewhere (at its anchor): the error is at
    # the value that holds the alias.
    node, visited = root, 0
    while visited < MAX_NODES:
        visited += 1
        crossing, alias = None, False
        written = node.start_mark.index  # where the text of the children read so far ends
        for child in _children(node):
            # An alias names a node written earlier: before this one, or in an earlier child.
            alias = child.start_mark.index < written
            written = written if alias else child.end_mark.index
            if visited + sizes[id(child)] > MAX_NODES:
                crossing = child
                break
            visited += sizes[id(child)]
        if crossing is None or alias:
            break
        node = crossing
    raise SpecErrors.single(
        f"document expands to more than {MAX_NODES:,} values (aliases included)",
        _location(file, node),
        hint="a spec this large is almost certainly an alias bomb",
        sources=sources,
    )


def _max_flow_depth(text: str) -> int:
    """An upper bound on the nesting of flow collections (`[[[...]]]`), found without parsing.

    The YAML composer recurses once per level, so a file of 100,000 `[` would exhaust Python's
    stack before any check of ours could run; this scan is the check that runs first.
    """
    depth = deepest = 0
    for char in text:
        if char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}" and depth:
            depth -= 1
    return deepest


class _Converter:
    def __init__(self, file: str, positions: Positions, diagnostics: Diagnostics, left: int = MAX_NODES):
        self.file = file
        self.left = left  # values the command's budget has left for this document
        self.positions = positions
        self.diagnostics = diagnostics
        self.visited = 0
        self.constructor = _Loader("")
        self.unquoted: list[Diagnostic] = []

    def convert(self, node: yaml.Node, path: Path, in_flow: bool = False) -> Any:
        self.visited += 1
        if len(path) > MAX_DEPTH:
            raise SpecErrors.single(
                f"values nest more than {MAX_DEPTH} deep",
                _location(self.file, node),
                sources=self.diagnostics.sources,
            )
        # A document without aliases is counted here as it is converted; `_check_expansion`
        # has refused one whose aliases pass the limit before any of it was converted.
        if self.visited > MAX_NODES:
            raise SpecErrors.single(
                f"document expands to more than {MAX_NODES:,} values (aliases included)",
                _location(self.file, node),
                hint="a spec this large is almost certainly an alias bomb",
                sources=self.diagnostics.sources,
            )
        if self.visited > self.left:
            raise budget.current().refusal(
                "values",
                "this value, with the values read before it,",
                _location(self.file, node),
                self.diagnostics.sources,
            )
        self.positions.values.setdefault(path, _location(self.file, node))
        if node.tag not in _STANDARD_TAGS:
            self.diagnostics.error(
                f"YAML tag '{node.tag}' is not allowed: a spec is data and cannot construct objects",
                _location(self.file, node),
            )
            return None
        if isinstance(node, yaml.ScalarNode):
            # A string is its text: the constructor, which would return the same, is skipped.
            value = node.value if node.tag == _STR else self.constructor.construct_object(node)
            if isinstance(value, str) and _OPEN in value:
                value = _unprotect(value)
                if _unquoted_in_flow(node, in_flow):
                    self._unquoted(node, value)
            return value
        if isinstance(node, yaml.SequenceNode):
            return [self.convert(item, path + (i,), node.flow_style) for i, item in enumerate(node.value)]
        result: dict = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                self.diagnostics.error(
                    "YAML merge keys ('<<') are not supported in specs", _location(self.file, key_node)
                )
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                self.diagnostics.error("a mapping key must be a plain name", _location(self.file, key_node))
                continue
            if key_node.tag not in _STANDARD_TAGS:  # a key is data too: no constructor is called
                self.diagnostics.error(
                    f"YAML tag '{key_node.tag}' is not allowed: a spec is data and cannot construct objects",
                    _location(self.file, key_node),
                )
                continue
            key = key_node.value if key_node.tag == _STR else self.constructor.construct_object(key_node)
            if not isinstance(key, (str, int)) or isinstance(key, bool):
                key = str(key_node.value)
            if key in result:
                first = self.positions.keys.get(path + (key,))
                where = f" (first at line {first.line})" if first else ""
                self.diagnostics.error(f"duplicate key '{key}'{where}", _location(self.file, key_node))
                continue
            self.positions.keys[path + (key,)] = _location(self.file, key_node)
            result[key] = self.convert(value_node, path + (key,), node.flow_style)
        return result

    def _unquoted(self, node: yaml.ScalarNode, value: str) -> None:
        quoted = '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
        self.unquoted.append(
            Diagnostic(
                f"'{value}' unquoted inside {{...}} or [...] is not standard YAML: other tools "
                "cannot read this file",
                _location(self.file, node),
                f"quote it: {quoted} (graphspec fmt FILE quotes every one)",
                severity="warning",
            )
        )
