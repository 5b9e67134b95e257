"""What `graphspec lsp` answers, without the protocol: a spec's problems at their ranges, where a
name is defined, what a node is, and the edits that rename one.

Everything here works on the text an editor holds (saved or not) and the file it stands for.
Positions are 0-based lines and characters, as the Language Server Protocol counts them; a
character is a code point (graphspec's columns count the same way). graphspec.lsp turns these
into LSP messages.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from graphspec import budget
from graphspec.errors import Diagnostic, Location, SpecErrors
from graphspec.policy import Policy
from graphspec.spec.files import WORKING_TREE
from graphspec.spec.source import Positions, parse

# A name a node may be renamed to, and a name in a `math:` expression (not an attribute).
_NODE_NAME = re.compile(r"[A-Za-z_][\w\-]*(?:\.[\w\-]+)*")
_IDENTIFIER = re.compile(r"(?<![\w.])[A-Za-z_]\w*(?![\w.])")


@dataclass(frozen=True)
class Span:
    """A range on one line: 0-based `line`, characters [start, end)."""

    line: int
    start: int
    end: int

    def holds(self, line: int, character: int) -> bool:
        return line == self.line and self.start <= character <= self.end


@dataclass(frozen=True)
class Problem:
    """A diagnostic placed in the document: its span, severity (`error`/`warning`), message and
    hint. A problem found in another file (an included block file, a nested spec) is placed at
    the use that led to it, or at the top, and its message says where it is."""

    span: Span
    severity: str
    message: str
    hint: str | None = None


@dataclass(frozen=True)
class Target:
    """Where a definition is: a file and a span in it."""

    path: Path
    span: Span


@dataclass
class _Token:
    span: Span
    path: tuple
    key: bool  # a mapping key, not a value


class Document:
    """One spec as an editor holds it: its text and the file it stands for (None for an unsaved
    buffer). It is parsed on the first question about its names, not for its diagnostics:
    validating parses the text itself, and a keystroke should not pay for two parses."""

    def __init__(self, text: str, path: Path | None, root: Path | None = None) -> None:
        self.text = text
        self.path = path
        # Where the spec may read nested specs and includes (`--root`; default: its folder).
        self.root = root
        self.lines = text.split("\n")
        self._parsed = False
        self._data: Any = None
        self._positions: Positions | None = None
        self._tokens: list[_Token] = []

    def _parse(self) -> None:
        if self._parsed:
            return
        self._parsed = True
        try:
            source = parse(self.text, self.name)
        except SpecErrors:  # not YAML: nothing to point at
            return
        self._data, self._positions = source.data, source.positions
        for path, location in source.positions.keys.items():
            self._tokens.append(_Token(self.span_of(location), path, True))
        for path, location in source.positions.values.items():
            if path and not isinstance(self._value(path), dict | list):
                self._tokens.append(_Token(self.span_of(location), path, False))

    @property
    def data(self) -> Any:
        """The document's data as YAML reads it; None where the text is not YAML."""
        self._parse()
        return self._data

    @property
    def positions(self) -> Positions | None:
        self._parse()
        return self._positions

    @property
    def tokens(self) -> list[_Token]:
        self._parse()
        return self._tokens

    @property
    def name(self) -> str:
        """How graphspec's messages name this document's file."""
        return str(self.path) if self.path else "<buffer>"

    def span_of(self, location: Location) -> Span:
        """The span of the scalar (a key, a plain or a quoted value) that starts at `location`."""
        line = location.line - 1
        start = max(location.col - 1, 0)
        text = self.lines[line] if 0 <= line < len(self.lines) else ""
        if location.length > 1:
            return Span(line, start, start + location.length)
        if start < len(text) and text[start] in "\"'":
            quote = text[start]
            end = text.find(quote, start + 1)
            return Span(line, start, len(text) if end < 0 else end + 1)
        end = start
        while end < len(text) and text[end] not in ",{}[]#\n" and text[end : end + 2] != ": ":
            end += 1
        while end > start and text[end - 1] in " \t:":
            end -= 1
        return Span(line, start, max(end, start + 1))

    def _value(self, path: tuple) -> Any:
        value = self.data
        for part in path:
            try:
                value = value[part]
            except (KeyError, IndexError, TypeError):
                return None
        return value

    def at(self, line: int, character: int) -> _Token | None:
        """The key or scalar value under the cursor; the innermost where several hold it."""
        found = [t for t in self.tokens if t.span.holds(line, character)]
        return min(found, key=lambda t: (t.span.end - t.span.start, -len(t.path)), default=None)

    # --- names ---------------------------------------------------------------------------

    def _scope(self, path: tuple) -> tuple | None:
        """The path of the `layers:` mapping a path inside a node belongs to: ("layers",) or
        ("blocks", NAME, "layers")."""
        if len(path) >= 2 and path[0] == "layers":
            return ("layers",)
        if len(path) >= 4 and path[0] == "blocks" and path[2] == "layers":
            return path[:3]
        return None

    def _inputs_of(self, scope: tuple) -> tuple:
        return ("inputs",) if scope == ("layers",) else (*scope[:2], "in")

    def _reference(self, token: _Token) -> tuple[tuple, str] | None:
        """(scope, node name) when the token is a reference to a node: a value in `in:`, a
        `share:`, an output's `from:`."""
        path, value = token.path, self._value(token.path)
        if token.key or not isinstance(value, str):
            return None
        if path[:1] == ("outputs",) and len(path) == 3 and path[2] == "from":
            return ("layers",), _target(value)
        scope = self._scope(path)
        if scope is None:
            return None
        inner = path[len(scope) + 1 :]
        # A chain's element: ("layers", NODE, INDEX, "in", ...).
        if inner and isinstance(inner[0], int):
            inner = inner[1:]
        if inner[:1] == ("in",) or inner == ("share",):
            return scope, _target(value)
        return None

    def _definition_path(self, scope: tuple, name: str) -> tuple | None:
        """The key path that defines node or input `name` in `scope`."""
        layers = self._value(scope)
        if isinstance(layers, dict):
            if name in layers:
                return (*scope, name)
            # A chain's element or a block use's node (`stem.conv2d`, `stage2.1.conv`) is
            # defined by the chain or the use.
            head = name.split(".")[0]
            if "." in name and head in layers:
                return (*scope, head)
        inputs_path = self._inputs_of(scope)
        inputs = self._value(inputs_path)
        if isinstance(inputs, dict) and name in inputs:
            return (*inputs_path, name)
        if isinstance(inputs, list) and name in inputs:  # a block's inputs: [x, skip]
            return (*inputs_path, inputs.index(name))
        return None

    def _key_span(self, path: tuple) -> Span | None:
        assert self.positions is not None
        location = self.positions.keys.get(path) or self.positions.values.get(path)
        return self.span_of(location) if location else None

    def definition(self, line: int, character: int) -> Target | None:
        """Where the name under the cursor is defined: the node or input an `in:`, `share:` or
        `from:` names, the block a `block:` uses (here or in an included file), the file a
        `spec:` or `include:` names."""
        token = self.at(line, character)
        if token is None or self.positions is None:
            return None
        reference = self._reference(token)
        if reference is not None:
            defined = self._definition_path(*reference)
            span = self._key_span(defined) if defined else None
            return Target(self.path or Path(self.name), span) if span else None
        value = self._value(token.path)
        if token.key or not isinstance(value, str):
            return None
        if token.path[-1] == "block" and self._scope(token.path) is not None:
            return self._block(value)
        if token.path[-1] == "spec" and self._scope(token.path) is not None:
            return self._file(value)
        if token.path[:1] == ("include",):
            return self._file(value)
        return None

    def _readable(self, written: str, base: Path) -> Path | None:
        """The spec file `written` names from the file `base`, where the spec may read it (the
        rules `validate` applies: a .yaml or .yml file under the root); None otherwise."""
        if self.path is None:
            return None
        target = base.parent / written
        policy = Policy(self.root).for_spec(self.path)
        if policy.spec_refusal(written, target) is not None or not target.is_file():
            return None
        return target

    def _file(self, relative: str) -> Target | None:
        target = self._readable(relative, self.path) if self.path else None
        return Target(target, Span(0, 0, 0)) if target else None

    def _block(self, name: str) -> Target | None:
        blocks = self._value(("blocks",))
        if isinstance(blocks, dict) and name in blocks:
            span = self._key_span(("blocks", name))
            return Target(self.path or Path(self.name), span) if span else None
        if self.path is None:
            return None
        # An included file's blocks, and the files it includes in turn (each file once), read
        # as validate reads them: under the root, regular files, within the size limit.
        seen: set[Path] = set()
        queue = [(written, self.path) for written in _as_list(self._value(("include",)))]
        with budget.fresh():
            while queue:
                written, base = queue.pop(0)
                file = self._readable(written, base)
                if file is None or file.resolve() in seen:
                    continue
                seen.add(file.resolve())
                try:
                    other = Document(WORKING_TREE.read(file), file, self.root)
                except (SpecErrors, OSError, UnicodeDecodeError):
                    continue
                blocks = other._value(("blocks",))
                if isinstance(blocks, dict) and name in blocks and other.positions is not None:
                    span = other._key_span(("blocks", name))
                    if span:
                        return Target(file, span)
                queue += [(w, file) for w in _as_list(other._value(("include",)))]
        return None

    # --- hover -----------------------------------------------------------------------------

    def node_at(self, line: int, character: int) -> tuple[tuple, str] | None:
        """(scope, node) for a node's key, or for any reference to a node, under the cursor."""
        token = self.at(line, character)
        if token is None:
            return None
        reference = self._reference(token)
        if reference is not None:
            defined = self._definition_path(*reference)
            if defined and defined[: len(reference[0])] == reference[0]:
                return reference[0], defined[-1]
            return None
        scope = self._scope(token.path)
        if token.key and scope is not None and len(token.path) == len(scope) + 1:
            return scope, token.path[-1]
        if token.key and token.path[:1] == ("outputs",) and len(token.path) == 2:
            if self._value(("outputs", token.path[1], "from")) is None:
                defined = self._definition_path(("layers",), token.path[1])
                if defined and defined[0] == "layers":
                    return ("layers",), token.path[1]
        return None

    def hover(
        self,
        line: int,
        character: int,
        loaded: Any = None,
        stale: bool = False,
        shapes: Callable[[str], list[str]] | None = None,
    ) -> str | None:
        """Markdown about the node under the cursor: its kind and type, and its arguments after
        params and overrides were substituted (from `loaded`, the last valid load of this
        document, `stale` when the text has changed since), or as written without one; with
        `shapes`, what it says of a node's output shapes in that load (graphspec.lsp_shapes)."""
        shapes = shapes or (lambda node: [])
        found = self.node_at(line, character)
        if found is None:
            return None
        scope, name = found
        raw = self._value((*scope, name))
        lines = [f"**{name}**"]
        spec_layers = getattr(getattr(loaded, "spec", None), "layers", None) if scope == ("layers",) else None
        if spec_layers is not None and name in spec_layers:
            node = spec_layers[name]
            kind = node.node_kind
            what = getattr(node, kind)
            lines[0] += f": {kind} `{what}`" if kind != "type" else f": `{what}`"
            args = {**node.args, **({"call": node.call} if node.call else {})}
            if node.params:
                args["params"] = node.params
            title = "arguments after substitution" + (" (as of the last valid version)" if stale else "")
            lines += _arguments(args, title)
            lines.append(f"- in: `{_short(node.inbound)}`")
            lines += [f"- {said}" for said in shapes(name)]
        elif spec_layers is not None and any(n.startswith(name + ".") for n in spec_layers):
            members = [n for n in spec_layers if n.startswith(name + ".")]
            kind = "block use" if isinstance(raw, dict) and "block" in raw else "chain"
            lines[0] += f": {kind} of {len(members)} nodes"
            # What is said of no node in particular ("computing", "not known") is said of the
            # whole load: once, not on each member's line.
            of_the_load = shapes("")
            for member in members[:20]:
                node = spec_layers[member]
                said = "" if of_the_load else "; ".join(shapes(member))
                lines.append(
                    f"- `{member}`: {node.node_kind} `{getattr(node, node.node_kind)}`"
                    + (f", {said}" if said else "")
                )
            if len(members) > 20:
                lines.append(f"- ... and {len(members) - 20} more")
            lines += [f"- {said}" for said in of_the_load]
        elif isinstance(raw, dict):
            kind = next((k for k in ("type", "op", "share", "spec", "block", "math") if k in raw), None)
            if kind:
                lines[0] += f": {kind} `{raw[kind]}`"
            args = {k: v for k, v in raw.items() if k not in ("type", "op", "share", "spec", "block", "math")}
            lines += _arguments(args, "arguments as written (not substituted: the spec does not load)")
        elif isinstance(raw, list):
            lines[0] += f": chain of {len(raw)} layers"
        else:
            return None
        return "\n".join(line for line in lines if line)

    # --- rename ----------------------------------------------------------------------------

    def rename(self, line: int, character: int, new: str) -> list[tuple[Span, str]] | str:
        """The edits that rename the node under the cursor (its key, or a reference to it) to
        `new`: its key, every `in:`, `share:` and `from:` that reads it (an index or a member
        after it is kept: `h[1]`, `h.conv`), the names in `math:` expressions, and the output
        of the same name. A message instead when it cannot be renamed."""
        found = self.node_at(line, character)
        if found is None:
            return "not a node: rename a layer by its name or by a reference to it"
        scope, old = found
        if not _NODE_NAME.fullmatch(new) or "." in new:
            return f"'{new}' is not a node name: letters, digits, _ and -, not starting with a digit"
        layers = self._value(scope)
        taken = set(layers) | set(_as_names(self._value(self._inputs_of(scope))))
        if new in taken and new != old:
            return f"'{new}' is already a node or an input"
        edits: list[tuple[Span, str]] = []
        key = self._key_span((*scope, old))
        if key:
            edits.append((self._name_span(key, old), new))
        for token in self.tokens:
            reference = self._reference(token)
            if reference is not None and reference[0] == scope:
                value = self._value(token.path)
                if _target(value) == old or value.startswith(old + "."):
                    edits.append((self._name_span(token.span, old), new))
                continue
            if not token.key and token.path[-1:] == ("math",) and self._scope(token.path) == scope:
                aliases = self._value((*token.path[:-1], "in"))
                if isinstance(aliases, dict) and old in aliases:
                    continue
                edits += self._math_edits(token.span, old, new)
        if scope == ("layers",):
            outputs = self._value(("outputs",))
            if isinstance(outputs, dict) and old in outputs and not _has_from(outputs[old]):
                span = self._key_span(("outputs", old))
                if span:
                    edits.append((self._name_span(span, old), new))
        return sorted(set(edits), key=lambda e: (e[0].line, e[0].start))

    def _name_span(self, span: Span, name: str) -> Span:
        """The span of `name` itself inside a scalar's span (past an opening quote)."""
        text = self.lines[span.line]
        start = text.find(name, span.start, max(span.end, span.start + len(name) + 1))
        start = span.start if start < 0 else start
        return Span(span.line, start, start + len(name))

    def _math_edits(self, span: Span, old: str, new: str) -> list[tuple[Span, str]]:
        text = self.lines[span.line][span.start : span.end]
        edits = []
        for match in _IDENTIFIER.finditer(text):
            after = text[match.end() :].lstrip()
            if match.group() == old and not after.startswith("("):  # `sum(` is a function
                edits.append((Span(span.line, span.start + match.start(), span.start + match.end()), new))
        return edits


def _target(reference: str) -> str:
    """The node a reference reads: `h` of `h[1]`."""
    return reference.split("[", 1)[0].strip()


def _as_list(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _as_names(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [k for k in value if isinstance(k, str)]
    return _as_list(value)


def _has_from(output: Any) -> bool:
    return isinstance(output, dict) and "from" in output


def _short(value: Any, limit: int = 80) -> str:
    text = str(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _arguments(args: dict, title: str) -> list[str]:
    if not args:
        return []
    return [f"\n{title}:", *(f"- {k}: `{_short(v)}`" for k, v in args.items())]


def problems(document: Document) -> tuple[list[Problem], Any]:
    """`graphspec validate`'s diagnostics of the document (its errors, or its warnings when it
    is valid) placed in it, and the loaded spec (None when it has errors)."""
    from graphspec.spec.load import load_text

    try:
        # Each analysis spends a budget of its own, with the command's limits: a server that
        # charged one budget over every keystroke would refuse the spec after enough edits.
        with budget.fresh():
            loaded = load_text(document.text, document.name, base=document.path, root=document.root)
    except SpecErrors as exc:
        return [_place(document, d) for d in exc.diagnostics.items], None
    return [_place(document, d) for d in loaded.diagnostics.items], loaded


def _place(document: Document, diagnostic: Diagnostic) -> Problem:
    hint = diagnostic.hint if diagnostic.hint is None else str(diagnostic.hint)
    location = diagnostic.location
    message = diagnostic.message
    if location is not None and location.file != document.name:
        # Found in another file: shown at the use in this document that led there, if any.
        elsewhere = location
        location = next((loc for _, loc in location.expansion if loc.file == document.name), None)
        message = f"{elsewhere}: {message}"
    if location is None:
        return Problem(Span(0, 0, 0), diagnostic.severity, message, hint)
    return Problem(document.span_of(location), diagnostic.severity, message, hint)
