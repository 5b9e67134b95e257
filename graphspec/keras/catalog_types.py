"""The argument types `catalog_gen` writes into `catalog.json`: a JSON Schema fragment per argument.

An argument's type is derived from its name and its Keras default (`units` is a positive
integer, `*_initializer` names an initializer, `padding` with a string default is one of Keras's
paddings, ...). Where that rule is wrong for a class, `EXCEPTIONS` says what is true instead, each
entry checked against Keras by tests/test_catalog_types.py, which constructs (and, where
construction accepts, calls) every typed layer with each type's examples and counter-examples.

Shared fragments live in the catalog's top-level `$defs` and are referenced as
`{"$ref": "#/$defs/NAME"}`; graphspec/spec/types.py checks values against them without Keras.
Run at generation time only (it reads the installed Keras's registries).
"""

from __future__ import annotations

import functools
import inspect
import re
import textwrap
from collections.abc import Callable
from typing import Any

from graphspec.spec.types import FALSE_VALUES

REF = "#/$defs/"

POSITIVE_INT = {"type": "integer", "minimum": 1}
NON_NEGATIVE_INT = {"type": "integer", "minimum": 0}
INT = {"type": "integer"}
RATE = {"type": "number", "minimum": 0, "maximum": 1}
NULL = {"type": "null"}
STRING = {"type": "string"}
BOOLEAN = {"type": "boolean"}
NUMBER = {"type": "number"}
NON_NEGATIVE = {"type": "number", "minimum": 0}
# A nested `{type: Name, ...}` object: its class and arguments are checked by check.py's own rules.
TYPED_OBJECT = {"type": "object", "required": ["type"]}


DTYPE = {"description": "a dtype name such as 'float32' or 'mixed_float16'", "type": "string"}
# A list of two numbers, the range of an image's values (the preprocessing layers' value_range).
VALUE_RANGE = {
    "description": "a list of two numbers, the lowest and the highest value",
    "type": "array",
    "items": {"type": "number"},
    "minItems": 2,
    "maxItems": 2,
}

# Losses' reductions (keras.src.losses.loss.standardize_reduction; None is taken too).
REDUCTIONS = ["sum_over_batch_size", "sum", "none", "mean", "mean_with_sample_weight"]
# A Python float: Keras's optimizers refuse an int learning rate (`learning_rate: 1`).
FLOAT = {
    "description": "a number with a decimal point (1.0, not 1)",
    "type": "number",
    "not": {"type": "integer"},
}


# A number Keras computes with, where true and false are taken as 1 and 0 (an optimizer's).
NUMBER_LIKE = {"description": "a number", "type": ["number", "boolean"]}


def ref(name: str) -> dict:
    return {"$ref": REF + name}


# Shared fragments that constrain nothing: Keras takes any value there, and build does too
# (tests/test_catalog_types.py builds each with a word, a list, a number and null). Recorded so
# that the schema and the editor describe the argument, and so that bench/bench_types.py counts
# it as known, apart from the typed ones.
ANY_VALUE = {
    "truth_value": {"description": "true or false (Keras takes any value, read as true or false)"},
    # MonitorCallback (EarlyStopping, ModelCheckpoint, ReduceLROnPlateau) warns of another mode
    # and uses 'auto'.
    "monitor_mode": {
        "description": "'auto', 'min' or 'max' (Keras warns of any other value and reads it as 'auto')"
    },
    "application_pooling": {
        "description": "'avg' or 'max', or null for none (Keras reads any other value as none)"
    },
}
TRUTH_VALUE = ref("truth_value")


def any_of(*fragments: dict) -> dict:
    return {"anyOf": list(fragments)}


def defs() -> dict[str, dict]:
    """The shared fragments, from the installed Keras's registries."""
    from keras.src import activations, constraints, initializers, regularizers

    def names(module: Any) -> list[str]:
        # Strings `get` resolves, and the `type` of a `{type: ...}` object: the registry's keys
        # that are not abstract base classes.
        base = {"Initializer", "Regularizer", "Constraint", "initializer", "regularizer", "constraint"}
        return sorted(n for n in module.ALL_OBJECTS_DICT if n not in base)

    def resolves(module: Any, name: str) -> bool:
        try:
            module.get(name)
        except Exception:  # e.g. 'constant', whose class needs an argument a name cannot give
            return False
        return True

    def name_or_object(module: Any, kind: str) -> dict:
        known = names(module)
        return {
            "description": f"{kind} name or {{type: ..., ...}}",
            "anyOf": [
                {"enum": [n for n in known if resolves(module, n)]},
                {"type": "object", "required": ["type"], "properties": {"type": {"enum": known}}},
            ],
        }

    # An activation a name can give: one whose function takes the tensor alone ('threshold' needs
    # two more arguments, and Keras refuses it when the layer is called).
    activation_names = sorted(
        n
        for n, f in activations.ALL_OBJECTS_DICT.items()
        if sum(p.default is p.empty for p in inspect.signature(f).parameters.values()) <= 1
    )
    return {
        "activation": {
            "description": "an activation name or a {type: ...} layer",
            "anyOf": [{"enum": activation_names}, TYPED_OBJECT],
        },
        "initializer": name_or_object(initializers, "an initializer"),
        "regularizer": name_or_object(regularizers, "a regularizer"),
        "constraint": name_or_object(constraints, "a constraint"),
        "padding": {"description": "'valid' or 'same'", "enum": ["valid", "same"]},
        "padding_causal": {"description": "'valid', 'same' or 'causal'", "enum": ["valid", "same", "causal"]},
        "data_format": {
            "description": "'channels_last' or 'channels_first'",
            "enum": ["channels_last", "channels_first"],
        },
        "positive_int": {"description": "a positive integer", **POSITIVE_INT},
        "number_like": NUMBER_LIKE,
        "numbers": {
            "description": "a number, or a list of numbers (broadcast over each weight)",
            "anyOf": [NUMBER_LIKE, {"type": "array", "items": NUMBER_LIKE}],
        },
        "rate": {"description": "a number from 0 to 1", **RATE},
        "float": FLOAT,
        "axis": {
            "description": "an integer or a list of integers",
            "anyOf": [INT, {"type": "array", "items": INT}],
        },
        **ANY_VALUE,
    }


def size(rank: int) -> dict:
    """A positive integer, or a list of `rank` of them (kernel_size, strides, pool_size...)."""
    return any_of(POSITIVE_INT, {"type": "array", "items": POSITIVE_INT, "minItems": rank, "maxItems": rank})


_RANK = re.compile(r"([123])D(Transpose)?$")
_POSITIVE = ("units", "filters", "input_dim", "output_dim", "num_heads", "key_dim")
_SIZES = ("kernel_size", "strides", "dilation_rate", "pool_size")
_RATES = ("rate", "dropout", "recurrent_dropout")

# Ops that read more than one tensor `x` whose arguments are typed all the same: the values of
# their other required arguments (and an axis that fits them) that tests/test_catalog_types.py
# calls them with, on a (2, 5, 6) tensor (or its OP_INPUT_SHAPES's).
OP_ARGUMENTS: dict[str, dict[str, Any]] = {
    "take": {"indices": 0},
    "split": {"indices_or_sections": 2, "axis": -1},
    "array_split": {"indices_or_sections": 2},
    "argpartition": {"kth": 1},
    "cast": {"dtype": "float16"},
    "expand_dims": {"axis": 0},
    "full_like": {"fill_value": 1},
    "moments": {"axes": [1]},
    "nanpercentile": {"q": 50},
    "nanquantile": {"q": 0.5},
    "one_hot": {"num_classes": 3},
    "diff": {},
    "moveaxis": {"source": 0, "destination": 1},
    "multi_hot": {"num_classes": 3},
    "repeat": {"repeats": 2},
    "roll": {"shift": 1},
    "percentile": {"q": 50},
    "quantile": {"q": 0.5},
    "saturate_cast": {"dtype": "float16"},
    "average_pool": {"pool_size": 2},
    "max_pool": {"pool_size": 2},
    "top_k": {"k": 2},
    "tile": {"repeats": 2},
    "swapaxes": {"axis1": 0, "axis2": 1},
    "trapezoid": {},
    "rot90": {},
    "broadcast_to": {"shape": [2, 5, 6]},
    "extract_sequences": {"sequence_length": 2, "sequence_stride": 1},
    "clip": {"x_min": 0, "x_max": 1},
    "threshold": {"threshold": 0.5, "default_value": 0},
    "depth_to_space": {"block_size": 2},
    "space_to_depth": {"block_size": 2},
}

# A binary op's second operand written in a node (`{op: subtract, in: h, x2: 1}`; a tensor comes
# by `in:`): Keras promotes its type with the tensor's, which a string has none of.
OPERAND = {
    "description": "a number, or true or false (a tensor comes by `in:`)",
    "type": ["number", "boolean"],
}
# The binary ops left untyped: those whose symbolic call takes a string operand (compared, or
# never promoted), and those that take a tensor alone there (no literal is taken: untested).
UNTYPED_OPERANDS = {
    "append", "correlate", "cross", "heaviside", "hypot", "matmul", "psnr",
    "allclose", "arctan2", "equal", "greater", "greater_equal", "isclose", "isin", "less",
    "less_equal", "logical_and", "logical_or", "logical_xor", "not_equal",
}  # fmt: skip


def _pairs(items: dict, count: int) -> dict:
    """A list of exactly `count` values of type `items`."""
    return {"type": "array", "items": items, "minItems": count, "maxItems": count}


# True and false are taken as 1 and 0 by the fragments below that take them.
_INT_LIKE = {"description": "an integer", "anyOf": [INT, BOOLEAN]}
_NUMBER_OR_NULL = any_of(NUMBER_LIKE, NULL)
# A count from 0.
_COUNT = {"description": "a count from 0", "anyOf": [NON_NEGATIVE_INT, BOOLEAN]}
_POSITIVE_LIKE = {"description": "a positive integer", "anyOf": [POSITIVE_INT, {"enum": [True]}]}
_NON_NEGATIVE_LIKE = {"type": ["number", "boolean"], "minimum": 0}
_POSITIVE_NUMBER = {"type": "number", "exclusiveMinimum": 0}
_POSITIVE_NUMBERS = {
    "description": "a number above 0, or a list of them",
    "anyOf": [_POSITIVE_NUMBER, {"enum": [True]}, {"type": "array", "items": _POSITIVE_NUMBER}],
}
_AXIS_OR_NULL = {
    "description": "an integer or a list of integers, or null",
    "anyOf": [INT, {"type": "array", "items": INT}, BOOLEAN, NULL],
}


def _factor(minimum: int | None) -> dict:
    """An image layer's fraction from -1 to 1 (above -1 where `minimum` is None), or a pair."""
    bound = {"minimum": minimum} if minimum is not None else {"exclusiveMinimum": -1}
    one = {"type": ["number", "boolean"], **bound, "maximum": 1}
    low = "-1" if minimum is not None else "above -1"
    return {
        "description": f"a fraction from {low} to 1, or a pair of them",
        "anyOf": [one, {**_pairs(one, 2), "examples": [[-0.2, 0.3]]}],
    }


def _zero_padding(rank: int) -> dict:
    """A ZeroPadding layer's `padding`: one integer, or `rank` of them, each one or a pair."""
    side = {"anyOf": [INT, BOOLEAN]}
    return {
        "description": f"an integer, or a list of {rank} (each an integer or a pair of them)",
        "anyOf": [side, _pairs({"anyOf": [side, _pairs(side, 2)]}, rank)],
    }


# Where the rule of a name is wrong for a class: (section, class, argument) -> the fragment that
# holds instead, or None for "leave untyped". Each was found by constructing the class in Keras.
@functools.cache
def image_factor(name: str) -> dict | None:
    """The `factor` of image layer `name` where Keras's base image layer checks it
    (`_set_factor`, against the class's `_FACTOR_BOUNDS`): a number within the bounds, or a
    [low, high] pair whose low is at most the upper bound and whose high at least the lower one
    (Keras sorts the pair and checks no more); None for a layer that checks its own. Where the
    base layer's constructor checks it (`_USE_BASE_FACTOR`), a false factor is read as 0."""
    import keras
    from keras.src.layers.preprocessing.image_preprocessing.base_image_preprocessing_layer import (
        BaseImagePreprocessingLayer as Base,
    )

    cls = getattr(keras.layers, name, None)
    if not (isinstance(cls, type) and issubclass(cls, Base) and cls._set_factor is Base._set_factor):
        return None
    checked_here = "self._set_factor(factor)" in inspect.getsource(cls.__init__)
    if not (checked_here or cls._USE_BASE_FACTOR):
        return None
    low, high = cls._FACTOR_BOUNDS
    alternatives = [
        {"type": "number", "minimum": low, "maximum": high},
        {
            "type": "array",
            "minItems": 2,
            "maxItems": 2,
            "prefixItems": [{"type": "number", "maximum": high}, {"type": "number", "minimum": low}],
        },
    ]
    if not checked_here:  # `factor or 0.0`
        alternatives += [{"enum": [False, ""]}, NULL, {"type": "array", "maxItems": 0}]
    return {
        "description": f"a number from {low} to {high}, or a list of two: [low, high]",
        "anyOf": alternatives,
        "examples": [low, high, [low, high], [low - 1, high], *([] if checked_here else [None, False, []])],
    }


EXCEPTIONS: dict[tuple[str, str, str], dict | None] = {
    # int(axis): a list is refused, a float is rounded down.
    ("layers", "BatchNormalization", "axis"): {"type": "number"},
    # One axis: a list is taken when constructed and refused when called.
    ("layers", "Concatenate", "axis"): INT,
    ("layers", "GroupNormalization", "axis"): INT,
    # Keras clips a recurrent layer's dropout rates to [0, 1] and takes an attention layer's
    # dropout as any number: only a number is checked.
    **{
        ("layers", layer, arg): {"type": "number"}
        for layer in ("LSTM", "GRU", "SimpleRNN", "ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D")
        for arg in ("dropout", "recurrent_dropout")
    },
    # So do the cells (GRUCell(dropout=3) is taken).
    **{
        ("layers", cell, arg): {"type": "number"}
        for cell in ("LSTMCell", "GRUCell", "SimpleRNNCell")
        for arg in ("dropout", "recurrent_dropout")
    },
    ("layers", "Attention", "dropout"): {"type": "number"},
    ("layers", "AdditiveAttention", "dropout"): {"type": "number"},
    # ConvLSTM takes filters=0.
    **{("layers", f"ConvLSTM{n}D", "filters"): NON_NEGATIVE_INT for n in (1, 2, 3)},
    # The adaptive poolings read a false data_format (0, '') as the default one.
    **{
        ("layers", f"Adaptive{kind}Pooling{n}D", "data_format"): any_of(
            ref("data_format"), {"enum": [0, False, ""]}
        )
        for kind in ("Average", "Max")
        for n in (1, 2, 3)
    },
    # Ops that take one axis, not a list, when built (the test calls each on a symbolic input, as
    # a functional build does).
    **{
        ("ops", op, "axis"): INT
        for op in (
            "argmax",
            "argmin",
            "cumprod",
            "cumsum",
            "glu",
            "nanargmax",
            "nanargmin",
            "sparsemax",
            "unique",
            "unstack",
        )
    },
    ("ops", "take", "axis"): INT,
    ("ops", "split", "axis"): INT,
    # A number of equal sections, or the indices to split at (a float, and a negative index, are
    # refused on every backend, built or run).
    ("ops", "split", "indices_or_sections"): {
        "description": "a positive integer or a list of integers of at least 0",
        "anyOf": [POSITIVE_INT, {"type": "array", "items": NON_NEGATIVE_INT}],
    },
    # A computation rounds argsort's and sort's float axis down, and average takes a list of
    # axes, but a build refuses both.
    ("ops", "argsort", "axis"): INT,
    ("ops", "sort", "axis"): INT,
    ("ops", "average", "axis"): INT,
    # A build takes any axis of nancumprod, nancumsum and argpartition (their shape is the
    # input's), and softmax's and log_softmax's list of axes.
    ("ops", "nancumprod", "axis"): None,
    ("ops", "nancumsum", "axis"): None,
    ("ops", "argpartition", "axis"): None,
    ("ops", "array_split", "axis"): INT,
    ("ops", "one_hot", "axis"): INT,
    ("ops", "multi_hot", "axis"): INT,
    ("ops", "repeat", "axis"): INT,
    ("ops", "diff", "axis"): INT,
    ("ops", "diagonal", "axis1"): INT,
    ("ops", "diagonal", "axis2"): INT,
    # A build takes a negative count of differences (their shape is the input's), and a float
    # offset of diagonal and diagflat; not a word or a list.
    ("ops", "diff", "n"): INT,
    ("ops", "diagonal", "offset"): NUMBER,
    ("ops", "diagflat", "k"): NUMBER,
    # One count for every element, or a list of counts (one per element along the axis).
    ("ops", "repeat", "repeats"): any_of(NON_NEGATIVE_INT, {"type": "array", "items": NON_NEGATIVE_INT}),
    ("ops", "moveaxis", "source"): ref("axis"),
    ("ops", "moveaxis", "destination"): ref("axis"),
    # Whether norm takes its keepdims depends on the tensor's shape (at most 2 axes: the test's
    # rank-3 tensor is refused whatever its keepdims; its axis is typed below); stack's x is a
    # list of tensors.
    ("ops", "norm", "keepdims"): None,
    # Which axes squeeze takes depends on the shape (of size 1), but an axis is an integer or a
    # list of them whatever the shape.
    ("ops", "squeeze", "axis"): any_of(INT, {"type": "array", "items": INT}),
    ("ops", "stack", "axis"): None,
    # Flags of ops that take any value when built but are computed on the test's ones only where
    # they fit them (cholesky needs a positive definite matrix, bincount integers), or
    # that TensorFlow refuses to compute with anything but true or false (svd's): left untyped.
    **{
        ("ops", op, arg): None
        for op, arg in (
            ("bincount", "sparse"),
            ("cholesky", "upper"),
            ("cholesky_inverse", "upper"),
            ("svd", "compute_uv"),
            ("svd", "full_matrices"),
        )
    },
    # A number of columns (null: as many as the input's values), and whether their powers
    # increase, which is checked to be true or false.
    ("ops", "vander", "N"): any_of(NON_NEGATIVE_INT, BOOLEAN),
    ("ops", "vander", "increasing"): BOOLEAN,
    # The block's side: at least 2 (the channels must divide by its square, which the input's
    # shape says).
    **{
        ("ops", op, "block_size"): {
            "description": "an integer of at least 2",
            "type": "integer",
            "minimum": 2,
            "examples": [2],
        }
        for op in ("depth_to_space", "space_to_depth")
    },
    **{
        ("ops", op, "data_format"): any_of(ref("data_format"), NULL)
        for op in ("depth_to_space", "space_to_depth")
    },
    # float(epsilon): a list or a word is refused (LayerNormalization builds with epsilon: 'abc',
    # so its epsilon stays untyped).
    ("layers", "BatchNormalization", "epsilon"): {"type": "number"},
    # ReLU refuses a negative max_value (and anything not comparable with 0.0).
    ("layers", "ReLU", "max_value"): {"type": "number", "minimum": 0},
    # The equation is matched with re: anything but a string is refused.
    ("layers", "EinsumDense", "equation"): {
        "description": "an einsum equation such as 'ab,bc->ac'",
        "type": "string",
    },
    # The output's sizes, a number or a list (null for a size taken from the input): a negative
    # size is refused when the layer is built.
    ("layers", "EinsumDense", "output_shape"): {
        "description": "a size or a list of sizes of at least 0 (null for one taken from the input)",
        "anyOf": [NON_NEGATIVE_INT, {"type": "array", "items": any_of(NON_NEGATIVE_INT, NULL)}],
    },
    # SimpleRNN takes activity_regularizer and never reads it: any value passes.
    ("layers", "SimpleRNN", "activity_regularizer"): None,
    # AugMix refuses to be called when constructed with `trainable` at all (it is not trainable);
    # HashedCrossing and the lookup layers take any value, and the lookups any dtype (theirs is
    # the vocabulary's, read when adapted).
    ("layers", "AugMix", "trainable"): None,
    ("layers", "HashedCrossing", "trainable"): None,
    **{
        (("layers", layer, arg)): None
        for layer in ("IntegerLookup", "StringLookup")
        for arg in ("trainable", "dtype")
    },
    # Flags whose true value needs another argument set (an output_mode that is not 'int',
    # max_tokens): which values are taken depends on the others, which a type cannot say.
    **{
        ("layers", layer, "sparse"): None
        for layer in ("Discretization", "IntegerLookup", "StringLookup", "TextVectorization")
    },
    **{
        ("layers", layer, "pad_to_max_tokens"): None
        for layer in ("IntegerLookup", "StringLookup", "TextVectorization")
    },
    # An image augmentation's own strengths (its `factor` is `image_factor`'s): a number from 0
    # to 1, or a [low, high] pair of them; RandomGrayscale's factor and RandomPerspective's scale
    # take the number alone.
    **{
        ("layers", layer, arg): any_of(RATE, {"type": "array", "items": RATE, "minItems": 2, "maxItems": 2})
        for layer, arg in (
            # AugMix checks each of its factor's numbers again, within its bounds.
            ("AugMix", "factor"),
            ("RandomElasticTransform", "scale"),
            ("RandomErasing", "scale"),
            ("RandomGaussianBlur", "sigma"),
            ("RandomShear", "x_factor"),
            ("RandomShear", "y_factor"),
            ("Solarization", "addition_factor"),
            ("Solarization", "threshold_factor"),
        )
    },
    ("layers", "RandomGrayscale", "factor"): ref("rate"),
    ("layers", "RandomPerspective", "scale"): ref("rate"),
    # A convolution's groups divide its filters and its input's channels (which a type cannot
    # check): a positive integer.
    **{("layers", f"Conv{n}D", "groups"): ref("positive_int") for n in (1, 2, 3)},
    # What is cropped (or padded) off each end: a size, a size per axis, or (2D, 3D) a pair per axis.
    ("layers", "Cropping1D", "cropping"): any_of(NON_NEGATIVE_INT, _pairs(NON_NEGATIVE_INT, 2)),
    ("layers", "ZeroPadding1D", "padding"): any_of(NON_NEGATIVE_INT, _pairs(NON_NEGATIVE_INT, 2)),
    **{
        ("layers", f"Cropping{n}D", "cropping"): any_of(
            NON_NEGATIVE_INT, _pairs(NON_NEGATIVE_INT, n), _pairs(_pairs(NON_NEGATIVE_INT, 2), n)
        )
        for n in (2, 3)
    },
    # 'auto', or whether to use cuDNN (Keras compares it with True and False, so 1 and 0 too).
    **{("layers", layer, "use_cudnn"): {"enum": ["auto", True, False, 1, 0]} for layer in ("LSTM", "GRU")},
    # CLAHE takes any value_range when constructed, and divides by its width when it computes (a
    # range of no width is refused there, which a type cannot say). The others read theirs only
    # when they compute: `COMPUTED`.
    ("layers", "ContrastLimitedAdaptiveHistogramEqualization", "value_range"): None,
    # An adaptive pooling builds to a size of 0 (any value is refused only when computed).
    **{
        ("layers", f"Adaptive{kind}Pooling{n}D", "output_size"): any_of(
            NON_NEGATIVE_INT, {"type": "array", "items": NON_NEGATIVE_INT, "minItems": n, "maxItems": n}
        )
        for kind in ("Average", "Max")
        for n in (1, 2, 3)
    },
    # momentum is a number (a word or a list is refused when constructed).
    ("layers", "BatchNormalization", "momentum"): NUMBER,
    # RandomColorJitter passes value_range on unread to layers it makes only when its factors are given.
    ("layers", "RandomColorJitter", "value_range"): None,
    # ReLU and LeakyReLU refuse a negative slope or threshold.
    ("layers", "ReLU", "negative_slope"): NON_NEGATIVE,
    ("layers", "ReLU", "threshold"): NON_NEGATIVE,
    ("layers", "LeakyReLU", "negative_slope"): NON_NEGATIVE,
    # ActivityRegularization's factors: at least 0, or null for none.
    ("layers", "ActivityRegularization", "l1"): any_of(NON_NEGATIVE, NULL),
    ("layers", "ActivityRegularization", "l2"): any_of(NON_NEGATIVE, NULL),
    # Enumerations Keras checks in the constructor.
    ("layers", "Attention", "score_mode"): {"enum": ["dot", "concat"]},
    ("layers", "CategoryEncoding", "output_mode"): {"enum": ["count", "one_hot", "multi_hot"]},
    ("layers", "HashedCrossing", "output_mode"): {"enum": ["int", "one_hot"]},
    # A number of bins: any value is taken in `int` mode when built; a shape refuses a word or
    # a fraction in `one_hot` mode, where `types_where` types it.
    ("layers", "HashedCrossing", "num_bins"): None,
    # HashedCrossing never reads activity_regularizer: any value passes.
    ("layers", "HashedCrossing", "activity_regularizer"): None,
    # Counts compared with numbers when constructed: num_tokens must be set, and max_tokens, where
    # set, above 1.
    ("layers", "CategoryEncoding", "num_tokens"): ref("positive_int"),
    **{
        ("layers", layer, "max_tokens"): {"type": "number", "exclusiveMinimum": 1}
        for layer in ("IntegerLookup", "StringLookup", "TextVectorization")
    },
    ("layers", "STFTSpectrogram", "mode"): {
        "enum": ["log", "magnitude", "psd", "real", "imag", "angle", "stft"]
    },
    ("layers", "STFTSpectrogram", "scaling"): {"enum": ["density", "spectrum"]},
    ("layers", "STFTSpectrogram", "periodic"): BOOLEAN,
    ("layers", "MultiHeadAttention", "value_dim"): ref("positive_int"),
    # ConvNeXt's LayerScale: its weight's size and the constant it starts at (broadcast over it).
    ("application_layers", "applications.convnext.LayerScale", "projection_dim"): ref("positive_int"),
    ("application_layers", "applications.convnext.LayerScale", "init_values"): NUMBER,
    # InceptionResNetV2's residual scale, multiplied with a tensor when called.
    ("application_layers", "applications.inception_resnet_v2.CustomScaleLayer", "scale"): NUMBER,
    # An even number, a list or a word is refused when constructed, but an odd number of any sign
    # (or a fraction) is taken by a build: no type of the catalog's says that.
    ("layers", "RandomGaussianBlur", "kernel_size"): None,
    # Found by building each untyped argument with odd values (a word, numbers of each sign, a
    # fraction, lists, null, true and false): what a build refuses and what it takes.
    # A count from 0, true and false taken as 1 and 0 (LoRA's rank, 0 for none; null too, their
    # default where it is None).
    **{("layers", layer, "lora_rank"): _COUNT for layer in ("Dense", "EinsumDense", "Embedding")},
    ("layers", "MelSpectrogram", "num_mel_bins"): any_of(_COUNT, NULL),
    ("layers", "TextVectorization", "output_sequence_length"): _COUNT,
    # Compared with 0 and used as a count: a fraction from 0 is taken.
    **{
        ("layers", layer, "num_oov_indices"): {"description": "a number from 0", **_NON_NEGATIVE_LIKE}
        for layer in ("IntegerLookup", "StringLookup")
    },
    ("layers", "MelSpectrogram", "sequence_stride"): _POSITIVE_LIKE,
    ("layers", "MelSpectrogram", "sampling_rate"): NUMBER_LIKE,
    ("layers", "MelSpectrogram", "sequence_length"): NUMBER_LIKE,
    # Axes as a layer's `axis`: true and false are taken as 1 and 0.
    ("layers", "MultiHeadAttention", "attention_axes"): _AXIS_OR_NULL,
    ("layers", "PReLU", "shared_axes"): _AXIS_OR_NULL,
    # The last axis's size of the output, or the sizes of its last axes.
    ("layers", "MultiHeadAttention", "output_shape"): {
        "description": "a size from 0, or a list of sizes",
        "anyOf": [NON_NEGATIVE_INT, {"type": "array", "items": NON_NEGATIVE_INT}, BOOLEAN],
    },
    ("layers", "MultiHeadAttention", "sliding_window"): _POSITIVE_LIKE,
    # An integer (a YAML list is refused: Keras takes a tuple only).
    ("layers", "TextVectorization", "ngrams"): _INT_LIKE,
    ("layers", "StringLookup", "mask_token"): {"description": "a string", "type": "string"},
    # A divisor of the channels (which a type cannot know), or -1 for one group per channel.
    ("layers", "GroupNormalization", "groups"): {
        "description": "a positive integer, or -1",
        "anyOf": [POSITIVE_INT, {"enum": [-1, True]}],
    },
    # Checked against the backend's methods only when an image is resized, in training.
    ("layers", "UpSampling2D", "interpolation"): {"description": "an interpolation's name", "type": "string"},
    # An amount for every side, or one per spatial axis (each a number or a pair before and after).
    ("layers", "ZeroPadding2D", "padding"): _zero_padding(2),
    ("layers", "ZeroPadding3D", "padding"): _zero_padding(3),
    # True only with an output_mode of one_hot, multi_hot or count: not any value, as a flag's
    # (false where output_mode is int: `types_where`).
    ("layers", "Hashing", "sparse"): None,
    ("layers", "Hashing", "output_mode"): {"enum": ["int", "one_hot", "multi_hot", "count"]},
    ("layers", "Hashing", "num_bins"): {
        "description": "a number above 0",
        "anyOf": [_POSITIVE_NUMBER, {"enum": [True]}],
    },
    # One integer, or a pair of them (a list of one or three is refused).
    ("layers", "Hashing", "salt"): {
        "description": "an integer or a pair of them",
        "anyOf": [INT, BOOLEAN, _pairs(INT, 2)],
    },
    ("layers", "MaxNumBoundingBoxes", "max_number"): NUMBER_LIKE,
    ("layers", "MaxNumBoundingBoxes", "fill_value"): NUMBER_LIKE,
    # Heads and their size: the key and value heads must divide the query heads (which a type
    # cannot know), and there may be no query head at all.
    ("layers", "GroupQueryAttention", "head_dim"): _POSITIVE_LIKE,
    ("layers", "GroupQueryAttention", "num_key_value_heads"): _POSITIVE_LIKE,
    ("layers", "GroupQueryAttention", "num_query_heads"): _COUNT,
    ("layers", "GroupQueryAttention", "sliding_window"): _POSITIVE_LIKE,
    # A fraction of the image's height or width, from -1 to 1, or a pair of them (lower, upper);
    # RandomZoom refuses -1 (nothing left to zoom into).
    **{("layers", "RandomTranslation", arg): _factor(-1) for arg in ("height_factor", "width_factor")},
    **{("layers", "RandomZoom", arg): _factor(None) for arg in ("height_factor", "width_factor")},
    # One axis (a list is refused); cross needs an axis of 2 or 3, which the test's input has
    # not: untyped.
    ("ops", "append", "axis"): {"description": "an integer, or null", "anyOf": [INT, NULL]},
    ("ops", "cross", "axis"): None,
    ("ops", "top_k", "k"): any_of(_COUNT, NULL),
    ("ops", "tile", "repeats"): {
        "description": "a count from 0, or a list of them",
        "anyOf": [NON_NEGATIVE_INT, BOOLEAN, {"type": "array", "items": NON_NEGATIVE_INT}],
    },
    **{("ops", "swapaxes", arg): _INT_LIKE for arg in ("axis1", "axis2")},
    ("ops", "trapezoid", "axis"): {"description": "an integer, or null", "anyOf": [INT, BOOLEAN, NULL]},
    # RandomColorJitter makes a RandomBrightness, RandomContrast, RandomSaturation or RandomHue of
    # each factor given (none for null), which checks it.
    **{
        ("layers", "RandomColorJitter", f"{kind}_factor"): any_of(image_factor(f"Random{kind.title()}"), NULL)
        for kind in ("brightness", "contrast", "saturation", "hue")
    },
    # RandAugment and AugMix pass their interpolation to a RandomRotation (among others), which
    # takes these alone.
    **{
        ("layers", layer, "interpolation"): {"enum": ["bilinear", "nearest"]}
        for layer in ("RandAugment", "AugMix")
    },
    # A size of the output image: shapes refuse a word, a fraction or a negative size when built
    # (0 is taken).
    **{
        ("layers", layer, arg): NON_NEGATIVE_INT
        for layer in ("CenterCrop", "RandomCrop", "Resizing")
        for arg in ("height", "width")
    },
    ("layers", "RepeatVector", "n"): ref("positive_int"),
    # A permutation of the input's axes from 1 (which ones, the input's rank says).
    ("layers", "Permute", "dims"): {
        "description": "a list of the input's axes from 1, in their new order",
        "type": "array",
        "items": POSITIVE_INT,
        "minItems": 1,
        "examples": [[2, 1]],
    },
    ("layers", "GaussianNoise", "stddev"): NON_NEGATIVE,
    # The axis of each input to sum over, or one for both.
    ("layers", "Dot", "axes"): any_of(INT, _pairs(INT, 2)),
    # The ops' arguments found the same way, built on a symbolic (2, 5, 6) input.
    ("ops", "histogram", "bins"): _COUNT,
    ("ops", "unique", "size"): _COUNT,
    ("ops", "unstack", "num"): _POSITIVE_LIKE,
    ("ops", "rfft", "fft_length"): _INT_LIKE,
    # A number of classes: 0 is taken. (multi_hot's has a default of None, which it refuses: a
    # type would take null there.)
    ("ops", "one_hot", "num_classes"): NON_NEGATIVE_INT,
    ("ops", "qr", "mode"): {"enum": ["reduced", "complete"]},
    # A permutation of the input's axes (which ones, its rank says), or null to reverse them.
    ("ops", "transpose", "axes"): {
        "description": "a list of the input's axes in their new order, or null",
        "anyOf": [{"type": "array", "items": INT, "examples": [[0, 2, 1]]}, NULL],
    },
    **{("ops", "trace", arg): INT for arg in ("axis1", "axis2")},
    ("ops", "rot90", "axes"): {**_pairs(INT, 2), "examples": [[0, 1], [1, 2]]},
    ("ops", "moments", "axes"): ref("axis"),
    ("ops", "argpartition", "kth"): INT,
    ("ops", "array_split", "indices_or_sections"): ref("positive_int"),
    # The shape to broadcast to: sizes from 0 (which ones, the input's shape says).
    ("ops", "broadcast_to", "shape"): {
        "description": "a list of sizes from 0",
        "type": "array",
        "items": NON_NEGATIVE_INT,
        "examples": [[2, 5, 6], [3, 2, 5, 6]],
    },
    ("ops", "extract_sequences", "sequence_length"): NON_NEGATIVE_INT,
    ("ops", "extract_sequences", "sequence_stride"): ref("positive_int"),
    # Which axes norm takes depends on the shape (at most 2), but they are integers or null.
    ("ops", "norm", "axis"): _AXIS_OR_NULL,
    **{
        ("ops", pool, arg): fragment
        for pool in ("average_pool", "max_pool")
        for arg, fragment in (
            # Divided by, as numbers: a fraction is taken, 0 or less refused.
            ("strides", _POSITIVE_NUMBERS),
            ("pool_size", _POSITIVE_NUMBERS),
            ("padding", ref("padding")),
            ("data_format", ref("data_format")),
        )
    },
}


def _resize_interpolations() -> dict:
    """The interpolations an image is resized with: TensorFlow's, the widest of the backends'
    (JAX's and PyTorch's are fewer: a spec that names 'area' builds on TensorFlow only). Read
    when the catalog is made, not when this module is imported."""
    from keras.src.backend.tensorflow import image

    return {"enum": list(image.RESIZE_INTERPOLATIONS)}


# A number, or a list of numbers broadcast against the op's input (one per item of its last axis).
_BROADCAST = {
    "description": "a number, or a list of numbers broadcast against the input",
    "anyOf": [NUMBER_LIKE, {"type": "array", "items": NUMBER_LIKE}],
}
_QUANTILE_METHODS = {"enum": ["linear", "lower", "higher", "midpoint", "nearest"]}
# Ops' arguments Keras reads only when it computes: a symbolic build takes any value. Build
# computes each op node that writes one once, on ones shaped like its operands
# (graphspec/keras/build.py `check_computed`), so that it refuses what validate does; a node
# whose operands and output hold more than graphspec.keras.scratch's `MAX_SCRATCH_VALUES` is
# left to training. Only arguments with a default: the one to blame is found by computing
# without it. Not the arguments whose value the work grows with (a matrix_rank's or pinv's
# decomposition, RandAugment's num_ops, AugMix's num_chains, Equalization's bins,
# RandomGaussianBlur's kernel_size, Dropout's noise_shape, CLAHE's tile_grid_size): a spec of a
# few bytes would make build compute for minutes or fill the memory, so they stay untyped.
COMPUTED: dict[tuple[str, str, str], dict | Callable[[], dict]] = {
    **{("ops", op, arg): INT for op, arg in (("tril", "k"), ("rot90", "k"), ("trace", "offset"))},
    # TensorFlow's triu takes a list of one positive integer too (k > 0 is one truth value).
    ("ops", "triu", "k"): {"description": "an integer", "anyOf": [INT, _pairs(POSITIVE_INT, 1)]},
    ("ops", "round", "decimals"): NUMBER,
    # A build takes a fraction; a computation refuses it (and a diagonal past the matrix).
    ("ops", "diag", "k"): _INT_LIKE,
    # Required arguments, computed with COMPUTED_STAND_INS's values in their place: roll's shift
    # (an integer: true, a fraction and a list are refused), and the bounds of clip and the
    # value and replacement of threshold (numbers, or lists broadcast against the input).
    ("ops", "roll", "shift"): INT,
    **{("ops", op, arg): _BROADCAST for op, arg in (("clip", "x_min"), ("clip", "x_max"))},
    **{("ops", "threshold", arg): _BROADCAST for arg in ("threshold", "default_value")},
    **{
        ("ops", op, arg): _BROADCAST
        for op, arg in (
            ("celu", "alpha"),
            ("elu", "alpha"),
            ("hard_shrink", "threshold"),
            ("squareplus", "b"),
            ("nan_to_num", "nan"),
            ("nan_to_num", "posinf"),
            ("nan_to_num", "neginf"),
            ("max", "initial"),
            ("min", "initial"),
        )
    },
    ("ops", "leaky_relu", "negative_slope"): NUMBER,
    ("ops", "trapezoid", "dx"): _BROADCAST,
    ("ops", "soft_shrink", "threshold"): NUMBER,
    # An integer from 1 (1.0 is refused).
    ("ops", "normalize", "order"): ref("positive_int"),
    # The operation quantile saves never passes its method on (keras.src.ops.numpy.Quantile):
    # any value is taken, and linear used.
    **{("ops", op, "method"): _QUANTILE_METHODS for op in ("percentile", "nanpercentile", "nanquantile")},
    # TensorFlow's computation refuses all but true and false.
    ("ops", "top_k", "sorted"): BOOLEAN,
    # Layers' arguments read only when the layer computes: build calls a new layer of the same
    # arguments once on ones shaped like the node's input (in training, where the call takes
    # `training`: an augmentation reads its own there), and `check_computed` refuses an
    # argument without which it computes.
    **{
        ("layers", layer, arg): _BROADCAST
        for layer, arg in (
            ("ELU", "alpha"),
            ("LayerNormalization", "epsilon"),
            ("RMSNormalization", "epsilon"),
            ("GroupNormalization", "epsilon"),
            ("Rescaling", "offset"),
            ("Masking", "mask_value"),
            ("MixUp", "alpha"),
        )
    },
    ("layers", "AugMix", "alpha"): NUMBER,
    ("layers", "Softmax", "axis"): ref("axis"),
    ("layers", "Resizing", "interpolation"): _resize_interpolations,
    # The range of an image's values, read when an augmentation computes: RandomHue checks it
    # is a pair; the others read its first two numbers.
    ("layers", "RandomHue", "value_range"): VALUE_RANGE,
    **{
        ("layers", layer, "value_range"): {key: v for key, v in VALUE_RANGE.items() if key != "maxItems"}
        for layer in (
            "RandomContrast",
            "RandomElasticTransform",
            "RandomErasing",
            "RandomGaussianBlur",
            "RandomInvert",
        )
    },
    # The value of the pixels an augmentation fills in (Resizing's is used only with
    # pad_to_aspect_ratio: untyped).
    **{
        ("layers", layer, "fill_value"): NUMBER
        for layer in ("RandomRotation", "RandomZoom", "RandomTranslation", "RandomShear", "RandomPerspective")
    },
    ("layers", "RandomErasing", "fill_value"): NUMBER,
    ("layers", "RandomElasticTransform", "fill_value"): _BROADCAST,
    # The dropout mask's shape: a size (1 to share the mask along the axis) or null (the
    # input's) for each axis, or null for the input's shape.
    ("layers", "ContrastLimitedAdaptiveHistogramEqualization", "clip_limit"): NUMBER,
    # A list of dimension sizes (-1 or null for one inferred): a single number, true or false is
    # refused when built; a word is read as a list of letters, built to an output of unknown
    # sizes and refused when computed (computed with [-1] in its place: COMPUTED_STAND_INS).
    ("layers", "Reshape", "target_shape"): {
        "description": "a list of integers (-1 for one dimension inferred)",
        "type": "array",
        "items": any_of(NUMBER, NULL),
        "minItems": 1,
        "examples": [[30], [-1], [5, 6], [None, 6]],
    },
}
# What a required argument of `COMPUTED` is computed with in its place, to tell whether it is to
# blame (an argument with a default is computed without it).
COMPUTED_STAND_INS: dict[tuple[str, str, str], Any] = {
    ("layers", "Reshape", "target_shape"): [-1],
    ("ops", "roll", "shift"): 0,
    ("ops", "clip", "x_min"): 0,
    ("ops", "clip", "x_max"): 1,
    ("ops", "threshold", "threshold"): 0,
    ("ops", "threshold", "default_value"): 0,
}


def _computed_type(key: tuple[str, str, str]) -> dict:
    fragment = COMPUTED[key]
    return fragment() if callable(fragment) else fragment


def computed(section: str, name: str, entry: dict) -> list[str]:
    """The arguments of catalog entry `entry` that build checks by computing (`COMPUTED`)."""
    found = [arg for arg in entry.get("init", entry.get("args", ())) if (section, name, arg) in COMPUTED]
    if missing := [
        arg
        for arg in found
        if arg not in entry.get("defaults", {}) and (section, name, arg) not in COMPUTED_STAND_INS
    ]:
        # The argument to blame is found by computing without it, which needs its default (or a
        # stand-in).
        raise ValueError(f"{section}.{name}: COMPUTED arguments without a default or a stand-in: {missing}")
    return found


def stand_ins(section: str, name: str, computed_args: list[str]) -> dict[str, Any]:
    """`{argument: value}`: what each required argument among `computed_args` (the entry's
    `computed`) is computed with in its place (`COMPUTED_STAND_INS`)."""
    return {
        arg: COMPUTED_STAND_INS[section, name, arg]
        for arg in computed_args
        if (section, name, arg) in COMPUTED_STAND_INS
    }


# Metrics' arguments, by (class, argument); ("*", argument) for every metric that takes it. Each is
# checked when the metric is constructed.
_METRIC_TYPES: dict[tuple[str, str], dict] = {
    # The confusion metrics (Precision, TruePositives, ...): a threshold from 0 to 1, or a list.
    **{
        (metric, "thresholds"): any_of(RATE, {"type": "array", "items": RATE})
        for metric in (
            "FalseNegatives",
            "FalsePositives",
            "Precision",
            "Recall",
            "TrueNegatives",
            "TruePositives",
        )
    },
    ("AUC", "thresholds"): {"type": "array", "items": {"type": "number"}},
    ("AUC", "curve"): {"enum": ["ROC", "roc", "PR", "pr", "PRGAIN", "prgain"]},
    ("AUC", "summation_method"): {
        "enum": ["interpolation", "Interpolation", "majoring", "Majoring", "minoring", "Minoring"]
    },
    **{
        (metric, arg): RATE
        for metric, arg in (
            ("PrecisionAtRecall", "recall"),
            ("RecallAtPrecision", "precision"),
            ("SensitivityAtSpecificity", "specificity"),
            ("SpecificityAtSensitivity", "sensitivity"),
        )
    },
    **{(metric, "average"): {"enum": ["micro", "macro", "weighted"]} for metric in ("F1Score", "FBetaScore")},
    # A Python float in (0, 1].
    **{
        (metric, "threshold"): {
            **FLOAT,
            "exclusiveMinimum": 0,
            "maximum": 1,
            "description": "a number with a decimal point above 0.0, at most 1.0",
        }
        for metric in ("F1Score", "FBetaScore")
    },
    ("FBetaScore", "beta"): {
        **FLOAT,
        "exclusiveMinimum": 0,
        "description": "a number with a decimal point above 0.0",
    },
    ("R2Score", "class_aggregation"): any_of(
        {"enum": ["uniform_average", "variance_weighted_average"]}, NULL
    ),
    ("R2Score", "num_regressors"): NON_NEGATIVE,
}


# Layers that make their random generator from `seed` when constructed: an integer of any sign
# (or null); a float, a word, a list or a boolean is refused. The dropout layers (Dropout,
# GaussianDropout, SpatialDropout2D, MultiHeadAttention, ...) keep a seed unread until trained,
# so theirs stays untyped.
_SEEDED = {
    "AugMix",
    "CutMix",
    "GRU",
    "LSTM",
    "MixUp",
    "RandomBrightness",
    "RandomColorJitter",
    "RandomContrast",
    "RandomCrop",
    "RandomElasticTransform",
    "RandomErasing",
    "RandomFlip",
    "RandomGaussianBlur",
    "RandomInvert",
    "RandomPerspective",
    "RandomPosterization",
    "RandomRotation",
    "RandomSharpness",
    "RandomShear",
    "RandomTranslation",
    "RandomZoom",
    "SimpleRNN",
    "Solarization",
    "ConvLSTM1D",
    "ConvLSTM2D",
    "ConvLSTM3D",
    "RandAugment",
    "RandomGrayscale",
    "RandomHue",
    "RandomSaturation",
}


# The arguments of initializers, regularizers and constraints (a `{type: ..., ...}` object's), by
# (class, argument), or (section, argument) for every class of the section that takes it; each
# checked when the object is made and used on a (4, 3) weight by the test. The initializers'
# other numbers (mean, stddev, gain, ...) are broadcast: `_other_rule` gives them "numbers" (a
# weight node's are checked by graphspec/spec/nodes.py). A constraint is first applied in
# training, after an update, and OrthogonalRegularizer computes with its factor only for the
# penalty: build applies each one written with arguments to its weight once
# (graphspec/keras/build.py `check_weight_objects`), so that build refuses what validate does.
_OBJECT_TYPES: dict[tuple[str, str], dict] = {
    ("initializers", "seed"): INT,
    ("VarianceScaling", "scale"): {"type": "number", "exclusiveMinimum": 0},
    ("VarianceScaling", "mode"): {"enum": ["fan_in", "fan_out", "fan_avg"]},
    ("VarianceScaling", "distribution"): {"enum": ["truncated_normal", "untruncated_normal", "uniform"]},
    # A regularizer's factor: at least 0, or null (no penalty).
    **{
        (name, arg): any_of(NON_NEGATIVE, NULL)
        for name, arg in (("L1", "l1"), ("L2", "l2"), ("L1L2", "l1"), ("L1L2", "l2"))
    },
    ("OrthogonalRegularizer", "mode"): {"enum": ["rows", "columns"]},
    # The STFT kernel's side and its window's scaling, checked when constructed (its window is
    # any of SciPy's window names, or values as long as a frame: untyped).
    ("STFT", "side"): {"enum": ["real", "imag"]},
    ("STFT", "scaling"): any_of({"enum": ["density", "spectrum"]}, NULL),
    # A float: an integer factor, 0 included, fails when the penalty is computed.
    ("OrthogonalRegularizer", "factor"): {
        **FLOAT,
        "description": "a number with a decimal point, at least 0.0",
        "minimum": 0,
    },
    # A constraint's axes are those of the norm it keeps, over its weight (null: all of them).
    ("constraints", "axis"): _AXIS_OR_NULL,
    # The bounds are broadcast over the norms (a list that fits them is taken); the rate is not.
    **{
        key: ref("numbers")
        for key in (("MaxNorm", "max_value"), ("MinMaxNorm", "min_value"), ("MinMaxNorm", "max_value"))
    },
    ("MinMaxNorm", "rate"): ref("number_like"),
}


# Arguments Keras reads only as a truth value (`if self.use_ema:`, `if include_top:`), found in
# its source and checked by tests/test_catalog_types.py, which builds each with odd values: any
# value is taken, so none is refused. By section, then argument; a class listed where only some
# classes of the section read it so.
_TRUTH_VALUES: dict[str, set[str]] = {
    "optimizers": {"amsgrad", "centered", "exclude_embeddings", "nesterov", "relative_step", "use_ema"},
    "callbacks": {
        "append",
        "delete_checkpoint",
        "double_checkpoint",
        "raise_error",
        "restore_best_weights",
        # ModelCheckpoint's `if self.save_best_only:` (its save_weights_only is not: a true one
        # needs a filepath ending in .weights.h5).
        "save_best_only",
        "send_as_json",
        "swap_on_epoch",
        "write_graph",
        "write_images",
        "write_steps_per_second",
    },
    # Every application's `include_top` (obtain_input_shape's `require_flatten` too) and the
    # `include_preprocessing` of ConvNeXt, EfficientNetV2 and MobileNetV3 and the latter's
    # `minimalistic`.
    "applications": {"include_preprocessing", "include_top", "minimalistic"},
    # The reductions' keepdims (a symbolic build and a computation both take any value) and
    # gelu's approximate.
    "ops": {"approximate", "keepdims"},
    # `if from_logits:` in every backend's crossentropies, `if self._from_logits:` and `if
    # self.multi_label:` in AUC, `if apply_class_balancing:` in the focal crossentropy.
    "losses": {"apply_class_balancing", "from_logits"},
    "metrics": {"from_logits", "multi_label"},
}

# A loss's or metric's dtype: Keras reads `dtype or floatx()`, so a false value (0, '') is the
# default; a name it does not know, another number, a list or true is refused.
_OBJECT_DTYPE = {
    "description": "a dtype name such as 'float32', or null",
    "anyOf": [DTYPE, {"enum": [0, False]}],
}
# ModelCheckpoint's and BackupAndRestore's save_freq: 'epoch' or an integer (`isinstance(x, int)`,
# so any integer, of any sign); a word, a float or a list is refused.
_SAVE_FREQ = {"description": "'epoch' or a number of batches", "anyOf": [{"enum": ["epoch"]}, INT]}


def _supported(name: str, arg: str) -> list[str] | None:
    """The values a Keras layer's class lists as supported for `arg` (`_SUPPORTED_FILL_MODE`,
    `_SUPPORTED_INTERPOLATION`), which its constructor checks `arg` against; None if it lists none."""
    import keras

    cls = getattr(keras.layers, name, None)
    for attribute in (f"_SUPPORTED_{arg.upper()}", f"_SUPPORTED_{arg.upper()}S"):
        supported = getattr(cls, attribute, None)
        if isinstance(supported, (tuple, list, set, frozenset, dict)):
            return sorted(supported)
    return None


# Optimizers' numbers, read when they first update a weight (Keras takes any value when it
# constructs them, and graphspec's build tries each typed optimizer on scratch weights): by
# default a number or a list of them, broadcast over each weight (`epsilon: [1e-7]` trains);
# these take a number alone (a list is refused when the update is computed), and null where
# the default is None (a clipping's, Muon's decays).
_OPTIMIZER_SCALARS = {
    ("*", "clipnorm"), ("*", "clipvalue"), ("*", "global_clipnorm"),
    ("Adam", "beta_1"), ("Adam", "beta_2"), ("AdamW", "beta_1"), ("AdamW", "beta_2"),
    ("Lamb", "beta_1"), ("Lamb", "beta_2"), ("Adamax", "beta_1"), ("Nadam", "beta_1"),
    ("RMSprop", "rho"), ("RMSprop", "momentum"), ("Adadelta", "rho"),
    ("Muon", "adam_beta_1"), ("Muon", "adam_beta_2"), ("Muon", "momentum"),
    ("ScheduleFreeAdamW", "warmup_steps"),
}  # fmt: skip
_OPTIMIZER_NULLABLE = {("Muon", "weight_decay"), ("Muon", "adam_weight_decay"), ("Muon", "rms_rate")}
# Read only with `use_ema: true` (typed there, by `types_when`), and Muon's names of layers.
_OPTIMIZER_UNTYPED = {"ema_momentum", "ema_overwrite_frequency", "exclude_layers"}


# Callbacks' arguments Keras reads at an epoch's start or end, once a monitored value stops
# improving (EarlyStopping, ReduceLROnPlateau) or a checkpoint is saved: any value is taken when
# they are constructed, so tests/test_catalog_types.py runs each through four epochs of
# worsening loss.
CALLBACK_ARGUMENTS_READ_IN_TRAINING = {
    ("EarlyStopping", "patience"): ref("number_like"),
    ("EarlyStopping", "start_from_epoch"): ref("number_like"),
    ("EarlyStopping", "verbose"): ref("number_like"),
    ("EarlyStopping", "baseline"): ref("numbers"),
    ("ReduceLROnPlateau", "patience"): ref("number_like"),
    # Read once the learning rate is reduced (tests/test_catalog_types.py's ReduceLROnPlateau has
    # patience 0, so that it is reduced at the first worse epoch). Its min_lr stays untyped: a
    # list is refused below the rate and taken above it (compared first, it stops the reduction).
    ("ReduceLROnPlateau", "cooldown"): ref("number_like"),
    ("ReduceLROnPlateau", "verbose"): ref("number_like"),
    ("ModelCheckpoint", "verbose"): ref("number_like"),
    # Compared with 0 at each epoch's start.
    ("LearningRateScheduler", "verbose"): ref("number_like"),
    # The CSV writer's delimiter, made at the first epoch's end: one character.
    ("CSVLogger", "separator"): {
        "description": "one character",
        "type": "string",
        "minLength": 1,
        "maxLength": 1,
        "examples": [",", ";", "\t"],
    },
    # Epochs between histograms and between embeddings, read at each epoch's end (`if freq and
    # epoch % freq == 0`): a number, or null or 0 for none.
    ("TensorBoard", "histogram_freq"): _NUMBER_OR_NULL,
    ("TensorBoard", "embeddings_freq"): _NUMBER_OR_NULL,
}
_CALLBACK_TYPES = {
    **CALLBACK_ARGUMENTS_READ_IN_TRAINING,
    # Checked when constructed.
    ("ReduceLROnPlateau", "factor"): {"type": "number", "exclusiveMaximum": 1},
    # Where the model is saved: a Keras file (.keras, or the legacy .h5); with save_weights_only,
    # a weights file (`types_when`).
    ("ModelCheckpoint", "filepath"): {
        "description": "a path ending in .keras (or .h5)",
        "type": "string",
        "pattern": "\\.(keras|h5)$",
        "examples": ["model.keras", "ck/{epoch:02d}.keras", "model.h5"],
    },
    # (Its update_freq takes any value through training: untyped.)
    # The batches to profile: one, or the first and last (0 for none; Keras's older form, a
    # string "first,last", too).
    ("TensorBoard", "profile_batch"): {
        "description": "a batch number, or a list of the first and last (0 for none)",
        "anyOf": [NON_NEGATIVE_INT, BOOLEAN, _pairs(NON_NEGATIVE_INT, 2), STRING],
    },
}


# Losses' and metrics' arguments Keras reads only when it computes a value (it takes any value
# when it constructs them): build computes each loss and metric written with arguments on a
# scratch batch shaped like its output (graphspec/keras/scratch.py), and
# tests/test_catalog_types.py computes each example and counter-example. By (section, class,
# argument), "*" for every class of the section that takes it. An axis or a class id past the
# output's rank or classes is refused then too, which a type cannot know; a list is taken where
# Keras broadcasts it over the classes.
# The categorical crossentropies refuse true and false (`axis must be of type int`).
_INT_AXIS_OR_NULL = {
    "description": "an integer or a list of integers, or null",
    "anyOf": [INT, {"type": "array", "items": INT}, NULL],
}
_NUMBERS_OR_NULL = any_of(ref("numbers"), NULL)
_FLAT_AXIS = (
    "BinaryCrossentropy", "BinaryFocalCrossentropy", "ConcordanceCorrelation", "CosineSimilarity",
    "Dice", "PearsonCorrelation", "Tversky",
)  # fmt: skip
_CLASS_ID = (
    "Precision", "PrecisionAtRecall", "Recall", "RecallAtPrecision", "SensitivityAtSpecificity",
    "SpecificityAtSensitivity",
)  # fmt: skip
_IOU = ("IoU", "MeanIoU", "OneHotIoU", "OneHotMeanIoU")
COMPUTED_TYPES: dict[tuple[str, str, str], dict] = {
    # `if label_smoothing:`, then arithmetic with it: a number, true or false, or null.
    **{(s, "*", "label_smoothing"): _NUMBER_OR_NULL for s in ("losses", "metrics")},
    **{(s, name, "axis"): _AXIS_OR_NULL for s in ("losses", "metrics") for name in _FLAT_AXIS},
    **{
        (s, name, "axis"): _INT_AXIS_OR_NULL
        for s in ("losses", "metrics")
        for name in ("CategoricalCrossentropy", "CategoricalFocalCrossentropy")
    },
    # The sparse crossentropy's axis must be the last: an integer (true is 1, the last axis of
    # a batch of class scores; null and false are refused).
    **{
        (s, "SparseCategoricalCrossentropy", "axis"): {
            "description": "an integer, the last axis (-1)",
            "anyOf": [INT, {"enum": [True]}],
        }
        for s in ("losses", "metrics")
    },
    **{(s, "SparseCategoricalCrossentropy", "ignore_class"): _NUMBERS_OR_NULL for s in ("losses", "metrics")},
    ("losses", "BinaryFocalCrossentropy", "gamma"): ref("numbers"),
    ("losses", "CategoricalFocalCrossentropy", "gamma"): ref("numbers"),
    ("losses", "CategoricalFocalCrossentropy", "alpha"): ref("numbers"),
    ("losses", "Huber", "delta"): ref("numbers"),
    ("losses", "Tversky", "alpha"): ref("numbers"),
    ("losses", "Tversky", "beta"): ref("numbers"),
    ("metrics", "BinaryAccuracy", "threshold"): ref("numbers"),
    ("metrics", "BinaryIoU", "threshold"): ref("numbers"),
    ("metrics", "AUC", "label_weights"): _NUMBERS_OR_NULL,
    **{("metrics", name, "class_id"): _INT_LIKE for name in _CLASS_ID},
    # At most the number of classes, which a type cannot know; a negative count is refused.
    **{
        ("metrics", name, "top_k"): {"description": "a count from 0", "anyOf": [NON_NEGATIVE_INT, BOOLEAN]}
        for name in ("Precision", "Recall")
    },
    **{
        ("metrics", name, "k"): _INT_LIKE
        for name in ("TopKCategoricalAccuracy", "SparseTopKCategoricalAccuracy")
    },
    # The IoU metrics compare the labels with ignore_class (a word is refused) and take the
    # class scores' argmax over an integer axis; IoU and MeanIoU take null over one-hot targets
    # too. Their sparse_y_true and sparse_y_pred are read as true or false, but which values a
    # batch takes depends on its targets: left untyped.
    **{("metrics", name, "ignore_class"): _NUMBERS_OR_NULL for name in _IOU},
    **{("metrics", name, "axis"): any_of(INT, NULL) if "OneHot" not in name else INT for name in _IOU},
}


def computed_type(section: str, name: str, arg: str) -> dict | None:
    """The type of a loss's or metric's argument Keras reads only when it computes a value."""
    return COMPUTED_TYPES.get((section, name, arg)) or COMPUTED_TYPES.get((section, "*", arg))


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _optimizer_rule(name: str, arg: str, default: Any) -> dict | None:
    if arg in _OPTIMIZER_UNTYPED:
        return None
    if (name, arg) == ("Muon", "ns_steps"):  # a number of iterations: a fraction is refused
        return {"description": "an integer", "type": ["integer", "boolean"]}
    if not (default is None or _is_number(default)):
        return None
    if ("*", arg) in _OPTIMIZER_SCALARS or (name, arg) in _OPTIMIZER_SCALARS:
        return ref("number_like")
    if (name, arg) in _OPTIMIZER_NULLABLE:
        return any_of(ref("numbers"), NULL)
    if default is None and arg not in ("loss_scale_factor", "weight_decay"):
        return None
    return ref("numbers")


@functools.cache
def _validated_strings(name: str) -> dict[str, dict]:
    """The words a Keras layer's constructor (or a base class's) checks an argument against with
    `argument_validation.validate_string_arg(arg, allowable_strings=(...))`, read from its
    source: `{arg: {"enum": [...]}}`, null added where it passes `allow_none=True`."""
    import ast

    import keras

    found: dict[str, dict] = {}
    cls = getattr(keras.layers, name, None)
    for klass in getattr(cls, "__mro__", ()):
        init = klass.__dict__.get("__init__")
        if init is None or not klass.__module__.startswith("keras."):
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(init)))
        except (OSError, TypeError, SyntaxError):
            continue
        for call in ast.walk(tree):
            if not (
                isinstance(call, ast.Call)
                and getattr(call.func, "attr", getattr(call.func, "id", None)) == "validate_string_arg"
                and call.args
                and isinstance(call.args[0], ast.Name)
            ):
                continue
            keywords = {k.arg: k.value for k in call.keywords}
            try:
                words = list(ast.literal_eval(keywords["allowable_strings"]))
            except (KeyError, ValueError):
                continue
            allow_none = keywords.get("allow_none")
            enum = words + ([None] if isinstance(allow_none, ast.Constant) and allow_none.value else [])
            found.setdefault(call.args[0].id, {"enum": enum})
    return found


# An application's image shape (Keras's imagenet_utils.obtain_input_shape, or MobileNetV3's own
# reading): three sizes, the channels last by default; each application has its smallest size,
# which a type does not know. An example is given, as the type's first would be all null.
_IMAGE_SHAPE = {
    "type": "array",
    "minItems": 3,
    "maxItems": 3,
    "items": any_of(POSITIVE_INT, NULL),
    "examples": [[32, 32, 3]],
}


def _input_shape(name: str) -> dict:
    """An application's `input_shape`: three sizes or null; where Keras tests it as
    `if input_shape:`, a false value (0, '', []) is none too, but the MobileNets index it."""
    alternatives = [_IMAGE_SHAPE, NULL]
    if not name.startswith("MobileNet"):
        alternatives.append({"enum": [0, False, "", []]})
    return {
        "description": "the image's shape: three sizes (height, width, channels; null for any height "
        "or width), or null",
        "anyOf": alternatives,
    }


def _other_rule(section: str, name: str, arg: str, default: Any) -> dict | None:
    """Rules for the classes that are not layers: losses, metrics, optimizers, callbacks,
    applications, ops and the objects (initializers, regularizers, constraints)."""
    # OrbaxCheckpoint needs orbax, which graphspec does not install: nothing of it is checked.
    if arg in _TRUTH_VALUES.get(section, ()) and name != "OrbaxCheckpoint":
        return TRUTH_VALUE
    if section == "applications" and arg == "alpha" and name.startswith("MobileNet"):
        # The width: MobileNet's filters are int(32 * alpha), refused when not positive;
        # MobileNetV2 and V3 round them up to 8 at least, so any number builds.
        return {"type": "number", "exclusiveMinimum": 0} if name == "MobileNet" else NUMBER
    if section == "applications" and arg == "depth_multiplier":
        return ref("positive_int")  # MobileNet's DepthwiseConv2D's
    if section == "applications" and arg == "weights":
        # Which words and paths are taken is the capability policy's (graphspec/policy.py):
        # the type says only that it is one.
        return {"description": "'imagenet', a weights file's path, or null for none", "anyOf": [STRING, NULL]}
    if section == "applications" and arg == "input_shape":
        return _input_shape(name)
    if section == "applications" and arg == "pooling":
        # Each application tests `pooling == "avg"` and `pooling == "max"`, and nothing else.
        return ref("application_pooling")
    if (
        section == "callbacks"
        and arg == "mode"
        and name in ("EarlyStopping", "ModelCheckpoint", "ReduceLROnPlateau")
    ):
        return ref("monitor_mode")
    if section in ("losses", "metrics") and arg == "dtype":
        return _OBJECT_DTYPE
    if section in ("losses", "metrics") and (computed := computed_type(section, name, arg)) is not None:
        return computed
    if section == "callbacks" and arg == "save_freq" and name in ("ModelCheckpoint", "BackupAndRestore"):
        return _SAVE_FREQ
    if section == "optimizers" and name == "Lion" and arg == "beta_1":
        # Lion refuses a beta_1 outside (0, 1] (its other numbers are not checked).
        return {
            "description": "a number above 0, at most 1",
            "type": "number",
            "exclusiveMinimum": 0,
            "maximum": 1,
        }
    if section == "losses" and name == "CategoricalGeneralizedCrossEntropy" and arg == "q":
        return {
            "description": "a number above 0 and below 1",
            "type": "number",
            "exclusiveMinimum": 0,
            "exclusiveMaximum": 1,
        }
    if section == "losses" and arg == "reduction":
        return any_of({"enum": REDUCTIONS}, NULL)
    if section == "optimizers" and arg == "learning_rate":
        return ref("float")
    if section == "optimizers" and arg == "momentum" and name == "SGD":
        return {**FLOAT, **RATE, "description": "a number with a decimal point from 0.0 to 1.0"}
    if section == "metrics" and arg == "num_thresholds":
        # AUC needs two thresholds at least; the metrics at a recall, precision, sensitivity or
        # specificity take one (0.5).
        return {"type": "integer", "minimum": 2} if name == "AUC" else ref("positive_int")
    if section == "metrics" and arg == "num_classes" and name.endswith("IoU"):
        return ref("positive_int")
    if section == "metrics" and arg == "target_class_ids":
        # Made a list when constructed (a number or a word is refused); BinaryIoU's has only
        # its two classes, 0 and 1.
        if name == "BinaryIoU":
            return {"description": "a list of 0 and 1", "type": "array", "items": {"enum": [0, 1]}}
        return {"description": "a list of class ids", "type": "array"}
    if section == "optimizers" and arg == "gradient_accumulation_steps":
        # Read as a truth value first: 0 (or null) means none, and any other count is at least 2
        # (a float, 2.0 too, is refused by the first update).
        return any_of({"type": "integer", "minimum": 2}, {"enum": [0, False]})
    if section == "optimizers" and name == "Ftrl":
        if arg == "learning_rate_power":
            return {"type": "number", "maximum": 0}
        if arg in (
            "initial_accumulator_value",
            "l1_regularization_strength",
            "l2_regularization_strength",
            "l2_shrinkage_regularization_strength",
        ):
            return NON_NEGATIVE
    if section == "metrics":
        return _METRIC_TYPES.get((name, arg)) or _METRIC_TYPES.get(("*", arg))
    if section == "optimizers":
        return _optimizer_rule(name, arg, default)
    if section == "callbacks" and arg == "min_delta":
        return NUMBER
    if section == "callbacks":
        return _CALLBACK_TYPES.get((name, arg))
    if section in ("initializers", "regularizers", "constraints"):
        found = _OBJECT_TYPES.get((name, arg)) or _OBJECT_TYPES.get((section, arg))
        if found is None and section == "initializers" and _is_number(default):
            # mean, stddev, gain, value, minval, maxval: broadcast over the weight (a list that
            # fits its shape is taken), and a word or null refused when the weight is made.
            return ref("numbers")
        return found
    if section == "ops" and isinstance(default, bool):
        # A flag, as a layer's (tests/test_catalog_types.py builds and computes each op with odd
        # values).
        return TRUTH_VALUE
    if section == "ops" and arg == "axis":
        return ref("axis")
    if section == "ops" and arg == "dtype":
        return DTYPE  # as a layer's: a number, a list or a boolean is refused
    return None


def _rule(section: str, name: str, arg: str, default: Any, has_default: bool) -> dict | None:
    """The fragment the name-and-default rules give argument `arg` of class `name`, or None."""
    if section not in ("layers", "application_layers"):
        return _other_rule(section, name, arg, default)
    rank_match = _RANK.search(name)
    rank = int(rank_match.group(1)) if rank_match else None
    if arg in _POSITIVE or arg == "depth_multiplier":
        return ref("positive_int")
    if arg == "dtype":
        # A dtype or dtype policy's name (or null): Keras refuses a number, a list, a mapping or
        # a boolean. Which names a layer takes depends on the layer (Dense refuses 'string'), so
        # only the kind is typed.
        return DTYPE
    if arg == "trainable":
        # Keras's Layer refuses anything but True or False.
        return BOOLEAN
    if isinstance(default, bool):
        # A flag (use_bias, return_sequences, autocast, ...): Keras reads it as `if flag:`, so any
        # value is taken (tests/test_catalog_types.py builds each with odd values).
        return TRUTH_VALUE
    if arg == "seed" and name in _SEEDED:
        return INT
    if arg in ("interpolation", "fill_mode") and (supported := _supported(name, arg)) is not None:
        return {"enum": supported}
    if arg == "factor" and (factor := image_factor(name)) is not None:
        return factor
    if (checked := _validated_strings(name).get(arg)) is not None:
        return checked
    if arg == "value_range" and isinstance(default, list):
        return VALUE_RANGE
    if arg == "output_size" and rank is not None:
        return size(rank)
    if arg == "size" and name.startswith("UpSampling") and rank is not None:
        # UpSampling1D takes one integer only; 2D and 3D one or a list of one per axis.
        return ref("positive_int") if rank == 1 else size(rank)
    if (
        arg in _SIZES
        and rank is not None
        and (not has_default or default is None or isinstance(default, (int, list)))
    ):
        return size(rank)
    if arg == "padding" and isinstance(default, str):
        # Only Conv1D takes 'causal' (SeparableConv1D, DepthwiseConv1D, Conv1DTranspose and
        # ConvLSTM1D refuse it).
        return ref("padding_causal" if name == "Conv1D" else "padding")
    if arg == "data_format":
        return ref("data_format")
    if arg == "activation" or arg.endswith("_activation"):
        return ref("activation")
    if arg.endswith("_initializer"):
        return ref("initializer")
    if arg.endswith("_regularizer"):
        return ref("regularizer")
    if arg.endswith("_constraint"):
        return ref("constraint")
    if arg in _RATES and (not has_default or isinstance(default, (int, float))):
        return ref("rate")
    if arg == "axis" and (isinstance(default, int) or isinstance(default, list)):
        return ref("axis")
    return None


def types(section: str, name: str, entry: dict) -> dict[str, dict]:
    """`{argument: fragment}` for the arguments of catalog entry `entry` whose type is known.

    An argument whose Keras default is None also accepts null."""
    found = {}
    defaults = entry.get("defaults", {})
    for arg in entry.get("args", ()):
        key = (section, name, arg)
        # An op's arguments are typed where the test can call it: on one tensor `x` (given as
        # both operands of a binary op), with OP_ARGUMENTS's values for its other required
        # arguments.
        callable_ = entry.get("required") in (["x"], ["x1", "x2"]) or name in OP_ARGUMENTS
        binary = section == "ops" and entry.get("args", [])[:2] == ["x1", "x2"]
        if binary and arg == "x2" and name not in UNTYPED_OPERANDS:
            found[arg] = OPERAND
            continue
        if section == "ops" and (not callable_ or arg not in entry.get("init", ())):
            continue
        has_default = arg in defaults
        fragment = (
            EXCEPTIONS[key]
            if key in EXCEPTIONS
            else _computed_type(key)
            if key in COMPUTED
            else _rule(section, name, arg, defaults.get(arg), has_default)
        )
        if fragment is None:
            continue
        takes_null = fragment.get("$ref", "")[len(REF) :] in ANY_VALUE or NULL in fragment.get("anyOf", ())
        if has_default and defaults[arg] is None and not takes_null:
            fragment = (
                any_of(fragment, NULL)
                if "anyOf" not in fragment
                else {**fragment, "anyOf": [*fragment["anyOf"], NULL]}
            )
        found[arg] = fragment
    return found


# Layers that make their random generator from `seed` only when an argument is above 0 (a
# dropout's rate, GaussianNoise's stddev): their seed is typed where it is (`types_when`).
_SEEDED_WHEN = {
    **{name: "rate" for name in ("AlphaDropout", "Dropout", "GaussianDropout")},
    **{f"SpatialDropout{n}D": "rate" for n in (1, 2, 3)},
    "GaussianNoise": "stddev",
    # The attention layers' dropout makes a Dropout layer (a generator) with their seed.
    **{name: "dropout" for name in ("Attention", "GroupQueryAttention", "MultiHeadAttention")},
}
# An optimizer's moving average of its weights: its momentum and overwriting period are read
# (checked when constructed, used in each step) only with `use_ema`.
_EMA_TYPES = {
    "ema_momentum": {**RATE, "description": "a number from 0 to 1", "type": ["number", "boolean"]},
    "ema_overwrite_frequency": {
        "description": "an integer of at least 1, or null for none",
        "anyOf": [POSITIVE_INT, {"enum": [0, False, True]}, NULL],
    },
}


def types_when(section: str, name: str, entry: dict) -> dict[str, dict[str, dict]]:
    """`{flag: {argument: fragment}}`: the arguments Keras reads only when argument `flag` is
    true as Python reads it (above 0, for a rate), typed there alone; elsewhere Keras takes any
    value for them, so validate checks them only there (graphspec/spec/types.py
    `argument_mismatch`). An application's classes (a Dense's or a Conv2D's units) and their
    activation, read when it builds its top (`include_top`, true by default); an optimizer's
    moving average's arguments (`use_ema`); the seed of a layer that makes its random generator
    only for a rate above 0; BinaryFocalCrossentropy's alpha (`apply_class_balancing`) and
    ModelCheckpoint's initial_value_threshold (`save_best_only`)."""
    found: dict[str, dict[str, dict]] = {}
    if section == "applications":
        found["include_top"] = {
            "classes": ref("positive_int"),
            "classifier_activation": any_of(ref("activation"), NULL),
        }
    elif section == "optimizers":
        found["use_ema"] = dict(_EMA_TYPES)
    elif section == "layers" and name in _SEEDED_WHEN:
        found[_SEEDED_WHEN[name]] = {"seed": any_of(INT, NULL)}
    elif section == "losses" and name == "BinaryFocalCrossentropy":
        # Its alpha weighs the classes only with apply_class_balancing (computed, as the
        # categorical one's is always).
        found["apply_class_balancing"] = {"alpha": ref("number_like")}
    elif section == "initializers":
        # The fans come from the weight's axes in each list only when both are given (not
        # null): each a list of axes there.
        axes = {"description": "a list of axes, or null", "anyOf": [{"type": "array", "items": INT}, NULL]}
        found["output_axes"] = {"input_axes": axes}
        found["input_axes"] = {"output_axes": axes}
    elif section == "callbacks" and name == "ModelCheckpoint":
        # The best value so far starts there, compared with each epoch's only when saving the
        # best: a number, or null for none.
        found["save_best_only"] = {"initial_value_threshold": _NUMBER_OR_NULL}
        found["save_weights_only"] = {
            "filepath": {
                "description": "a path ending in .weights.h5 where save_weights_only is true",
                "type": "string",
                "pattern": "\\.weights\\.h5$",
                "examples": ["model.weights.h5"],
            }
        }
    args = entry.get("args", ())
    found = {
        flag: {arg: fragment for arg, fragment in typed.items() if arg in args}
        for flag, typed in found.items()
        if flag in args
    }
    return {flag: typed for flag, typed in found.items() if typed}


_FALSE_WHERE_INT = {"description": "false where output_mode is 'int'", "enum": FALSE_VALUES}
# The preprocessing layers whose `output_mode` of "int" (their default) refuses a true `sparse`
# when constructed; their other modes read it as a truth value.
_SPARSE_WITH_INT_MODE = ("Discretization", "Hashing", "IntegerLookup", "StringLookup", "TextVectorization")


def types_where(section: str, name: str, entry: dict) -> dict[str, dict[str, dict[str, dict]]]:
    """`{argument: {word: {argument: fragment}}}`: arguments typed only where another argument
    is that word (its default where it is not written); with another word Keras takes any
    value for them, so validate checks them only there (graphspec/spec/types.py
    `argument_mismatch`). The preprocessing layers' `sparse` where their `output_mode` is "int"
    (false: integer indices are never sparse), and HashedCrossing's `num_bins` where its
    `output_mode` is "one_hot" (the one-hot width a shape is made of; with "int" a build takes
    any value, and only training refuses)."""
    found: dict[str, dict[str, dict[str, dict]]] = {}
    if section == "layers" and name in _SPARSE_WITH_INT_MODE:
        found["output_mode"] = {"int": {"sparse": _FALSE_WHERE_INT}}
    elif section == "layers" and name == "HashedCrossing":
        bins = {
            "description": "a number of bins (an integer from 0) where output_mode is 'one_hot'",
            "anyOf": [NON_NEGATIVE_INT, BOOLEAN, NULL],
        }
        found["output_mode"] = {"one_hot": {"num_bins": bins}}
    args = entry.get("args", ())
    return {flag: words for flag, words in found.items() if flag in args}
