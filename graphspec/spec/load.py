"""From a file or text to a checked spec: parse, override, substitute, validate, check.

Nothing here imports TensorFlow: `LoadedSpec.build()` imports the Keras builder only when asked.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from graphspec import budget
from graphspec.errors import Diagnostics, Location, SpecErrors, did_you_mean
from graphspec.policy import Grants, Policy, current_grants
from graphspec.spec import chains, math
from graphspec.spec import params as params_module
from graphspec.spec.blocks import Expansion, Use
from graphspec.spec.blocks import expand as expand_blocks
from graphspec.spec.check import Context, run_checks
from graphspec.spec.files import WORKING_TREE, Files
from graphspec.spec.model import Spec
from graphspec.spec.source import Positions, Source, parse

if TYPE_CHECKING:
    import keras

    from graphspec.graph import Graph

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
    graph: Graph
    path: Path | None = None
    overrides: list[str] = field(default_factory=list)
    nested: dict[str, LoadedSpec] = field(default_factory=dict)
    # The document after blocks were expanded, and which block use made each generated node.
    expansion: Expansion = field(default_factory=lambda: Expansion({}))
    # What the command granted when the spec was checked: the build reads and downloads only
    # what was allowed then (`graphspec.policy.Grants`).
    grants: Grants = field(default_factory=Grants)

    @property
    def base(self) -> Path:
        """The folder the spec's relative paths are relative to: its own, or the current one."""
        return self.path.parent if self.path else Path.cwd()

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
        """The spec's data after params and overrides, as plain YAML-ready data that loads on
        its own: blocks are already expanded into its layers, so their definitions and the
        files that held them (`include`) are left out."""
        data = self.spec.model_dump(mode="json", by_alias=True, exclude_defaults=True)
        data.pop("include", None)
        data.pop("blocks", None)
        return data


def load(
    source: str | Path,
    overrides: list[str] | dict[str, Any] | None = None,
    *,
    root: Path | None = None,
    grants: Grants | None = None,
) -> LoadedSpec:
    """Load and check a spec from a path or from YAML text.

    `overrides` are `--set` values: `["units=64", "layers.dense.activation=tanh"]` or a dict.
    Nested specs and includes are read only under `root` (default: the spec's folder; see
    `graphspec.policy`). `grants` (default: the command's, `graphspec.policy.granted`) lets
    the spec name pretrained weights and presets to download or read. Raises `SpecErrors`
    with every problem found.

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
    with budget.ensure():  # one budget over every file this load reads
        if isinstance(source, Path) or ("\n" not in str(source) and str(source).endswith((".yaml", ".yml"))):
            path = Path(source)
            return _load_file(path, overrides or [], (), WORKING_TREE, _policy(root, grants).for_spec(path))
        policy = _policy(root, grants).for_spec(Path.cwd() / "<string>")
        return _load_text(str(source), "<string>", None, overrides or [], (), WORKING_TREE, policy)


def load_text(
    text: str,
    file: str,
    overrides: list[str] | dict[str, Any] | None = None,
    base: Path | None = None,
    files: Files = WORKING_TREE,
    root: Path | None = None,
    grants: Grants | None = None,
) -> LoadedSpec:
    """Load YAML text that messages call `file` (`HEAD~1:specs/a.yaml`), as `load` would a file.

    Nested specs and included blocks are read from `files` (default: the disk), relative to
    the folder of `base` (a path to the file the text stands for), or to the current folder,
    and only under `root` (default: that folder).
    """
    base = Path(base) if base else None
    policy = _policy(root, grants).for_spec(base or Path.cwd() / "<string>")
    with budget.ensure():
        return _load_text(text, file, base, overrides or [], (), files, policy)


def _policy(root: Path | None, grants: Grants | None) -> Policy:
    return Policy(root, grants if grants is not None else current_grants())


def _load_file(path: Path, overrides, chain: tuple[Path, ...], files: Files, policy: Policy) -> LoadedSpec:
    name = files.name(path, str(path))
    refused = policy.file_refusal(path)
    if refused is not None:
        raise SpecErrors.single(f"cannot read {name}: {refused.message}", hint=refused.hint)
    try:
        text = files.read(path)
    except FileNotFoundError:
        raise SpecErrors.single(f"no such file: {name}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecErrors.single(f"cannot read {name}: {exc}") from None
    return _load_text(text, name, path, overrides, chain + (path.resolve(),), files, policy)


def _load_text(
    text: str, file: str, path: Path | None, overrides, chain, files: Files, policy: Policy
) -> LoadedSpec:
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
    resolved = params_module.resolve_params(params, positions, diagnostics)
    if resolved is None:  # a param that could not be computed would only echo its error
        raise SpecErrors(diagnostics)
    unused = _unused_params(data, params)
    data = params_module.substitute(data, resolved, positions, diagnostics)
    before = len(diagnostics.errors)
    data, refused = chains.desugar_spec(data, positions, diagnostics)
    # A node left without `in` would only echo its error; a refused count is validated as it is.
    before += len(refused)
    if len(diagnostics.errors) > before:
        raise SpecErrors(diagnostics)
    expansion = expand_blocks(
        data, positions, diagnostics, path.parent if path else Path.cwd(), files, policy, resolved
    )
    if not expansion.complete:  # a half-expanded document would only add echoes of its errors
        raise SpecErrors(diagnostics)
    data = expansion.data
    unused = [name for name in unused if name not in expansion.inherited]
    if isinstance(data.get("layers"), dict):
        # `math:` nodes become op nodes (math.py): what every later stage, and expand, sees.
        data = {**data, "layers": math.desugar(data["layers"], positions, diagnostics, expansion.origins)}
        expansion.data = data
        if len(diagnostics.errors) > before:
            raise SpecErrors(diagnostics)

    try:
        spec = Spec.model_validate(data)
    except ValidationError as exc:
        _report_validation(exc, data, positions, diagnostics, refused)
        raise SpecErrors(diagnostics) from None

    nested = _load_nested(spec, path, positions, diagnostics, chain, files, policy)
    ctx = Context(
        spec,
        positions,
        diagnostics,
        {n: (list(s.spec.inputs), list(s.spec.outputs)) for n, s in nested.items()},
        grants=policy.grants,
        base=path.parent if path else Path.cwd(),
    )
    run_checks(ctx)
    diagnostics.raise_if_errors()
    _anchor_paths(spec, expansion.data, path.parent if path else Path.cwd())
    from graphspec.graph import run_graph_checks

    graph = run_graph_checks(ctx)
    diagnostics.raise_if_errors()
    # Style is told only to a valid spec: among errors it is noise, and a misspelt name may be
    # an unused param's one use.
    for warning in source.unquoted + expansion.unquoted:
        diagnostics.warning(warning.message, warning.location, warning.hint)
    for name in unused:
        diagnostics.warning(
            f"param '{name}' is declared but never used",
            positions.key_of(("params", name)),
            hint=f"use it as ${{{name}}}, or remove it",
        )
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
        policy.grants,
    )


def _anchor_paths(spec: Spec, document: dict, base: Path) -> None:
    """Make each weights file or preset folder the spec names relative to its folder (granted,
    or the checks would have refused it) absolute, in the spec and in its expanded `document`,
    so that the spec a run or a tune writes elsewhere names the same file."""
    import os

    from graphspec.policy import GRANTABLE, is_path
    from graphspec.spec import catalog

    for name, node in spec.layers.items():
        capabilities = (catalog.layer(node.type) or {}).get("capabilities", {}) if node.type else {}
        for argument in GRANTABLE:
            value = node.args.get(argument)
            if argument in capabilities and is_path(value, argument) and not os.path.isabs(value):
                anchored = os.path.normpath(os.path.join(os.path.abspath(base), value))
                node.model_extra[argument] = anchored  # `args` is a copy of these
                written = document.get("layers", {}).get(name)
                if isinstance(written, dict) and written.get(argument) == value:
                    written[argument] = anchored


def _unused_params(data: dict, params: dict) -> list[str]:
    """The declared params that no `${...}` of the spec reads (a `--set` of one is no use): a
    typo, or a leftover. Block bodies read their own params, not these."""
    used = params_module.referenced_names(
        [value for key, value in data.items() if key not in ("params", "blocks", "include")]
    )
    for name, value in params.items():
        used |= params_module.referenced_names(value) - {name}
    return [name for name in params if name not in used]


def _load_nested(
    spec: Spec,
    path: Path | None,
    positions: Positions,
    diagnostics: Diagnostics,
    chain: tuple[Path, ...],
    files: Files,
    policy: Policy,
) -> dict[str, LoadedSpec]:
    """Load every `spec: file.yaml` node, relative to the including spec's folder, as `policy`
    allows."""
    nested = {}
    base = path.parent if path else Path.cwd()
    for name, node in spec.layers.items():
        if node.spec is None:
            continue
        where = positions.of(("layers", name, "spec"))
        refused = policy.spec_refusal(node.spec, base / node.spec)
        if refused:
            diagnostics.error(
                f"layer '{name}' uses spec '{node.spec}': {refused.message}", where, refused.hint
            )
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
            nested[name] = _load_nested_file(target, node.params, chain, files, policy, positions)
        except SpecErrors as exc:
            diagnostics.error(f"layer '{name}' uses spec '{node.spec}', which is invalid", where)
            diagnostics.extend(exc.diagnostics)
    _check_node_count(spec, nested, positions, diagnostics)
    return nested


@dataclass
class _NestedLoads:
    """The nested specs loaded during one top-level load, and their node totals."""

    owner: Positions  # the top-level spec's: a load of another spec starts afresh
    loading: int = 0  # nested loads in progress: 0 while the top-level spec's layers are read
    # (file, depth, params) -> the spec, or the errors that made it invalid
    results: dict[tuple, LoadedSpec | SpecErrors] = field(default_factory=dict)
    # id(spec) -> (the spec, kept alive so that its id is not reused, its node total)
    totals: dict[int, tuple[LoadedSpec, int]] = field(default_factory=dict)


_NESTED_LOADS: ContextVar[_NestedLoads | None] = ContextVar("graphspec_nested_loads", default=None)


def _load_nested_file(
    target: Path, params: dict, chain: tuple[Path, ...], files: Files, policy: Policy, owner: Positions
) -> LoadedSpec:
    """`_load_file` for a nested spec, loaded once per file, params and depth within one load.

    A spec that uses another 4 times, which uses the next 4 times, and so on, reads each file
    once, not 4^depth times. What a nested spec loads to depends on its file, params and depth
    only (a cycle fails wherever it is met). An invalid one raises its errors the first time
    and empty `SpecErrors` after that, so that they are reported once.
    """
    loads = _NESTED_LOADS.get()
    if loads is None or (loads.loading == 0 and loads.owner is not owner):
        loads = _NestedLoads(owner)
        _NESTED_LOADS.set(loads)
    key = (target, len(chain), repr(params))
    done = loads.results.get(key)
    if isinstance(done, SpecErrors):
        raise SpecErrors(Diagnostics())
    if done is not None:
        return done
    loads.loading += 1
    try:
        loads.results[key] = _load_file(target, params, chain, files, policy)
    except SpecErrors as exc:
        loads.results[key] = exc
        raise
    finally:
        loads.loading -= 1
    return loads.results[key]


def _node_total(loaded: LoadedSpec, totals: dict[int, tuple[LoadedSpec, int]]) -> int:
    """How many nodes `loaded` stands for: its layers, a nested spec's counted at each use."""
    if id(loaded) not in totals:
        total = sum(
            _node_total(loaded.nested[name], totals) if name in loaded.nested else 1
            for name in loaded.spec.layers
        )
        totals[id(loaded)] = (loaded, total)
    return totals[id(loaded)][1]


def _check_node_count(
    spec: Spec, nested: dict[str, LoadedSpec], positions: Positions, diagnostics: Diagnostics
) -> None:
    """Refuse, at the `spec:` line that passes it, a spec whose nodes pass the limit of
    the command's `nodes` budget when each nested spec's nodes count at each of its uses."""
    limit = budget.current().limits["nodes"]
    loads = _NESTED_LOADS.get()
    if loads is not None and loads.loading == 0:
        _NESTED_LOADS.set(None)  # the top-level spec's nested specs are all loaded: let go
    if not nested:
        return
    totals = loads.totals if loads is not None else {}
    count = 0
    for name, node in spec.layers.items():
        count += _node_total(nested[name], totals) if name in nested else 1
        if count > limit and name in nested:
            diagnostics.error(
                f"layer '{name}' uses spec '{node.spec}' of {_node_total(nested[name], totals):,} "
                f"nodes, which brings this spec to {count:,}; a spec may have at most "
                f"{limit:,} nodes, each nested spec's counted at each use",
                positions.of(("layers", name, "spec")),
                hint=budget.option_hint("nodes"),
            )
            return


def _report_validation(
    exc: ValidationError, data: dict, positions: Positions, diagnostics: Diagnostics, told: list = ()
) -> None:
    """Turn pydantic's errors into diagnostics at the nearest recorded position.

    pydantic's locations include the names of union members and validators (`str`,
    `list[str]`, `function-after[...]`) that are not keys of the document; they are dropped.
    A value that matches no member of a union gives one error per member: only the first is kept.
    An error about a value holding one of the paths in `told`, already refused, is left out.
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
        if not (path and any(tuple(t[: len(path)]) == path for t in told)):
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
    "in": (
        "should be a node name or a negative number counting back (-1 is the layer before), "
        "a list of them, or a mapping of call arguments to them"
    ),
    "loss": "should be a loss name or {type: LossClass, ...arguments}",
    "optimizer": "should be an optimizer name or {type: OptimizerClass, ...arguments}",
    "adapt": "should be true, false or {samples: N}",
}


def _allowed_keys(parent: tuple, model) -> list[str]:
    top = {
        (): model.Spec,
        ("compile",): model.CompileSpec,
        ("train",): model.TrainSpec,
        ("search",): model.SearchSpec,
        ("data",): model.DataSpec,
    }
    cls = top.get(parent)
    if cls is None and len(parent) == 2:
        cls = {"inputs": model.InputSpec, "outputs": model.OutputSpec}.get(parent[0])
    if cls is None and len(parent) == 3 and parent[0] == "data":
        cls = {"inputs": model.DataInput, "outputs": model.DataOutput}.get(parent[1])
    if cls is None and len(parent) == 3 and parent[0] == "layers" and parent[2] == "adapt":
        cls = model.AdaptSpec
    if cls is None and len(parent) == 3 and parent[:2] == ("search", "params"):
        from graphspec.spec.search import SearchParam

        cls = SearchParam
    if cls is None:
        return []
    return [f.alias or n for n, f in cls.model_fields.items()]
