"""Diagnostics: every problem found in a spec, with where it is, rendered like a compiler's.

Problems are collected, never raised one at a time, so that a user sees all of a file's errors
in one run. Only the CLI renders them; the library raises `SpecErrors` carrying the list.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

MAX_SHOWN = 50
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
    hint: str | None = None
    severity: str = "error"
    # How many other expansions of the same block line had the same problem (shown as a note).
    repeats: int = 0

    def render(self, sources: dict[str, str] | None = None) -> str:
        """The compiler-style text: `file:line:col: error: message`, the line, a caret, a hint."""
        where = f"{self.location}: " if self.location else ""
        lines = [f"{where}{self.severity}: {self.message}"]
        text = (sources or {}).get(self.location.file) if self.location else None
        if text is not None and self.location is not None:
            source_lines = text.splitlines()
            if 0 < self.location.line <= len(source_lines):
                # Control characters (a NUL, an escape sequence) are shown, never sent to the terminal.
                source_line = "".join(
                    c if c.isprintable() or c == "\t" else "\ufffd"
                    for c in source_lines[self.location.line - 1]
                )
                lines.append(f"  {source_line}")
                width = max(1, min(self.location.length, len(source_line) - self.location.col + 1))
                lines.append("  " + " " * (self.location.col - 1) + "^" + "~" * (width - 1))
        if self.hint:
            lines.append(f"  hint: {self.hint}")
        for what, where in self.location.expansion if self.location else ():
            lines.append(f"  note: {what}, at {where}")
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

    def error(self, message: str, location: Location | None = None, hint: str | None = None) -> None:
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


def did_you_mean(name: str, candidates) -> str | None:
    """A 'did you mean' hint naming the closest candidate, or None when nothing is close."""
    import difflib

    close = difflib.get_close_matches(str(name), list(candidates), n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else None
