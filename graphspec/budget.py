"""One budget per command: everything a spec can make graphspec read, make or allocate, charged
before the work it bounds.

A spec is small text that can ask for large work: includes that are each under the per-file
limit but many together, params whose strings double at each use, an input of 10^26 values, a
grid of 10^10 points. Each of these is charged here, from a count known before the work (a
file's size from `stat`, a string's length from its parts, a shape's product), and refused
with a located error (exit status 2) that names the limit and the option that raises it:
`graphspec --limit NAME=N COMMAND ...`.

Model files are charged too (`graphspec.keras.model_file`): their members' bytes, their
weights' bytes, and their config's nesting, JSON containers and serialized objects. The
parameters a model file declares (like those a spec builds) are bounded by `--max-params`, an
option of each command that builds or reads a model, not a meter here: a refusal names it.

The CLI makes one `Budget` per command (`activate`); library calls made without one get a
fresh default budget for the duration of the call (`ensure`). No TensorFlow here.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass

from graphspec.errors import Location, SpecErrors


@dataclass(frozen=True)
class Limit:
    """One meter of the budget: its name on the command line, its default and what it counts."""

    name: str
    default: int
    counts: str  # "spec text read", used in messages and in `--limit`'s help


LIMITS: dict[str, Limit] = {
    limit.name: limit
    for limit in (
        # A real spec and everything it reads is a few hundred KB; one file may be 5 MB.
        Limit("bytes", 20_000_000, "bytes of spec text read (files, includes, nested specs, git blobs)"),
        Limit("values", 2_000_000, "values read from spec files in all"),
        Limit("nodes", 100_000, "nodes a spec expands to (blocks, repeats, nested specs)"),
        Limit("text", 10_000_000, "characters of strings made by params"),
        # 10^7 float32 is 40 MB per sample, times the batch in synthetic data: a 2048x2048
        # RGB image fits, an input of 3x10^7 does not.
        Limit("elements", 10_000_000, "elements of one input or op output, per sample"),
        Limit("grid", 1_000_000, "points of a grid search"),
        Limit("width", 100, "characters of one field's width in a path format"),
        # Model files (.keras) read by export, build --weights, train --init-from and ensemble,
        # charged from their zip headers before a member is read. A 10,000-layer model's
        # config.json takes about 20 MB; JSON parses to about ten times its size.
        Limit(
            "model-bytes",
            200_000_000,
            "bytes of model files read, weights aside (config.json, metadata.json, assets)",
        ),
        # A model of 10^9 float32 parameters with an optimizer's slots saves about 12 GB.
        Limit("model-weights", 32_000_000_000, "bytes of model files' weights (model.weights.h5)"),
        # A model nested in a model adds about six levels; specs nest 16 deep.
        Limit("model-depth", 256, "levels of nesting in a model file's config.json"),
        Limit("model-containers", 4_000_000, "JSON objects and arrays in a model file's config.json"),
        # A layer takes about five serialized objects (itself, its dtype policy, initializers):
        # some 20,000 layers, twice a 10,000-node spec's model.
        Limit("model-objects", 100_000, "serialized Keras objects in model files (about five a layer)"),
        # Training data named by --data, --val-data, --test-data (graphspec.data). A small .npz is
        # read whole: its members' sizes, as their zip headers declare them, are charged before any
        # is inflated (a 2 MB file of zeros can declare 2 GB); a larger one is streamed, and a
        # batch of its rows is charged. Folders and tables are read as they go.
        Limit("data-bytes", 1_000_000_000, "bytes of .npz arrays and tables held in memory"),
        # A streamed .npz's compressed arrays are inflated once to a temporary file
        # (graphspec.data.npz_stream): a 2 MB file can ask for 2 GB of disk, or 200.
        Limit("data-disk", 20_000_000_000, "bytes of compressed .npz arrays inflated to a temporary file"),
        # A table is read line by line, each line at most this long: a file of one 2 GB line is
        # refused after reading this much of it, not after reading it all.
        Limit("data-line", 1_000_000, "bytes of one line (one record) of a data table"),
        Limit("data-files", 10_000_000, "files listed in data folders, and table shards"),
        # Pillow's own bound on one image (its decompression-bomb error is at twice 89 million);
        # checked from the header, before any pixel is decoded.
        Limit("image-pixels", 178_956_970, "pixels of one image file in a data folder"),
    )
}


class Budget:
    """What the current command may still spend, meter by meter. `charge` is called before
    the work; past a limit it raises `SpecErrors` at the given location."""

    def __init__(self, limits: dict[str, int] | None = None):
        self.limits = {name: limit.default for name, limit in LIMITS.items()}
        self.limits.update(limits or {})
        self.spent = dict.fromkeys(self.limits, 0)

    def left(self, meter: str) -> int:
        """How much of `meter` may still be charged."""
        return max(0, self.limits[meter] - self.spent[meter])

    def charge(
        self,
        meter: str,
        amount: int,
        location: Location | None,
        what: str,
        sources: dict[str, str] | None = None,
    ) -> None:
        """Count `amount` of `meter`, spent by `what` ("this file's 4,000,000 bytes"); raise a
        located `SpecErrors` naming the limit and its option when the total would pass it."""
        if self.spent[meter] + amount > self.limits[meter]:
            raise self.refusal(meter, what, location, sources)
        self.spent[meter] += amount

    def check(
        self,
        meter: str,
        amount: int,
        location: Location | None,
        what: str,
        sources: dict[str, str] | None = None,
    ) -> None:
        """Refuse one thing of size `amount` past `meter`'s limit, spending nothing (a shape,
        a grid, a width: each is bounded by itself, not summed)."""
        if amount > self.limits[meter]:
            raise self.refusal(meter, what, location, sources)

    def refusal(
        self, meter: str, what: str, location: Location | None, sources: dict[str, str] | None = None
    ) -> SpecErrors:
        """The error for `what` passing `meter`'s limit."""
        return SpecErrors.single(
            f"{what} would go over the limit of {self.limits[meter]:,} {LIMITS[meter].counts}",
            location,
            hint=option_hint(meter),
            sources=sources,
        )


def option_hint(meter: str) -> str:
    """How to raise `meter`'s limit on the command line."""
    return f"raise the limit with: graphspec --limit {meter}=N COMMAND ..."


def parse_limits(written: list[str]) -> dict[str, int]:
    """`["bytes=50000000", "grid=10000000"]` as limits; raises `SpecErrors` for an unknown name
    or a value that is not a positive integer."""
    limits: dict[str, int] = {}
    for item in written:
        name, _, value = item.partition("=")
        name = name.strip()
        if name not in LIMITS:
            known = ", ".join(LIMITS)
            raise SpecErrors.single(f"--limit {item!r}: unknown limit '{name}'", hint=f"limits: {known}")
        text = value.strip().replace("_", "")
        if not text.isascii() or not text.isdigit() or int(text) <= 0:
            raise SpecErrors.single(
                f"--limit {item!r}: the limit must be a positive integer, as in {name}=1000"
            )
        limits[name] = int(text)
    return limits


_CURRENT: ContextVar[Budget | None] = ContextVar("graphspec_budget", default=None)


# The command's budget, for threads the command starts (a context variable set in the main
# thread is not seen in them: optuna runs trials in threads with n_jobs).
_COMMAND: Budget | None = None


def _active() -> Budget | None:
    active = _CURRENT.get()
    return active if active is not None else _COMMAND


def current() -> Budget:
    """The budget of the command now running (a fresh default one outside any command)."""
    active = _active()
    return active if active is not None else Budget()


def activate(budget: Budget | None) -> None:
    """Make `budget` the one every reader charges until the next `activate` (None: none)."""
    global _COMMAND
    _COMMAND = budget
    _CURRENT.set(budget)


@contextlib.contextmanager
def ensure() -> Iterator[Budget]:
    """The running command's budget, or a fresh default one held for the duration of the
    `with` (a library call such as `load` spends one budget over all the files it reads)."""
    active = _active()
    if active is not None:
        yield active
        return
    token = _CURRENT.set(Budget())
    try:
        yield _CURRENT.get()
    finally:
        _CURRENT.reset(token)


@contextlib.contextmanager
def fresh() -> Iterator[Budget]:
    """A new budget with the running command's limits, nothing spent, for the duration of the
    `with`: for work that repeats within one command (each trial of `tune` loads its spec
    anew), so that the hundredth trial is not refused for what the first ninety-nine read."""
    token = _CURRENT.set(Budget(dict(current().limits)))
    try:
        yield _CURRENT.get()
    finally:
        _CURRENT.reset(token)
