"""Diagnostics: every problem found in a spec, with where it is, rendered like a compiler's.

Problems are collected, never raised one at a time, so that a user sees all of a file's errors
in one run. Only the CLI renders them; the library raises `SpecErrors` carrying the list.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from dataclasses import dataclass, field, replace
from functools import lru_cache

MAX_SHOWN = 50
MAX_QUOTED = 200  # characters of a source line shown under its message
# A quoted name with dots: in a message about a block's line, the name of one expanded node.
_EXPANDED_NAME = re.compile(r"'[A-Za-z_][\w\-]*(?:\.[\w\-]+)+'")


@dataclass(frozen=True)
class Location:
    """A place in a source: 1-based line and column, and how many characters it spans."""

    file: str
    line: int
    col: int
    length: int = 1
    # A value made by expanding a block: each block use it came through, innermost first, as
    # (what the use is, where it is written). Rendered as notes; ignored when comparing places.
    expansion: tuple[tuple[str, Location], ...] = field(default=(), compare=False, repr=False)

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


@dataclass(frozen=True)
class Diagnostic:
    """One problem: where, what, and optionally how to fix it."""

    message: str
    location: Location | None = None
    hint: str | Suggestion | None = None
    severity: str = "error"
    # How many other expansions of the same block line had the same problem (shown as a note).
    repeats: int = 0

    def render(self, sources: dict[str, str] | None = None) -> str:
        """The compiler-style text: `file:line:col: error: message`, the line, a caret, a hint."""
        # Messages quote what a spec or a command line holds: escapes in it are shown, never sent.
        where = f"{printable(str(self.location), newlines=False)}: " if self.location else ""
        lines = [f"{where}{self.severity}: {printable(self.message)}"]
        text = (sources or {}).get(self.location.file) if self.location else None
        if text is not None and self.location is not None:
            source_lines = text.splitlines()
            if 0 < self.location.line <= len(source_lines):
                whole = source_lines[self.location.line - 1]
                # A long line (a minified file, 5 MB on one line) is quoted by its start only.
                cut = len(whole) > MAX_QUOTED
                # Control characters (a NUL, an escape sequence) are shown, never sent to the terminal.
                source_line = "".join(
                    c if c.isprintable() or c == "\t" else "\ufffd" for c in whole[:MAX_QUOTED]
                )
                lines.append(f"  {source_line}" + ("\u2026" if cut else ""))
                # A column past the cut is pointed at by the caret under the ellipsis.
                col = min(self.location.col, MAX_QUOTED + 1) if cut else self.location.col
                width = max(1, min(self.location.length, len(source_line) - col + 1))
                lines.append("  " + " " * (col - 1) + "^" + "~" * (width - 1))
        if self.hint:
            lines.append(f"  hint: {printable(str(self.hint))}")
        for what, where in self.location.expansion if self.location else ():
            lines.append(f"  note: {printable(what)}, at {printable(str(where), newlines=False)}")
        if self.repeats:
            lines.append(
                f"  note: and {self.repeats} more time{'s' if self.repeats != 1 else ''} where "
                "this block line is expanded"
            )
        return "\n".join(lines)


@dataclass
class Diagnostics:
    """A collection of diagnostics and the source texts needed to show their lines."""

    items: list[Diagnostic] = field(default_factory=list)
    sources: dict[str, str] = field(default_factory=dict)

    _expanded: dict[tuple, int] = field(default_factory=dict, repr=False, compare=False)

    def error(
        self, message: str, location: Location | None = None, hint: str | Suggestion | None = None
    ) -> None:
        self._add(Diagnostic(message, location, hint))

    def warning(self, message: str, location: Location | None = None, hint: str | None = None) -> None:
        self._add(Diagnostic(message, location, hint, severity="warning"))

    def _add(self, diagnostic: Diagnostic) -> None:
        # A problem on a block's line is met once per expansion of the block: it is shown once,
        # at its first expansion, with a count of the others.
        location = diagnostic.location
        if location is not None and location.expansion:
            key = (
                diagnostic.severity,
                location,
                diagnostic.hint,
                _EXPANDED_NAME.sub("'*'", diagnostic.message),
            )
            if key in self._expanded:
                index = self._expanded[key]
                self.items[index] = replace(self.items[index], repeats=self.items[index].repeats + 1)
                return
            self._expanded[key] = len(self.items)
        self.items.append(diagnostic)

    def extend(self, other: Diagnostics) -> None:
        self.items.extend(other.items)
        self.sources.update(other.sources)

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.items if d.severity == "error"]

    @property
    def warnings(self) -> list[Diagnostic]:
        return [d for d in self.items if d.severity == "warning"]

    def raise_if_errors(self) -> None:
        if self.errors:
            raise SpecErrors(self)

    def render(self, include_warnings: bool = True) -> str:
        shown = [d for d in self.items if include_warnings or d.severity == "error"]
        ordered = sorted(shown, key=_order)
        text = [d.render(self.sources) for d in ordered[:MAX_SHOWN]]
        if len(ordered) > MAX_SHOWN:
            text.append(f"... and {len(ordered) - MAX_SHOWN} more")
        return "\n".join(text)


def _order(d: Diagnostic) -> tuple:
    loc = d.location
    return (loc.file, loc.line, loc.col) if loc else ("", 0, 0)


class SpecErrors(Exception):
    """A spec is invalid; `diagnostics` holds every problem found, with its position."""

    def __init__(self, diagnostics: Diagnostics):
        self.diagnostics = diagnostics
        super().__init__(diagnostics.render(include_warnings=False))

    @classmethod
    def single(
        cls,
        message: str,
        location: Location | None = None,
        hint: str | None = None,
        sources: dict[str, str] | None = None,
    ) -> SpecErrors:
        d = Diagnostics(sources=dict(sources or {}))
        d.error(message, location, hint)
        return cls(d)


def printable(text: str, newlines: bool = True) -> str:
    """`text` safe to print on a terminal: each character that is not printable (C0 and C1
    controls such as ESC, BEL and CR, DEL, Unicode format and separator characters) is written
    as a visible escape, `\\x1b`, `\\u202e` or `\\U000e0001`; tabs are kept, and newlines unless
    `newlines` is false."""
    if text.isprintable():
        return text
    return "".join(
        c if c.isprintable() or c == "\t" or (c == "\n" and newlines) else _escape(c) for c in text
    )


def _escape(character: str) -> str:
    code = ord(character)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


# Up to this many candidates, a hint compares the name with each, as difflib does; beyond, only
# with those nearest to it in spelling order, read forwards and backwards (a typo keeps the start
# or the end of a name), so that a hint costs about the same for 100,000 names as for 50.
EXACT_CANDIDATES = 500
_NEIGHBOURS = 8


def did_you_mean(name: str, candidates) -> str | None:
    """A 'did you mean' hint naming the closest candidate, or None when nothing is close."""
    import difflib

    word = str(name)
    pool = list(candidates)
    if len(pool) > EXACT_CANDIDATES:
        pool = _nearest_in_spelling(word, frozenset(c for c in pool if isinstance(c, str)))
    close = difflib.get_close_matches(word, pool, n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else None


@lru_cache(maxsize=8)
def _spelling_orders(candidates: frozenset[str]) -> tuple[list[str], list[str]]:
    # Made once per set of names: a spec's checks ask about the same names many times.
    return sorted(candidates), sorted(c[::-1] for c in candidates)


def _nearest_in_spelling(word: str, candidates: frozenset[str]) -> list[str]:
    forwards, backwards = _spelling_orders(candidates)
    i = bisect_left(forwards, word)
    j = bisect_left(backwards, word[::-1])
    near = forwards[max(0, i - _NEIGHBOURS) : i + _NEIGHBOURS]
    near += [c[::-1] for c in backwards[max(0, j - _NEIGHBOURS) : j + _NEIGHBOURS]]
    return list(dict.fromkeys(near))


class Suggestion:
    """A hint that is `did_you_mean(name, candidates)`, or else `otherwise`, worked out only when
    it is read: a spec with thousands of unknown names has thousands of diagnostics, of which
    at most MAX_SHOWN are shown. It compares, tests true, prints and hashes as its text."""

    def __init__(self, name: str, candidates, otherwise: str | None = None):
        self.name = str(name)
        self.candidates = tuple(candidates)  # a snapshot: what the names were when it was made
        self.otherwise = otherwise
        self._text: list[str | None] = []

    def text(self) -> str | None:
        if not self._text:
            self._text.append(did_you_mean(self.name, self.candidates) or self.otherwise)
        return self._text[0]

    def __str__(self) -> str:
        return self.text() or ""

    def __bool__(self) -> bool:
        return bool(self.text())

    def __eq__(self, other: object) -> bool:
        return self.text() == (other.text() if isinstance(other, Suggestion) else other)

    def __hash__(self) -> int:
        return hash(self.text())

    def __repr__(self) -> str:
        return repr(self.text())
