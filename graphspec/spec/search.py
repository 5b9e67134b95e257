"""The `search:` section: which values a hyperparameter search varies, and how it searches.

Each searched value is addressed by the dotted path `--set` uses (`layers.dense1.units`,
`params.width` or plain `width`, `compile.optimizer.learning_rate`, `train.batch_size`): a trial
is the spec loaded with its values as overrides. Everything here is checked without Optuna or
TensorFlow, so `graphspec validate` reports a bad search at its line; `graphspec/tune.py` runs it.

```yaml
search:
  metric: val_loss          # what the trials report each epoch; goal: minimize or maximize
  sampler: tpe              # tpe | random | grid | qmc | cmaes, or {type: tpe, n_startup_trials: 5}
  pruner: median            # median | hyperband | none, or {type: median, n_warmup_steps: 2}
  trials: 30                # finished trials the study should hold; and/or timeout: 20m
  params:
    params.hidden:                   {type: int, low: 16, high: 128, step: 16}
    compile.optimizer.learning_rate: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}
    train.batch_size:                {type: categorical, choices: [32, 64, 128]}
```
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from graphspec import budget, policy
from graphspec.errors import did_you_mean
from graphspec.spec.params import OPTIONAL_SECTIONS, settable

if TYPE_CHECKING:
    from graphspec.spec.check import Context

# Our name -> (Optuna class, the constructor arguments a spec may pass, Optuna's own names).
# The seed is `search.seed`; the grid sampler's grid is made from the params.
SAMPLERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "tpe": (
        "TPESampler",
        (
            "n_startup_trials",
            "n_ei_candidates",
            "multivariate",
            "group",
            "constant_liar",
            "consider_endpoints",
            "prior_weight",
        ),
    ),
    "random": ("RandomSampler", ()),
    "grid": ("GridSampler", ()),
    "qmc": ("QMCSampler", ("qmc_type", "scramble")),
    "cmaes": (
        "CmaEsSampler",
        ("n_startup_trials", "sigma0", "popsize", "use_separable_cma", "with_margin", "lr_adapt"),
    ),
}
PRUNERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "median": ("MedianPruner", ("n_startup_trials", "n_warmup_steps", "interval_steps", "n_min_trials")),
    "hyperband": ("HyperbandPruner", ("min_resource", "max_resource", "reduction_factor", "bootstrap_count")),
    "none": ("NopPruner", ()),
}
# Metric names that are better when larger: `goal: minimize` on one of them is a warning.
_LARGER_IS_BETTER = (
    "accuracy",
    "acc",
    "auc",
    "precision",
    "recall",
    "f1_score",
    "fbeta_score",
    "iou",
    "r2_score",
)
_DURATION = re.compile(r"^\s*(?P<value>\d+(?:\.\d+)?)\s*(?P<unit>s|m|h|d)?\s*$")
_UNITS = {None: 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class SearchParam(_Strict):
    """One searched value: an int or float range, or a list of choices."""

    type: Literal["int", "float", "categorical"] = Field(description="int, float or categorical.")
    low: int | float | None = Field(default=None, description="Smallest value (int and float).")
    high: int | float | None = Field(default=None, description="Largest value, included (int and float).")
    step: int | float | None = Field(default=None, description="Values are low + k * step.")
    log: bool = Field(default=False, description="Sample on a log scale (low must be above 0).")
    choices: list[Any] | None = Field(default=None, description="The values of a categorical param.")
    doc: str | None = None


class Method(BaseModel):
    """A sampler or pruner with arguments: `{type: tpe, n_startup_trials: 5}` (Optuna's names)."""

    model_config = ConfigDict(extra="allow")
    type: str

    @property
    def args(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class SearchSpec(_Strict):
    """A hyperparameter search over the spec's own values, run by `graphspec tune`."""

    metric: str = Field(default="val_loss", description="The logged metric to optimise, e.g. val_loss.")
    goal: Literal["minimize", "maximize"] = "minimize"
    sampler: str | Method = Field(default="tpe", description="tpe, random, grid, qmc or cmaes.")
    pruner: str | Method = Field(default="median", description="median, hyperband or none.")
    trials: int | None = Field(default=None, ge=1, description="Finished trials the study should hold.")
    timeout: float | str | None = Field(
        default=None, description="Time budget of one `graphspec tune`: seconds, or 90s, 30m, 2h."
    )
    storage: str | None = Field(
        default=None,
        description="The study's journal file, relative to the tune's folder (default: study.log); "
        "a database URL is given on the command line (--storage).",
    )
    study: str | None = Field(default=None, description="The study's name; default: the spec's name.")
    seed: int | None = Field(default=None, description="Seeds the sampler.")
    params: dict[str, SearchParam] = Field(min_length=1, description="Dotted path (as --set) -> range.")


def method_name(method: str | Method) -> str:
    return method if isinstance(method, str) else method.type


def method_args(method: str | Method) -> dict[str, Any]:
    return {} if isinstance(method, str) else method.args


def timeout_seconds(value: float | str | None) -> float | None:
    """A time budget in seconds: a number, or a number with s, m, h or d (`30m`).

    >>> timeout_seconds("1.5h"), timeout_seconds(90)
    (5400.0, 90.0)
    """
    if value is None:
        return None
    if isinstance(value, (int, float)):
        if not math.isfinite(value) or value <= 0:
            raise ValueError("a time budget must be above 0")
        return float(value)
    match = _DURATION.match(value)
    if match is None or float(match.group("value")) <= 0:
        raise ValueError(f"'{value}' is not a time budget: write seconds, or a number with s, m, h or d")
    return float(match.group("value")) * _UNITS[match.group("unit")]


def target_path(path: str) -> tuple[str, ...]:
    """Where in the document a search param's path points, as `--set` reads it: a name without
    a dot is a param (`width` is `params.width`)."""
    return tuple(path.split(".")) if "." in path else ("params", path)


def grid(search: SearchSpec) -> dict[str, list[Any]]:
    """Every value of each param, for the grid sampler (float params need a step)."""
    values: dict[str, list[Any]] = {}
    for path, param in search.params.items():
        if param.type == "categorical":
            values[path] = list(param.choices or [])
        else:
            step = param.step if param.step is not None else 1
            count = int(round((param.high - param.low) / step)) + 1
            values[path] = [
                param.low + i * step
                for i in range(count)
                if param.low + i * step <= param.high + 1e-12 * abs(param.high)
            ]
            if param.type == "int":
                values[path] = [int(v) for v in values[path]]
    return values


def reported_metrics(spec: Any) -> list[str]:
    """The training metrics Keras logs for this spec (validation ones add `val_`), as patterns:
    a class metric's name may carry a counter suffix (`auc_1`), written `auc*` here."""
    outputs = spec.outputs
    with_loss = [name for name, output in outputs.items() if output.loss is not None]
    names = ["loss"]
    if len(with_loss) > 1:
        names += [f"{name}_loss" for name in with_loss]
    for name, output in outputs.items():
        prefix = f"{name}_" if len(outputs) > 1 else ""
        for metric in output.metrics:
            names.append(prefix + (metric if isinstance(metric, str) else _snake_case(metric.type) + "*"))
    return names


def _snake_case(name: str) -> str:
    # As Keras names a metric object after its class.
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def metric_matches(metric: str, patterns: list[str]) -> bool:
    """Whether `metric` (with or without `val_`) is one of `reported_metrics`' patterns."""
    base = metric[4:] if metric.startswith("val_") else metric
    for pattern in patterns:
        if pattern.endswith("*"):
            if re.fullmatch(re.escape(pattern[:-1]) + r"(_\d+)?", base):
                return True
        elif base == pattern:
            return True
    return False


def check_search(ctx: Context) -> None:
    """Check the `search:` section: methods, ranges, the paths searched and the metric."""
    search = ctx.spec.search
    if search is None:
        return
    for kind, table in (("sampler", SAMPLERS), ("pruner", PRUNERS)):
        _check_method(ctx, getattr(search, kind), table, kind, ("search", kind))
    try:
        timeout_seconds(search.timeout)
    except ValueError as exc:
        ctx.error(f"search.timeout: {exc}", ("search", "timeout"))
    _check_storage(ctx, search.storage)
    grid_sampler = method_name(search.sampler) == "grid"
    shape = _DocumentShape(ctx)
    for path, param in search.params.items():
        where = ("search", "params", path)
        _check_range(ctx, path, param, where, grid_sampler)
        _check_target(ctx, path, param, where, shape)
    if grid_sampler:
        _check_grid_size(ctx, search)
    _check_metric(ctx, search)


def _grid_count(param: SearchParam) -> int | None:
    """How many values the grid sampler gives `param`, or None when its range is invalid
    (reported by `_check_range`). Counted, never listed."""
    if param.type == "categorical":
        return len(param.choices or []) or None
    numbers = (param.low, param.high, param.step if param.step is not None else 1)
    if not all(isinstance(n, (int, float)) and math.isfinite(n) for n in numbers):
        return None
    low, high, step = numbers
    if low > high or step <= 0:
        return None
    return int((high - low) / step + 1e-9) + 1


def _check_grid_size(ctx: Context, search: SearchSpec) -> None:
    """Refuse a grid with more points than the command's `grid` budget, at the param whose
    values take the product past it: its lists are made whole by the grid sampler."""
    limit = budget.current().limits["grid"]
    points = 1
    for path, param in search.params.items():
        count = _grid_count(param)
        if count is None:
            return
        points *= count
        if points > limit:
            shown = f"{points:,}" if points.bit_length() < 100 else f"about 2**{points.bit_length() - 1}"
            ctx.error(
                f"search param '{path}' takes the grid to {shown} points, over the limit of "
                f"{limit:,} {budget.LIMITS['grid'].counts}",
                ("search", "params", path),
                budget.option_hint("grid"),
                key=True,
            )
            return


def _check_storage(ctx: Context, storage: str | None) -> None:
    """A spec's storage is a journal file inside the tune folder: a database URL (which reaches
    a server) or a path elsewhere (which writes there) comes only from the command line."""
    if storage is None:
        return
    if "://" in storage:
        ctx.error(
            "search.storage: a database URL reaches a server, and a spec never opens a connection",
            ("search", "storage"),
            hint="give the URL on the command line: graphspec tune SPEC --storage URL",
        )
    elif refused := policy.written_path_refusal(storage, "the tune folder"):
        ctx.error(f"search.storage: {refused.message}", ("search", "storage"), hint=refused.hint)


def _check_method(ctx: Context, method: str | Method, table: dict, kind: str, where: tuple) -> None:
    name = method_name(method)
    if name not in table:
        classes = {cls.lower(): ours for ours, (cls, _) in table.items()}
        hint = (
            f"write '{classes[name.lower()]}'"
            if name.lower() in classes
            else did_you_mean(name, table) or "known: " + ", ".join(table)
        )
        ctx.error(
            f"unknown {kind} '{name}'", where if isinstance(method, str) else where + ("type",), hint=hint
        )
        return
    allowed = table[name][1]
    for arg in method_args(method):
        if arg == "seed":
            ctx.error(f"{kind} {name}: the seed is search.seed", where + (arg,), key=True)
        elif arg not in allowed:
            ctx.error(
                f"{kind} {name} has no argument '{arg}'",
                where + (arg,),
                key=True,
                hint=did_you_mean(arg, allowed)
                or ("it takes: " + ", ".join(allowed) if allowed else "it takes no arguments"),
            )


def _check_range(ctx: Context, path: str, param: SearchParam, where: tuple, grid_sampler: bool) -> None:
    what = f"search param '{path}'"
    if param.type == "categorical":
        for key in ("low", "high", "step"):
            if getattr(param, key) is not None:
                ctx.error(f"{what}: a categorical param has choices, not '{key}'", where + (key,), key=True)
        if param.log:
            ctx.error(f"{what}: a categorical param has choices, not 'log'", where + ("log",), key=True)
        if not param.choices:
            ctx.error(
                f"{what} needs 'choices'" if param.choices is None else f"{what}: choices are empty",
                where if param.choices is None else where + ("choices",),
                key=param.choices is None,
            )
        for i, choice in enumerate(param.choices or []):
            if not (choice is None or isinstance(choice, (bool, int, float, str))):
                ctx.error(
                    f"{what}: a choice must be a number, a string, true, false or null",
                    where + ("choices", i),
                )
        return
    if param.choices is not None:
        ctx.error(
            f"{what}: choices are for type categorical",
            where + ("choices",),
            key=True,
            hint=f"a {param.type} param takes low, high, step and log",
        )
    missing = [key for key in ("low", "high") if getattr(param, key) is None]
    for key in missing:
        ctx.error(f"{what} needs '{key}'", where, key=True)
    numbers = ("low", "high", "step")
    if param.type == "int":
        wrong = [
            k for k in numbers if getattr(param, k) is not None and not isinstance(getattr(param, k), int)
        ]
        for key in wrong:
            ctx.error(
                f"{what}: {key} of an int param must be an integer, got {getattr(param, key)}",
                where + (key,),
                hint="make the param type float",
            )
        if wrong:
            return
    if missing:
        return
    infinite = [k for k in numbers if getattr(param, k) is not None and not math.isfinite(getattr(param, k))]
    for key in infinite:
        ctx.error(f"{what}: {key} must be a finite number", where + (key,))
    if infinite:
        return
    if param.low > param.high:
        ctx.error(f"{what}: low {param.low} is above high {param.high}", where + ("low",))
    if param.step is not None and param.step <= 0:
        ctx.error(f"{what}: step must be above 0, got {param.step}", where + ("step",))
    if param.log:
        if param.low <= 0:
            ctx.error(f"{what}: a log scale needs low above 0, got {param.low}", where + ("low",))
        if param.step is not None and (param.type == "float" or param.step != 1):
            ctx.error(
                f"{what}: a param cannot have both a step and a log scale",
                where + ("step",),
                key=True,
                hint="Optuna samples a log scale continuously",
            )
    if grid_sampler and param.type == "float" and param.step is None:
        ctx.error(
            f"{what}: the grid sampler needs a step for a float param",
            where,
            key=True,
            hint="give a step, or make it categorical",
        )


class _DocumentShape:
    """Which paths of the document a `--set` could write: the mappings and lists of the source
    as written (block uses included), and of the spec after expansion (values set by overrides)."""

    def __init__(self, ctx: Context):
        positions = ctx.positions
        self.mappings = {p[:-1] for p in positions.keys}
        self.lists = {p[:-1] for p in positions.values if p and isinstance(p[-1], int)}
        self.present = set(positions.values) | set(positions.keys)
        self.resolved = ctx.spec.model_dump(mode="json", by_alias=True, exclude_none=False)

    def settable(self, parts: tuple[str, ...]) -> bool:
        """What `graphspec.spec.params._set_path` accepts: the parent exists, a new leaf may be added."""
        if len(parts) == 2 and parts[0] in OPTIONAL_SECTIONS:
            return True  # the section is created when the spec leaves it out
        return self._walk(parts) or self._walk_resolved(parts)

    def _walk(self, parts: tuple[str, ...]) -> bool:
        node: tuple = ()
        for key in parts[:-1]:
            if node in self.mappings and node + (key,) in self.present:
                node = node + (key,)
            elif node in self.lists and key.isdigit() and node + (int(key),) in self.present:
                node = node + (int(key),)
            else:
                return False
        if node in self.mappings:
            return True
        return node in self.lists and parts[-1].isdigit() and node + (int(parts[-1]),) in self.present

    def _walk_resolved(self, parts: tuple[str, ...]) -> bool:
        return settable(self.resolved, parts)


def _check_target(ctx: Context, path: str, param: SearchParam, where: tuple, shape: _DocumentShape) -> None:
    from graphspec.spec import catalog
    from graphspec.spec.model import CompileSpec, TrainSpec, TypedObject

    what = f"search param '{path}'"
    parts = target_path(path)
    spec = ctx.spec
    if parts[0] == "params" and len(parts) == 2:
        if parts[1] not in spec.params:
            ctx.error(
                f"{what} sets param '{parts[1]}', which the spec does not declare",
                where,
                key=True,
                hint=did_you_mean(parts[1], spec.params)
                or (
                    "declared params: " + ", ".join(spec.params)
                    if spec.params
                    else "the spec declares no params"
                ),
            )
        return
    if "" in parts or not shape.settable(parts):
        ctx.error(f"{what} points at nothing in the spec", where, key=True, hint=_path_hint(parts, shape))
        return
    if parts[0] == "layers" and len(parts) == 3 and parts[1] in spec.layers:
        node = spec.layers[parts[1]]
        entry = catalog.layer(node.type) if node.type else None
        if node.share is not None:
            ctx.error(
                f"{what}: layer '{parts[1]}' shares '{node.share}' and has no arguments of its own",
                where,
                key=True,
            )
        elif entry is not None and parts[2] not in entry["args"] and parts[2] not in ("in", "call"):
            ctx.error(
                f"{what}: {node.type} has no argument '{parts[2]}'",
                where,
                key=True,
                hint=did_you_mean(parts[2], entry["args"]),
            )
    elif parts[:2] == ("compile", "optimizer") and len(parts) == 3:
        optimizer = spec.compile.optimizer
        entry = (
            catalog.catalog()["optimizers"].get(optimizer.type)
            if isinstance(optimizer, TypedObject)
            else None
        )
        if entry is not None and parts[2] not in entry["args"]:
            ctx.error(
                f"{what}: optimizer {optimizer.type} has no argument '{parts[2]}'",
                where,
                key=True,
                hint=did_you_mean(parts[2], entry["args"]),
            )
    elif parts[0] in ("train", "compile") and len(parts) == 2:
        section = TrainSpec if parts[0] == "train" else CompileSpec
        if parts[1] not in section.model_fields:
            ctx.error(
                f"{what}: {parts[0]} has no setting '{parts[1]}'",
                where,
                key=True,
                hint=did_you_mean(parts[1], section.model_fields),
            )
            return
        annotation = str(section.model_fields[parts[1]].annotation)
        if param.type == "float" and "float" not in annotation:
            ctx.error(
                f"{what}: {path} takes whole numbers, and a float param gives fractions",
                where,
                key=True,
                hint="make the param type int, or categorical",
            )
            return
        for value in _sample_values(param):
            try:
                section.model_validate({parts[1]: value})
            except ValidationError as exc:
                message = exc.errors()[0]["msg"].replace("Input should be ", "should be ")
                ctx.error(f"{what}: value {value!r} does not fit {path}: {message}", where, key=True)
                break


def _sample_values(param: SearchParam) -> list[Any]:
    if param.type == "categorical":
        return list(param.choices or [])
    return [v for v in (param.low, param.high) if v is not None]


def _path_hint(parts: tuple[str, ...], shape: _DocumentShape) -> str | None:
    node: Any = shape.resolved
    for key in parts[:-1]:
        if isinstance(node, dict) and key in node:
            node = node[key]
        elif isinstance(node, dict):
            names = [str(k) for k in node]
            return did_you_mean(key, names) or (
                f"{'.'.join(parts[: parts.index(key)]) or 'the spec'} has: "
                + ", ".join(names[:8])
                + (", ..." if len(names) > 8 else "")
            )
        else:
            if key == "optimizer" or parts[:2] == ("compile", "optimizer"):
                return "write the optimizer as {type: NAME, ...} to search its arguments"
            return None
    if isinstance(node, str) and parts[:2] == ("compile", "optimizer"):
        return "write the optimizer as {type: NAME, ...} to search its arguments"
    return None


def _check_metric(ctx: Context, search: SearchSpec) -> None:
    patterns = reported_metrics(ctx.spec)
    if not metric_matches(search.metric, patterns):
        shown = [p.rstrip("*") for p in patterns]
        ctx.error(
            f"search.metric '{search.metric}' is not a metric this model reports",
            ("search", "metric"),
            hint=did_you_mean(search.metric, shown + ["val_" + p for p in shown])
            or "it reports: " + ", ".join(shown) + " (and val_ of each, with validation data)",
        )
        return
    base = search.metric.removeprefix("val_")
    if search.goal == "minimize" and any(base == n or base.endswith("_" + n) for n in _LARGER_IS_BETTER):
        ctx.warning(
            f"search.metric '{search.metric}' is better when larger, and goal is minimize",
            ("search", "goal") if "goal" in search.model_fields_set else ("search", "metric"),
            hint="set goal: maximize",
        )
