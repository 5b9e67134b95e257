"""From a file or text to a checked spec: parse, override, substitute, validate, check.

Nothing here imports TensorFlow: `LoadedSpec.build()` imports the Keras builder only when asked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from graphspec.errors import Diagnostics, Location, SpecErrors, did_you_mean
from graphspec.spec import params as params_module
from graphspec.spec.blocks import Expansion, Use
from graphspec.spec.blocks import expand as expand_blocks
from graphspec.spec.check import Context, run_checks
from graphspec.spec.files import WORKING_TREE, Files
from graphspec.spec.model import Spec
from graphspec.spec.source import Positions, Source, parse

if TYPE_CHECKING:
    import keras
    import networkx as nx

MAX_NESTING = 16
# More parameters than this is almost surely a typo (or an attack): --max-params raises it.
DEFAULT_MAX_PARAMS = 1_000_000_000


@dataclass
class LoadedSpec:
    """A valid spec with everything needed to build it and to point back at its source."""

    spec: Spec
    source: Source
    positions: Positions
    diagnostics: Diagnostics
    graph: nx.DiGraph
    path: Path | None = None
    overrides: list[str] = field(default_factory=list)
    nested: dict[str, LoadedSpec] = field(default_factory=dict)
    # The document after blocks were expanded, and which block use made each generated node.
    expansion: Expansion = field(default_factory=lambda: Expansion({}))

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def warnings(self) -> list:
        return self.diagnostics.warnings

    def location(self, *path: Any, key: bool = False) -> Location | None:
        """Where a value of the spec (`"layers", "dense", "units"`) is written."""
        return self.positions.of(tuple(path), key=key)

    def build(self, compile: bool = True, max_params: int | None = DEFAULT_MAX_PARAMS) -> keras.Model:
        """The Keras functional model this spec describes, compiled unless `compile=False`.

        Raises `SpecErrors` pointing at the node whose layer Keras refused, or at the largest
        layer when the model has more than `max_params` parameters (checked before any weight
        is allocated; None for no limit).
        """
        from graphspec.keras.build import build_model

        return build_model(self, compile=compile, max_params=max_params)

    def origin(self, node: str) -> tuple[Use, ...]:
        """The block uses `node` was expanded from, outermost first; () for a node written as is."""
        return self.expansion.origins.get(node, ())

    def expanded(self) -> str:
        """The spec as YAML with blocks, repeats, params and overrides resolved (`graphspec expand`)."""
        from graphspec.spec.expand import expanded_yaml

        return expanded_yaml(self)

    def resolved(self) -> dict:
        """The spec's data after params and overrides, as plain YAML-ready data."""
        return self.spec.model_dump(mode="json", by_alias=True, exclude_defaults=True)


def load(source: str | Path, overrides: list[str] | dict[str, Any] | None = None) -> LoadedSpec:
    """Load and check a spec from a path or from YAML text.

    `overrides` are `--set` values: `["units=64", "layers.dense.activation=tanh"]` or a dict.
    Raises `SpecErrors` with every problem found.

    >>> spec = load('''
    ... graphspec: 1
    ... name: tiny
    ... inputs: {x: {shape: [4]}}
    ... layers: {y: {type: Dense, units: 2, in: x}}
    ... outputs: {y: {loss: mse}}
    ... ''')
    >>> spec.name, list(spec.spec.layers)
    ('tiny', ['y'])
    """
    if isinstance(source, Path) or ("\n" not in str(source) and str(source).endswith((".yaml", ".yml"))):
        return _load_file(Path(source), overrides or [], (), WORKING_TREE)
    return _load_text(str(source), "<string>", None, overrides or [], (), WORKING_TREE)


def load_text(
    text: str,
    file: str,
    overrides: list[str] | dict[str, Any] | None = None,
    base: Path | None = None,
    files: Files = WORKING_TREE,
) -> LoadedSpec:
    """Load YAML text that messages call `file` (`HEAD~1:specs/a.yaml`), as `load` would a file.

    Nested specs and included blocks are read from `files` (default: the disk), relative to
    the folder of `base` (a path to the file the text stands for), or to the current folder.
    """
    return _load_text(text, file, Path(base) if base else None, overrides or [], (), files)


def _load_file(path: Path, overrides, chain: tuple[Path, ...], files: Files) -> LoadedSpec:
    name = files.name(path, str(path))
    try:
        text = files.read(path)
    except FileNotFoundError:
        raise SpecErrors.single(f"no such file: {name}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecErrors.single(f"cannot read {name}: {exc}") from None
    return _load_text(text, name, path, overrides, chain + (path.resolve(),), files)


def _load_text(text: str, file: str, path: Path | None, overrides, chain, files: Files) -> LoadedSpec:
    source = parse(text, file)
    diagnostics = source.diagnostics
    positions = source.positions
    data = source.data
    if not isinstance(data, dict):
        diagnostics.error(
            "a spec is a mapping with keys graphspec, name, inputs, layers and outputs", Location(file, 1, 1)
        )
        raise SpecErrors(diagnostics)
    data = dict(data)
    if overrides:
        params_module.apply_overrides(data, overrides, positions, diagnostics)
    params = data.get("params") if isinstance(data.get("params"), dict) else {}
    for name, value in params.items():
        if isinstance(value, str) and "${" in value:
            diagnostics.error(
                f"param '{name}' uses another param; params are plain values", positions.of(("params", name))
            )
    data = params_module.substitute(data, params, positions, diagnostics)
    expansion = expand_blocks(data, positions, diagnostics, path.parent if path else Path.cwd(), files)
    if not expansion.complete:  # a half-expanded document would only add echoes of its errors
        raise SpecErrors(diagnostics)
    data = expansion.data

    try:
        spec = Spec.model_validate(data)
    except ValidationError as exc:
        _report_validation(exc, data, positions, diagnostics)
        raise SpecErrors(diagnostics) from None

    nested = _load_nested(spec, path, positions, diagnostics, chain, files)
    ctx = Context(
        spec,
        positions,
        diagnostics,
        {n: (list(s.spec.inputs), list(s.spec.outputs)) for n, s in nested.items()},
    )
    run_checks(ctx)
    diagnostics.raise_if_errors()
    from graphspec.graph import run_graph_checks

    graph = run_graph_checks(ctx)
    diagnostics.raise_if_errors()
    return LoadedSpec(
        spec,
        source,
        positions,
        diagnostics,
        graph,
        path,
        list(overrides) if isinstance(overrides, list) else [f"{k}={v}" for k, v in overrides.items()],
        nested,
        expansion,
    )


def spec_path_problem(path: str) -> str | None:
    """Why a spec may not read `path`, or None. A spec reads only other specs, by relative path:
    an absolute path or a non-YAML file would let a shared spec make graphspec read, and print
    in its error messages, any file of the machine."""
    if Path(path).is_absolute() or path.startswith("~"):
        return "paths in a spec are relative to the spec's folder"
    if not path.endswith((".yaml", ".yml")):
        return "a spec can only read other specs (.yaml or .yml files)"
    return None


def _load_nested(
    spec: Spec,
    path: Path | None,
    positions: Positions,
    diagnostics: Diagnostics,
    chain: tuple[Path, ...],
    files: Files,
) -> dict[str, LoadedSpec]:
    """Load every `spec: file.yaml` node, relative to the including spec's folder."""
    nested = {}
    base = path.parent if path else Path.cwd()
    for name, node in spec.layers.items():
        if node.spec is None:
            continue
        where = positions.of(("layers", name, "spec"))
        problem = spec_path_problem(node.spec)
        if problem:
            diagnostics.error(f"layer '{name}' uses spec '{node.spec}': {problem}", where)
            continue
        target = (base / node.spec).resolve()
        if target in chain:
            diagnostics.error(f"layer '{name}' includes '{node.spec}', which includes this spec again", where)
            continue
        if len(chain) >= MAX_NESTING:
            diagnostics.error(f"specs nest more than {MAX_NESTING} deep", where)
            continue
        if not files.is_file(target):
            diagnostics.error(
                f"layer '{name}' uses spec '{node.spec}', which does not exist",
                where,
                hint=f"paths are relative to the spec's folder ({base})",
            )
            continue
        try:
            nested[name] = _load_file(target, node.params, chain, files)
        except SpecErrors as exc:
            diagnostics.error(f"layer '{name}' uses spec '{node.spec}', which is invalid", where)
            diagnostics.extend(exc.diagnostics)
    return nested


def _report_validation(
    exc: ValidationError, data: dict, positions: Positions, diagnostics: Diagnostics
) -> None:
    """Turn pydantic's errors into diagnostics at the nearest recorded position.

    pydantic's locations include the names of union members and validators (`str`,
    `list[str]`, `function-after[...]`) that are not keys of the document; they are dropped.
    A value that matches no member of a union gives one error per member: only the first is kept.
    """
    seen: set[tuple] = set()
    for error in exc.errors():
        path, node = [], data
        for part in error["loc"]:
            if isinstance(node, dict) and part in node:
                path.append(part)
                node = node[part]
            elif isinstance(node, list) and isinstance(part, int) and part < len(node):
                path.append(part)
                node = node[part]
            elif error["type"] in ("missing", "extra_forbidden") and part == error["loc"][-1]:
                path.append(part)
        path = tuple(path)
        if path in seen:
            continue
        seen.add(path)
        message, hint, key = _message(error, path, node)
        diagnostics.error(message, positions.of(path, key=key), hint)


def _message(error: dict, path: tuple, value: Any) -> tuple[str, str | None, bool]:
    where = ".".join(str(p) for p in path)
    kind = error["type"]
    if kind == "missing":
        parent = ".".join(str(p) for p in path[:-1]) or "the spec"
        return f"{parent} is missing required key '{path[-1]}'", None, True
    if kind == "extra_forbidden":
        from graphspec.spec import model

        allowed = _allowed_keys(path[:-1], model)
        parent = ".".join(str(p) for p in path[:-1]) or "the spec"
        return (
            f"unknown key '{path[-1]}' in {parent}",
            did_you_mean(path[-1], allowed) or ("allowed keys: " + ", ".join(allowed) if allowed else None),
            True,
        )
    if kind == "literal_error" and path == ("graphspec",):
        return (f"unsupported format version {value!r}; this graphspec reads version 1", None, False)
    if path and path[-1] in _UNION_MESSAGES and kind not in ("missing", "extra_forbidden"):
        return f"{where}: {_UNION_MESSAGES[path[-1]]}", None, False
    message = error["msg"].replace("Input should be a valid ", "should be a ")
    message = message.replace("Input should be ", "should be ")
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    elif message.startswith("Assertion failed, "):
        message = message[len("Assertion failed, ") :]
    else:
        message = message[0].lower() + message[1:]
    return f"{where}: {message}" if where else message, None, False


# Fields whose type is a union: pydantic reports one error per member; one sentence says it all.
_UNION_MESSAGES = {
    "in": "should be a node name, a list of node names, or a mapping of call arguments to node names",
    "loss": "should be a loss name or {type: LossClass, ...arguments}",
    "optimizer": "should be an optimizer name or {type: OptimizerClass, ...arguments}",
}


def _allowed_keys(parent: tuple, model) -> list[str]:
    top = {
        (): model.Spec,
        ("compile",): model.CompileSpec,
        ("train",): model.TrainSpec,
        ("search",): model.SearchSpec,
    }
    cls = top.get(parent)
    if cls is None and len(parent) == 2:
        cls = {"inputs": model.InputSpec, "outputs": model.OutputSpec}.get(parent[0])
    if cls is None and len(parent) == 3 and parent[:2] == ("search", "params"):
        from graphspec.spec.search import SearchParam

        cls = SearchParam
    if cls is None:
        return []
    return [f.alias or n for n, f in cls.model_fields.items()]
