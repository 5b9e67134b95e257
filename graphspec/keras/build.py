"""A checked spec becomes a Keras functional model.

Layers are created first, then called in the graph's topological order (as Keras's own
`functional_from_config` does), so a shared layer exists before any of its calls. Any error
Keras raises while creating or calling a node is reported at that node's line in the spec.
"""

from __future__ import annotations

import inspect
import json
import random
import re
from typing import TYPE_CHECKING, Any

import keras

from graphspec import arrays as arr
from graphspec.errors import Diagnostics, SpecErrors
from graphspec.graph import build_order, output_nodes
from graphspec.keras import losses
from graphspec.keras.scratch import (
    MAX_SCRATCH_VALUES,
    computed_refusal,
    refused_argument,
    scratch_batch,
    scratch_operands,
    scratch_steps,
    scratch_tensors,
    scratch_value,
)
from graphspec.spec import catalog, nodes, ops
from graphspec.spec.load import DEFAULT_MAX_PARAMS
from graphspec.spec.model import INDEX_TARGET, REFERENCE, VALUE_LOSS, LayerSpec, OutputSpec, TypedObject

if TYPE_CHECKING:
    from graphspec.spec.load import LoadedSpec

_MAX_MESSAGE = 400


def build_model(
    loaded: LoadedSpec, compile: bool = True, max_params: int | None = DEFAULT_MAX_PARAMS
) -> keras.Model:
    """The functional model of `loaded`, with inputs and outputs as dicts named as in the spec."""
    return build_model_and_tensors(loaded, compile=compile, max_params=max_params)[0]


def build_model_and_tensors(
    loaded: LoadedSpec, compile: bool = True, max_params: int | None = DEFAULT_MAX_PARAMS
) -> tuple[keras.Model, dict[str, Any]]:
    """The model, and the symbolic tensor(s) each input and layer node of the spec produced.

    A node's value is one KerasTensor, a list of them (a layer with several outputs) or a dict
    (a nested spec's named outputs). Plots read their shapes; the activation logger outputs them.

    With `max_params`, the model is first wired with its weights declared but not allocated,
    so a spec asking for 10^12 parameters fails in a second, naming the layer to blame, instead
    of exhausting memory.
    """
    from graphspec.keras.pretrained import uses_pretrained

    builder = _Builder(loaded)
    if max_params is None:
        model = builder.model()
    else:
        from keras.src.backend.common import global_state
        from keras.src.backend.common.variables import initialize_all_variables

        pretrained = uses_pretrained(loaded)
        try:
            with keras.StatelessScope(initialize_variables=False):
                # Weights loaded in this scope would be lost: the budget is checked on the
                # model without them, which is then built again, loading them.
                model = _Builder(loaded, load=False).model() if pretrained else builder.model()
            _check_budget(model, loaded, max_params)
        except BaseException:
            # Forget the declared weights, or the next model built would allocate them.
            global_state.set_global_attribute("uninitialized_variables", [])
            raise
        if pretrained:
            global_state.set_global_attribute("uninitialized_variables", [])
            model = builder.model()
        else:
            initialize_all_variables()
    check_weight_objects(builder)
    check_computed(builder)
    if compile:
        compile_model(model, loaded)
    return model, dict(builder.tensors)


def _writes_computed(node: LayerSpec, entry: dict | None) -> bool:
    """Whether `node` writes an argument its catalog `entry` says Keras reads only when it computes."""
    return node.share is None and any(arg in node.args for arg in (entry or {}).get("computed", ()))


def _weight_object_kind(arg: str) -> str | None:
    """'constraint' or 'regularizer' where layer argument `arg` gives one of its weights'."""
    for kind in ("constraint", "regularizer"):
        if arg == kind or (arg.endswith(f"_{kind}") and arg != "activity_regularizer"):
            return kind
    return None


def check_weight_objects(builder: _Builder) -> None:
    """Raise `SpecErrors` at each argument of a constraint or regularizer written with arguments
    (`kernel_constraint: {type: MaxNorm, max_value: 2}`) that Keras refuses only in training: a
    constraint is first applied after an update, and OrthogonalRegularizer reads its factor when
    the penalty is computed. Each is applied once to the weight it is its layer's for, so that
    what validate refuses there build refuses too (graphspec.keras.scratch)."""
    if _distributed():
        return  # the weights are the strategy's; validate checks the same types
    for nested in builder.nested.values():
        check_weight_objects(nested)
    loaded = builder.loaded
    diagnostics = Diagnostics(sources=dict(loaded.diagnostics.sources))
    for name, node in builder.spec.layers.items():
        layer = builder.instances.get(name)
        if layer is None or node.share is not None:
            continue
        for arg, value in node.args.items():
            kind = _weight_object_kind(arg)
            if kind is None or not isinstance(value, dict) or len(value) < 2:
                continue
            cls = getattr(getattr(keras, f"{kind}s"), str(value.get("type")), None)
            made = getattr(layer, arg, None)
            # The weight Keras gave this very object (a layer keeps it as the argument's name).
            weights = [w for w in layer.weights if made is not None and getattr(w, kind, None) is made]
            if not isinstance(cls, type) or not weights:
                continue
            args = {k: v for k, v in value.items() if k != "type"}
            found = refused_argument(cls, args, [], lambda obj, weight=weights[0]: obj(weight))
            if found is not None:
                guilty, exc = found
                diagnostics.error(
                    f"Keras refused {kind} {value['type']}: {_keras_message(exc)}",
                    loaded.location("layers", name, arg, *([guilty] if guilty is not None else [])),
                )
    diagnostics.raise_if_errors()


def check_computed(builder: _Builder) -> None:
    """Raise `SpecErrors` at each argument of a node that Keras takes when the model is built and
    refuses when the node computes (the catalog's `computed`: `elu`'s alpha, a normalization's
    epsilon, `percentile`'s method, ...), found by computing the node once on ones shaped like
    its inputs: an op as its operation, a layer as a new layer of the node's arguments (so that
    the model's own weights and random generators are left as they are), in training where its
    call takes `training`. The argument without which it computes is to blame."""
    if _distributed():
        return  # validate checks the same types
    for nested in builder.nested.values():
        check_computed(nested)
    loaded = builder.loaded
    diagnostics = Diagnostics(sources=dict(loaded.diagnostics.sources))
    # Nodes alike (a transformer's every LayerNormalization) are computed once.
    seen: dict[str, tuple[str, Exception] | None] = {}
    for name, (operands, call_kwargs) in builder.computed.items():
        node = builder.spec.layers[name]
        shapes = [(t.shape, t.dtype) for t in scratch_tensors(operands)]
        key = json.dumps([node.op, node.type, node.args, call_kwargs, shapes], sort_keys=True, default=str)
        if key not in seen:
            seen[key] = _computed_refusal(builder, name, node, operands, call_kwargs)
        found = seen[key]
        if found is not None:
            arg, exc = found
            label = (
                f"op node '{name}' ({node.op})" if node.op is not None else f"layer '{name}' ({node.type})"
            )
            diagnostics.error(
                f"{label}: Keras refused its {arg} when computing: {_keras_message(exc)}",
                loaded.location("layers", name, arg),
            )
    diagnostics.raise_if_errors()


def _computed_refusal(
    builder: _Builder, name: str, node: LayerSpec, operands: dict[str, Any], call_kwargs: dict[str, Any]
) -> tuple[str, Exception] | None:
    """The argument of node `name` to blame, and Keras's error, where computing it on ones shaped
    like its `operands` fails (see `check_computed`); None where nothing does, or where its
    operands and output are too large to compute here (training will say)."""
    ones = scratch_operands(operands, builder.tensors[name])
    if ones is None:
        return None
    if node.op is not None:
        entry = ops.op(node.op)

        def compute(given: dict[str, Any]) -> None:
            make_operation(node.op, {**given, **ones}, name)

    else:
        layer = builder.instances[name]
        if layer.count_params() > MAX_SCRATCH_VALUES:
            return None
        entry = catalog.layer(str(node.type))
        training = {"training": True} if "training" in inspect.signature(layer.call).parameters else {}

        def compute(given: dict[str, Any]) -> None:
            fresh = make_layer(str(node.type), given, f"{name}_computed", load=False)
            fresh(ones["inputs"], **{**training, **call_kwargs})

    stand_ins = entry.get("stand_ins")
    if stand_ins and any(None in t.shape[1:] for t in scratch_tensors(operands)):
        # Ones of a guessed size would not fit a required argument (a Reshape's target shape)
        # that fits the real sizes: training will say.
        return None
    # A new unseeded random generator draws its seed from Python's random state: put it back.
    state = random.getstate()
    try:
        return computed_refusal(compute, node.args, entry["computed"], stand_ins)
    finally:
        random.setstate(state)


def declared_model(loaded: LoadedSpec) -> tuple[keras.Model, dict[str, Any], dict[str, Any]]:
    """The model of `loaded` with its weights declared but never allocated and no pretrained
    weights loaded (a preset's configuration is still read), and its input and output tensors
    by the spec's names: shapes, dtypes and parameter counts for a description (the model card)."""
    from keras.src.backend.common import global_state

    builder = _Builder(loaded, load=False)
    try:
        with keras.StatelessScope(initialize_variables=False):
            model = builder.model()
    finally:
        global_state.set_global_attribute("uninitialized_variables", [])
    inputs = {name: builder.tensors[name] for name in loaded.spec.inputs}
    return model, inputs, builder.outputs


def declared_tensors(loaded: LoadedSpec) -> dict[str, Any]:
    """The symbolic tensor(s) each input and each node an output needs produced, with every
    weight declared but never allocated and no pretrained weights loaded, and no model made
    of them: the shapes of a spec whose weights would not fit in memory, or whose graph is too
    deep for `keras.Model` to walk (it recurses once per layer)."""
    from keras.src.backend.common import global_state

    builder = _Builder(loaded, load=False)
    try:
        with keras.StatelessScope(initialize_variables=False):
            builder.wire()
    finally:
        global_state.set_global_attribute("uninitialized_variables", [])
    return dict(builder.tensors)


def _check_budget(model: keras.Model, loaded: LoadedSpec, max_params: int) -> None:
    total = model.count_params()
    if total <= max_params:
        return
    largest = max(model.layers, key=lambda layer: layer.count_params())
    raise SpecErrors.single(
        f"the model has {total:,} parameters, over the budget of {max_params:,}; "
        f"layer '{largest.name}' alone has {largest.count_params():,}",
        loaded.location("layers", largest.name, key=True),
        hint="raise the budget with --max-params if this is meant",
        sources=loaded.diagnostics.sources,
    )


# Keras wraps a layer's error in bold (ANSI escapes, raw bytes in a log or a file) and lists
# each argument of the call, an unfilled **kwargs as `kwargs=<class 'inspect._empty'>`.
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_TF_OP_ERROR = re.compile(r"^\{\{function_node [^}]*\}\} (.*?)(?: \[Op:\w+\](?: name:.*)?)?$")
_EMPTY_ARGUMENT = re.compile(r"\s*•\s*\w+=<class 'inspect\._empty'>")


def _keras_message(exc: BaseException) -> str:
    """Keras's message on one line, without its ANSI escapes and unfilled arguments."""
    text = _EMPTY_ARGUMENT.sub("", _ANSI.sub("", str(exc)))
    text = " ".join(text.split())
    text = re.sub(r"^Exception encountered when calling \S+\. ", "", text)
    # TensorFlow's eager errors name the kernel's function and device before the message and
    # the op after it: `{{function_node __wrapped__Sum_device_/job:...}} MESSAGE [Op:Sum] name:`.
    text = _TF_OP_ERROR.sub(r"\1", text)
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 3] + "..."


def _argument(name: str, value: Any) -> Any:
    """A spec value as Keras takes it: nested `{type: ...}` become layers or Keras configs."""
    if isinstance(value, dict) and isinstance(value.get("type"), str):
        inner = dict(value)
        type_name = inner.pop("type")
        if name in catalog.LAYER_VALUED_ARGS or layer_activation(name, value):
            return make_layer(type_name, inner, name=None)
        return object_config(type_name, inner)
    return value


def object_config(type_name: str, args: dict[str, Any]) -> dict[str, Any]:
    """An initializer, regularizer or constraint `{type: NAME, ...args}` as the config Keras's own
    deserializer takes. Raises TypeError for an argument the class does not take: Keras's
    `Constant.from_config` would drop a misspelt one silently, and build a different model."""
    for module in (keras.initializers, keras.regularizers, keras.constraints):
        cls = getattr(module, type_name, None)
        if isinstance(cls, type):
            parameters = inspect.signature(cls).parameters.values()
            if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
                known = {p.name for p in parameters}
                for arg in args:
                    if arg not in known:
                        raise TypeError(f"{type_name}() got an unexpected keyword argument '{arg}'")
            break
    return {"class_name": type_name, "config": {**_object_defaults(type_name), **args}}


def _object_defaults(type_name: str) -> dict[str, Any]:
    """The config of a Keras initializer, regularizer or constraint built without arguments
    ({} when there is none): a spec leaves defaults out, and some classes' `from_config` needs
    them all (`Constant` reads its `value`)."""
    for module in (keras.initializers, keras.regularizers, keras.constraints):
        cls = getattr(module, type_name, None)
        if isinstance(cls, type):
            try:
                return cls().get_config()
            except Exception:  # a class with a required argument: the spec gives it
                return {}
    return {}


def layer_activation(arg: str, value: Any) -> bool:
    """Whether `value` is a layer given as an activation (`activation: {type: ReLU}`): Keras
    takes any callable there, and keras.activations has functions only, no classes."""
    return (
        (arg == "activation" or arg.endswith("_activation"))
        and isinstance(value, dict)
        and isinstance(value.get("type"), str)
        and catalog.layer(value["type"]) is not None
    )


def make_layer(
    type_name: str, args: dict[str, Any], name: str | None, load: bool = True
) -> keras.layers.Layer:
    """A Keras layer (or keras.applications model, or KerasHub backbone) from its catalog name
    and arguments; a backbone's preset weights are loaded only when `load`."""
    kwargs = {k: _argument(k, v) for k, v in args.items()}
    # Where Keras's default would download or read (applications' weights='imagenet'), the
    # policy's safe value is passed instead: a spec never reaches the network.
    entry = catalog.layer(type_name) or {}
    for arg, value in entry.get("safe_defaults", {}).items():
        kwargs.setdefault(arg, value)
    if name is not None:
        kwargs["name"] = name
    if entry.get("backbone"):
        from graphspec.keras.pretrained import make_backbone

        return make_backbone(entry, kwargs, load)
    if "module" in entry and "class" in entry:
        # A layer keras.applications defines for its models, or a KerasHub layer: the class the
        # catalog records (never a name from the spec's text).
        import importlib

        return getattr(importlib.import_module(entry["module"]), entry["class"])(**kwargs)
    if type_name.startswith(catalog.APPLICATION_PREFIX):
        constructor = getattr(keras.applications, type_name[len(catalog.APPLICATION_PREFIX) :])
        return constructor(**kwargs)
    if type_name in catalog.custom_layers() and not hasattr(keras.layers, type_name):
        return catalog.custom_layers()[type_name][1](**kwargs)
    return getattr(keras.layers, type_name)(**kwargs)


def hub_installed() -> bool:
    """Whether keras_hub can be imported (the optional extra graphspec[hub]), without importing it."""
    import importlib.util

    return importlib.util.find_spec("keras_hub") is not None


def make_operation(op_name: str, values: dict[str, Any], name: str) -> Any:
    """`keras.ops.OP_NAME` called on `values` (its parameters by name, tensors and arguments
    alike), as the operation instance Keras saves, named `name`.

    The function itself would make the same operation but name it after the function (`add_3`);
    making the class the catalog records, with the constructor's parameters, and calling it with
    the others, is what `keras.models.load_model` does with a saved one.
    """
    import importlib
    import inspect

    entry = ops.op(op_name)
    cls = getattr(importlib.import_module(entry["module"]), entry["class"])
    operation = cls(**{k: v for k, v in values.items() if k in entry["init"]}, name=name)
    call = {k: v for k, v in values.items() if k not in entry["init"]}
    positional: list[Any] = []
    for parameter in list(inspect.signature(operation.call).parameters.values()):
        if parameter.kind is parameter.VAR_POSITIONAL:
            positional += list(call.pop(parameter.name, []))
        elif parameter.kind is parameter.POSITIONAL_OR_KEYWORD and parameter.name in call:
            positional.append(call.pop(parameter.name))
        else:
            break
    return operation(*positional, **call)


class _Builder:
    def __init__(self, loaded: LoadedSpec, load: bool = True):
        self.loaded = loaded
        # False for the weightless build that checks the budget: no pretrained weights loaded.
        self.load = load
        self.spec = loaded.spec
        self.instances: dict[str, Any] = {}
        self.nested: dict[str, _Builder] = {}  # the builders of the nodes that are nested specs
        self.tensors: dict[str, Any] = {}
        self.outputs: dict[str, Any] = {}  # the output tensors by the spec's output names
        # The nodes written with an argument Keras reads only when it computes, by name, with
        # what each was called with: (its operands by parameter, its call's keyword arguments;
        # a layer's operand is "inputs"), for `check_computed`.
        self.computed: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}

    def fail(self, node: str, message: str) -> SpecErrors:
        return SpecErrors.single(
            message, self.loaded.location("layers", node, key=True), sources=self.loaded.diagnostics.sources
        )

    def model(self) -> keras.Model:
        inputs, outputs = self.wire()
        structure = self.spec.structure
        if structure is not None and structure.inputs is not None:
            inputs = arrange(structure.inputs, inputs)
        if structure is not None and structure.outputs is not None:
            outputs = arrange(structure.outputs, outputs)
        try:
            model = keras.Model(
                inputs=inputs, outputs=outputs, name=self.spec.name, trainable=self.spec.trainable
            )
        except Exception as exc:  # Keras's own graph checks, should ours have missed a case
            raise SpecErrors.single(
                f"Keras refused the model: {_keras_message(exc)}", sources=self.loaded.diagnostics.sources
            ) from None
        for name, node in self.spec.layers.items():
            if "training" in node.call and name in self.instances:
                fix_training(self.instances[name])
        return model

    def wire(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """Make the inputs and call every node an output needs, in order (filling `tensors`):
        the input and output tensors by the spec's names, before any model is made of them."""
        inputs = {}
        for name, spec_input in self.spec.inputs.items():
            inputs[name] = keras.Input(
                shape=tuple(spec_input.shape),
                dtype=spec_input.dtype,
                name=name,
                sparse=spec_input.sparse or None,
                batch_size=spec_input.batch_size,
                optional=spec_input.optional,
            )
        self.tensors.update(inputs)
        needed = set()
        for target in output_nodes(self.spec):
            needed |= self.loaded.graph.ancestors(target) | {target}
        for name in build_order(self.spec, self.loaded.graph):
            if name in needed:
                self.call(name)
        outputs = {}
        for name, output in self.spec.outputs.items():
            if output.source is None:
                outputs[name] = self.resolve(name, name)
            else:
                tensor = self.resolve(output.source, name)
                # Keras names an output after the layer that makes it; an Identity layer named
                # as the output keeps the output's name, its loss and its metrics matched.
                outputs[name] = keras.layers.Identity(name=name)(tensor)
        self.outputs = dict(outputs)
        return inputs, outputs

    def instance(self, name: str) -> Any:
        """The layer instance a node calls: created once, shared by every node that shares it."""
        if name in self.instances:
            return self.instances[name]
        node: LayerSpec = self.spec.layers[name]
        if node.share is not None:
            layer = self.instance(node.share)
        elif node.spec is not None:
            self.nested[name] = _Builder(self.loaded.nested[name], self.load)
            layer = self.nested[name].model()
            layer.name = name
        elif nodes.kind_of(node) is not None:
            from graphspec.keras.layers import make_node_layer

            try:
                layer = make_node_layer(node, name)
            except Exception as exc:
                raise self.fail(
                    name, f"layer '{name}' ({nodes.label(node)}): {_keras_message(exc)}"
                ) from None
        else:
            if catalog.is_hub(node.type) and not hub_installed():
                raise SpecErrors.single(
                    f"layer '{name}' is KerasHub's {node.type.split('.')[-1]}, "
                    "and keras_hub is not installed",
                    self.loaded.location("layers", name, "type"),
                    hint=f"install it: {catalog.HUB_INSTALL}",
                    sources=self.loaded.diagnostics.sources,
                )
            from graphspec.keras.pretrained import pretrained_args

            args = pretrained_args(self.loaded, name, node.args, self.load)
            try:
                layer = make_layer(node.type, args, name, self.load)
            except Exception as exc:
                raise self.fail(name, f"layer '{name}' ({node.type}): {_keras_message(exc)}") from None
        self.instances[name] = layer
        return layer

    def resolve(self, reference: str, reader: str) -> Any:
        """The tensor a reference names: a node's output, or one of its several outputs."""
        match = REFERENCE.match(reference)
        value = self.tensors[match.group("node")]
        index = match.group("index")
        if index is None:
            if isinstance(value, dict):
                if len(value) != 1:
                    raise self.fail(
                        reader,
                        f"'{reference}' has outputs {', '.join(value)}: pick one as '{reference}[NAME]'",
                    )
                return next(iter(value.values()))
            return value
        try:
            if isinstance(value, dict):
                return value[index] if not index.lstrip("-").isdigit() else list(value.values())[int(index)]
            if isinstance(value, (list, tuple)):
                return value[int(index)]
        except (IndexError, KeyError):
            pass
        count = len(value) if isinstance(value, (list, tuple, dict)) else 1
        raise self.fail(
            reader,
            f"'{reference}' is out of range: '{match.group('node')}' gives "
            f"{count} output{'s' if count != 1 else ''}",
        )

    def call(self, name: str) -> None:
        node = self.spec.layers[name]
        if node.op is not None:
            self.tensors[name] = self.call_op(name, node)
            return
        layer = self.instance(name)
        call_kwargs = dict(node.call)
        nested = self._nested_spec(name)
        inbound = node.inbound
        try:
            if isinstance(inbound, dict):
                args = {
                    k: ([self.resolve(r, name) for r in v] if isinstance(v, list) else self.resolve(v, name))
                    for k, v in inbound.items()
                }
                if nested is not None:
                    out = layer(_nested_inputs(nested.spec, args), **call_kwargs)
                elif (catalog.layer(node.type or "") or {}).get("backbone"):
                    out = layer(args, **call_kwargs)  # a KerasHub backbone takes one dict
                else:
                    out = layer(**args, **call_kwargs)
            else:
                refs = inbound if isinstance(inbound, list) else [inbound]
                tensors = [self.resolve(r, name) for r in refs]
                if nested is not None:
                    by_name = dict(zip(nested.spec.inputs, tensors, strict=False))
                    out = layer(_nested_inputs(nested.spec, by_name), **call_kwargs)
                else:
                    inputs = tensors if isinstance(inbound, list) else tensors[0]
                    out = layer(inputs, **call_kwargs)
                    if _writes_computed(node, catalog.layer(node.type or "")):
                        self.computed[name] = ({"inputs": inputs}, call_kwargs)
        except SpecErrors:
            raise
        except Exception as exc:
            kind = node.type or (
                f"shares {node.share}"
                if node.share
                else f"spec {node.spec}"
                if node.spec
                else nodes.label(node)
            )
            raise self.fail(name, f"layer '{name}' ({kind}): {_keras_message(exc)}") from None
        if nested is not None:
            out = _nested_outputs(nested.spec, out)
        self.tensors[name] = out

    def call_op(self, name: str, node: LayerSpec) -> Any:
        """The tensor of an op node: the operation Keras saves for `keras.ops.NAME`, named as the
        node, called on the node's operands (`make_operation`)."""
        entry = ops.op(node.op)
        filled, _ = ops.operands(entry, node.args, node.inbound)
        operands = {
            param: [self.resolve(r, name) for r in ref] if isinstance(ref, list) else self.resolve(ref, name)
            for param, ref in filled.items()
        }
        try:
            tensor = make_operation(node.op, {**node.args, **operands}, name)
        except Exception as exc:
            raise self.fail(name, f"op node '{name}' ({node.op}): {_keras_message(exc)}") from None
        if _writes_computed(node, entry):
            self.computed[name] = (operands, {})
        return tensor

    def _nested_spec(self, name: str):
        return self.loaded.nested.get(self.spec.owner(name))


def arrange(structure: Any, by_name: dict[str, Any]) -> Any:
    """`structure` (a name, a list or a mapping of names, nested) with each name replaced by
    its value in `by_name`: the model's inputs or outputs in the structure the spec gives."""
    if isinstance(structure, str):
        return by_name[structure]
    if isinstance(structure, dict):
        return {key: arrange(value, by_name) for key, value in structure.items()}
    return [arrange(value, by_name) for value in structure]


def _nested_inputs(spec: Any, by_name: dict[str, Any]) -> Any:
    """A nested spec's inputs, by name, in the structure its model takes them."""
    if spec.structure is not None and spec.structure.inputs is not None:
        return arrange(spec.structure.inputs, by_name)
    return by_name


def _nested_outputs(spec: Any, out: Any) -> Any:
    """A nested spec's outputs as a dict by output name, whatever structure its model gives:
    what `NODE[NAME]` and `NODE[INDEX]` pick from."""
    if spec.structure is None or spec.structure.outputs is None:
        return out
    names = keras.tree.flatten(spec.structure.outputs)
    return dict(zip(names, keras.tree.flatten(out), strict=True))


def fix_training(layer: Any) -> None:
    """Make every call of `layer` keep the `training` its own call was given, whatever the
    model's call says: `fit`, `predict`, `evaluate` and a plain call alike.

    Keras's functional call hands the outer `training` (True in `fit`, False in `predict` and
    `evaluate`) to each operation that lists it among its `_call_context_args`, over the value
    the node was called with (`operation_fn` in keras/src/models/functional.py), so a node's
    `call: {training: true}` would hold only in a plain call. A layer with no call-context
    arguments takes `training` from its node's own arguments alone, and, unlike a layer
    given `training` explicitly, does not pass it on to the layers called after it in a plain
    call. The attribute is not part of the layer's config: `honour_call_training` sets it
    again on a model loaded from a file. Every call of the layer must then give `training`
    (`graphspec.spec.check` refuses a shared layer whose calls disagree).
    """
    layer._call_context_args = set()


def honour_call_training(model: keras.Model) -> keras.Model:
    """`model`, with `fix_training` applied to every layer whose every call was given a
    `training` other than its call's default: what a spec's `call: {training: ...}` leaves in
    a saved model. Nested functional models are walked too. Returns `model`.

    Keras records the `training` it fills in from the call's default (Dropout's False) beside
    what the caller gave, so a call that gives the default is indistinguishable from one that
    gives nothing, and is left to Keras.
    """
    import inspect

    for layer in model.layers:
        if isinstance(layer, keras.Model) and hasattr(layer, "_nodes_by_depth"):
            honour_call_training(layer)
        parameter = inspect.signature(layer.call).parameters.get("training")
        nodes = layer._inbound_nodes
        if parameter is None or not nodes:
            continue
        given = [n.arguments.kwargs.get("training", parameter.default) for n in nodes]
        if all(isinstance(g, bool) and g is not parameter.default for g in given):
            fix_training(layer)
    return model


def _object(value: Any, module: Any) -> Any:
    """A loss, metric or optimizer: a name Keras resolves, or `{type: Class, args}`."""
    if isinstance(value, str) or value is None:
        return value
    return getattr(module, value.type)(**value.args)


def output_loss(output: OutputSpec) -> Any:
    """The Keras loss an output is compiled with: its own, or graphspec's for `loss: value` and
    `target: index` (`graphspec.keras.losses`)."""
    if output.loss == VALUE_LOSS:
        return losses.ValueLoss()
    loss = _object(output.loss, keras.losses)
    return losses.IndexTargetLoss(loss) if output.target == INDEX_TARGET else loss


def output_metrics(output: OutputSpec) -> list[Any]:
    """The Keras metrics of an output; against the row indices for `target: index`."""
    metrics = [_object(m, keras.metrics) for m in output.metrics]
    if output.target == INDEX_TARGET:
        return [losses.IndexTargetMetric(m) for m in metrics]
    return metrics


def _structured(structure: Any, values: dict[str, Any], missing: Any = None) -> Any:
    """Per-output `values` in the outputs' structure (`missing` where an output has none);
    None when no output has one."""
    if not values:
        return None
    return arrange(structure, {name: values.get(name, missing) for name in keras.tree.flatten(structure)})


def make_optimizer(value: Any, loaded: LoadedSpec, at: tuple) -> keras.optimizers.Optimizer:
    """The optimizer `value` (a name, or a `TypedObject` written at spec path `at`) names.
    Raises `SpecErrors` at `at` where Keras refuses it, constructed or tried (`_tried`)."""
    if isinstance(value, str):
        return keras.optimizers.get(value)
    try:
        return _tried(getattr(keras.optimizers, value.type), value.args)
    except Exception as exc:
        raise SpecErrors.single(
            f"Keras refused optimizer {value.type}: {_keras_message(exc)}",
            loaded.location(*at),
            sources=loaded.diagnostics.sources,
        ) from None


def _tried(cls: type, args: dict) -> keras.optimizers.Optimizer:
    """`cls(**args)`, after a scratch one has made two steps on scratch weights: Keras takes a
    word or a list for most of an optimizer's numbers (`clipnorm: "1.0"`) when constructing it
    and refuses them only in training, after the model is built."""
    if not _distributed():
        # Within a strategy's scope the scratch weights would be its (mirrored) weights, which
        # an optimizer updates only within a replica's step; validate checks the same types.
        scratch_steps(cls(**args))
    return cls(**args)


def _distributed() -> bool:
    """Whether a distribution (JAX's, or a TensorFlow strategy) is in force."""
    if keras.distribution.distribution() is not None:
        return True
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return tf.distribute.has_strategy()
    return False


def by_name(model: keras.Model, loaded: LoadedSpec, compile: bool = True) -> keras.Model:
    """`model`, built from `loaded`, as a twin that takes and gives dicts by the spec's input
    and output names (compiled as the spec says, with `compile`): the same layers, so the same
    weights.
    Training feeds data and names losses and metrics by those names, whatever `structure:` the
    spec gives its model; a spec without one gets `model` itself."""
    structure = loaded.spec.structure
    if structure is None:
        return model
    inputs, outputs = model.input, model.output
    # keras.tree flattens a mapping in key order, the names and the tensors alike.
    if structure.inputs is not None:
        inputs = _by_spec_name(structure.inputs, inputs)
    if structure.outputs is not None:
        outputs = _by_spec_name(structure.outputs, outputs)
    twin = keras.Model(inputs=inputs, outputs=outputs, name=model.name, trainable=model.trainable)
    if compile:
        compile_model(twin, loaded, structured=False)
    return twin


def compile_model(
    model: keras.Model,
    loaded: LoadedSpec,
    structured: bool = True,
    optimizer: Any = None,
    optimizer_at: tuple = (),
) -> None:
    """Compile with each output's loss, loss weight and metrics, as the spec says: given in the
    outputs' `structure:` when `structured`, else by output name. `optimizer` (a name or a
    `TypedObject`, written at spec path `optimizer_at`) replaces `compile.optimizer`: a
    fine-tuning stage's own."""
    spec = loaded.spec
    losses = {n: output_loss(o) for n, o in spec.outputs.items() if o.loss is not None}
    weights = {n: o.weight for n, o in spec.outputs.items() if o.loss is not None}
    metrics = {n: output_metrics(o) for n, o in spec.outputs.items() if o.metrics}
    if structured and spec.structure is not None and spec.structure.outputs is not None:
        # Keras matches a dict of losses against the keys of dict outputs: with another
        # structure, each setting is given in the outputs' own structure.
        losses = _structured(spec.structure.outputs, losses)
        weights = _structured(spec.structure.outputs, weights, 1.0) if weights else None
        metrics = _structured(spec.structure.outputs, metrics)
    if optimizer is None:
        optimizer, optimizer_at = spec.compile.optimizer, ("compile", "optimizer")
    optimizer = make_optimizer(optimizer, loaded, optimizer_at)
    check_losses_and_metrics(model, loaded, structured)
    try:
        model.compile(
            optimizer=optimizer,
            loss=losses or None,
            loss_weights=weights or None,
            metrics=metrics or None,
            jit_compile=spec.compile.jit_compile,
            steps_per_execution=spec.compile.steps_per_execution,
            run_eagerly=spec.compile.run_eagerly,
        )
    except Exception as exc:
        raise SpecErrors.single(
            f"Keras refused to compile the model: {_keras_message(exc)}",
            loaded.location("outputs", key=True),
            sources=loaded.diagnostics.sources,
        ) from None


def _by_spec_name(structure: Any, tensors: Any) -> dict[str, Any]:
    """`tensors`, given in a `structure:` of the spec's names, as a dict by those names
    (keras.tree flattens a mapping in key order, the names and the tensors alike)."""
    return dict(zip(keras.tree.flatten(structure), keras.tree.flatten(tensors), strict=True))


def check_losses_and_metrics(model: keras.Model, loaded: LoadedSpec, structured: bool = True) -> None:
    """Raise `SpecErrors` at each argument of a loss or metric that Keras refuses only when it
    computes a value (`label_smoothing: "abc"`), found by computing each one written with
    arguments on a scratch batch shaped like its output (`graphspec.keras.scratch`)."""
    if _distributed():
        return  # a metric's variables would be the strategy's; validate checks the same types
    spec = loaded.spec
    tensors = model.output
    if structured and spec.structure is not None and spec.structure.outputs is not None:
        tensors = _by_spec_name(spec.structure.outputs, tensors)
    if not isinstance(tensors, dict):
        return
    c = catalog.catalog()
    diagnostics = Diagnostics(sources=dict(loaded.diagnostics.sources))
    for name, output in spec.outputs.items():
        written = [("loss", output.loss, ("outputs", name, "loss"))] + [
            ("metric", m, ("outputs", name, "metrics", i)) for i, m in enumerate(output.metrics)
        ]
        written = [w for w in written if isinstance(w[1], TypedObject) and w[1].args]
        if not written or output.target == INDEX_TARGET or name not in tensors:
            continue
        batch = scratch_batch(arr.target_for(output.loss) or arr.Target(arr.REAL), tensors[name].shape)
        if batch is None:
            continue
        for kind, value, path in written:
            module, section = (keras.losses, "losses") if kind == "loss" else (keras.metrics, "metrics")
            entry = c[section]["classes"].get(value.type)
            if entry is None:
                continue
            found = refused_argument(
                getattr(module, value.type),
                value.args,
                entry["required"],
                lambda made, batch=batch: scratch_value(made, *batch),
            )
            if found is not None:
                arg, exc = found
                diagnostics.error(
                    f"Keras refused {kind} {value.type}: {_keras_message(exc)}",
                    loaded.location(*path, *([arg] if arg is not None else [])),
                )
    diagnostics.raise_if_errors()
