"""Diagnostics: every problem found in a spec, with where it is, rendered like a compiler's.

Problems are collected, never raised one at a time, so that a user sees all of a file's errors
in one run. Only the CLI renders them; the library raises `SpecErrors` carrying the list.
"""

from __future__ import annotations

from dataclasses import dataclass, field

MAX_SHOWN = 50


@dataclass(frozen=True)
class Location:
    """A place in a source: 1-based line and column, and how many characters it spans."""

    file: str
    line: int
    col: int
    length: int = 1

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


@dataclass(frozen=True)
class Diagnostic:
    """One problem: where, what, and optionally how to fix it."""

    message: str
    location: Location | None = None
    hint: str | None = None
    severity: str = "error"

    def render(self, sources: dict[str, str] | None = None) -> str:
        """The compiler-style text: `file:line:col: error: message`, the line, a caret, a hint."""
        where = f"{self.location}: " if self.location else ""
        lines = [f"{where}{self.severity}: {self.message}"]
        text = (sources or {}).get(self.location.file) if self.location else None
        if text is not None and self.location is not None:
            source_lines = text.splitlines()
            if 0 < self.location.line <= len(source_lines):
                source_line = source_lines[self.location.line - 1]
                lines.append(f"  {source_line}")
                width = max(1, min(self.location.length, len(source_line) - self.location.col + 1))
                lines.append("  " + " " * (self.location.col - 1) + "^" + "~" * (width - 1))
        if self.hint:
            lines.append(f"  hint: {self.hint}")
        return "\n".join(lines)


@dataclass
class Diagnostics:
    """A collection of diagnostics and the source texts needed to show their lines."""

    items: list[Diagnostic] = field(default_factory=list)
    sources: dict[str, str] = field(default_factory=dict)

    def error(self, message: str, location: Location | None = None, hint: str | None = None) -> None:
        self.items.append(Diagnostic(message, location, hint))

    def warning(self, message: str, location: Location | None = None, hint: str | None = None) -> None:
        self.items.append(Diagnostic(message, location, hint, severity="warning"))

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
    def single(cls, message: str, location: Location | None = None, hint: str | None = None,
               sources: dict[str, str] | None = None) -> SpecErrors:
        d = Diagnostics(sources=dict(sources or {}))
        d.error(message, location, hint)
        return cls(d)


def did_you_mean(name: str, candidates) -> str | None:
    """A 'did you mean' hint naming the closest candidate, or None when nothing is close."""
    import difflib

    close = difflib.get_close_matches(str(name), list(candidates), n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else None
