"""graphspec's own Keras layers: what `weight:`, `range:` and `random:` nodes build.

Each is registered serializable under the package "graphspec", so a saved model that holds them
loads in stock Keras once this module is imported:

    import graphspec.keras.layers  # registers graphspec>Weight, graphspec>Range, ...
    model = keras.saving.load_model("model.keras")

They use keras.ops and keras.random only, so they run on TensorFlow, JAX and PyTorch alike.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import keras
from keras import ops

from graphspec.spec import nodes

if TYPE_CHECKING:
    from graphspec.spec.model import LayerSpec

PACKAGE = "graphspec"


def _batch(inputs: Any) -> Any:
    """The batch size of `inputs`: a Python int when known, else the backend's scalar."""
    return ops.shape(inputs)[0]


@keras.saving.register_keras_serializable(package=PACKAGE)
class Weight(keras.layers.Layer):
    """A learnable tensor of `shape`, given once per sample of the batch of its input:
    its output has shape (batch, *shape). The variable is named `weight` (its path is
    `LAYER/weight`), so weight files and --partial copies find it by name."""

    def __init__(
        self,
        shape: list[int] | tuple[int, ...],
        initializer: Any = "zeros",
        regularizer: Any = None,
        constraint: Any = None,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        # A masked input is read for its batch only: no warning that its mask is dropped.
        self.supports_masking = True
        self.weight_shape = tuple(int(d) for d in shape)
        self.initializer = keras.initializers.get(initializer)
        self.regularizer = keras.regularizers.get(regularizer)
        self.constraint = keras.constraints.get(constraint)

    def build(self, input_shape: Any = None) -> None:
        self.tensor = self.add_weight(
            name="weight",
            shape=self.weight_shape,
            initializer=self.initializer,
            regularizer=self.regularizer,
            constraint=self.constraint,
            trainable=True,
        )

    def call(self, inputs: Any) -> Any:
        value = ops.cast(ops.expand_dims(self.tensor, 0), self.compute_dtype)
        return ops.broadcast_to(value, (_batch(inputs), *self.weight_shape))

    def compute_output_shape(self, input_shape: Any) -> tuple:
        return (input_shape[0], *self.weight_shape)

    def compute_mask(self, inputs: Any, mask: Any = None) -> None:
        return None  # every element of the weight is there, whatever the input's mask

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "shape": list(self.weight_shape),
            "initializer": keras.initializers.serialize(self.initializer),
            "regularizer": keras.regularizers.serialize(self.regularizer),
            "constraint": keras.constraints.serialize(self.constraint),
        }


@keras.saving.register_keras_serializable(package=PACKAGE)
class Range(keras.layers.Layer):
    """Positions start, start + step, ... along axis `axis` of its input, one per element of
    that axis, for each sample: shape (batch, n), of `output_dtype`."""

    def __init__(self, axis: int, start: int = 0, step: int = 1, output_dtype: str = "int32", **kwargs: Any):
        super().__init__(**kwargs)
        self.supports_masking = True  # a masked input is read for its length only
        self.axis, self.start, self.step, self.output_dtype = int(axis), int(start), int(step), output_dtype

    def call(self, inputs: Any) -> Any:
        shape = ops.shape(inputs)
        n = shape[self.axis]
        positions = ops.arange(0, n, dtype=self.output_dtype) * ops.cast(self.step, self.output_dtype)
        positions = positions + ops.cast(self.start, self.output_dtype)
        return ops.broadcast_to(ops.expand_dims(positions, 0), (shape[0], n))

    def compute_output_spec(self, inputs: Any) -> keras.KerasTensor:
        return keras.KerasTensor((inputs.shape[0], inputs.shape[self.axis]), dtype=self.output_dtype)

    def compute_mask(self, inputs: Any, mask: Any = None) -> None:
        return None  # every position is counted, masked or not

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "axis": self.axis,
            "start": self.start,
            "step": self.step,
            "output_dtype": self.output_dtype,
        }


class _Random(keras.layers.Layer):
    """Random values shaped like its input, drawn in training; its mean otherwise. Like Keras's
    noise layers it obeys the model's `training`, or the node's own `call: {training: ...}`."""

    def __init__(self, seed: int | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.supports_masking = True
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        if training:
            return self.sample(ops.shape(inputs))
        return ops.full_like(inputs, self.mean_value(), dtype=self.compute_dtype)

    def compute_output_spec(self, inputs: Any, training: bool | None = None) -> keras.KerasTensor:
        return keras.KerasTensor(inputs.shape, dtype=self.compute_dtype)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "seed": self.seed}


@keras.saving.register_keras_serializable(package=PACKAGE)
class RandomNormal(_Random):
    """Normal values of `mean` and `stddev`, shaped like its input (`random: normal`)."""

    def __init__(self, mean: float = 0.0, stddev: float = 1.0, seed: int | None = None, **kwargs: Any):
        super().__init__(seed=seed, **kwargs)
        self.mean, self.stddev = float(mean), float(stddev)

    def sample(self, shape: Any) -> Any:
        return keras.random.normal(
            shape, mean=self.mean, stddev=self.stddev, dtype=self.compute_dtype, seed=self.seed_generator
        )

    def mean_value(self) -> float:
        return self.mean

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "mean": self.mean, "stddev": self.stddev}


@keras.saving.register_keras_serializable(package=PACKAGE)
class RandomUniform(_Random):
    """Uniform values in [minval, maxval), shaped like its input (`random: uniform`)."""

    def __init__(self, minval: float = 0.0, maxval: float = 1.0, seed: int | None = None, **kwargs: Any):
        super().__init__(seed=seed, **kwargs)
        self.minval, self.maxval = float(minval), float(maxval)

    def sample(self, shape: Any) -> Any:
        return keras.random.uniform(
            shape, minval=self.minval, maxval=self.maxval, dtype=self.compute_dtype, seed=self.seed_generator
        )

    def mean_value(self) -> float:
        return (self.minval + self.maxval) / 2

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "minval": self.minval, "maxval": self.maxval}


CLASSES: dict[str, type[keras.layers.Layer]] = {
    "Weight": Weight,
    "Range": Range,
    "RandomNormal": RandomNormal,
    "RandomUniform": RandomUniform,
}


def make_node_layer(node: LayerSpec, name: str) -> keras.layers.Layer:
    """The layer of a `weight`, `range` or `random` node, named `name`."""
    kind = nodes.kind_of(node)
    args = {k: _object(k, v) for k, v in node.args.items()}
    if kind == "weight":
        return Weight(node.weight, name=name, **args)
    if kind == "range":
        if "dtype" in args:
            args["output_dtype"] = args.pop("dtype")
        return Range(node.range, name=name, **args)
    return CLASSES[nodes.CLASSES[node.random]](name=name, **args)


def _object(arg: str, value: Any) -> Any:
    """An initializer, regularizer or constraint written `{type: NAME, ...}`, as Keras's config."""
    if isinstance(value, dict) and isinstance(value.get("type"), str):
        from graphspec.keras.build import object_config

        inner = dict(value)
        return object_config(inner.pop("type"), inner)
    return value


def node_of(layer: keras.layers.Layer) -> dict[str, Any] | None:
    """The spec node (without `in`) that builds `layer`, when it is one of graphspec's own;
    None otherwise. Arguments at their defaults are left out."""
    if isinstance(layer, Weight):
        node: dict[str, Any] = {"weight": list(layer.weight_shape)}
        args = {
            "initializer": _spec_object(keras.initializers.serialize(layer.initializer)),
            "regularizer": _spec_object(keras.regularizers.serialize(layer.regularizer)),
            "constraint": _spec_object(keras.constraints.serialize(layer.constraint)),
            "trainable": layer.trainable,
        }
    elif isinstance(layer, Range):
        node = {"range": layer.axis}
        args = {"start": layer.start, "step": layer.step, "dtype": layer.output_dtype}
    elif isinstance(layer, RandomNormal):
        node = {"random": "normal"}
        args = {"mean": layer.mean, "stddev": layer.stddev, "seed": layer.seed}
    elif isinstance(layer, RandomUniform):
        node = {"random": "uniform"}
        args = {"minval": layer.minval, "maxval": layer.maxval, "seed": layer.seed}
    else:
        return None
    kind = next(iter(node))
    defaults = nodes.ARGS[kind]
    node.update({k: v for k, v in args.items() if v != defaults.get(k)})
    if not isinstance(layer, Range):
        policy = layer.dtype_policy.name
        if policy != keras.config.dtype_policy().name:
            node["dtype"] = policy
    return node


def _spec_object(config: Any) -> Any:
    """Keras's serialized initializer (regularizer, constraint) as a spec writes it."""
    if config is None or isinstance(config, str):
        return config
    name = config.get("class_name")
    inner = {k: v for k, v in (config.get("config") or {}).items() if v is not None}
    defaults = {}
    for module in (keras.initializers, keras.regularizers, keras.constraints):
        cls = getattr(module, name, None)
        if isinstance(cls, type):
            try:
                defaults = cls().get_config()
            except Exception:
                defaults = {}
            break
    inner = {k: v for k, v in inner.items() if defaults.get(k, object()) != v}
    if not inner:
        snake = {"Zeros": "zeros", "Ones": "ones", "GlorotUniform": "glorot_uniform"}.get(name)
        if snake:
            return snake
    return {"type": name, **inner}
