"""Checks of a parsed spec against Keras's catalog: names, types, arguments and references.

Each check is a small function listed in `CHECKS`; all run, and every problem is collected.
Graph-shaped checks (cycles, reachability) are in `graphspec/graph.py`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from graphspec import arrays, policy
from graphspec.data.section import check_data
from graphspec.errors import Diagnostics, Suggestion, did_you_mean
from graphspec.spec import catalog, ops, types
from graphspec.spec.adapt import check_adapt
from graphspec.spec.model import INDEX_TARGET, NAME, REFERENCE, VALUE_LOSS, LayerSpec, Spec, TypedObject
from graphspec.spec.nodes import check_nodes
from graphspec.spec.search import check_search
from graphspec.spec.sizes import check_sizes
from graphspec.spec.source import Positions


@dataclass
class Context:
    """What every check reads: the spec, where its values are, and its nested specs."""

    spec: Spec
    positions: Positions
    diagnostics: Diagnostics
    # node name -> (input names, output names) of the nested spec it uses
    nested: dict[str, tuple[list[str], list[str]]] = field(default_factory=dict)
    # Where type errors were reported (`type_error`).
    _typed: set[str] = field(default_factory=set)
    # What the command grants (weights and presets to download or read), and the folder the
    # spec's relative paths start from.
    grants: policy.Grants = field(default_factory=policy.Grants)
    base: Path | None = None

    def error(self, message: str, path: tuple, hint: str | None = None, key: bool = False) -> None:
        self.diagnostics.error(message, self.positions.of(path, key=key), hint)

    def warning(self, message: str, path: tuple, hint: str | None = None, key: bool = False) -> None:
        self.diagnostics.warning(message, self.positions.of(path, key=key), hint)

    def type_error(self, message: str, path: tuple, hint: str | None = None) -> None:
        """An error about a value's type, unless an error is already reported where the value
        is: a value the loader refused (a Python tag, an expression that failed) was replaced,
        and its type would only echo that error."""
        location = self.positions.of(path)
        place = str(location)
        # The same block line's other expansions are reported (and counted) as usual.
        if place not in self._typed and any(str(d.location) == place for d in self.diagnostics.errors):
            return
        self._typed.add(place)
        self.diagnostics.error(message, location, hint)


def check_names(ctx: Context) -> None:
    spec = ctx.spec
    for section in ("inputs", "layers", "outputs"):
        for name in getattr(spec, section):
            if not NAME.match(str(name)):
                ctx.error(
                    f"'{name}' is not a valid name: use letters, digits, '_', '.' and '-', "
                    "starting with a letter",
                    (section, name),
                    key=True,
                )
    for name in spec.inputs:
        if name in spec.layers:
            ctx.error(
                f"layer '{name}' has the same name as an input",
                ("layers", name),
                key=True,
                hint="every input and layer needs a name of its own",
            )
    # An output with `from` is an Identity layer named as the output: its name must be free.
    for name, output in spec.outputs.items():
        if output.source is not None and (name in spec.inputs or name in spec.layers):
            taken = "an input" if name in spec.inputs else "a layer"
            ctx.error(
                f"output '{name}' (from '{output.source}') has the same name as {taken}",
                ("outputs", name),
                key=True,
                hint="an output read with 'from' becomes a layer named as the output: rename it",
            )


def check_layer_types(ctx: Context) -> None:
    for name, node in ctx.spec.layers.items():
        if node.type is not None:
            _check_typed(ctx, node.type, node.args, ("layers", name), f"layer '{name}'")
        elif node.op is not None:
            _check_op(ctx, name, node)


def _check_op(ctx: Context, name: str, node: LayerSpec) -> None:
    """Check an op node's function, its arguments and what `in` gives it (`graphspec.spec.ops`)."""
    path = ("layers", name)
    entry = ops.op(node.op)
    if entry is None:
        ctx.error(
            f"op node '{name}' names '{node.op}', which is not a keras.ops function a spec can use",
            path + ("op",),
            hint=did_you_mean(node.op, ops.op_names())
            or "ops are keras.ops functions of tensors; see the catalog's 'ops' section",
        )
        return
    if refused := policy.op_refusal(node.op, entry):
        argument, why = refused
        where = path + (argument,) if argument in node.args else path + ("op",)
        ctx.error(f"op node '{name}' names '{node.op}', which graphspec refuses: {why.message}", where)
        return
    for arg, value in node.args.items():
        if found := _foreign_object(value, path + (arg,)):
            ctx.error(f"op node '{name}': {found[1]}", found[0], hint=_OBJECT_HINT, key=found[2])
        elif wrong := types.argument_mismatch(entry, arg, value):
            ctx.type_error(
                f"op node '{name}': {node.op}'s argument '{arg}' {wrong.message}",
                path + (arg, *wrong.path),
                wrong.hint,
            )
    if node.call:
        ctx.error(
            f"op node '{name}' has call arguments; an op takes its arguments as keys of the node",
            path + ("call",),
            key=True,
        )
    for problem in ops.operands(entry, node.args, node.inbound)[1]:
        what = f"op node '{name}': {node.op} {problem.message}"
        ctx.error(what, path + problem.path, problem.hint, problem.key)


def _check_typed(ctx: Context, type_name: str, args: dict[str, Any], path: tuple, what: str) -> None:
    """Check one `{type: ..., args...}` layer, nested layer arguments included."""
    entry = catalog.layer(type_name)
    if entry is None:
        aliases = catalog.catalog()["layer_aliases"]
        if type_name in aliases:
            hint = f"write '{aliases[type_name]}', the canonical name of this Keras class"
        else:
            hint = did_you_mean(type_name, catalog.layer_names()) or (
                "for a layer of your own, register it with @keras.saving.register_keras_serializable "
                "and pass --allow-custom MODULE"
            )
        if "." in type_name and not type_name.startswith(catalog.APPLICATION_PREFIX):
            ctx.error(
                f"{what} has type '{type_name}', which graphspec refuses: a spec names Keras "
                "layers, never Python code by module path",
                path + ("type",),
                hint=hint,
            )
        else:
            ctx.error(f"{what} has unknown type '{type_name}'", path + ("type",), hint=hint)
        return
    refused = policy.class_refusal(entry)
    if refused is not None:
        ctx.error(
            f"{what} has type '{type_name}', which graphspec refuses: {refused.message}", path + ("type",)
        )
        return
    known = set(entry["args"])
    misspelt = set()
    for arg, value in args.items():
        if arg == "name":
            ctx.error(f"{what} sets 'name': a node's name is its key in the spec", path + (arg,), key=True)
        elif arg not in known:
            hint = did_you_mean(arg, known)
            if arg in entry.get("call", ()):  # e.g. MultiHeadAttention's use_causal_mask
                shown = value if isinstance(value, str) else json.dumps(value)
                hint = f"'{arg}' is an argument of the layer's call: write it under call: {{{arg}: {shown}}}"
            elif hint:
                misspelt.add(hint.split("'")[1])
            ctx.error(f"{what}: {type_name} has no argument '{arg}'", path + (arg,), key=True, hint=hint)
        elif refused := policy.argument_refusal(entry, arg, value, ctx.grants, ctx.base):
            ctx.error(f"{what}: {type_name}'s {refused.message}", path + (arg,), hint=refused.hint)
        elif found := _foreign_object(value, path + (arg,)):
            ctx.error(f"{what}: {found[1]}", found[0], hint=_OBJECT_HINT, key=found[2])
        elif wrong := types.argument_mismatch(entry, arg, value, args):
            ctx.type_error(
                f"{what}: {type_name}'s argument '{arg}' {wrong.message}",
                path + (arg, *wrong.path),
                wrong.hint,
            )
        elif (section := _object_section(arg)) and isinstance(value, dict):
            _check_object_arguments(
                ctx, f"{what}: {type_name}'s argument '{arg}'", section, value, path + (arg,)
            )
        elif (arg in catalog.LAYER_VALUED_ARGS or _layer_activation(arg, value)) and isinstance(value, dict):
            inner = dict(value)
            inner_type = inner.pop("type", None)
            if not isinstance(inner_type, str):
                ctx.error(f"{what}: '{arg}' needs a 'type' naming a Keras layer", path + (arg,))
            else:
                _check_typed(ctx, inner_type, inner, path + (arg,), f"{what}'s {arg}")
    # A required argument that is only misspelt was reported above, with its correct spelling.
    missing = [a for a in entry["required"] if a not in args and a not in misspelt]
    if "preset" in entry["args"] and args.get("preset") is not None:
        missing = []  # a KerasHub preset gives the backbone's configuration
    for arg in missing:
        ctx.error(f"{what}: {type_name} needs argument '{arg}'", path, key=True)


def _object_section(arg: str) -> str | None:
    """The catalog's `objects` section a layer argument names an object of (`kernel_initializer`:
    initializers), or None."""
    for suffix in ("initializer", "regularizer", "constraint"):
        if arg.endswith("_" + suffix):
            return suffix + "s"
    return None


def _check_object_arguments(ctx: Context, what: str, section: str, value: dict, path: tuple) -> None:
    """The arguments of an initializer, regularizer or constraint written as `{type: ..., ...}`
    (its type was checked already): each one its class takes, of the catalog's type. Keras
    refuses any other argument when it makes the object."""
    objects, name = catalog.catalog()["objects"][section], value.get("type")
    if not isinstance(name, str):
        return  # an argument the catalog does not type (a KerasHub layer's): Keras says what is wrong
    entry = objects["classes"].get(objects["names"].get(name, name))
    if entry is None or "args" not in entry:
        return
    kind = section[:-1]
    for key, given in value.items():
        if key == "type":
            continue
        if key not in entry["args"]:
            ctx.error(
                f"{what}: {kind} {value['type']} has no argument '{key}'",
                path + (key,),
                key=True,
                hint=did_you_mean(key, entry["args"]),
            )
        elif wrong := types.argument_mismatch(entry, key, given, value):
            ctx.type_error(
                f"{what}: {kind} {value['type']}'s argument '{key}' {wrong.message}",
                path + (key, *wrong.path),
                wrong.hint,
            )


def _layer_activation(arg: str, value: Any) -> bool:
    """A layer given as an activation (`activation: {type: ReLU}`), checked as a nested layer."""
    return (arg == "activation" or arg.endswith("_activation")) and isinstance(value, dict)


# Keys of Keras's own serialized form, through which a config names any class of any module.
_SERIALIZED_KEYS = ("class_name", "module", "registered_name")
_OBJECT_HINT = "write a Keras object as {type: NAME, ...arguments}, e.g. {type: GlorotUniform, seed: 0}"


def _foreign_object(value: Any, path: tuple) -> tuple[tuple, str, bool] | None:
    """Where an argument's value names a class other than by a Keras name, why that is refused,
    and whether the key is to blame (not its value); None when it does not.

    A nested object is `{type: Name, ...}`: Keras's serialized form (`class_name`, `module`) and
    a `type` written as a module path could name any class of any module."""
    if isinstance(value, list):
        for i, item in enumerate(value):
            if found := _foreign_object(item, path + (i,)):
                return found
    if not isinstance(value, dict):
        return None
    for key, item in value.items():
        if key in _SERIALIZED_KEYS:
            return path + (key,), f"'{key}' is Keras's serialized form, which a spec does not use", True
        if key == "type" and isinstance(item, str) and "." in item and not item.startswith("applications."):
            return path + (key,), f"type '{item}' is a module path; a spec names Keras objects only", False
        if found := _foreign_object(item, path + (key,)):
            return found
    return None


def check_shares(ctx: Context) -> None:
    layers, inputs = ctx.spec.layers, ctx.spec.inputs
    for name, node in layers.items():
        if node.share is None:
            continue
        path = ("layers", name, "share")
        if node.share in inputs:
            ctx.error(f"layer '{name}' shares '{node.share}', which is an input, not a layer", path)
        elif node.share not in layers:
            ctx.error(
                f"layer '{name}' shares '{node.share}', which is not defined",
                path,
                hint=did_you_mean(node.share, layers),
            )
        elif layers[node.share].op is not None:
            ctx.error(
                f"layer '{name}' shares '{node.share}', which is an op: it has no layer to share",
                path,
                hint=f"write the op again: {{op: {layers[node.share].op}, ...}}",
            )
        elif node.args:
            arg = next(iter(node.args))
            ctx.error(
                f"layer '{name}' shares a layer and so cannot set constructor argument '{arg}'",
                ("layers", name, arg),
                key=True,
                hint="arguments belong to the layer it shares",
            )
        elif ctx.spec.owner(name) is None:
            ctx.error(f"layer '{name}' shares '{node.share}' in a circle", path)


def _call_arguments(ctx: Context, name: str) -> list[str] | None:
    """Names a node's call accepts, or None when unknown (a nested spec's are its inputs)."""
    owner = ctx.spec.owner(name)
    if owner is None:
        return None
    root = ctx.spec.layers[owner]
    if root.spec is not None:
        return ctx.nested[owner][0] + ["training", "mask"] if owner in ctx.nested else None
    entry = catalog.layer(root.type) if root.type else None
    if entry is not None and entry.get("backbone"):
        return None  # a KerasHub backbone takes its inputs as one dict, named as it defines them
    return entry["call"] if entry else None


def _is_backbone(ctx: Context, name: str | None) -> bool:
    node = ctx.spec.layers.get(name) if name is not None else None
    entry = catalog.layer(node.type) if node is not None and node.type else None
    return bool(entry and entry.get("backbone"))


def check_references(ctx: Context) -> None:
    spec = ctx.spec
    known = set(spec.inputs) | set(spec.layers)
    for name, node in spec.layers.items():
        call_args = _call_arguments(ctx, name)
        if isinstance(node.inbound, dict) and call_args is not None:
            for arg in node.inbound:
                if arg not in call_args:
                    ctx.error(
                        f"layer '{name}' passes '{arg}', which its call does not take",
                        ("layers", name, "in", arg),
                        key=True,
                        hint=did_you_mean(arg, call_args) or "it takes: " + ", ".join(call_args),
                    )
        if call_args is not None:
            for arg in node.call:
                if arg not in call_args:
                    ctx.error(
                        f"layer '{name}' has call argument '{arg}', which its call does not take",
                        ("layers", name, "call", arg),
                        key=True,
                        hint=did_you_mean(arg, call_args),
                    )
        if node.inbound == [] or node.inbound == {}:
            ctx.error(f"layer '{name}' reads nothing", ("layers", name, "in"))
        for reference, where in node.references():
            _check_reference(ctx, reference, ("layers", name) + where, f"layer '{name}' reads", known)
    for name, output in spec.outputs.items():
        if output.source is not None:
            _check_reference(ctx, output.source, ("outputs", name, "from"), f"output '{name}' is", known)
        elif name not in spec.layers:
            hint = (
                f"'{name}' is an input; an output must be computed by a layer"
                if name in spec.inputs
                else did_you_mean(name, spec.layers)
            )
            ctx.error(
                f"output '{name}' is not a layer",
                ("outputs", name),
                key=True,
                hint=hint or "name a layer, or say which with 'from:'",
            )


def check_call_training(ctx: Context) -> None:
    """`call: {training: ...}` is true or false, and holds for every call of a layer instance.

    The builder makes a layer with a fixed `training` deaf to the model's own (see
    `graphspec.keras.build.fix_training`), which is a property of the layer, not of one call: a
    shared layer whose calls disagree on fixing it could not be built as written.
    """
    fixed_by_owner: dict[str, dict[bool, str]] = {}
    for name, node in ctx.spec.layers.items():
        fixed = "training" in node.call
        if fixed and not isinstance(node.call["training"], bool):
            ctx.error(
                f"layer '{name}' has call argument 'training' {node.call['training']!r}; it is true or false",
                ("layers", name, "call", "training"),
                hint="true keeps the layer in training mode (Monte-Carlo dropout), false in inference mode",
            )
        owner = ctx.spec.owner(name)
        if owner is not None:
            fixed_by_owner.setdefault(owner, {}).setdefault(fixed, name)
    for calls in fixed_by_owner.values():
        if len(calls) == 2:
            with_it, without = calls[True], calls[False]
            ctx.error(
                f"layer '{without}' calls the same layer as '{with_it}', which fixes 'training' in its "
                "call; every call of a shared layer fixes it, or none does",
                ("layers", without),
                key=True,
                hint=f"add call: {{training: ...}} to '{without}' too",
            )


def check_application_inputs(ctx: Context) -> None:
    """A keras.applications model built with `include_top` true (any value Python reads as true,
    as Keras reads it) and without `input_shape` or weights takes images of its default size
    only (the catalog's `default_size`, S): a node of it that reads a spec input of rank 3 whose
    two image dimensions are not S (either order: Keras's configuration chooses channels first
    or last, not the spec) is refused, as Keras refuses it when the model is called. Without
    the top it takes any size (and Keras does not check the channels either); other inputs'
    shapes are not known without building, and are not checked."""
    for name, node in ctx.spec.layers.items():
        owner = ctx.spec.owner(name)
        root = ctx.spec.layers.get(owner) if owner is not None else None
        if root is None or root.type is None or not catalog.is_application(root.type):
            continue
        entry = catalog.layer(root.type) or {}
        size, args = entry.get("default_size"), root.args
        read = node.inbound[0] if isinstance(node.inbound, list) and len(node.inbound) == 1 else node.inbound
        if size is None or args.get("input_shape") or args.get("weights") is not None:
            continue
        if not isinstance(read, str) or read not in ctx.spec.inputs:
            continue
        top = args.get("include_top", entry["defaults"].get("include_top", True))
        if not top or (isinstance(top, str) and "${" in top):
            continue  # no top; or an expression that failed, reported where it is written
        shape = list(ctx.spec.inputs[read].shape)
        if _fits(shape, [size, size, None]) or _fits(shape, [None, size, size]):
            continue
        given = "true" if top is True else f"{types.show(top)} (read as true)"
        takes = f"[{size}, {size}, channels]"
        ctx.error(
            f"layer '{name}' reads '{read}' of shape {json.dumps(shape)}, and {root.type} with "
            f"include_top {given} and no input_shape takes {takes}",
            ("layers", name, "in"),
            hint=f"give '{read}' the shape {takes}, or set include_top: false for images of any size",
        )


def _fits(shape: list[int | None], wanted: list[int | None]) -> bool:
    """Whether a tensor of `shape` fits a model input of shape `wanted` (null fits anything)."""
    return len(shape) == len(wanted) and all(
        a is None or b is None or a == b for a, b in zip(shape, wanted, strict=True)
    )


def _check_reference(ctx: Context, reference: Any, path: tuple, what: str, known: set[str]) -> None:
    match = REFERENCE.match(reference) if isinstance(reference, str) else None
    if match is None:
        ctx.error(
            f"{what} '{reference}', which is not a reference",
            path,
            hint="write a node name, or NODE[INDEX] for one of several outputs",
        )
        return
    target, index = match.group("node"), match.group("index")
    if target not in known:
        ctx.error(f"{what} '{target}', which is not defined", path, hint=Suggestion(target, known))
        return
    if index is None or index.lstrip("-").isdigit():
        return
    nested_outputs = ctx.nested.get(ctx.spec.owner(target), (None, None))[1]
    if nested_outputs is None and _is_backbone(ctx, ctx.spec.owner(target)):
        return  # a backbone's named outputs (BERT's pooled_output) are known once it is built
    if nested_outputs is None:
        ctx.error(f"{what} '{reference}': only a nested spec has named outputs; use an index", path)
    elif index not in nested_outputs:
        ctx.error(
            f"{what} '{reference}': '{target}' has no output '{index}'",
            path,
            hint=did_you_mean(index, nested_outputs) or "its outputs: " + ", ".join(nested_outputs),
        )


def _check_object(
    ctx: Context, value: str | TypedObject, path: tuple, kind: str, names: list[str], classes: dict[str, dict]
) -> None:
    """Check a loss, metric, optimizer or callback given by name or as `{type: ..., args}`."""
    if isinstance(value, str):
        if value not in names and value not in classes:
            ctx.error(f"unknown {kind} '{value}'", path, hint=did_you_mean(value, names + list(classes)))
        return
    entry = classes.get(value.type)
    if entry is None:
        ctx.error(
            f"unknown {kind} '{value.type}'", path + ("type",), hint=did_you_mean(value.type, list(classes))
        )
        return
    refused = policy.class_refusal(entry)
    if refused is not None:
        ctx.error(f"{kind} {value.type} is refused: {refused.message}", path + ("type",))
        return
    for arg, arg_value in value.args.items():
        if arg not in entry["args"]:
            ctx.error(
                f"{kind} {value.type} has no argument '{arg}'",
                path + (arg,),
                key=True,
                hint=did_you_mean(arg, entry["args"]),
            )
        elif refused := policy.argument_refusal(entry, arg, arg_value):
            ctx.error(f"{kind} {value.type}: {refused.message}", path + (arg,), hint=refused.hint)
        elif wrong := types.argument_mismatch(entry, arg, arg_value, value.args):
            ctx.type_error(
                f"{kind} {value.type}'s argument '{arg}' {wrong.message}",
                path + (arg, *wrong.path),
                wrong.hint,
            )
    for arg in entry["required"]:
        if arg not in value.args:
            ctx.error(f"{kind} {value.type} needs argument '{arg}'", path, key=True)


def check_compile(ctx: Context) -> None:
    c = catalog.catalog()
    losses, metrics = c["losses"], c["metrics"]
    for name, output in ctx.spec.outputs.items():
        if output.loss is not None and output.loss != VALUE_LOSS:
            _check_object(
                ctx, output.loss, ("outputs", name, "loss"), "loss", losses["names"], losses["classes"]
            )
        for i, metric in enumerate(output.metrics):
            _check_object(
                ctx, metric, ("outputs", name, "metrics", i), "metric", metrics["names"], metrics["classes"]
            )
    _check_optimizer(ctx, ctx.spec.compile.optimizer, ("compile", "optimizer"))


def _check_optimizer(ctx: Context, optimizer: str | TypedObject, path: tuple) -> None:
    optimizers = catalog.catalog()["optimizers"]
    lower = {n.lower(): n for n in optimizers}
    if isinstance(optimizer, str) and optimizer.lower() in lower:
        return
    _check_object(ctx, optimizer, path, "optimizer", [], optimizers)


def check_train_stages(ctx: Context) -> None:
    from graphspec.spec.stages import check_stages

    check_stages(ctx, lambda optimizer, path: _check_optimizer(ctx, optimizer, path))


# What each kind of loss takes as targets, for `target: index`, which gives class ids.
_TAKES = {
    arrays.ONE_HOT: "one-hot rows",
    arrays.BINARY: "0/1 values",
    arrays.POSITIVE: "positive values",
    arrays.REAL: "real values",
    arrays.OTHER: "targets of its own form",
}


def check_targets(ctx: Context) -> None:
    """`target:` is `index`, on an output with a loss that takes class ids; an output whose
    loss is its own `value` has no target, so no metrics (they compare with targets)."""
    for name, output in ctx.spec.outputs.items():
        path = ("outputs", name)
        if output.loss == VALUE_LOSS and output.metrics:
            ctx.error(
                f"output '{name}' has loss: value, which takes no target, and metrics, "
                "which compare predictions with targets",
                path + ("metrics",),
                hint="remove its metrics: its loss is logged as it trains",
            )
        if output.target is None:
            continue
        where = path + ("target",)
        if output.target != INDEX_TARGET:
            ctx.error(
                f"output '{name}' has unknown target '{output.target}'",
                where,
                hint="target: index makes each row's index in its batch the target; "
                "leave target out to read targets from the data",
            )
        elif output.loss is None:
            ctx.error(
                f"output '{name}' has target: index but no loss",
                where,
                hint="add a loss that takes class ids, such as SparseCategoricalCrossentropy",
            )
        elif output.loss == VALUE_LOSS:
            ctx.error(f"output '{name}' has loss: value, which takes no target, and target: index", where)
        else:
            target = arrays.target_for(output.loss)
            if target.family != arrays.SPARSE:
                ctx.error(
                    f"output '{name}': target: index gives class ids, and loss '{target.loss}' "
                    f"takes {_TAKES[target.family]}",
                    where,
                    hint="use SparseCategoricalCrossentropy (from_logits: true on logits)",
                )


def check_callbacks(ctx: Context) -> None:
    from graphspec.spec.builtins import BUILTIN_CALLBACKS, callback_problems

    known = {**catalog.catalog()["callbacks"], **BUILTIN_CALLBACKS}
    for i, callback in enumerate(ctx.spec.train.callbacks):
        path = ("train", "callbacks", i)
        _check_object(ctx, callback, path, "callback", [], known)
        for problem in callback_problems(callback.type, callback.args):
            ctx.error(
                f"callback {callback.type}: {problem.message}",
                path + problem.path,
                problem.hint,
                key=problem.key,
            )


def check_structure(ctx: Context) -> None:
    """`structure.inputs` and `structure.outputs` name each input (output) exactly once."""
    structure = ctx.spec.structure
    if structure is None:
        return
    for section in ("inputs", "outputs"):
        value = getattr(structure, section)
        if value is None:
            continue
        known = getattr(ctx.spec, section)
        seen: set[str] = set()
        for name, path in structure_leaves(value, ("structure", section)):
            if name not in known:
                ctx.error(
                    f"structure.{section} names '{name}', which is not one of the spec's {section}",
                    path,
                    did_you_mean(name, list(known)),
                )
            elif name in seen:
                ctx.error(f"structure.{section} names '{name}' twice", path)
            seen.add(name)
        missing = [n for n in known if n not in seen]
        if missing:
            ctx.error(
                f"structure.{section} leaves out {', '.join(repr(n) for n in missing)}: "
                f"it names every one of the spec's {section}",
                ("structure", section),
                key=True,
            )


def structure_leaves(value: Any, path: tuple = ()) -> list[tuple[str, tuple]]:
    """The names in a structure of names, with the path of each, in the order written."""
    if isinstance(value, str):
        return [(value, path)]
    items = value.items() if isinstance(value, dict) else enumerate(value)
    return [leaf for key, item in items for leaf in structure_leaves(item, (*path, key))]


CHECKS: tuple[Callable[[Context], None], ...] = (
    check_names,
    check_structure,
    check_layer_types,
    check_shares,
    check_references,
    check_call_training,
    check_application_inputs,
    check_nodes,
    check_adapt,
    check_compile,
    check_targets,
    check_callbacks,
    check_train_stages,
    check_search,
    check_sizes,
    check_data,
)


def run_checks(ctx: Context) -> None:
    """Run every check in `CHECKS`, collecting their problems in `ctx.diagnostics`."""
    for check in CHECKS:
        check(ctx)
