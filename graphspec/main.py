"""The `graphspec` console script's entry point: `graphspec validate FILE...` runs here, without
the command-line framework; every other command line goes to the typer app in graphspec.cli.

`validate` runs in pre-commit hooks and editors, once per save: importing typer (with click)
and the other commands' modules cost it a third of its time (issue 22). Only the plain form,
spec files and no options, is handled here; an option, `--help` or no file at all is the typer
app's to parse, so both paths accept and refuse the same command lines.
"""

from __future__ import annotations

import gc
import importlib
import os
import sys
import types
from pathlib import Path

from graphspec.errors import SpecErrors, printable

EXIT_OK, EXIT_FAILED, EXIT_INVALID = 0, 1, 2


def print_errors(exc: SpecErrors, debug: bool = False) -> int:
    """Write a `SpecErrors`'s diagnostics and their count on stderr; the exit status to end with."""
    if debug:
        import traceback

        traceback.print_exception(exc)
    count = len(exc.diagnostics.errors)
    print(exc.diagnostics.render(), file=sys.stderr)
    print(f"{count} error{'s' if count != 1 else ''}", file=sys.stderr)
    return EXIT_INVALID


def validate_specs(
    specs: list[Path],
    overrides: list[str] | None = None,
    warnings: bool = True,
    root: Path | None = None,
    debug: bool = False,
    data: Path | None = None,
) -> int:
    """Check each spec file as `graphspec validate` does, printing `PATH: ok (...)` for each valid
    one and the diagnostics of each invalid one; the exit status: 0 if all are valid, else 2.
    With `data`, a table's header is also checked against the columns each spec names."""
    from graphspec.spec.load import load

    failed = 0
    for path in specs:
        try:
            loaded = load(path, overrides or [], root=root)
            if data is not None:
                from graphspec.data.examples import check_header

                check_header(loaded, data)
        except SpecErrors as exc:
            failed += 1
            print_errors(exc, debug)
            continue
        if warnings and loaded.warnings:
            print(loaded.diagnostics.render(), file=sys.stderr)
        spec = loaded.spec
        print(
            f"{printable(str(path), newlines=False)}: ok ({len(spec.inputs)} inputs, "
            f"{len(spec.layers)} layers, {len(spec.outputs)} outputs)",
            flush=True,
        )
    return EXIT_INVALID if failed else EXIT_OK


def _plain_validate(argv: list[str]) -> list[Path] | None:
    """The spec files of `validate FILE...` with no option; None for any other command line."""
    if len(argv) < 2 or argv[0] != "validate":
        return None
    files = argv[1:]
    # `-` starts every option; a file whose name starts with it is passed after `--`, which
    # the typer app parses.
    if any(not f or f.startswith("-") for f in files):
        return None
    return [Path(f) for f in files]


# pydantic's plugin loader: importing it imports importlib.metadata (with email, zipfile, csv,
# ...), and its `get_plugins()` reads the entry points of every installed distribution.
_PLUGIN_LOADER = "pydantic.plugin._loader"


def _without_pydantic_plugins() -> None:
    """Let this process's pydantic load no plugins, as `PYDANTIC_DISABLE_PLUGINS=__all__` does,
    without importing importlib.metadata: 20 ms of `validate`'s 160 (issue 22).

    A pydantic plugin watches validations (tracing, metrics); validate's models are graphspec's
    own, an implementation detail no plugin is meant for. pydantic asks its loader's
    `get_plugins()` each time it builds a validator: a stand-in answers none. Any other name
    pydantic may ask of the loader imports the real one, so another pydantic still works.
    """
    if _PLUGIN_LOADER in sys.modules:
        return
    loader = types.ModuleType(_PLUGIN_LOADER, "No pydantic plugins (graphspec.main).")

    def get_plugins() -> tuple:
        return ()

    def real(name: str) -> object:
        if name.startswith("__"):  # what the import system asks a module: `__path__`, ...
            raise AttributeError(name)
        sys.modules.pop(_PLUGIN_LOADER, None)
        return getattr(importlib.import_module(_PLUGIN_LOADER), name)

    loader.get_plugins = get_plugins
    loader.__getattr__ = real  # PEP 562: a name the stand-in lacks
    sys.modules[_PLUGIN_LOADER] = loader


def main() -> None:
    """Entry point of the `graphspec` console script (and `python -m graphspec`)."""
    # A spec's data is many small, long-lived dicts and lists with no cycles: Python's cyclic
    # collector, run every 700 allocations by default, spent a third of loading a 10,000-node
    # spec walking them. A one-shot command collects rarely instead.
    gc.set_threshold(50_000, 20, 100)
    files = _plain_validate(sys.argv[1:])
    if files is None:
        from graphspec.cli import main as typer_main

        typer_main()
        return
    _without_pydantic_plugins()
    from graphspec import budget

    # The budget the typer app's callback activates when no --limit is given.
    budget.activate(budget.Budget(budget.parse_limits([])))
    try:
        try:
            status = validate_specs(files)
        except SpecErrors as exc:
            status = print_errors(exc)
        finally:
            budget.activate(None)
        # Ending without the interpreter's teardown, which frees every module's objects one by
        # one (pydantic's schemas among them): a tenth of validate's time. Nothing is left to
        # run at exit, and what was printed is flushed first.
        sys.stdout.flush()
        sys.stderr.flush()
    except BrokenPipeError:
        # The reader went away (`graphspec validate specs/*.yaml | head -1`): exit status 1, as
        # the typer app ends then, and no traceback.
        status = EXIT_FAILED
    os._exit(status)
