"""A Keras functional or Sequential model, written back as a spec: `graphspec export`.

What the spec says, and how:

- nodes are named after the layers (inputs after their `Input`s), so weights can be loaded
  by name (`graphspec build --weights`); a layer called more than once is written once with its
  arguments, and each further call as `share:` under the name `LAYER_2`, `LAYER_3`, ...
- a layer's arguments are only those that differ from Keras's defaults: its config is compared
  with the config of the same class built from fewer arguments, and an argument is kept only if
  the layer cannot be rebuilt to the same config without it. The result is checked by building
  the layer from what is written; a layer that does not come back identical is refused.
- a model used as a layer (a functional or Sequential model inside another) stays a model: it is
  written as a nested spec of its own, `PARENT.NODE.yaml`, used with `spec:`.
- masks that Keras computes itself (an `Embedding(mask_zero=True)` or a `Masking` layer feeding
  the next layer) are left to Keras, which computes them again when the spec is built; any other
  `keras.ops` operation in the graph is an op node (`{op: add, in: [a, b]}`) when the catalog
  lists its function, and is refused, naming it, when it does not.
- Lambda layers and classes that are not Keras's own are refused, naming the layer.
- inputs come with shape, dtype, sparse, batch size and whether they are optional; outputs keep
  their names and, when the model was compiled, their losses, loss weights and metrics, and the
  optimizer. How the model takes its inputs and gives its outputs (a list in its order, a single
  tensor, dicts nested to any depth) is written as `structure:` wherever it is not a dict by
  name; a frozen model says `trainable: false`; a layer's dtype policy is its `dtype`.
- nothing is dropped silently: what a spec cannot hold (a model inside TimeDistributed, an input
  that nothing reads) is refused, naming it.

TensorFlow is imported: this module reads live Keras objects.
"""

from __future__ import annotations

import functools
import importlib.util
import inspect
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import yaml
from keras.src import tree
from keras.src.ops.function import make_node_key

from graphspec import archive as spec_archive
from graphspec import atomic
from graphspec.errors import SpecErrors
from graphspec.keras import losses, model_file
from graphspec.keras.model_file import clip as _clip
from graphspec.keras.model_file import short as _short
from graphspec.spec import catalog
from graphspec.spec.load import DEFAULT_MAX_PARAMS
from graphspec.spec.model import INDEX_TARGET, MAX_NAME, NAME, VALUE_LOSS
from graphspec.spec.source import _Loader
from graphspec.spec.write import spec_yaml

# Config keys that are not constructor arguments a spec writes: the name is the node's key,
# the shape is the input's.
_IGNORED_CONFIG_KEYS = ("name", "batch_input_shape", "input_shape", "batch_shape")
_KERAS_OBJECT_MODULES = {
    "keras.initializers": keras.initializers,
    "keras.regularizers": keras.regularizers,
    "keras.constraints": keras.constraints,
}


@dataclass
class Export:
    """An exported spec as data, and the nested specs it uses by file name (relative to it)."""

    spec: dict[str, Any]
    nested: dict[str, Export] = field(default_factory=dict)
    origin: str = ""

    def to_yaml(self) -> str:
        """The spec as YAML, one node per line, the way specs are written by hand."""
        return to_yaml(self.spec, self.origin)

    def files(self) -> dict[str, str]:
        """The nested specs to write beside this one, theirs included: file name -> YAML text."""
        found: dict[str, str] = {}
        for name, nested in self.nested.items():
            found[name] = nested.to_yaml()
            found.update(nested.files())
        return found

    def write(self, path: Path) -> list[Path]:
        """Write the spec to `path` and its nested specs beside it, each whole or not at all
        (`graphspec.atomic`); the paths written. `SpecErrors` when one cannot be written: all are
        checked before any is written."""
        path = Path(path)
        files = {path.parent / name: text for name, text in self.files().items()}
        for target in (path, *files):
            atomic.check_target(target)
        # The spec last: it never stands without the nested specs it names.
        for target, text in files.items():
            atomic.write_text(target, text)
        atomic.write_text(path, self.to_yaml())
        return [path, *files]


# ---------------------------------------------------------------- sources


def load_keras_file(
    path: Path, max_params: int | None = DEFAULT_MAX_PARAMS
) -> tuple[keras.Model, dict[str, Any]]:
    """The model saved in a .keras file, and its compile config ({} when it was not compiled).

    Raises `SpecErrors` when the file is missing, is not a .keras archive, holds a class that
    Keras cannot load safely (a custom layer, a Lambda, a serialized function), or is over a
    bound of `graphspec.keras.model_file` (sizes, nesting, more than `max_params` parameters
    declared, weights past what the config declares): all checked before Keras reads it.
    """
    path = Path(path)
    config = model_file.read_config(path)
    # The compile config names losses, not layers: graphspec's own losses are exported as the
    # outputs' settings they came from (`_add_losses`).
    _refuse_foreign_classes({k: v for k, v in config.items() if k != "compile_config"}, path)
    hub = next((item for item in _walk_layers(config) if _hub_class(item)), None)
    if hub is not None and importlib.util.find_spec("keras_hub") is None:
        raise SpecErrors.single(
            f"{path}: layer '{(hub.get('config') or {}).get('name', '?')}' is KerasHub's "
            f"{hub['class_name']}, and keras_hub is not installed",
            hint=f"install it: {catalog.HUB_INSTALL}",
        )
    import graphspec.keras.layers  # noqa: F401  (registers graphspec's own layers with Keras)

    model_file.check_declared(path, max_params)
    try:
        model = keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as exc:  # Keras raises many kinds; its message says what is wrong
        raise SpecErrors.single(f"cannot load {path}: {_short(exc)}") from None
    if not isinstance(model, keras.Model):
        raise SpecErrors.single(f"{path} holds a {type(model).__name__}, not a Keras model")
    return model, config.get("compile_config") or {}


def _refuse_foreign_classes(config: Any, path: Path) -> None:
    """Refuse a saved model whose layers are not Keras's own, naming the first such layer, and
    one holding a serialized function of another module (`os.system`)."""
    for item in _walk_layers(config):
        module, class_name = str(item.get("module") or ""), item.get("class_name")
        inner = item.get("config")
        # A serialized function's config is its name, not a mapping.
        name = _clip(inner.get("name", "?") if isinstance(inner, dict) else "?")
        refused = catalog.refusal(class_name) if isinstance(class_name, str) else None
        if refused is not None:
            raise SpecErrors.single(
                f"{path}: layer '{name}' is a {class_name} layer, which graphspec refuses: {refused.message}"
            )
        if _graphspec_layer(module, class_name, item.get("registered_name")) or _hub_class(item):
            continue
        if not module.startswith("keras") or item.get("registered_name") not in (None, class_name):
            if class_name == "function":
                raise SpecErrors.single(
                    f"{path}: it holds a serialized function '{_clip(f'{module}.{inner}')}', which is "
                    "not Keras's own; graphspec loads no code from a model file",
                    hint=model_file.HINT,
                )
            registered = _clip(item.get("registered_name") or f"{module}.{class_name}")
            raise SpecErrors.single(
                f"{path}: layer '{name}' is of class '{registered}', which is not "
                "Keras's own; a spec can only name keras.layers classes"
            )


def _graphspec_layer(module: str, class_name: Any, registered: Any) -> bool:
    """Whether a saved layer is one of graphspec's own (`weight`, `range`, `random` nodes),
    which `graphspec.keras.layers` registers under the package "graphspec"."""
    from graphspec.keras import layers

    return (
        module == layers.__name__
        and class_name in layers.CLASSES
        and registered == f"{layers.PACKAGE}>{class_name}"
    )


def _hub_class(item: dict) -> bool:
    """Whether a saved layer is one of KerasHub's that the hub catalog lists (registered by
    keras_hub as `keras_hub>CLASS`, from the module the catalog records)."""
    class_name = item.get("class_name")
    if item.get("registered_name") != f"keras_hub>{class_name}":
        return False
    return any(
        entry["module"] == item.get("module") and entry["class"] == class_name
        for entry in catalog.hub_catalog()["layers"].values()
    )


def _walk_layers(config: Any):
    # Recursive: `model_file.read_config` bounds the nesting far below Python's limit.
    if isinstance(config, dict):
        if "class_name" in config and "config" in config and "module" in config:
            yield config
        for value in config.values():
            yield from _walk_layers(value)
    elif isinstance(config, list):
        for value in config:
            yield from _walk_layers(value)


def application(name: str, args: dict[str, Any]) -> keras.Model:
    """`keras.applications.NAME(**args)`, with `weights=None` unless `args` names weights."""
    constructor_name = name.removeprefix(catalog.APPLICATION_PREFIX)
    if constructor_name not in catalog.catalog()["applications"]:
        from graphspec.errors import did_you_mean

        raise SpecErrors.single(
            f"keras.applications has no model '{constructor_name}'",
            hint=did_you_mean(constructor_name, catalog.catalog()["applications"]),
        )
    try:
        return getattr(keras.applications, constructor_name)(**{"weights": None, **args})
    except Exception as exc:
        raise SpecErrors.single(
            f"keras.applications.{constructor_name} refused its arguments: {_short(exc)}"
        ) from None


# ---------------------------------------------------------------- export


def export_model(
    model: keras.Model, compile_config: dict[str, Any] | None = None, origin: str = ""
) -> Export:
    """The spec of `model`. `compile_config` (as `model.get_compile_config()` gives it) adds
    losses, loss weights, metrics and the optimizer; by default the model's own, if compiled.

    Raises `SpecErrors` naming the layer or operation a spec cannot express.
    """
    if compile_config is None:
        compile_config = model.get_compile_config() if getattr(model, "compiled", False) else {}
    return _Exporter(model, origin).export(compile_config or {})


def _functional(model: keras.Model) -> Any:
    """The functional graph of a functional or Sequential model."""
    if isinstance(model, keras.Sequential):
        graph = getattr(model, "_functional", None)
        if graph is None:
            raise SpecErrors.single(
                f"Sequential model '{model.name}' has no input shape, so it has no graph yet",
                hint="start it with keras.Input(shape=...), or build it",
            )
        return graph
    if not hasattr(model, "_nodes_by_depth"):
        raise SpecErrors.single(
            f"model '{model.name}' is a subclassed model ({type(model).__name__}): "
            "only functional and Sequential models have a graph to export"
        )
    return model


class _Exporter:
    def __init__(self, model: keras.Model, origin: str, spec_name: str | None = None):
        self.model = model
        self.origin = origin
        self.graph = _functional(model)
        self.spec_name = spec_name or _spec_name(model.name)
        self.names: dict[str, str] = {}  # node key -> spec node name
        self.used_names: set[str] = set()
        self.first_call: dict[int, str] = {}  # id(layer) -> node name of its first call
        self.nested: dict[str, Export] = {}
        self.nested_outputs: dict[int, list[str]] = {}  # id(model) -> its spec's output names

    # -- naming
    def _claim(self, wanted: str) -> str:
        name, count = wanted, 1
        while name in self.used_names:
            count += 1
            name = f"{wanted}_{count}"
        self.used_names.add(name)
        return name

    def _ref(self, tensor: Any) -> str:
        op, node_index, tensor_index = tensor._keras_history
        name = self.names[make_node_key(op, node_index)]
        outputs = op._inbound_nodes[node_index].outputs
        if len(outputs) == 1:
            return name
        if _is_model(op):
            if id(op) not in self.nested_outputs:
                self.nested_outputs[id(op)] = _output_names(op)
            return f"{name}[{self.nested_outputs[id(op)][tensor_index]}]"
        return f"{name}[{tensor_index}]"

    # -- the walk
    def export(self, compile_config: dict[str, Any]) -> Export:
        inputs, kept = self._walk()
        layers: dict[str, dict[str, Any]] = {}
        for node, name, (args, kwargs) in kept:
            op = node.operation
            if not isinstance(op, keras.layers.Layer):
                layers[name] = self._op_node(op, name, args, kwargs)
                continue
            if self.first_call[id(op)] != name:
                entry: dict[str, Any] = {"share": self.first_call[id(op)]}
            else:
                entry = self._layer_entry(op, name)
            entry.update(self._inbound(op, name, args, kwargs))
            layers[name] = entry

        spec: dict[str, Any] = {"graphspec": 1, "name": self.spec_name}
        spec["inputs"] = inputs
        spec["layers"] = layers
        outputs, output_structure = self._outputs(compile_config)
        spec["outputs"] = outputs
        self.flat_output_names = _flat_names(outputs, output_structure)
        structure = {}
        input_structure = self._input_structure()
        if input_structure is not None:
            structure["inputs"] = input_structure
        if output_structure is not None:
            structure["outputs"] = output_structure
        if structure:
            spec["structure"] = structure
        if not self.model.trainable:
            spec["trainable"] = False
        compile_section = _compile_section(compile_config)
        if compile_section:
            spec["compile"] = compile_section
        return Export(spec, self.nested, self.origin)

    def _walk(self) -> tuple[dict[str, Any], list[tuple[Any, str, tuple[tuple, dict]]]]:
        """Name the inputs and the calls a spec keeps; the inputs' specs, and each kept call
        with its node name and its explicit arguments, producers before readers."""
        graph = self.graph
        nodes = []
        for depth in sorted(graph._nodes_by_depth, reverse=True):
            nodes += graph._nodes_by_depth[depth]
        inputs = {}
        input_ids = {id(t) for t in graph.inputs}
        input_keys = {}
        for tensor in tree.flatten(graph._inputs_struct):
            op = tensor._keras_history[0]
            name = self._check_name(op.name, "input")
            self.used_names.add(name)
            self.names[make_node_key(op, 0)] = name
            input_keys[make_node_key(op, 0)] = name
            inputs[name] = _input(tensor)

        calls = []
        for node in nodes:
            op = node.operation
            if node.is_input or (
                isinstance(op, keras.layers.InputLayer) and all(id(t) in input_ids for t in node.outputs)
            ):
                continue
            calls.append(node)
        # Which calls are kept: every layer's, and an operation's only when a kept call or an
        # output reads it. Operations that compute masks Keras re-creates on its own (those of
        # an Embedding(mask_zero=True) or a Masking layer, read only by the implicit `mask` of
        # the next layer, which `_explicit_arguments` leaves out) are then dropped with all
        # the operations that feed only them: readers are walked before what they read.
        read = {make_node_key(*t._keras_history[:2]) for t in tree.flatten(graph._outputs_struct)}
        explicit: dict[int, tuple[tuple, dict]] = {}
        kept_ids = set()
        for node in reversed(calls):
            op = node.operation
            key = make_node_key(op, op._inbound_nodes.index(node))
            if not isinstance(op, keras.layers.Layer) and key not in read:
                continue
            kept_ids.add(id(node))
            explicit[id(node)] = self._explicit_arguments(node)
            for tensor in tree.flatten(explicit[id(node)]):
                if _is_tensor(tensor):
                    read.add(make_node_key(*tensor._keras_history[:2]))
        for key, name in input_keys.items():
            if key not in read and not inputs[name].get("optional"):
                raise SpecErrors.single(
                    f"input '{name}' is read by no layer and is no output: a spec's inputs each "
                    "lead to an output",
                    hint="leave it out of the model's inputs, or make it Input(optional=True)",
                )

        kept = []
        for node in calls:
            if id(node) not in kept_ids:
                continue
            op = node.operation
            key = make_node_key(op, op._inbound_nodes.index(node))
            if not isinstance(op, keras.layers.Layer):
                name = self._claim(self._check_name(op.name, "operation"))
            elif id(op) in self.first_call:
                # The first call has the layer's name: this is NAME_2, ..., or the output it is.
                name = self._claim(self._further_call_name(node, op))
            else:
                name = self._claim(self._check_name(op.name, "layer"))
                self.first_call[id(op)] = name
            self.names[key] = name
            kept.append((node, name, explicit[id(node)]))
        return inputs, kept

    def _further_call_name(self, node: Any, op: Any) -> str:
        """The name for a further call of a layer: Keras gives it none. When the call is an output
        of the model, keyed by a name no input or layer has, it is named as the output, as the
        spec that built it named it (then the output needs no Identity layer of its own)."""
        structure = self.graph._outputs_struct
        if isinstance(structure, dict) and len(node.outputs) == 1:
            taken = {layer.name for layer in self.graph.layers} | self.used_names
            for key, tensor in structure.items():
                named = isinstance(key, str) and NAME.match(key) and key not in taken
                if tensor is node.outputs[0] and named:
                    return key
        return op.name

    def _input_structure(self) -> Any:
        """The model's inputs as a structure of input names, or None when they are a dict of
        the inputs by their own names (a spec's default)."""
        structure = self.graph._inputs_struct
        names = tree.map_structure(lambda t: self.names[make_node_key(t._keras_history[0], 0)], structure)
        if isinstance(names, dict) and all(k == v for k, v in names.items()):
            return None
        return _as_data(names)

    def _check_name(self, name: str, what: str) -> str:
        if not NAME.match(name):
            raise SpecErrors.single(
                f"{what} '{name}' cannot be a node name: a node name is letters, "
                "digits, '_', '.' and '-', starting with a letter or '_'",
                hint="rename the layer in Keras before exporting",
            )
        return name

    def _explicit_arguments(self, node: Any) -> tuple[tuple, dict]:
        """A call's arguments without what Keras filled in itself: masks it attached to the
        inputs, and call arguments equal to the call's own defaults (`training=False`)."""
        op = node.operation
        args, kwargs = node.arguments.args, dict(node.arguments.kwargs)
        try:
            parameters = inspect.signature(op.call).parameters
        except (TypeError, ValueError):
            parameters = {}
        names = [
            p
            for p in parameters
            if parameters[p].kind
            in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        ]
        for key in list(kwargs):
            value = kwargs[key]
            if key == "mask" or key.endswith("_mask"):
                source = args[0] if key == "mask" and args else kwargs.get(key.removesuffix("_mask"))
                if source is None and key != "mask" and key.removesuffix("_mask") in names:
                    position = names.index(key.removesuffix("_mask"))
                    source = args[position] if position < len(args) else None
                if _implicit_mask(value, source):
                    del kwargs[key]
                    continue
            default = parameters[key].default if key in parameters else inspect.Parameter.empty
            if not _has_tensor(value) and default is not inspect.Parameter.empty and _same(value, default):
                del kwargs[key]
        return args, kwargs

    def _inbound(self, op: Any, name: str, args: tuple, kwargs: dict) -> dict[str, Any]:
        """`in:` and `call:` of one call."""
        call = {k: _plain(v) for k, v in kwargs.items() if not _has_tensor(v)}
        tensor_kwargs = {k: v for k, v in kwargs.items() if _has_tensor(v)}
        for value in list(args) + list(tensor_kwargs.values()):
            if _has_non_tensor(value):
                raise SpecErrors.single(
                    f"layer '{name}' is called with a value that is not a tensor "
                    f"among its tensors ({_short(value)}): a spec cannot write it"
                )
        entry: dict[str, Any] = {}
        if len(args) == 1 and not tensor_kwargs:
            inbound = self._refs(args[0], name, op)
        else:
            try:
                parameters = list(inspect.signature(op.call).parameters)
            except (TypeError, ValueError):
                parameters = []
            if len(args) > len(parameters):
                raise SpecErrors.single(
                    f"layer '{name}' is called with {len(args)} positional arguments, "
                    "more than its call names"
                )
            inbound = {parameters[i]: self._refs(a, name, op, nested_ok=False) for i, a in enumerate(args)}
            inbound.update({k: self._refs(v, name, op, nested_ok=False) for k, v in tensor_kwargs.items()})
        entry["in"] = inbound
        if call:
            entry["call"] = call
        return entry

    def _op_node(self, op: Any, name: str, args: tuple, kwargs: dict) -> dict[str, Any]:
        """An op node, `{op: NAME, ARG: VALUE, in: ...}`, for a call of a keras.ops operation:
        its constructor's config and the call's values that are not tensors as arguments
        (defaults left out), its tensors as `in` (`graphspec.spec.ops` fills them back)."""
        found = _catalog_op(op)
        if found is None:
            raise SpecErrors.single(
                f"'{op.name}' is the keras.ops operation {_op_name(op)}, which a spec cannot hold: "
                "it is not among the catalog's ops",
                hint="write it as a layer (keras.layers has one for most operations: "
                "Add, Multiply, Concatenate, Reshape, Activation, ...)",
            )
        op_name, entry = found
        values: dict[str, Any] = {}
        init = inspect.signature(type(op).__init__).parameters
        for key, value in op.get_config().items():
            if key in entry["init"] and not (key in init and _same(value, init[key].default)):
                values[key] = _writable(value, name, op_name, key)
        call = inspect.signature(op.call).parameters
        given = dict(kwargs)
        positional = list(args)
        for parameter in call.values():
            if not positional:
                break
            if parameter.kind is parameter.VAR_POSITIONAL:
                given[parameter.name], positional = positional, []
            else:
                given[parameter.name] = positional.pop(0)
        tensors: dict[str, Any] = {}
        for key, value in given.items():
            if _has_tensor(value):
                if _has_non_tensor(value):
                    raise SpecErrors.single(
                        f"op '{name}' is called with a value that mixes tensors and other values "
                        f"({_short(value)}): a spec cannot write it"
                    )
                tensors[key] = self._ref(value) if _is_tensor(value) else [self._ref(v) for v in value]
            elif not (key in call and _same(value, call[key].default)):
                values[key] = _writable(value, name, op_name, key)
        free = [p for p in entry["args"] if p not in values]
        in_order = list(tensors) == free[: len(tensors)] and all(
            isinstance(ref, str) or key == entry.get("variadic") for key, ref in tensors.items()
        )
        if in_order and len(tensors) == 1 and isinstance(next(iter(tensors.values())), str):
            inbound: Any = next(iter(tensors.values()))
        elif in_order:
            inbound = [r for ref in tensors.values() for r in (ref if isinstance(ref, list) else [ref])]
        else:
            inbound = {k: tensors[k] for k in entry["args"] if k in tensors}
        return {"op": op_name, **values, "in": inbound}

    def _refs(self, value: Any, name: str, op: Any, nested_ok: bool = True) -> Any:
        if _is_tensor(value):
            return self._ref(value)
        if isinstance(value, (list, tuple)) and all(_is_tensor(v) for v in value):
            return [self._ref(v) for v in value]
        if (
            isinstance(value, dict)
            and nested_ok
            and _is_model(op)
            and all(_is_tensor(v) for v in value.values())
        ):
            # A nested spec reads a dict by its input names, which may not be the model's keys.
            struct = _functional(op)._inputs_struct
            names = {
                k: struct[k]._keras_history[0].name if isinstance(struct, dict) and k in struct else k
                for k in value
            }
            return {names[k]: self._ref(v) for k, v in value.items()}
        raise SpecErrors.single(
            f"layer '{name}' reads its inputs in a structure a spec cannot write "
            f"({type(value).__name__} of tensors)"
        )

    def _layer_entry(self, layer: Any, name: str) -> dict[str, Any]:
        if _is_model(layer):
            application = _as_application(layer)
            if application is not None:
                return application
            file = f"{self.spec_name}.{name}.yaml"
            inner = _Exporter(
                layer, f"layer '{name}' of {self.origin or self.spec_name}", spec_name=_spec_name(layer.name)
            )
            self.nested[file] = inner.export({})
            self.nested_outputs[id(layer)] = inner.flat_output_names
            return {"spec": file}
        from graphspec.keras.layers import node_of

        own = node_of(layer)  # a weight, range or random node
        if own is not None:
            return own
        return {"type": layer_type(layer), **layer_arguments(layer)}

    def _outputs(self, compile_config: dict[str, Any]) -> tuple[dict[str, Any], Any]:
        """The spec's outputs, and their structure (None where it is the default, a dict of
        the outputs by name).

        An output is named after the dict key it has in the model, or else after the node it
        reads; a name a node already has (an output keyed like an input) or one a spec cannot
        write (a key '1') gets another, and the structure keeps the model's own key.
        """
        structure = self.graph._outputs_struct
        tensors = tree.flatten(structure)
        flat_dict = isinstance(structure, dict) and all(_is_tensor(v) for v in structure.values())
        keys = sorted(structure) if flat_dict else [None] * len(tensors)  # tree.flatten's order
        outputs: dict[str, dict[str, Any]] = {}
        names: list[str] = []
        for key, tensor in zip(keys, tensors, strict=True):
            ref = self._ref(tensor)
            wanted = key if isinstance(key, str) and NAME.match(key) else ref.replace("[", "_").rstrip("]")
            if wanted == ref and ref not in outputs:
                name = ref  # the node's own tensor: no Identity layer needed
                outputs[name] = {}
            else:
                name = self._claim(self._check_name(wanted, "output"))
                outputs[name] = {"from": ref}
            names.append(name)
        shaped = tree.pack_sequence_as(structure, names)
        if flat_dict:
            outputs = {shaped[k]: outputs[shaped[k]] for k in structure}  # the model's own order
        by_key = dict(zip(keys, names, strict=True)) if flat_dict else {}
        compile_config = _by_output_name(compile_config, by_key)
        for setting in ("loss", "loss_weights", "metrics"):
            value = compile_config.get(setting)
            unknown = [k for k in value if k not in outputs] if _is_per_output_dict(value) else []
            if unknown:
                raise SpecErrors.single(
                    f"the model was compiled with a {setting} for '{unknown[0]}', which is not one "
                    f"of its outputs as a spec names them ({', '.join(outputs)})",
                    hint="compile it with one value per output, in a list or by output name",
                )
        _add_losses(outputs, compile_config)
        if flat_dict and all(k == v for k, v in shaped.items()):
            return outputs, None
        return outputs, _as_data(shaped)

    def output_names(self) -> list[str]:
        """The names the spec of this model gives its outputs, in Keras's flat order."""
        self._walk()
        return _flat_names(*self._outputs({}))


def _as_application(model: keras.Model) -> dict[str, Any] | None:
    """A model used as a layer that is a keras.applications model, as the node that builds it
    (`{type: applications.NAME, ...}`), or None.

    Candidates are the constructors whose name the model's name contains (Keras names its
    models after them: `xception`, `resnet50`; graphspec after the node, `xception_base`), each
    tried with and without its top; one is taken only when the graph it builds is the model's,
    layer for layer (classes, configs, connections; automatic names aside), so a look-alike is
    written as the nested spec of its graph.
    """
    lowered = model.name.lower()
    candidates = sorted(
        (name for name in catalog.catalog()["applications"] if name.lower() in lowered),
        key=len,
        reverse=True,
    )
    if not candidates or len(model.inputs) != 1 or len(model.outputs) != 1:
        return None
    wanted = _anonymous(model.get_config())
    input_shape = list(model.inputs[0].shape[1:])
    last = model.layers[-1]
    tops: list[dict[str, Any]] = [{"include_top": False}, {"include_top": False, "pooling": "avg"}]
    tops.append({"include_top": False, "pooling": "max"})
    if isinstance(last, keras.layers.Dense):
        activation = keras.activations.serialize(last.activation)
        tops.insert(0, {"include_top": True, "classes": last.units, "classifier_activation": activation})
    # Without `input_shape` first: a base without its top takes any image size by default.
    tries = [(top, shape) for top in tops for shape in ({}, {"input_shape": input_shape})]
    for name in candidates:
        constructor = getattr(keras.applications, name)
        for top, shape in tries:
            args = {**shape, **top}
            try:
                candidate = constructor(weights=None, name=model.name, **args)
            except Exception:  # a shape or a top this constructor does not take
                continue
            if _anonymous(candidate.get_config()) == wanted:
                defaults = catalog.catalog()["applications"][name].get("defaults", {})
                written = {k: v for k, v in args.items() if defaults.get(k, object()) != v}
                return {"type": catalog.APPLICATION_PREFIX + name, **written}
    return None


def _anonymous(config: dict[str, Any]) -> str:
    """A functional model's config as text with every layer's name replaced by its position:
    the graph, whatever Keras's name counters stood at when it was built."""
    index = {layer["name"]: f"#{i}" for i, layer in enumerate(config.get("layers", []))}

    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k != "name" or not isinstance(v, str)}
        if isinstance(value, (list, tuple)):
            return [strip(v) for v in value]
        if isinstance(value, str) and value in index:
            return index[value]
        return value

    return json.dumps(strip({k: v for k, v in config.items() if k != "name"}), sort_keys=True, default=str)


def _is_model(op: Any) -> bool:
    return isinstance(op, keras.Model)


def _output_names(model: keras.Model) -> list[str]:
    """Names of a nested model's outputs in flat order: as its exported spec names them."""
    return _Exporter(model, "").output_names()


def _flat_names(outputs: dict[str, Any], structure: Any) -> list[str]:
    """Output names in Keras's flat order: the structure's, or a dict's (sorted keys)."""
    return tree.flatten(structure if structure is not None else {name: name for name in outputs})


def _as_data(structure: Any) -> Any:
    """A structure of names as YAML data: tuples as lists."""
    if isinstance(structure, (list, tuple)):
        return [_as_data(v) for v in structure]
    if isinstance(structure, dict):
        return {k: _as_data(v) for k, v in structure.items()}
    return structure


def _is_per_output_dict(value: Any) -> bool:
    return isinstance(value, dict) and "class_name" not in value


def _by_output_name(config: dict[str, Any], by_key: dict[str, str]) -> dict[str, Any]:
    """A compile config whose per-output dicts (losses, loss weights, metrics) are keyed by
    the spec's output names rather than the model's output keys."""
    if not by_key or not config:
        return config
    renamed = dict(config)
    for setting in ("loss", "loss_weights", "metrics"):
        value = config.get(setting)
        if _is_per_output_dict(value):
            renamed[setting] = {by_key.get(k, k): v for k, v in value.items()}
    return renamed


def _is_tensor(value: Any) -> bool:
    return hasattr(value, "_keras_history")


def _has_tensor(value: Any) -> bool:
    return any(_is_tensor(v) for v in tree.flatten(value))


def _has_non_tensor(value: Any) -> bool:
    return any(not _is_tensor(v) for v in tree.flatten(value))


def _implicit_mask(mask: Any, source: Any) -> bool:
    """Whether `mask` is exactly the mask Keras attached to `source` (None where it had none)."""
    if source is None:
        return mask is None
    expected = tree.flatten(tree.map_structure(lambda t: getattr(t, "_keras_mask", None), source))
    given = tree.flatten(mask) if mask is not None else [None] * len(expected)
    return len(given) == len(expected) and all(g is e for g, e in zip(given, expected, strict=True))


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(a == b) and type(a) is type(b)
    except Exception:
        return False


def _catalog_op(op: Any) -> tuple[str, dict] | None:
    """The name and catalog entry of the keras.ops function whose operation `op` is, or None."""
    for name, entry in catalog.catalog().get("ops", {}).items():
        if entry["class"] == type(op).__name__ and entry["module"] == type(op).__module__:
            return name, entry
    return None


def _op_name(op: Any) -> str:
    module = type(op).__module__
    function = re.sub(r"(?<!^)(?=[A-Z])", "_", type(op).__name__).lower()
    if module.startswith("keras.src.ops."):
        return f"keras.ops.{function} ({type(op).__name__})"
    return f"{module}.{type(op).__name__}"


def _spec_name(name: str) -> str:
    # A spec's name is ASCII (it names run folders); Keras allows any name.
    cleaned = re.sub(r"[^A-Za-z0-9_.\-]", "_", name)[:MAX_NAME]
    return cleaned if re.match(r"^[A-Za-z_]", cleaned) else f"model_{cleaned}"[:MAX_NAME]


def _input(tensor: Any) -> dict[str, Any]:
    shape = list(tensor.shape)
    data: dict[str, Any] = {"shape": shape[1:]}
    dtype = str(tensor.dtype)
    if dtype != "float32":
        data["dtype"] = dtype
    if getattr(tensor, "sparse", False):
        data["sparse"] = True
    if shape and shape[0] is not None:
        data["batch_size"] = shape[0]
    if getattr(tensor._keras_history[0], "optional", False):
        data["optional"] = True
    return data


# ---------------------------------------------------------------- layer arguments


def layer_type(layer: Any) -> str:
    """The catalog name of a layer's class (`Dense`, or `applications.convnext.LayerScale` for
    a layer keras.applications defines); refuses Lambda and any other class."""
    name = type(layer).__name__
    refused = catalog.refusal(name)
    if refused is not None:
        raise SpecErrors.single(
            f"layer '{layer.name}' is a {name} layer, which graphspec refuses: {refused.message}"
        )
    helper = catalog.application_layer(type(layer))
    if helper is not None:  # Keras's own, defined by keras.applications for its models
        return helper
    hub = catalog.hub_layer(type(layer))
    if hub is not None:  # KerasHub's (the optional extra graphspec[hub])
        return hub
    if getattr(keras.layers, name, None) is not type(layer):
        # keras.layers may export a class under another name (GroupQueryAttention is the class
        # GroupedQueryAttention): the spec uses the public name.
        name = _public_layer_names().get(type(layer), name)
    if catalog.layer(name) is None or getattr(keras.layers, name, None) is not type(layer):
        name = type(layer).__name__
        where = f"{type(layer).__module__}.{name}"
        raise SpecErrors.single(
            f"layer '{layer.name}' is of class '{where}', which is not a keras.layers "
            "class; a spec can only name Keras's own layers"
        )
    return name


@functools.cache
def _public_layer_names() -> dict[type, str]:
    """Each class keras.layers exports, by the name it exports it under (the first, sorted)."""
    names: dict[type, str] = {}
    for public in sorted(dir(keras.layers)):
        value = getattr(keras.layers, public)
        if isinstance(value, type):
            names.setdefault(value, public)
    return names


def layer_arguments(layer: Any) -> dict[str, Any]:
    """The constructor arguments that rebuild `layer` to the same config, defaults left out.

    Raises `SpecErrors` when no arguments rebuild it (a config that Keras's constructor cannot
    reproduce, or an argument holding an object a spec cannot name).
    """
    type_name = layer_type(layer)
    entry = catalog.layer(type_name)
    config = layer.get_config()
    learned = _LEARNED.get(type_name, ())

    def normal(values: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in _normal(values).items() if k not in learned}

    target = normal(config)
    allowed = set(entry["args"])
    values = {
        k: _spec_value(v, f"layer '{layer.name}': argument '{k}'")
        for k, v in config.items()
        if k not in _IGNORED_CONFIG_KEYS and k in allowed
    }
    # What is required, and what defaults to None but is set: a layer may need it to be made
    # at all (CategoryEncoding's num_tokens) before anything can be compared.
    defaults = entry.get("defaults", {})
    needed = [k for k in values if k in defaults and defaults[k] is None and values[k] is not None]
    args = {k: values[k] for k in [*entry["required"], *needed] if k in values}
    differing: list[str] = list(needed)  # left out below where the others imply them
    # Add what differs until nothing more does: an argument can change another's default
    # (MaxPooling2D's strides default to its pool_size), so one pass is not always enough.
    for _ in range(len(values) + 1):
        rebuilt = normal(_rebuild(type_name, args, layer.name))
        more = [k for k in values if k not in args and rebuilt.get(k) != target.get(k)]
        if not more:
            break
        differing += more
        args.update({k: values[k] for k in more})
    # Leave out what the others imply (MaxPooling2D's strides follow its pool_size).
    for key in differing:
        trial = {k: v for k, v in args.items() if k != key}
        try:
            implied = normal(_rebuild(type_name, trial, layer.name)) == target
        except SpecErrors:  # the others need it (Normalization's mean needs its variance)
            implied = False
        if implied:
            args = trial
    rebuilt = normal(_rebuild(type_name, args, layer.name))
    if rebuilt != target:
        keys = sorted(k for k in set(rebuilt) | set(target) if rebuilt.get(k) != target.get(k))
        raise SpecErrors.single(
            f"layer '{layer.name}' ({type_name}) cannot be written as a spec: rebuilt "
            f"from its arguments it differs in {', '.join(keys)}"
        )
    for key, value in args.items():
        count = _numbers(value)
        if count > MAX_ARRAY_VALUES:
            raise SpecErrors.single(
                f"layer '{layer.name}' ({type_name}) cannot be written as a spec: its argument "
                f"'{key}' is an array of {count:,} numbers, and a spec holds none over {MAX_ARRAY_VALUES:,}",
                hint="adapt() the Normalization rather than passing it mean and variance: its "
                "statistics are then weights, which `build --weights` copies"
                if type_name == "Normalization"
                else None,
            )
    # In the order Keras's config lists them, required first, however they were found.
    order = [*(k for k in entry["required"] if k in args), *(k for k in values if k in args)]
    args = {k: _compact(k, args[k]) for k in dict.fromkeys(order)}
    args = _without_built_defaults(layer, type_name, args)
    if learned and config.get("vocabulary") is None and layer.get_vocabulary(include_special_tokens=False):
        args["adapt"] = True  # its vocabulary came from data, and comes again from the next run's
    return args


# What a layer learns from data by `adapt` and its config reports: a lookup's vocabulary size.
# Rebuilt from arguments it is not there yet; the spec marks such a layer `adapt: true`.
_LEARNED = {name: ("vocabulary_size",) for name in ("StringLookup", "IntegerLookup", "TextVectorization")}


# The most numbers one argument may hold: a spec is read by people, and a Normalization's
# per-channel mean and variance (3 values, or a few hundred features) are all it needs.
MAX_ARRAY_VALUES = 1024


def _numbers(value: Any) -> int:
    """How many numbers a (nested) list argument holds; 0 for anything else."""
    if isinstance(value, list):
        return sum(_numbers(v) if isinstance(v, list) else isinstance(v, (int, float)) for v in value)
    return 0


def _rebuild(type_name: str, args: dict[str, Any], layer_name: str) -> dict[str, Any]:
    from graphspec.keras.build import make_layer

    try:
        return make_layer(type_name, args, name=None).get_config()
    except Exception as exc:
        raise SpecErrors.single(
            f"layer '{layer_name}' ({type_name}) cannot be rebuilt from the arguments "
            f"{sorted(args)}: {_short(exc)}"
        ) from None


def _normal(config: dict[str, Any]) -> dict[str, Any]:
    return {k: _normal_value(v) for k, v in config.items() if k not in _IGNORED_CONFIG_KEYS}


def _normal_value(value: Any) -> Any:
    """Config values compared as data: tuples as lists, no names of nested layers or objects,
    floats as `_spec_value` writes them (3291.890625, a float32, is written 3291.8906)."""
    if isinstance(value, (list, tuple)):
        return [_normal_value(v) for v in value]
    if isinstance(value, dict):
        if str(value.get("class_name", "")).endswith("DTypePolicy"):
            # A dtype policy is its name (mixed_float16): that name is no layer's name to drop.
            return (value.get("config") or {}).get("name")
        # A nested layer's build_config says only whether it was built yet (a Bidirectional's
        # LSTM is, once called), not what it is.
        return {k: _normal_value(v) for k, v in value.items() if k not in ("name", "build_config")}
    if isinstance(value, float):
        return _short_float(value)
    return value


def _spec_value(value: Any, what: str) -> Any:
    """A config value as a spec writes it: Keras objects as `{type: Class, args}`, dtype
    policies by name, tuples as lists, float32 numbers in their shortest form."""
    if isinstance(value, (list, tuple)):
        return [_spec_value(v, what) for v in value]
    if isinstance(value, float):
        return _short_float(value)
    if not isinstance(value, dict):
        return value
    if "class_name" not in value:
        return {k: _spec_value(v, what) for k, v in value.items()}
    module, class_name = value.get("module"), value["class_name"]
    if class_name == "DTypePolicy" or class_name.endswith("DTypePolicy"):
        return (value.get("config") or {}).get("name")
    config = value.get("config") or {}
    if module in _KERAS_OBJECT_MODULES and getattr(_KERAS_OBJECT_MODULES[module], class_name, None):
        cls = getattr(_KERAS_OBJECT_MODULES[module], class_name)
        return {"type": class_name, **_non_default_args(cls, config, what)}
    if module == "keras.layers" and catalog.layer(class_name) is not None:
        config = dict(config)
        forced = config.get("return_sequences")
        if "zero_output_for_mask" in config and config["zero_output_for_mask"] == forced:
            # What Bidirectional sets on the layers it wraps (keras/src/layers/rnn/bidirectional.py)
            # and sets again when rebuilt; the wrapper's own rebuild still checks its whole config.
            config["zero_output_for_mask"] = False
        inner = keras.layers.deserialize({**value, "config": config})
        return {"type": layer_type(inner), **layer_arguments(inner)}
    if class_name in ("Functional", "Sequential", "Model"):
        name = config.get("name", "?")
        raise SpecErrors.single(
            f"{what} is the model '{name}' ({class_name}): a spec writes a layer held as an "
            "argument as one nested {type: ...} layer, never a model",
            hint="wrap the model's layers one by one instead (TimeDistributed(Dense(...)), ...)",
        )
    raise SpecErrors.single(f"{what} is a {module}.{class_name} object, which a spec cannot name")


def _non_default_args(cls: type, config: dict[str, Any], what: str) -> dict[str, Any]:
    """The entries of a Keras object's `config` that differ from those of `cls()`, as spec values."""
    try:
        default = cls().get_config()
    except Exception:  # a class without defaults for every argument: keep them all
        default = {}
    return {
        k: _spec_value(v, what)
        for k, v in config.items()
        if k not in default or _normal_value(default[k]) != _normal_value(v)
    }


def _short_float(value: float) -> float:
    """A float that is exactly a float32 (Keras stores many so), written in float32's shortest form."""
    import numpy as np

    single = np.float32(value)
    if float(single) == value and np.isfinite(single):
        return float(str(single))
    return value


# Arguments Keras accepts as one int for all axes: (3, 3) is written 3.
_TUPLE_ARGS = ("kernel_size", "strides", "pool_size", "dilation_rate")


def _compact(key: str, value: Any) -> Any:
    if (
        key in _TUPLE_ARGS
        and isinstance(value, list)
        and value
        and all(isinstance(v, int) and v == value[0] for v in value)
    ):
        return value[0]
    return value


def _without_built_defaults(layer: Any, type_name: str, args: dict[str, Any]) -> dict[str, Any]:
    """`args` less those Keras derives itself when the layer is built on the same inputs.

    Some layers rewrite an argument when built: LayerNormalization's `axis=-1` becomes `[-1]`,
    MultiHeadAttention's `attention_axes=None` becomes `[1]` on a sequence. The config of a
    built layer then differs from that of an unbuilt one made without the argument, though the
    argument is Keras's default: a layer of the same class is made from the required arguments
    and built on the same input shapes, and an argument is left out where the layer made
    without it, built so, has the same config.
    """
    required = set((catalog.layer(type_name) or {}).get("required", []))
    build_config = layer.get_build_config() if getattr(layer, "built", False) else None
    if not build_config or not any(k not in required for k in args):
        return args
    target = _normal(layer.get_config())
    base = {k: v for k, v in args.items() if k in required}
    derived = _derived_arguments(type_name, base, build_config)
    for key in [k for k in args if k in derived and k not in required]:
        trial = {k: v for k, v in args.items() if k != key}
        try:
            if _normal(_built(type_name, trial, build_config)) == target:
                args = trial
        except Exception:
            continue
    return args


# (type, required arguments, build config) -> the arguments building such a layer rewrites.
_DERIVED: dict[str, frozenset[str]] = {}


def _derived_arguments(type_name: str, base: dict[str, Any], build_config: dict[str, Any]) -> frozenset[str]:
    """The config keys that building a `type_name` layer made from `base` on `build_config`'s
    shapes changes: the only arguments `_without_built_defaults` need try (most layers: none)."""
    key = json.dumps([type_name, base, build_config], sort_keys=True, default=str)
    if key not in _DERIVED:
        try:
            plain = _normal(_unbuilt_config(type_name, base))
            built = _normal(_built(type_name, base, build_config))
            _DERIVED[key] = frozenset(k for k in set(plain) | set(built) if plain.get(k) != built.get(k))
        except Exception:  # a layer that cannot be made or built from these alone: try nothing
            _DERIVED[key] = frozenset()
    return _DERIVED[key]


def _unbuilt_config(type_name: str, args: dict[str, Any]) -> dict[str, Any]:
    """The config of an unbuilt layer made from `args`."""
    from graphspec.keras.build import make_layer

    return make_layer(type_name, args, name=None).get_config()


def _built(type_name: str, args: dict[str, Any], build_config: dict[str, Any]) -> dict[str, Any]:
    """The config of a layer made from `args` and built as `build_config` says."""
    from keras.src.backend.common import global_state

    from graphspec.keras.build import make_layer

    rebuilt = make_layer(type_name, args, name=None)
    # Only the config is wanted: the weights are declared, never initialized (and forgotten).
    pending = list(global_state.get_global_attribute("uninitialized_variables", []) or [])
    try:
        with keras.StatelessScope(initialize_variables=False):
            rebuilt.build_from_config(build_config)
    finally:
        global_state.set_global_attribute("uninitialized_variables", pending)
    return rebuilt.get_config()


# ---------------------------------------------------------------- losses and compile


def _object_spec(value: Any, module: Any, what: str) -> Any:
    """A loss, metric or optimizer from a compile config: a name, or `{type: Class, args}`."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, dict) and "class_name" in value:
        cls = getattr(module, value["class_name"], None)
        if cls is None or not str(value.get("module", "")).startswith("keras"):
            raise SpecErrors.single(f"{what} is '{value['class_name']}', which is not Keras's own")
        config = {k: v for k, v in (value.get("config") or {}).items() if k != "name"}
        return {"type": value["class_name"], **_non_default_args(cls, config, what)}
    raise SpecErrors.single(f"{what} is {_short(value)}, which a spec cannot write")


def _per_output(value: Any, names: list[str]) -> dict[str, Any]:
    """A compile setting given per output as a dict, as a list in output order, or for all."""
    if value is None:
        return {}
    if isinstance(value, dict) and "class_name" not in value:
        return dict(value)
    if isinstance(value, (list, tuple)) and len(value) == len(names):
        return dict(zip(names, value, strict=True))
    return {name: value for name in names}


def _add_losses(outputs: dict[str, dict[str, Any]], config: dict[str, Any]) -> None:
    if not config:
        return
    names = list(outputs)
    losses = _per_output(config.get("loss"), names)
    weights = _per_output(config.get("loss_weights"), names)
    metrics = config.get("metrics")
    if isinstance(metrics, (list, tuple)) and len(names) == 1:
        metrics = {names[0]: metrics}  # one output's list of metrics, not one metric per output
    metrics = _per_output(metrics, names)
    for name, output in outputs.items():
        loss = losses.get(name)
        kind = _graphspec_class(loss)
        if kind == "ValueLoss":
            output["loss"] = VALUE_LOSS
        elif loss is not None:
            inner = loss["config"]["loss"] if kind == "IndexTargetLoss" else loss
            output["loss"] = _object_spec(inner, keras.losses, f"the loss of output '{name}'")
            if kind == "IndexTargetLoss":
                output["target"] = INDEX_TARGET
        weight = weights.get(name)
        if weight is not None and float(weight) != 1.0:
            output["weight"] = float(weight)
        found = metrics.get(name)
        if found:
            found = found if isinstance(found, (list, tuple)) else [found]
            output["metrics"] = [
                _object_spec(
                    m["config"]["metric"] if _graphspec_class(m) == "IndexTargetMetric" else m,
                    keras.metrics,
                    f"a metric of output '{name}'",
                )
                for m in found
            ]


def _graphspec_class(value: Any) -> str | None:
    """The class name of one of graphspec's own losses or metrics (`graphspec.keras.losses`)
    in a compile config; None for anything else."""
    if isinstance(value, dict) and value.get("module") == losses.__name__:
        return value.get("class_name")
    return None


def _compile_section(config: dict[str, Any]) -> dict[str, Any]:
    if not config:
        return {}
    section: dict[str, Any] = {}
    optimizer = _object_spec(config.get("optimizer"), keras.optimizers, "the optimizer")
    if isinstance(optimizer, dict) and optimizer["type"] == "RMSprop" and len(optimizer) == 1:
        optimizer = None  # the spec's default optimizer
    if optimizer is not None and optimizer != "rmsprop":
        section["optimizer"] = optimizer
    if config.get("steps_per_execution", 1) != 1:
        section["steps_per_execution"] = config["steps_per_execution"]
    if config.get("run_eagerly"):
        section["run_eagerly"] = True
    return section


# ---------------------------------------------------------------- YAML


def to_yaml(spec: dict[str, Any], origin: str = "") -> str:
    """A spec as YAML: sections in the usual order, one input, layer or output per line."""
    return spec_yaml(spec, [f"Exported from {origin} by `graphspec export`."] if origin else [])


def _plain(value: Any) -> Any:
    """A call argument as YAML data."""
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


def _writable(value: Any, name: str, op_name: str, key: str) -> Any:
    """`value` as YAML data (`_plain`) when a spec can write it (null, booleans, numbers,
    strings, and lists and mappings of them); else `SpecErrors` naming the op node and the argument. A slice
    or an Ellipsis (`x[:, 1]`, `x[..., None]` call `get_item` with them) has no spec form."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, (list, tuple)):
            stack.extend(reversed(item))  # the first one that cannot be written is named
        elif isinstance(item, dict):
            stack.extend(reversed([*item.keys(), *item.values()]))
        elif not (item is None or isinstance(item, (bool, int, float, str))):
            kind = "an Ellipsis (...)" if item is Ellipsis else f"a {type(item).__name__}"
            raise SpecErrors.single(
                f"op '{name}' calls keras.ops.{op_name} with {key}={_short(value)}, which a spec "
                f"cannot write: it holds {kind}",
                hint="write it with ops a spec can hold (take, slice, expand_dims, squeeze) or as a layer",
            )
    return _plain(value)


# ---------------------------------------------------------------- the command's source


def export_source(
    source: str,
    args: list[str] | None = None,
    recorded: bool = True,
    max_params: int | None = DEFAULT_MAX_PARAMS,
) -> Export | spec_archive.SourceExport:
    """Export a .keras file, or `applications.NAME` built with `args` (`KEY=VALUE`, values read
    as YAML: `include_top=false`, `input_shape=[96,96,3]`). A .keras file graphspec wrote gives
    the spec files it carries, as they were (`graphspec.archive`), unless `recorded` is false:
    then its model is exported like any other, read as untrusted input with at most
    `max_params` parameters declared (`graphspec.keras.model_file`). Raises `SpecErrors` on bad
    input."""
    if source.startswith(catalog.APPLICATION_PREFIX):
        kwargs = parse_arguments(args or [])
        model = application(source, kwargs)
        shown = ", ".join(f"{k}={v!r}" for k, v in {"weights": None, **kwargs}.items())
        return export_model(model, {}, origin=f"keras.{source}({shown})")
    if args:
        raise SpecErrors.single(
            f"--arg sets arguments of a keras.applications constructor; '{source}' is a file",
            hint="export applications.NAME --arg KEY=VALUE",
        )
    # A model graphspec saved carries the spec it was built from: that, exactly, is its export.
    carried = spec_archive.exported(Path(source)) if recorded else None
    if carried is not None:
        return carried
    model, compile_config = load_keras_file(Path(source), max_params)
    return export_model(model, compile_config, origin=source)


def parse_arguments(items: list[str]) -> dict[str, Any]:
    """`["include_top=false", "input_shape=[96, 96, 3]"]` -> keyword arguments (lists as tuples)."""
    parsed: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise SpecErrors.single(f"--arg '{item}' is not KEY=VALUE", hint="e.g. --arg include_top=false")
        try:
            value = yaml.load(text, Loader=_Loader) if text.strip() else None
        except yaml.YAMLError as exc:
            raise SpecErrors.single(f"--arg '{item}': the value is not YAML ({_short(exc)})") from None
        parsed[key.strip()] = tuple(value) if isinstance(value, list) else value
    return parsed
