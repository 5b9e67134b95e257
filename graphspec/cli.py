"""The `graphspec` command: parse options, call the library, print. No logic lives here.

Errors from the library (`SpecErrors`) are rendered once, on stderr, with exit status 2; a
traceback is shown only with `--debug`.
"""

from __future__ import annotations

import gc
import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from graphspec import __version__
from graphspec.errors import SpecErrors, printable
from graphspec.spec.load import DEFAULT_MAX_PARAMS

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
    typer.Option(
        "--set",
        "-s",
        metavar="NAME=VALUE",
        help="Override a param (units=64) or any value by path "
        "(layers.dense.units=64, compile.optimizer.learning_rate=0.01). Repeatable.",
    ),
]
# train, tune, evaluate, predict and ensemble read any data graphspec.data knows.
_DATA_KINDS = (
    "an .npz, a CSV/TSV/JSON Lines/Parquet table (file, folder of shards or glob), or a folder of class "
    "subfolders of images or text"
)
TrainDataOption = Annotated[
    Optional[Path],
    typer.Option("--data", metavar="PATH", help=f"Training data: {_DATA_KINDS}.", show_default=False),
]
TrainValDataOption = Annotated[
    Optional[Path],
    typer.Option(
        "--val-data", metavar="PATH", help="Validation data, of a kind --data takes.", show_default=False
    ),
]
DebugOption = Annotated[bool, typer.Option("--debug", help="Show tracebacks of internal errors.")]
RootOption = Annotated[
    Optional[Path],
    typer.Option(
        "--root",
        metavar="DIR",
        help="Let specs read nested specs and includes anywhere under DIR (default: the top "
        "spec's folder). A spec never reads other files.",
        show_default=False,
    ),
]
MaxParamsOption = Annotated[
    int,
    typer.Option(
        "--max-params",
        metavar="N",
        help="Refuse a model with more parameters than this, before allocating any weight: one "
        "built from a spec, or one a model file (.keras) declares.",
    ),
]


def _limit_help() -> str:
    from graphspec.budget import LIMITS

    meters = "; ".join(
        f"{limit.name}: {limit.counts}, default {limit.default:,}" for limit in LIMITS.values()
    )
    return (
        "Raise (or lower) one of the command's budgets, checked before the work they bound: "
        f"{meters}. Repeatable. A model's parameters are bounded by the command's --max-params."
    )


_LIMIT_HELP = _limit_help()


def _version(value: bool) -> None:
    if value:
        typer.echo(f"graphspec {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    ctx: typer.Context,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
    allow_custom: Annotated[
        Optional[list[str]],
        typer.Option(
            "--allow-custom",
            metavar="MODULE",
            help="Import MODULE (it runs its code) so that its Keras layers registered with "
            "@keras.saving.register_keras_serializable can be used as types. Repeatable. "
            "Only the command line can grant this, never a spec.",
        ),
    ] = None,
    allow_download: Annotated[
        bool,
        typer.Option(
            "--allow-download",
            help="Let a spec's `weights: imagenet` (keras.applications) and KerasHub `preset:` "
            "names download into Keras's and KerasHub's own caches. Only the command line can "
            "grant this, never a spec.",
        ),
    ] = False,
    allow_read: Annotated[
        Optional[list[str]],
        typer.Option(
            "--allow-read",
            metavar="DIR",
            help="Let a spec name a weights file or a KerasHub preset folder under DIR (links "
            "and '..' followed first). Repeatable. Only the command line can grant this.",
        ),
    ] = None,
    limits: Annotated[
        Optional[list[str]],
        typer.Option(
            "--limit",
            metavar="NAME=N",
            help=_LIMIT_HELP,
        ),
    ] = None,
) -> None:
    """Compile declarative YAML layer graphs into Keras 3 functional models."""
    from graphspec import budget

    try:
        budget.activate(budget.Budget(budget.parse_limits(limits or [])))
    except SpecErrors as exc:
        raise _fail(exc, debug=False) from None
    # One budget per command: a command run in the same process later starts afresh.
    ctx.call_on_close(lambda: budget.activate(None))
    from graphspec import policy

    try:
        policy.activate_grants(policy.make_grants(allow_download, allow_read or []))
    except ValueError as exc:
        raise _fail(SpecErrors.single(str(exc)), debug=False) from None
    ctx.call_on_close(lambda: policy.activate_grants(policy.Grants()))
    if allow_custom:
        _quiet_tensorflow()
        try:
            from graphspec.keras.custom import allow_custom as allow

            allow(allow_custom)
        except SpecErrors as exc:
            raise _fail(exc, debug=False) from None


def _fail(exc: SpecErrors, debug: bool) -> typer.Exit:
    from graphspec.main import print_errors

    return typer.Exit(print_errors(exc, debug))


def _failure(exc: Exception, what: str, debug: bool) -> Exception:
    """The exit for an exception out of a long-running command: invalid input is exit status 2
    with its diagnostics; anything else (Keras failing mid-fit) one line and exit status 1."""
    if isinstance(exc, typer.Exit):
        return exc
    if isinstance(exc, SpecErrors):
        return _fail(exc, debug)
    if debug:
        return exc
    typer.echo(f"error: {what} failed: {printable(' '.join(str(exc).split())[:600])}", err=True)
    return typer.Exit(EXIT_FAILED)


def _quiet_tensorflow() -> None:
    # TensorFlow's C++ start-up chatter is not ours to show; Keras's own output is kept. The
    # level graphspec.keras sets as well (not imported here: that would import TensorFlow).
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


@app.command()
def validate(
    specs: Annotated[list[Path], typer.Argument(help="Spec files to check.", show_default=False)],
    overrides: SetOption = None,
    warnings: Annotated[bool, typer.Option(help="Show warnings as well as errors.")] = True,
    data: Annotated[
        Optional[Path],
        typer.Option(
            "--data",
            metavar="PATH",
            help="Also check this data against each spec: its kind and files, a table's header "
            "against the columns the spec reads (no examples are read).",
            show_default=False,
        ),
    ] = None,
    root: RootOption = None,
    debug: DebugOption = False,
) -> None:
    """Check specs without building them (no TensorFlow): exit 0 when all are valid, 2 if not."""
    # The same function runs `graphspec validate FILE...` without typer (graphspec.main).
    from graphspec.main import validate_specs

    status = validate_specs(specs, overrides, warnings, root, debug, data)
    if status:
        raise typer.Exit(status)


@app.command()
def build(
    spec: Annotated[Path, typer.Argument(help="The spec to build.", show_default=False)],
    output: Annotated[
        Optional[Path],
        typer.Option(
            "--output", "-o", help="Save the compiled model here (.keras), or the --format's file or folder."
        ),
    ] = None,
    serving_format: Annotated[
        Optional[str],
        typer.Option(
            "--format",
            metavar="saved_model|onnx|litert|openvino",
            help="Write the model for serving instead of as .keras (needs --output): a SavedModel "
            "folder, an .onnx file, a LiteRT .tflite file, or a folder with OpenVINO's model.xml.",
            show_default=False,
        ),
    ] = None,
    overrides: SetOption = None,
    expand_nested: Annotated[
        bool, typer.Option(help="Show the layers of nested models in the summary.")
    ] = False,
    max_params: MaxParamsOption = DEFAULT_MAX_PARAMS,
    weights: Annotated[
        Optional[Path],
        typer.Option(
            "--weights",
            metavar="F.keras|RUN_DIR",
            help="Load weights from this .keras file (or a run directory's model), layer by layer, "
            "by name; every layer must fit, unless --partial.",
            show_default=False,
        ),
    ] = None,
    partial: Annotated[
        bool,
        typer.Option(
            "--partial",
            help="With --weights: copy the layers whose name and weight shapes match, leave the "
            "others as built, and print what was copied, shape-mismatched, new and unused.",
        ),
    ] = False,
    totals: Annotated[
        bool,
        typer.Option("--totals", help="Print only the Total, Trainable and Non-trainable params lines."),
    ] = False,
    root: RootOption = None,
    debug: DebugOption = False,
) -> None:
    """Build the Keras model and print its summary: shapes, parameters per layer, totals."""
    from graphspec.spec.load import load

    if serving_format is not None and output is None:
        raise _fail(SpecErrors.single("--format says how to write --output, which is not given"), debug)
    if serving_format is None and output is not None and output.suffix != ".keras":
        typer.echo(f"error: --output must end in .keras, got '{printable(str(output))}'", err=True)
        raise typer.Exit(EXIT_INVALID)
    if partial and weights is None:
        raise _fail(SpecErrors.single("--partial says how to load --weights, which is not given"), debug)
    _quiet_tensorflow()
    report = None
    try:
        if serving_format is not None:
            from graphspec.keras.serve import check_output

            check_output(serving_format, output)  # before the model is built, which can take long
        elif output is not None:
            from graphspec.atomic import check_target

            check_target(output)  # before the model is built, which can take long
        loaded = load(spec, overrides or [], root=root)
        if loaded.warnings:
            typer.echo(loaded.diagnostics.render(), err=True)
        model = loaded.build(max_params=max_params)
        if weights is not None:
            from graphspec.keras.weights import copy_matching_weights

            report = copy_matching_weights(model, weights, partial=partial, max_params=max_params)
            if not partial:
                typer.echo(f"loaded weights of {len(report.copied)} layers from {printable(str(weights))}")
    except SpecErrors as exc:
        raise _fail(exc, debug) from None
    if totals:
        from graphspec.keras.counts import totals as totals_lines

        typer.echo(totals_lines(model))
    else:
        model.summary(expand_nested=expand_nested)
    if partial and report is not None:
        typer.echo(printable(report.table()))  # after the summary, where it is read
    if output is not None:
        try:
            if serving_format is not None:
                from graphspec.keras.serve import export as export_served

                export_served(model, loaded, serving_format, output)
            else:
                from graphspec.keras.save import save_model

                save_model(model, output, loaded)
        except Exception as exc:
            raise _failure(exc, "export" if serving_format else "saving", debug) from None
        typer.echo(f"saved {printable(str(output))}")


@app.command()
def schema() -> None:
    """Print the JSON Schema of the spec format (the one in schemas/graphspec.schema.json)."""
    from graphspec.spec.schema import render

    sys.stdout.write(render())


@app.command()
def lsp(
    root: RootOption = None,
    no_shapes: Annotated[
        bool,
        typer.Option(
            "--no-shapes",
            help="Hover shows no output shapes, and no Keras worker process is started "
            "(it imports Keras once, about a gigabyte, to build each spec after edits pause).",
        ),
    ] = False,
) -> None:
    """Run the language server on stdin and stdout, for editors: validate's problems as you type,
    go to definition, hover (with output shapes) and rename (needs the lsp extra: pip install
    'graphspec[lsp]')."""
    try:
        from graphspec.lsp import serve
    except ImportError as exc:
        typer.echo(f"error: graphspec lsp needs pygls ({exc}): pip install 'graphspec[lsp]'", err=True)
        raise typer.Exit(EXIT_INVALID) from None
    serve(root, shapes=not no_shapes)


@app.command()
def fmt(
    files: Annotated[list[Path], typer.Argument(help="Spec or block files to rewrite in place.")],
    check: Annotated[
        bool, typer.Option("--check", help="Change nothing; exit 1 when a file would change.")
    ] = False,
) -> None:
    """Quote each `${...}` written unquoted inside {...} or [...], which only graphspec reads, so
    that every YAML tool reads the file. Comments and layout are kept; files are replaced whole."""
    from graphspec import atomic
    from graphspec.spec.files import read_regular
    from graphspec.spec.source import requote, unquoted_placeholders

    would_change = False
    for path in files:
        name = printable(str(path), newlines=False)
        try:
            # Bytes: line endings stay as they are. A regular file of at most 5 MB, as validate reads.
            text = read_regular(path, str(path)).decode("utf-8")
        except SpecErrors as exc:
            raise _fail(exc, False) from None
        except (OSError, UnicodeDecodeError) as exc:
            typer.echo(f"{name}: cannot read: {printable(str(exc))}", err=True)
            raise typer.Exit(EXIT_FAILED) from None
        count = len(unquoted_placeholders(text))
        if not count:
            continue
        would_change = True
        if check:
            typer.echo(f"{name}: would quote {count} value{'s' if count > 1 else ''}")
            continue
        try:
            atomic.write_text(path, requote(text))
        except SpecErrors as exc:
            raise _fail(exc, False) from None
        typer.echo(f"{name}: quoted {count} value{'s' if count > 1 else ''}")
    if check and would_change:
        raise typer.Exit(EXIT_FAILED)


@app.command()
def plot(
    spec: Annotated[Path, typer.Argument(help="The spec to draw.", show_default=False)],
    output: Annotated[
        Path,
        typer.Option(
            "--output", "-o", help="The file to write: .png, .svg, .pdf or .dot.", show_default=False
        ),
    ],
    overrides: SetOption = None,
    show_shapes: Annotated[
        bool,
        typer.Option("--show-shapes", help="Show each node's output shape (builds the model: TensorFlow)."),
    ] = False,
    show_dtype: Annotated[
        bool,
        typer.Option("--show-dtype", help="Show each node's output dtype (builds the model: TensorFlow)."),
    ] = False,
    show_activations: Annotated[
        bool, typer.Option("--show-activations", help="Show each layer's activation.")
    ] = False,
    show_trainable: Annotated[
        bool, typer.Option("--show-trainable", help="Mark layers that are not trainable.")
    ] = False,
    layer_names: Annotated[bool, typer.Option(help="Show node names beside layer types.")] = True,
    rankdir: Annotated[
        str, typer.Option("--rankdir", help="TB (top to bottom) or LR (left to right).")
    ] = "TB",
    expand_nested: Annotated[
        bool, typer.Option("--expand-nested", help="Draw the layers of nested specs, each spec as a cluster.")
    ] = False,
    outputs: Annotated[bool, typer.Option(help="Draw each named output with its loss and weight.")] = True,
    dpi: Annotated[int, typer.Option(help="Resolution of .png output.", min=1)] = 96,
    collapse: Annotated[
        Optional[bool],
        typer.Option(
            "--collapse/--no-collapse",
            help="Fold each block, repeat and nested spec into one node. Default: folded past 120 nodes.",
            show_default=False,
        ),
    ] = None,
    depth: Annotated[
        int, typer.Option("--depth", metavar="N", help="With --collapse: unfold N levels of blocks.", min=0)
    ] = 0,
    start: Annotated[
        Optional[str],
        typer.Option("--from", metavar="NODE", help="Draw only what lies after NODE.", show_default=False),
    ] = None,
    end: Annotated[
        Optional[str],
        typer.Option("--to", metavar="NODE", help="Draw only what lies before NODE.", show_default=False),
    ] = None,
    root: RootOption = None,
    debug: DebugOption = False,
) -> None:
    """Draw the spec's graph with Graphviz; the format follows the file's extension."""
    from graphspec.atomic import check_target
    from graphspec.plot import PlotError, PlotOptions, should_collapse, spec_to_dot, write_plot
    from graphspec.spec.load import load

    try:
        check_target(output)  # before the spec is drawn (and, with shapes, built)
        loaded = load(spec, overrides or [], root=root)
        if collapse is None and start is None and end is None and should_collapse(loaded):
            collapse = True
            typer.echo(
                f"note: {len(loaded.spec.layers):,} layers: blocks drawn folded (--no-collapse "
                "draws every layer, --depth N unfolds N levels)",
                err=True,
            )
        options = PlotOptions(
            show_shapes=show_shapes,
            show_dtype=show_dtype,
            show_layer_names=layer_names,
            show_layer_activations=show_activations,
            show_trainable=show_trainable,
            rankdir=rankdir,
            expand_nested=expand_nested,
            show_outputs=outputs,
            dpi=dpi,
            collapse=bool(collapse),
            depth=depth,
            start=start,
            end=end,
        )
        if show_shapes or show_dtype:
            _quiet_tensorflow()
        write_plot(spec_to_dot(loaded, options), output)
    except SpecErrors as exc:
        raise _fail(exc, debug) from None
    except PlotError as exc:
        typer.echo(f"error: {printable(str(exc))}", err=True)
        if exc.hint:
            typer.echo(f"  hint: {printable(exc.hint)}", err=True)
        raise typer.Exit(exc.exit_code) from None
    typer.echo(f"wrote {printable(str(output))}")


@app.command()
def view(
    spec: Annotated[Path, typer.Argument(help="The spec to show.", show_default=False)],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="The page to write (.html).", show_default=False)
    ],
    overrides: SetOption = None,
    shapes: Annotated[
        bool,
        typer.Option(
            "--shapes", help="Show output shapes and parameter counts (builds the model: TensorFlow)."
        ),
    ] = False,
    root: RootOption = None,
    debug: DebugOption = False,
) -> None:
    """Write the spec as one self-contained HTML page: blocks folded and unfolded by a click,
    search, pan and zoom, and each node's arguments and YAML lines. Opens from disk, offline."""
    from graphspec.atomic import check_target, write_text
    from graphspec.spec.load import load
    from graphspec.view import page_data, render_page

    if shapes:
        _quiet_tensorflow()
    try:
        check_target(output)  # before the spec is loaded (and, with shapes, built)
        loaded = load(spec, overrides or [], root=root)
        if loaded.warnings:
            typer.echo(loaded.diagnostics.render(), err=True)
        write_text(output, render_page(page_data(loaded, shapes=shapes)))
    except SpecErrors as exc:
        raise _fail(exc, debug) from None
    typer.echo(f"wrote {printable(str(output))}")


@app.command()
def train(
    spec: Annotated[
        Optional[Path], typer.Argument(help="The spec to train (not with --resume).", show_default=False)
    ] = None,
    synthetic: Annotated[
        bool, typer.Option("--synthetic", help="Train on generated data (see --kind).")
    ] = False,
    kind: Annotated[
        Optional[str],
        typer.Option(
            "--kind",
            help="Synthetic targets: random (noise) or teacher (a fixed random copy of the "
            "network). Default: train.synthetic, else random.",
            show_default=False,
        ),
    ] = None,
    data: TrainDataOption = None,
    val_data: TrainValDataOption = None,
    test_data: Annotated[
        Optional[Path],
        typer.Option(
            "--test-data",
            metavar="PATH",
            help="Score the trained model on this data once training ends (test_* metrics, "
            "test_metrics.json).",
            show_default=False,
        ),
    ] = None,
    validation_split: Annotated[
        Optional[float],
        typer.Option(
            "--validation-split",
            help="Fraction of samples kept for validation (train.validation_split).",
            min=0.0,
            max=0.99,
            show_default=False,
        ),
    ] = None,
    epochs: Annotated[
        Optional[int], typer.Option("--epochs", help="train.epochs", min=1, show_default=False)
    ] = None,
    batch_size: Annotated[
        Optional[int], typer.Option("--batch-size", help="train.batch_size", min=1, show_default=False)
    ] = None,
    samples: Annotated[
        Optional[int],
        typer.Option(
            "--samples", help="Synthetic samples per epoch (train.samples).", min=1, show_default=False
        ),
    ] = None,
    seq_len: Annotated[
        Optional[int],
        typer.Option(
            "--seq-len",
            help="Length of null dimensions in synthetic data, for inputs that set no "
            "seq_len (train.seq_len).",
            min=1,
            show_default=False,
        ),
    ] = None,
    seed: Annotated[
        Optional[int],
        typer.Option("--seed", help="Seed of weights and synthetic data (train.seed).", show_default=False),
    ] = None,
    out: Annotated[
        Optional[Path],
        typer.Option(
            "--out", help="The run directory. Default: RUNS_DIR/<spec name>/<timestamp>/.", show_default=False
        ),
    ] = None,
    runs_dir: Annotated[
        Path, typer.Option("--runs-dir", help="Where run directories go when --out is not given.")
    ] = Path("runs"),
    overrides: SetOption = None,
    init_from: Annotated[
        Optional[Path],
        typer.Option(
            "--init-from",
            metavar="RUN_DIR|F.keras",
            help="Start from the weights of this run's model (or .keras file): every layer whose "
            "name and weight shapes match is copied, the others start as built. Prints what was "
            "copied.",
            show_default=False,
        ),
    ] = None,
    resume: Annotated[
        Optional[Path],
        typer.Option(
            "--resume",
            metavar="RUN_DIR",
            help="Continue a killed run from its last completed epoch, with the spec, overrides and "
            "data it started with, to the same number of epochs.",
            show_default=False,
        ),
    ] = None,
    skip_bad: Annotated[
        Optional[int],
        typer.Option(
            "--skip-bad",
            metavar="N",
            help="Skip at most N bad training examples, each recorded in the run's skipped.jsonl: "
            "table rows the check finds bad (left out from the start), and images, text files and "
            "table rows found bad while training. Past N, bad rows the check finds are refused "
            "before training; one found while training stops the run, which can be resumed. "
            "Default: 0, the first stops it.",
            show_default=False,
        ),
    ] = None,
    quiet: Annotated[
        bool,
        typer.Option(
            "--quiet", "-q", help="Print nothing while training; then only the final metrics and the run."
        ),
    ] = False,
    devices: Annotated[
        Optional[str],
        typer.Option(
            "--devices",
            metavar="N|all",
            help="Replicate the model over N local devices (or all) and split each batch between "
            "them (JAX, TensorFlow).",
            show_default=False,
        ),
    ] = None,
    coordinator: Annotated[
        Optional[str],
        typer.Option(
            "--coordinator",
            metavar="HOST:PORT",
            help="Train as one process of a multi-process run (JAX): process 0's address and a free "
            "port, the same on every process. With --num-processes and --process-id.",
            show_default=False,
        ),
    ] = None,
    num_processes: Annotated[
        Optional[int],
        typer.Option(
            "--num-processes", metavar="N", help="How many processes the run has.", show_default=False
        ),
    ] = None,
    process_id: Annotated[
        Optional[int],
        typer.Option(
            "--process-id",
            metavar="I",
            help="This process's number, 0 to N-1; process 0 writes the run directory.",
            show_default=False,
        ),
    ] = None,
    distributed: Annotated[
        bool,
        typer.Option(
            "--distributed",
            help="Join a multi-process run whose processes the cluster manager (SLURM, Open MPI) "
            "describes, as jax.distributed.initialize detects them.",
        ),
    ] = False,
    join_timeout: Annotated[
        Optional[int],
        typer.Option(
            "--join-timeout",
            metavar="SECONDS",
            help="How long a multi-process run waits for all its processes. Default: 60.",
            show_default=False,
        ),
    ] = None,
    max_params: MaxParamsOption = DEFAULT_MAX_PARAMS,
    join_token_file: Annotated[
        Optional[Path],
        typer.Option(
            "--join-token-file",
            metavar="FILE",
            help="A file holding the secret every process of a multi-process run shares: process 0 "
            "refuses processes that do not prove they know it (HMAC; the token is never sent). "
            "Default: the GRAPHSPEC_JOIN_TOKEN environment variable, if set.",
            show_default=False,
        ),
    ] = None,
    root: RootOption = None,
    debug: DebugOption = False,
) -> None:
    """Train the model on synthetic data or .npz arrays; write a run directory with the resolved
    spec, the overrides, the final model, the history and what the callbacks write."""
    from graphspec.spec.load import load

    # Flags are overrides of the spec's train section, recorded like --set ones.
    flags = {
        "synthetic": kind,
        "validation_split": validation_split,
        "epochs": epochs,
        "batch_size": batch_size,
        "samples": samples,
        "seq_len": seq_len,
        "seed": seed,
    }
    given = list(overrides or []) + [f"train.{k}={v}" for k, v in flags.items() if v is not None]
    _quiet_tensorflow()

    def announce(run_dir: Path) -> None:
        if not quiet:
            shown = printable(str(run_dir), newlines=False)
            typer.echo(f"training into {shown} (if killed: graphspec train --resume {shown})")

    try:
        from graphspec import run_dir as rd
        from graphspec.keras.distribute import cluster_options

        # Checked before the spec is loaded, and before any process connects to another.
        cluster = cluster_options(
            coordinator, num_processes, process_id, distributed, join_timeout, join_token_file
        )

        if init_from is not None and resume is not None:
            raise SpecErrors.single(
                "--resume continues a run from its own weights; --init-from starts a new one",
                hint="give only --resume RUN_DIR",
            )
        if resume is not None:
            if spec is not None or given or synthetic or data or val_data or test_data or out:
                raise SpecErrors.single(
                    "--resume continues a run with the spec, overrides and data it started with",
                    hint="give only --resume RUN_DIR",
                )
            final = rd.interrupted_run(resume)
            started = rd.started_with(final)
            spec = rd.partial_path(final) / rd.SPEC_FILE
            synthetic, kind = bool(started.get("synthetic")), started.get("kind")
            data = Path(started["data"]) if started.get("data") else None
            val_data = Path(started["val_data"]) if started.get("val_data") else None
            test_data = Path(started["test_data"]) if started.get("test_data") else None
            if skip_bad is None:  # a resumed run may be allowed more
                skip_bad = started.get("skip_bad", 0)
            out = final
        elif spec is None:
            raise SpecErrors.single("name the spec to train, or give --resume RUN_DIR")
        loaded = load(spec, given, root=root)
        if loaded.warnings and not quiet:
            typer.echo(loaded.diagnostics.render(), err=True)
        on_built = _init_from(init_from, quiet, max_params) if init_from is not None else None
        from graphspec.keras import train as training

        source = training.DataSource(
            synthetic, kind=kind, data=data, val_data=val_data, test_data=test_data, skip_bad=skip_bad or 0
        )
        result = training.train(
            loaded,
            source,
            out=out,
            runs_root=runs_dir,
            verbose=0 if quiet else "auto",
            resume=resume is not None,
            announce=announce,
            devices=devices,
            on_built=on_built,
            cluster=cluster,
            max_params=max_params,
        )
    except Exception as exc:
        raise _failure(exc, "training", debug) from None
    # Even quiet, a run says where it went and how it ended: scripts read both.
    typer.echo(" - ".join(f"{key}: {value:.4g}" for key, value in result.metrics.items()))
    if result.skipped:
        typer.echo(
            f"skipped {result.skipped} bad example{'s' * (result.skipped != 1)} (listed in skipped.jsonl)"
        )
    if result.run_dir is None:
        typer.echo("trained with the other processes; process 0 saves the run")
    else:
        typer.echo(f"run saved in {printable(str(result.run_dir), newlines=False)}")


ModelArgument = Annotated[
    Path, typer.Argument(metavar="RUN_DIR|F.keras", help="A run directory, or a model file graphspec wrote.")
]
EvalDataOption = Annotated[Path, typer.Option("--data", metavar="PATH", help=f"The examples: {_DATA_KINDS}.")]
BatchOption = Annotated[
    Optional[int],
    typer.Option(
        "--batch-size",
        min=1,
        help="Examples per batch (default: the spec's train.batch_size).",
        show_default=False,
    ),
]


@app.command()
def evaluate(
    model: ModelArgument,
    data: EvalDataOption,
    as_json: Annotated[bool, typer.Option("--json", help="Print the metrics as one JSON object.")] = False,
    batch_size: BatchOption = None,
    max_params: MaxParamsOption = DEFAULT_MAX_PARAMS,
    skip_bad: Annotated[
        int,
        typer.Option(
            "--skip-bad",
            metavar="N",
            help="Skip at most N bad examples (table rows, image or text files), each listed after "
            'the metrics (--json: under "skipped"); the next one fails. Default: 0, the first fails.',
        ),
    ] = 0,
    debug: DebugOption = False,
) -> None:
    """Score a trained model on labelled data: print the spec's loss and metrics."""
    _quiet_tensorflow()
    try:
        from graphspec.keras.files import evaluate as evaluate_model

        metrics, count, skipped = evaluate_model(model, data, batch_size, max_params, skip_bad)
    except Exception as exc:
        raise _failure(exc, "evaluation", debug) from None
    if as_json:
        import json

        listed = [{key: r[key] for key in ("file", "row", "reason")} for r in skipped]
        typer.echo(json.dumps({"examples": count, "metrics": metrics, "skipped": listed}))
        return
    typer.echo(f"{count} examples: " + " - ".join(f"{k}: {v:.4g}" for k, v in metrics.items()))
    _print_skipped(skipped)


def _print_skipped(skipped: list[dict]) -> None:
    """The bad examples `--skip-bad` left out, one a line (nothing when none)."""
    if skipped:
        typer.echo(f"skipped {len(skipped)} bad example{'s' * (len(skipped) != 1)}:")
        for record in skipped:
            where = record["file"] + (f":{record['row']}" if record["row"] is not None else "")
            typer.echo(printable(f"  {where}: {record['reason']}", newlines=False))


@app.command()
def predict(
    model: ModelArgument,
    data: EvalDataOption,
    output: Annotated[
        Path,
        typer.Option(
            "-o", "--output", metavar="FILE.csv|FILE.parquet|FILE.npz", help="Where the predictions go."
        ),
    ],
    batch_size: BatchOption = None,
    max_params: MaxParamsOption = DEFAULT_MAX_PARAMS,
    skip_bad: Annotated[
        int,
        typer.Option(
            "--skip-bad",
            metavar="N",
            help="Skip at most N bad examples (table rows, image or text files): no row is written "
            "for them, and each is listed; the next one fails. Default: 0, the first fails.",
        ),
    ] = 0,
    debug: DebugOption = False,
) -> None:
    """Write a trained model's predictions on data: one row per example, with its file or row
    id, the outputs, and the predicted class name where the run knows the classes."""
    _quiet_tensorflow()
    try:
        from graphspec.data import predictions
        from graphspec.keras.files import predict as predict_model

        predictions.check_output(output)  # before any model is loaded
        predicted = predict_model(model, data, batch_size, max_params, skip_bad)
        predictions.write(output, predicted.ids, predicted.outputs, predicted.classes)
    except Exception as exc:
        raise _failure(exc, "prediction", debug) from None
    typer.echo(f"{len(predicted.ids)} predictions written to {printable(str(output), newlines=False)}")
    _print_skipped(predicted.skipped)


def _init_from(path: Path, quiet: bool, max_params: int):
    """For `train --init-from`: the source model, read now (a missing or foreign file fails
    before anything is built), and the hook that copies its matching weights into the built
    model and prints the table (nothing with -q: a quiet run prints only how it ended)."""
    from graphspec.keras.weights import copy_matching_weights, open_source

    source, label = open_source(path, max_params)

    def initialize(model) -> None:
        nonlocal source
        report = copy_matching_weights(model, source, partial=True, label=label)
        source = None  # not held through training
        if not quiet:
            typer.echo(printable(report.table()))

    return initialize


@app.command()
def expand(
    spec: Annotated[Path, typer.Argument(help="The spec to expand.", show_default=False)],
    overrides: SetOption = None,
    root: RootOption = None,
    debug: DebugOption = False,
) -> None:
    """Print the spec with blocks, repeats, params and overrides resolved (no TensorFlow).

    The output is itself a spec that validates and builds to the same model.
    """
    from graphspec.spec.load import load

    try:
        loaded = load(spec, overrides or [], root=root)
    except SpecErrors as exc:
        raise _fail(exc, debug) from None
    if loaded.warnings:
        typer.echo(loaded.diagnostics.render(), err=True)
    sys.stdout.write(loaded.expanded())


SpecRefArgument = Annotated[
    str,
    typer.Argument(
        help="A spec file, REV:PATH in git (HEAD~1:specs/resnet50.yaml), or a .keras file graphspec "
        "wrote (the spec it was built from).",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for tools.")]


@app.command()
def export(
    source: Annotated[
        str,
        typer.Argument(
            help="A .keras file, or applications.NAME for a keras.applications model.", show_default=False
        ),
    ],
    args: Annotated[
        Optional[list[str]],
        typer.Option(
            "--arg",
            "-a",
            metavar="NAME=VALUE",
            help="An argument of the keras.applications constructor, as YAML (include_top=false, "
            "input_shape=[96,96,3]); weights default to null. Repeatable.",
        ),
    ] = None,
    output: Annotated[
        Optional[Path],
        typer.Option("--output", "-o", help="Write the spec here, nested specs beside it; else print it."),
    ] = None,
    reconstruct: Annotated[
        bool,
        typer.Option(
            "--reconstruct",
            help="Export the model itself even when graphspec wrote the file, which then carries "
            "the spec files it was built from (those are what export gives without this).",
        ),
    ] = False,
    max_params: MaxParamsOption = DEFAULT_MAX_PARAMS,
    debug: DebugOption = False,
) -> None:
    """Write a Keras functional or Sequential model as a spec: nodes named after its layers,
    only the arguments that differ from Keras's defaults. A .keras file graphspec wrote gives
    back the spec files it was built from, byte for byte."""
    _quiet_tensorflow()
    try:
        if output is not None:
            from graphspec.atomic import check_target

            check_target(output)  # before the model is loaded
        from graphspec.keras.export import export_source

        exported = export_source(source, args or [], recorded=not reconstruct, max_params=max_params)
        for note in getattr(exported, "notes", ()):
            typer.echo(f"note: {printable(note)}", err=True)
        if output is None and exported.nested:
            reason = getattr(
                exported, "files_reason", "uses models as layers, which become spec files of their own"
            )
            raise SpecErrors.single(
                f"'{source}' {reason}",
                hint="give --output FILE.yaml to write them beside it",
            )
        if output is None:
            sys.stdout.write(exported.to_yaml())
            return
        written = exported.write(output)
    except SpecErrors as exc:
        raise _fail(exc, debug) from None
    for path in written:
        typer.echo(f"wrote {printable(str(path))}", err=True)


@app.command("export-model")
def export_model(
    run: Annotated[Path, typer.Argument(help="A finished run's folder.", show_default=False)],
    serving_format: Annotated[
        str,
        typer.Option(
            "--format",
            metavar="saved_model|onnx|litert|openvino",
            help="A SavedModel folder, an .onnx file, a LiteRT .tflite file, or a folder with "
            "OpenVINO's model.xml.",
            show_default=False,
        ),
    ],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="The file or folder to write.", show_default=False)
    ],
    max_params: MaxParamsOption = DEFAULT_MAX_PARAMS,
    debug: DebugOption = False,
) -> None:
    """Write a finished run's trained model for serving (Keras's model.export): inputs and
    outputs named as in its spec, batch size dynamic, preprocessing state included."""
    _quiet_tensorflow()
    try:
        from graphspec.keras.serve import check_output, export_run

        check_output(serving_format, output)  # before the model is loaded
        written = export_run(run, serving_format, output, max_params)
    except Exception as exc:
        # Keras or a converter failing on a model (say, an operation LiteRT lacks) is exit 1.
        raise _failure(exc, "export", debug) from None
    typer.echo(f"saved {printable(str(written))}")


@app.command()
def card(
    run: Annotated[Path, typer.Argument(help="A finished run's folder.", show_default=False)],
    output: Annotated[
        Optional[Path],
        typer.Option(
            "--output", "-o", help="The card to write (default: RUN/MODEL_CARD.md).", show_default=False
        ),
    ] = None,
    debug: DebugOption = False,
) -> None:
    """Write MODEL_CARD.md for a finished run (Hugging Face's model-card sections), with a
    picture of the architecture beside it (architecture.svg)."""
    from graphspec.card import write_card

    _quiet_tensorflow()
    try:
        written = write_card(run, output)
    except SpecErrors as exc:
        raise _fail(exc, debug) from None
    typer.echo(f"wrote {printable(str(written))}")


@app.command()
def fingerprint(
    spec: SpecRefArgument,
    overrides: SetOption = None,
    as_json: JsonOption = False,
    root: RootOption = None,
    debug: DebugOption = False,
) -> None:
    """Print content hashes of the resolved spec: the architecture's and the training settings'.

    Formatting, comments, docs, key order and blocks do not change them (no TensorFlow).
    """
    from graphspec.fingerprint import fingerprint as fingerprint_of
    from graphspec.revision import load_spec

    try:
        result = fingerprint_of(load_spec(spec, overrides or [], root=root))
    except SpecErrors as exc:
        raise _fail(exc, debug) from None
    if as_json:
        import json

        typer.echo(json.dumps({"spec": spec, **result.as_dict()}, indent=2))
    else:
        typer.echo(f"architecture {result.architecture}\ntraining     {result.training}")


@app.command()
def diff(
    old: SpecRefArgument,
    new: SpecRefArgument,
    params: Annotated[
        bool,
        typer.Option(
            "--params", help="Build both models and count parameters per changed layer and in total."
        ),
    ] = False,
    overrides: SetOption = None,
    as_json: JsonOption = False,
    html: Annotated[
        Optional[Path],
        typer.Option(
            "--html",
            metavar="FILE",
            help="Also write the two specs as one page, nodes marked added, removed or changed.",
            show_default=False,
        ),
    ] = None,
    root: RootOption = None,
    debug: DebugOption = False,
) -> None:
    """What changed between two specs: layers, connections, inputs, outputs, losses, training.

    `--set` applies to both. Exit status 0 when they do not differ, 1 when they do, 2 on an
    error, like diff.
    """
    from graphspec.diff import diff as diff_specs
    from graphspec.diff import render_json, render_text
    from graphspec.revision import load_spec

    if params:
        _quiet_tensorflow()
    try:
        given = overrides or []
        if html is not None:
            from graphspec.atomic import check_target

            check_target(html)
        before, after = load_spec(old, given, root=root), load_spec(new, given, root=root)
        result = diff_specs(before, after, old, new, params=params)
        if html is not None:
            from graphspec.atomic import write_text
            from graphspec.view import diff_page_data, render_page

            write_text(html, render_page(diff_page_data(before, after, result)))
    except SpecErrors as exc:
        raise _fail(exc, debug) from None
    sys.stdout.write(render_json(result) if as_json else render_text(result))
    raise typer.Exit(EXIT_FAILED if result.differ else EXIT_OK)


@app.command("git-diff", hidden=True)
def git_diff(
    args: Annotated[list[str], typer.Argument(help="What git passes an external diff driver.")],
) -> None:
    """A git diff driver: `git config diff.graphspec.command "graphspec git-diff"`."""
    from graphspec.diff import git_external_diff

    sys.stdout.write(git_external_diff(args))


@app.command()
def tune(
    spec: Annotated[
        Optional[Path],
        typer.Argument(
            help="The spec whose `search:` section to run (optional with --resume).", show_default=False
        ),
    ] = None,
    synthetic: Annotated[
        bool,
        typer.Option("--synthetic", help="Search on generated data, made once and shared by every trial."),
    ] = False,
    kind: Annotated[
        Optional[str],
        typer.Option("--kind", help="Synthetic targets: teacher (default) or random.", show_default=False),
    ] = None,
    data: TrainDataOption = None,
    val_data: TrainValDataOption = None,
    trials: Annotated[
        Optional[int],
        typer.Option(
            "--trials",
            help="Finished trials the study should hold, all workers together (search.trials).",
            min=1,
            show_default=False,
        ),
    ] = None,
    timeout: Annotated[
        Optional[str],
        typer.Option(
            "--timeout",
            help="Time budget of this run: seconds, or 90s, 30m, 2h (search.timeout).",
            show_default=False,
        ),
    ] = None,
    storage: Annotated[
        Optional[str],
        typer.Option(
            "--storage",
            help="Where the study lives: a database URL (sqlite:///s.db, postgresql://...) or a "
            "journal file. Default: study.log in the tune folder.",
            show_default=False,
        ),
    ] = None,
    study_name: Annotated[
        Optional[str],
        typer.Option(
            "--study-name", help="The study's name (search.study, else the spec's name).", show_default=False
        ),
    ] = None,
    out: Annotated[
        Optional[Path],
        typer.Option(
            "--out",
            help="The tune folder; an existing one is resumed or joined. "
            "Default: RUNS_DIR/<spec name>/tune-<timestamp>/.",
            show_default=False,
        ),
    ] = None,
    resume: Annotated[
        Optional[Path],
        typer.Option(
            "--resume",
            help="Resume the tune in this folder, with the spec, overrides and data it was started with.",
            show_default=False,
        ),
    ] = None,
    runs_dir: Annotated[
        Path, typer.Option("--runs-dir", help="Where tune folders go when --out is not given.")
    ] = Path("runs"),
    overrides: SetOption = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    root: RootOption = None,
    debug: DebugOption = False,
) -> None:
    """Search hyperparameters with Optuna as the spec's `search:` section says: each trial trains
    into its own run directory and is pruned when it falls behind; the study can be resumed and
    shared by several workers. Writes best.yaml, trials.csv, history.png and importances.png."""
    from graphspec.spec.search import timeout_seconds
    from graphspec.tune import render, resume_settings
    from graphspec.tune import tune as run_tune

    _quiet_tensorflow()
    try:
        if resume is not None:
            settings = resume_settings(resume)
            if spec is not None and spec.resolve() != Path(settings["spec"]):
                raise SpecErrors.single(f"{resume} is a tune of {settings['spec']}, not of {spec}")
            if synthetic or data or val_data or overrides:
                raise SpecErrors.single(
                    "--resume takes the data and overrides the tune started with",
                    hint="leave out --synthetic, --data, --val-data and --set",
                )
            spec, given = Path(settings["spec"]), settings["overrides"]
            source = settings["source"]
            synthetic, kind = bool(source.get("synthetic")), source.get("kind")
            data = Path(source["data"]) if source.get("data") else None
            val_data = Path(source["val_data"]) if source.get("val_data") else None
            out, storage, study_name = resume, None, settings["study"]
        elif spec is None:
            raise SpecErrors.single("name the spec to tune, or give --resume DIR")
        else:
            given = list(overrides or [])
        try:
            budget = timeout_seconds(
                float(timeout) if timeout and timeout.replace(".", "", 1).isdigit() else timeout
            )
        except ValueError as exc:
            raise SpecErrors.single(f"--timeout: {exc}") from None
        from graphspec.keras.train import DataSource

        result = run_tune(
            spec,
            DataSource(synthetic, kind, data, val_data),
            overrides=given,
            trials=trials,
            timeout=budget,
            storage=storage,
            study_name=study_name,
            out=out,
            runs_root=runs_dir,
            progress=not quiet,
            root=root,
        )
    except Exception as exc:
        raise _failure(exc, "tune", debug) from None
    typer.echo(printable(render(result)))


@app.command()
def ensemble(
    data: Annotated[
        Path,
        typer.Option(
            "--data",
            metavar="PATH",
            help=f"Validation data, labelled: {_DATA_KINDS}.",
            show_default=False,
        ),
    ],
    runs: Annotated[
        Optional[list[Path]],
        typer.Argument(
            help="Run directories of trained models (each holds model.keras and spec.yaml).",
            show_default=False,
        ),
    ] = None,
    study: Annotated[
        Optional[str],
        typer.Option(
            "--study",
            help="Take members from a study: a tune folder, a database URL or a journal file.",
            show_default=False,
        ),
    ] = None,
    study_name: Annotated[
        Optional[str],
        typer.Option(
            "--study-name", help="The study in --study's storage (default: its only one).", show_default=False
        ),
    ] = None,
    top: Annotated[int, typer.Option("--top", help="With --study: its best K complete trials.", min=1)] = 5,
    method: Annotated[
        str,
        typer.Option("--method", help="caruana (greedy forward selection with replacement) or nelder-mead."),
    ] = "caruana",
    holdout: Annotated[
        float,
        typer.Option(
            "--holdout",
            help="Fraction of --data kept out of fitting the weights, to score on.",
            min=0.05,
            max=0.95,
        ),
    ] = 0.5,
    seed: Annotated[int, typer.Option("--seed", help="Seeds the split of --data.")] = 0,
    metric: Annotated[
        Optional[str],
        typer.Option(
            "--metric",
            help="Score with this Keras metric or loss on each output (default: the members' "
            "losses, weighted as compiled).",
            show_default=False,
        ),
    ] = None,
    iterations: Annotated[
        int, typer.Option("--iterations", help="Rounds of greedy selection (caruana).", min=1)
    ] = 50,
    out: Annotated[
        Optional[Path],
        typer.Option(
            "--out",
            help="Where to write ensemble.keras and ensemble.json. "
            "Default: RUNS_DIR/<spec name>/ensemble-<timestamp>/.",
            show_default=False,
        ),
    ] = None,
    runs_dir: Annotated[
        Path, typer.Option("--runs-dir", help="Where ensemble folders go when --out is not given.")
    ] = Path("runs"),
    max_params: MaxParamsOption = DEFAULT_MAX_PARAMS,
    debug: DebugOption = False,
) -> None:
    """Average trained models' predictions with weights fitted on validation data; report each
    member's score and the ensemble's on a held-out part, and save the ensemble as one .keras model."""
    from graphspec.ensemble import EnsembleOptions, build_ensemble, members_from_study, render

    _quiet_tensorflow()
    try:
        members = list(runs or [])
        if study is not None:
            members += members_from_study(study, study_name, top)
        options = EnsembleOptions(
            method=method,
            holdout=holdout,
            seed=seed,
            metric=metric,
            iterations=iterations,
            max_params=max_params,
        )
        result = build_ensemble(members, data, options, out=out, runs_root=runs_dir)
    except Exception as exc:
        raise _failure(exc, "ensemble", debug) from None
    typer.echo(printable(render(result)))


def main() -> None:
    """Entry point of the `graphspec` console script."""
    # A spec's data is many small, long-lived dicts and lists with no cycles: Python's cyclic
    # collector, run every 700 allocations by default, spent a third of loading a 10,000-node
    # spec walking them. A one-shot command collects rarely instead.
    gc.set_threshold(50_000, 20, 100)
    try:
        app()
    except SpecErrors as exc:
        # Commands catch their own; this is for one that escapes from an import (Keras, or its
        # backend, not installed), which must not end in a traceback either.
        raise SystemExit(_fail(exc, debug=False).exit_code) from None
