"""The `graphspec` command: parse options, call the library, print. No logic lives here.

Errors from the library (`SpecErrors`) are rendered once, on stderr, with exit status 2; a
traceback is shown only with `--debug`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from graphspec import __version__
from graphspec.errors import SpecErrors

app = typer.Typer(
    name="graphspec",
    help="Compile declarative YAML layer graphs into Keras 3 functional models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

EXIT_OK, EXIT_FAILED, EXIT_INVALID = 0, 1, 2

SetOption = Annotated[
    Optional[list[str]],
    typer.Option("--set", "-s", metavar="NAME=VALUE",
                 help="Override a param (units=64) or any value by path "
                      "(layers.dense.units=64, compile.optimizer.learning_rate=0.01). Repeatable."),
]
DebugOption = Annotated[bool, typer.Option("--debug", help="Show tracebacks of internal errors.")]
MaxParamsOption = Annotated[int, typer.Option(
    "--max-params", metavar="N",
    help="Refuse a model with more parameters than this, before allocating any weight.")]
DEFAULT_MAX_PARAMS = 1_000_000_000


def _version(value: bool) -> None:
    if value:
        typer.echo(f"graphspec {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """Compile declarative YAML layer graphs into Keras 3 functional models."""


def _fail(exc: SpecErrors, debug: bool) -> typer.Exit:
    if debug:
        import traceback

        traceback.print_exception(exc)
    typer.echo(exc.diagnostics.render(), err=True)
    count = len(exc.diagnostics.errors)
    typer.echo(f"{count} error{'s' if count != 1 else ''}", err=True)
    return typer.Exit(EXIT_INVALID)


def _quiet_tensorflow() -> None:
    # TensorFlow's C++ start-up chatter is not ours to show; Keras's own output is kept.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@app.command()
def validate(
    specs: Annotated[list[Path], typer.Argument(help="Spec files to check.", show_default=False)],
    overrides: SetOption = None,
    warnings: Annotated[bool, typer.Option(help="Show warnings as well as errors.")] = True,
    debug: DebugOption = False,
) -> None:
    """Check specs without building them (no TensorFlow): exit 0 when all are valid, 2 if not."""
    from graphspec.spec.load import load

    failed = 0
    for path in specs:
        try:
            loaded = load(path, overrides or [])
        except SpecErrors as exc:
            failed += 1
            _fail(exc, debug)
            continue
        if warnings and loaded.warnings:
            typer.echo(loaded.diagnostics.render(), err=True)
        spec = loaded.spec
        typer.echo(f"{path}: ok ({len(spec.inputs)} inputs, {len(spec.layers)} layers, "
                   f"{len(spec.outputs)} outputs)")
    if failed:
        raise typer.Exit(EXIT_INVALID)


@app.command()
def build(
    spec: Annotated[Path, typer.Argument(help="The spec to build.", show_default=False)],
    output: Annotated[Optional[Path], typer.Option(
        "--output", "-o", help="Save the compiled model here (.keras).")] = None,
    overrides: SetOption = None,
    expand_nested: Annotated[bool, typer.Option(
        help="Show the layers of nested models in the summary.")] = False,
    max_params: MaxParamsOption = DEFAULT_MAX_PARAMS,
    debug: DebugOption = False,
) -> None:
    """Build the Keras model and print its summary: shapes, parameters per layer, totals."""
    from graphspec.spec.load import load

    if output is not None and output.suffix != ".keras":
        typer.echo(f"error: --output must end in .keras, got '{output}'", err=True)
        raise typer.Exit(EXIT_INVALID)
    _quiet_tensorflow()
    try:
        loaded = load(spec, overrides or [])
        if loaded.warnings:
            typer.echo(loaded.diagnostics.render(), err=True)
        model = loaded.build(max_params=max_params)
    except SpecErrors as exc:
        raise _fail(exc, debug) from None
    model.summary(expand_nested=expand_nested)
    if output is not None:
        from graphspec.keras.save import save_model

        save_model(model, output)
        typer.echo(f"saved {output}")


@app.command()
def schema() -> None:
    """Print the JSON Schema of the spec format (the one in schemas/graphspec.schema.json)."""
    from graphspec.spec.schema import render

    sys.stdout.write(render())


def main() -> None:
    """Entry point of the `graphspec` console script."""
    app()
