"""The catalog's argument types agree with Keras: each typed layer is constructed with examples of
each argument's type (Keras accepts them) and with counter-examples (Keras refuses them, when
constructing or, where construction takes anything, when the layer is called on a symbolic
input). A rule or an exception in graphspec/keras/catalog_types.py that Keras contradicts fails
here, with the class, argument and value."""

from __future__ import annotations

import functools
import importlib
import inspect
import json
import re
from collections import Counter
from typing import Any

import keras
import numpy as np
import pytest

from graphspec.keras.build import make_operation
from graphspec.keras.catalog_gen import REFUSED_BASE_ARGS
from graphspec.keras.catalog_types import CALLBACK_ARGUMENTS_READ_IN_TRAINING, OP_ARGUMENTS, computed_type
from graphspec.keras.scratch import computed_refusal, scratch_operands, scratch_steps, scratch_value
from graphspec.spec import catalog, types

# A value for each required argument the catalog does not type, so that the class can be built.
REQUIRED = {
    "output_size": 2,
    "height": 4,
    "width": 4,
    "axes": 1,
    "stddev": 0.1,
    "factor": 0.1,
    "dims": [1],
    "head_dim": 2,
    "num_query_heads": 6,  # divisible by each num_key_value_heads example (1, 3)
    "num_key_value_heads": 1,
    "height_factor": 0.1,
    "width_factor": 0.1,
    "n": 2,
    "scale": 0.5,
    "projection_dim": 6,
    "init_values": 0.1,
    "drop_path_rate": 0.1,
    "max_number": 2,
    "num_bins": 4,
    # Typed, but a value that fits the test's (2, 5, 6) input is needed, not any of the type's.
    "equation": "abc,cd->abd",
    "output_shape": [None, 4],
    "target_shape": [30],
}
# Values of untyped arguments some classes need to be constructed at all.
OVERRIDES = {
    "CategoryEncoding": {"num_tokens": 4},
    "RandomPosterization": {"factor": 2},
    "Discretization": {"bin_boundaries": [0.5]},
    # 32 groups by default, and the test's input has 6 channels.
    "GroupNormalization": {"groups": 2},
    # Frames of 256 samples by default; the test's signal has 64.
    "STFTSpectrogram": {"frame_length": 16},
}
# Arguments the catalog lists for a class (from the base class's **kwargs) that the class itself
# refuses whatever their value, or whose default it refuses (CategoryEncoding's num_tokens must be
# set): not a matter of types, and found by the test below.
NOT_TAKEN = {("CategoryEncoding", "num_tokens")}
# Layers whose construction needs more than plain values (a layer, code, files) or whose call
# needs inputs of their own: the types of their arguments are the same rules' as checked on
# other layers.
LEFT_OUT = {
    "Bidirectional",
    "FlaxLayer",
    "JaxLayer",
    "Lambda",
    "RNN",
    "TimeDistributed",
    "TorchModuleWrapper",
}
# Layers called on a list of two inputs.
MERGE = {"Add", "Average", "Concatenate", "Dot", "Maximum", "Minimum", "Multiply", "Subtract"}
MERGE |= {"applications.inception_resnet_v2.CustomScaleLayer"}
SEQUENCE = re.compile(r"^(LSTM|GRU|SimpleRNN)$")


def _resolve(fragment: dict) -> dict:
    return types._resolve(fragment)


# What a fragment that takes any value (types.unconstrained: `truth_value`, ...) is tried with:
# a word, a list, numbers and null, none of them true or false, so that Keras is shown to take
# what it was not written for.
ODD_VALUES = ["abc", [1], 3, 0, -0.1, None]


def examples(fragment: dict) -> list[Any]:
    """Values of type `fragment` (nested `{type: ...}` objects left out: the builder turns them
    into Keras's own form, tested where it is)."""
    if types.unconstrained(fragment):
        return list(ODD_VALUES)
    fragment = _resolve(fragment)
    if "examples" in fragment:  # JSON Schema's own: given where the type's first would not do
        return list(fragment["examples"])
    if "anyOf" in fragment:
        return [v for f in fragment["anyOf"] for v in examples(f)]
    if "enum" in fragment:
        return list(fragment["enum"])
    kind = fragment.get("type")
    if isinstance(kind, list):  # one of several JSON types: each one's examples
        return [v for k in kind for v in examples({**fragment, "type": k})]
    if kind == "boolean":
        return [True, False]
    if kind == "null":
        return [None]
    if kind == "integer":
        # An integer with no bound is an axis: the last one fits every input.
        return [fragment["minimum"], fragment["minimum"] + 2] if "minimum" in fragment else [-1]
    if kind == "number":
        low, high = fragment.get("minimum", 0), fragment.get("maximum", 1)
        candidates = [low, high, float(low), (low + high) / 2, float(high)]
        return [v for v in candidates if types.matches(v, fragment)]
    if kind == "array" and "items" in fragment:
        count = fragment.get("minItems", 1)
        return [[examples(fragment["items"])[-1]] * count]
    if kind == "array":  # of anything: a list of one integer
        return [[0]]
    return []


def counter_examples(fragment: dict) -> list[Any]:
    """Values `fragment` refuses: types.matches is asked, so each is wrong by the checker too.
    The values just past each bound come first, so that a bound Keras does not hold (a count of
    1 where the type says 2 at least) is found."""
    candidates: list[Any] = ["abc", "softmaxx", 3, -3, 0, 2.5, -0.1, 1.5, [64], [2, 2, 2, 2], "smae"]
    candidates = _past_bounds(fragment) + candidates
    return list({json.dumps(v): v for v in candidates if not types.matches(v, fragment)}.values())


def _past_bounds(fragment: dict) -> list[Any]:
    """The numbers (and strings) just outside each bound of `fragment` (and of its
    alternatives)."""
    fragment = _resolve(fragment)
    found = [v for f in fragment.get("anyOf", ()) for v in _past_bounds(f)]
    step = 1 if fragment.get("type") == "integer" else 0.5
    for key, shift in (
        ("minimum", -step),
        ("maximum", step),
        ("exclusiveMinimum", 0),
        ("exclusiveMaximum", 0),
    ):
        if key in fragment:
            found.append(fragment[key] + shift)
    # A string one character too short or too long.
    if fragment.get("minLength", 0) > 0:
        found.append("x" * (fragment["minLength"] - 1))
    if "maxLength" in fragment:
        found.append("x" * (fragment["maxLength"] + 1))
    # A pair whose items have bounds of their own: each item just past its bound, the other within.
    first, second = (fragment.get("prefixItems") or [{}, {}])[:2]
    if "maximum" in first and "minimum" in second:
        found += [[first["maximum"] + step, first["maximum"] + step], [second["minimum"] - step] * 2]
    return found


def _input(name: str, entry: dict) -> Any:
    """A small symbolic batch for layer `name`: graphspec builds a functional model, so what a
    layer refuses only when a value is computed (Softmax's axis, an image layer's value_range)
    build takes, and so must validate."""
    rank = re.search(r"([123])D", name)
    if name in MERGE:
        return [keras.Input(batch_shape=(2, 4, 6)), keras.Input(batch_shape=(2, 4, 6))]
    if name == "Embedding":
        return keras.Input(batch_shape=(2, 5), dtype="int32")
    if name == "HashedCrossing":  # two columns of strings, crossed
        return (
            keras.Input(batch_shape=(2, 1), dtype="string"),
            keras.Input(batch_shape=(2, 1), dtype="string"),
        )
    if name == "STFTSpectrogram":
        return keras.Input(batch_shape=(2, 64, 1))
    if "image_preprocessing" in _layer_class(name).__module__:
        # A batch of images: a crop's or a resize's size is checked by the shape it builds.
        return keras.Input(batch_shape=(2, 9, 9, 3))
    if rank:
        extra = 1 if name.startswith("ConvLSTM") else 0
        return keras.Input(batch_shape=(2, *([9] * (int(rank.group(1)) + extra)), 3))
    return keras.Input(batch_shape=(2, 5, 6))


def _call(layer: Any, name: str, entry: dict) -> None:
    x = _input(name, entry)
    if entry["call"][:2] == ["query", "value"]:
        layer(x, x)
    elif "Attention" in name and entry["call"][0] == "inputs":
        layer([x, x])
    else:
        layer(x)


def _base_args(name: str, entry: dict) -> dict:
    args = {}
    for arg in entry["required"]:
        if arg in REQUIRED:
            args[arg] = REQUIRED[arg]
        else:
            # The last example: the largest (a ConvLSTM's filters may be 0 when constructed, and
            # then it cannot be called).
            args[arg] = next(v for v in reversed(examples(entry["types"][arg])) if v is not None)
    return {**args, **OVERRIDES.get(name, {})}


def _layer_entries() -> dict[str, dict]:
    """The catalog's layers and the layers keras.applications defines for its models."""
    return {**catalog.catalog()["layers"], **catalog.catalog()["application_layers"]}


def _layer_class(name: str) -> type:
    entry = _layer_entries()[name]
    if "module" in entry:  # an application's layer: the class the catalog records
        return getattr(importlib.import_module(entry["module"]), entry["class"])
    return getattr(keras.layers, name)


def _typed_layers() -> list[str]:
    layers = _layer_entries()
    return [
        n
        for n, e in layers.items()
        if e["types"] and n not in LEFT_OUT and all(a in e["types"] or a in REQUIRED for a in e["required"])
    ]


def _refused(cls: type, args: dict, name: str, entry: dict, call: bool = True) -> bool:
    """Whether Keras refuses to construct the layer, or (with `call`) to call it on this test's
    small symbolic batch, as a functional build does. A layer whose call fails with its
    defaults is judged by construction alone: a call that fails whatever the value shows
    nothing about the value."""
    try:
        layer = cls(**args)
    except Exception:
        return True
    if not call:
        return False
    try:
        _call(layer, name, entry)
        _check_computed(cls, args, name, entry)
    except Exception:
        return True
    return False


def _check_computed(cls: type, args: dict, name: str, entry: dict) -> None:
    """Raise Keras's error where build's computation refuses one of `args` that layer `name`
    reads only when it computes (the catalog's `computed`): a new layer called once on ones
    shaped like the test's input, as graphspec.keras.build's check_computed does."""
    computed = entry.get("computed", [])
    if not any(arg in args for arg in computed):
        return
    ones = scratch_operands({"inputs": _input(name, entry)})["inputs"]
    training = {"training": True} if "training" in inspect.signature(cls.call).parameters else {}
    found = computed_refusal(
        lambda given: cls(**given)(ones, **training), args, computed, entry.get("stand_ins")
    )
    if found is not None:
        raise found[1]


def test_keras_accepts_each_example_and_refuses_each_counter_example():
    accepted_wrongly, refused_wrongly = [], []
    checked, not_taken, tried = 0, set(), Counter()
    for name in _typed_layers():
        entry = _layer_entries()[name]
        cls = _layer_class(name)
        base = _base_args(name, entry)
        callable_with_defaults = not _refused(cls, base, name, entry)
        for arg, fragment in entry["types"].items():
            if arg in entry["defaults"]:
                try:
                    cls(**{**base, arg: entry["defaults"][arg]})
                except Exception:
                    not_taken.add((name, arg))
                    continue
            # Every example and counter-example of a fragment is tried once, then two examples
            # (and null) and four counter-examples on the next three classes, and one example
            # and two counter-examples from the fifth class on (`trainable`'s fragment is on 132
            # layers): enough to show each class takes that kind of value and refuses the wrong
            # kinds, in a fraction of the time.
            values, wrong = examples(fragment), counter_examples(fragment)
            key = json.dumps(fragment, sort_keys=True)
            if tried[key] >= 4:
                values, wrong = values[:1] + [None] * (None in values), wrong[:2]
            elif tried[key]:
                values, wrong = values[:2] + [None] * (None in values), wrong[:4]
            tried[key] += 1
            for value in values:
                try:
                    layer = cls(**{**base, arg: value})
                    # An axis is called too (where the class's defaults can be): a list axis is
                    # taken by Concatenate's constructor and refused by its call. So is a flag
                    # of any value, which a build must take (`return_sequences: abc`). Other
                    # values are not: a valid one may not fit this test's small input (an
                    # orthogonal initializer of a vector, channels_first on a CPU).
                    if callable_with_defaults and (arg == "axis" or types.unconstrained(fragment)):
                        _call(layer, name, entry)
                    if callable_with_defaults:
                        _check_computed(cls, {**base, arg: value}, name, entry)
                except Exception as exc:
                    refused_wrongly.append(f"{name}({arg}={value!r}): {str(exc)[:120]}")
                checked += 1
            for value in wrong:
                if not _refused(cls, {**base, arg: value}, name, entry, call=callable_with_defaults):
                    accepted_wrongly.append(f"{name}({arg}={value!r})")
                checked += 1
    assert not refused_wrongly, "Keras refuses values the catalog's types allow:\n" + "\n".join(
        refused_wrongly
    )
    assert not accepted_wrongly, "Keras accepts values the catalog's types refuse:\n" + "\n".join(
        accepted_wrongly
    )
    assert not_taken == NOT_TAKEN
    assert checked > 1000


@pytest.mark.parametrize(
    ("name", "arg"), [(n, a) for n, args in sorted(REFUSED_BASE_ARGS.items()) for a in sorted(args)]
)
def test_a_base_argument_a_layer_refuses_whatever_its_value_is_not_in_its_entry(name, arg):
    for value in (None, True, "l2"):
        with pytest.raises((TypeError, ValueError)):
            getattr(keras.layers, name)(**{arg: value})
    assert arg not in catalog.catalog()["layers"][name]["args"]


@pytest.mark.parametrize("name", ["Dense", "Conv1D", "Conv2D", "Dropout", "Embedding", "LayerNormalization"])
def test_the_common_layers_are_typed(name):
    assert name in _typed_layers()


# Values of untyped required arguments of the other sections' classes (the callbacks' paths are
# under the test's own folder: constructing them writes nothing, training would).
REQUIRED_OTHER = {
    "specificity": 0.5,
    "sensitivity": 0.5,
    "precision": 0.5,
    "recall": 0.5,
    "filepath": "model.keras",
    "backup_dir": "backup",
    "filename": "log.csv",
    "schedule": lambda epoch, rate: rate,
    "num_classes": 3,
    "target_class_ids": [0],
}


def _compute(name: str, made: Any) -> None:
    """Compute loss or metric `made` (class `name`) on a batch of two rows of three classes, as
    build's scratch check does."""
    y_true = np.array([0, 2]) if name.startswith("Sparse") else np.array([[0, 0, 1], [1, 0, 0]], "float32")
    scratch_value(made, y_true, np.array([[0.2, 0.3, 0.5], [0.6, 0.3, 0.1]], "float32"))


@functools.cache
def _small_model() -> keras.Model:
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    model.compile("sgd", "mse")
    return model


# Arguments that make a callback reach, within _epochs's four epochs, where Keras reads the others:
# ReduceLROnPlateau reduces the learning rate at the first worse epoch, reading verbose, then
# cooldown at the next.
IN_TRAINING = {"ReduceLROnPlateau": {"patience": 0}}


def _epochs(callback: Any) -> None:
    """Four epochs of worsening loss, which stop EarlyStopping (patience 0) and save a
    checkpoint each epoch: where a callback reads the arguments Keras takes any value for when
    it constructs it (catalog_types.CALLBACK_ARGUMENTS_READ_IN_TRAINING)."""
    model = _small_model()
    model.optimizer.learning_rate = 0.01  # as it was before another callback reduced it
    callback.set_model(model)
    callback.on_train_begin()
    for epoch, loss in enumerate([1.0, 2.0, 3.0, 4.0]):
        callback.on_epoch_begin(epoch)
        callback.on_train_batch_end(0, {"loss": loss})
        callback.on_epoch_end(epoch, {"loss": loss, "val_loss": loss})
    callback.on_train_end()


def _as_trained(section: str, name: str, made: Any) -> None:
    """Use optimizer, loss, metric, callback or object `made` (class `name`) as training would:
    as build tries each optimizer written with arguments and computes each loss and metric."""
    if section == "optimizers":
        scratch_steps(made)
    elif section in ("losses", "metrics"):
        _compute(name, made)
    elif section == "callbacks":
        _epochs(made)
    else:
        _use(section, made)


def _use_in_training(section: str, name: str, arg: str, made: Any) -> None:
    """Use an optimizer, callback, loss or metric as training would, where Keras first reads
    `arg`."""
    if (
        section == "optimizers"
        or (section == "callbacks" and (name, arg) in CALLBACK_ARGUMENTS_READ_IN_TRAINING)
        or (section in ("losses", "metrics") and computed_type(section, name, arg) is not None)
    ):
        _as_trained(section, name, made)


def test_losses_metrics_optimizers_and_callbacks_agree_with_keras(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    c = catalog.catalog()
    sections = {
        "losses": (c["losses"]["classes"], keras.losses),
        "metrics": (c["metrics"]["classes"], keras.metrics),
        "optimizers": (c["optimizers"], keras.optimizers),
        "callbacks": (c["callbacks"], keras.callbacks),
    }
    disagreements, checked, tried = [], 0, Counter()
    for section, (entries, module) in sections.items():
        for name, entry in entries.items():
            if not entry["types"]:
                continue
            cls = getattr(module, name)
            base = {a: REQUIRED_OTHER[a] for a in entry["required"]} | IN_TRAINING.get(name, {})
            for arg, fragment in entry["types"].items():
                values, wrong = examples(fragment), counter_examples(fragment)
                key = (section, arg, json.dumps(fragment, sort_keys=True))
                if section == "optimizers" and tried[key]:
                    # Each optimizer's steps cost tens of milliseconds: an argument every
                    # optimizer takes (clipnorm, epsilon, ...) is tried fully on the first, then
                    # with one example (and null) and two counter-examples on the rest.
                    values, wrong = values[:1] + [None] * (None in values), wrong[:2]
                tried[key] += 1
                for value in values:
                    try:
                        made = cls(**{**base, arg: value})
                        if types.unconstrained(fragment) and section in ("losses", "metrics"):
                            # Read when a value is computed: taken then too.
                            _compute(name, made)
                        elif types.unconstrained(fragment) and section == "callbacks":
                            # Read in training: taken then too. SwapEMAWeights needs an optimizer
                            # with use_ema, which the small model's has not.
                            if name != "SwapEMAWeights":
                                _epochs(made)
                        _use_in_training(section, name, arg, made)
                    except Exception as exc:
                        disagreements.append(f"refused {section}.{name}({arg}={value!r}): {str(exc)[:100]}")
                for value in wrong:
                    try:
                        _use_in_training(section, name, arg, cls(**{**base, arg: value}))
                    except Exception:
                        continue
                    disagreements.append(f"accepted {section}.{name}({arg}={value!r})")
                checked += 1
    assert not disagreements, "\n".join(disagreements)
    assert checked >= 40


# The arguments every application takes are tried on a few applications rather than all 40
# (building one takes up to seconds): every application module reads `include_top` only as a
# truth value (`if include_top:`, `weights == "imagenet" and include_top`, and
# obtain_input_shape's `require_flatten`) and `pooling` only as `pooling == "avg"` and
# `pooling == "max"`; ConvNeXt, EfficientNetV2 and MobileNetV3 read `include_preprocessing` as
# `if include_preprocessing:`, and MobileNetV3 `minimalistic` as `if minimalistic:`. Two modules
# of each stand for the rest (all 40 were built with odd include_top and pooling values when
# these types were written). An argument of a few applications (MobileNet's alpha) is tried on
# each. Small inputs and no weights keep each build well under a second.
SHARED_APPLICATION_CASES = {
    "include_top": [("MobileNet", {"alpha": 0.25}), ("MobileNetV3Small", {})],
    "pooling": [("VGG16", {"include_top": False}), ("MobileNet", {"alpha": 0.25, "include_top": False})],
    "include_preprocessing": [("MobileNetV3Small", {"include_top": False})],
    "minimalistic": [("MobileNetV3Small", {"include_top": False})],
    # Every application but the MobileNets reads `input_shape` with obtain_input_shape (VGG16
    # stands for them); MobileNetV3 reads it itself, and the MobileNets refuse a false one.
    "input_shape": [("VGG16", {"include_top": False}), ("MobileNetV3Small", {"include_top": False})],
    # Every application tests `weights in {"imagenet", None} or file_utils.exists(weights)`.
    "weights": [("VGG16", {"include_top": False})],
}
# Fewer odd values than elsewhere, for time: two true ones (a word, a list) and a false one (null,
# the default of pooling and of no other, is left out).
APPLICATION_VALUES = ["abc", [1], 0]


def test_applications_agree_with_keras():
    applications = catalog.catalog()["applications"]
    cases = [(name, base, arg) for arg, shared in SHARED_APPLICATION_CASES.items() for name, base in shared]
    for name, entry in applications.items():
        for arg, fragment in entry["types"].items():
            if arg in SHARED_APPLICATION_CASES:
                # The same type on every application as one of its representatives'.
                shared = [applications[n]["types"][arg] for n, _ in SHARED_APPLICATION_CASES[arg]]
                assert fragment in shared, (name, arg)
            else:
                cases.append((name, {}, arg))
    disagreements = []
    for name, base, arg in cases:
        fragment = applications[name]["types"][arg]
        # A build each: the first and last examples, and four counter-examples (those just past
        # the bounds first).
        values = examples(fragment)
        values = APPLICATION_VALUES if types.unconstrained(fragment) else values[:1] + values[1:][-1:]
        for value, taken in [(v, True) for v in values] + [
            (v, False) for v in counter_examples(fragment)[:4]
        ]:
            wrong = _application_disagrees(name, {"classes": 3, **base, arg: value}, taken)
            disagreements += [wrong] if wrong else []
    assert not disagreements, "\n".join(disagreements)


def _application_disagrees(name: str, args: dict, taken: bool) -> str | None:
    """Build application `name` (no weights, a 32x32 image) with `args`: what went other than
    `taken` says, or None."""
    called = f"applications.{name}({', '.join(f'{k}={v!r}' for k, v in args.items())})"
    try:
        getattr(keras.applications, name)(**{"weights": None, "input_shape": (32, 32, 3), **args})
    except Exception as exc:
        return f"refused {called}: {str(exc)[:100]}" if taken else None
    finally:
        keras.backend.clear_session()
    return None if taken else f"accepted {called}"


# The arguments every application reads only when it builds its top (`types_when`'s
# include_top): each application passes `classes` to the top's Dense (MobileNetV2, and most) or
# Conv2D (MobileNet, MobileNetV3) with `classifier_activation`; one of each kind stands for the
# rest.
TOP_CASES = [("MobileNetV2", {"alpha": 0.35}), ("MobileNet", {"alpha": 0.25})]


def test_applications_top_arguments_are_checked_with_the_top_only():
    """With the top, Keras takes the examples and refuses the counter-examples; without it,
    Keras takes the counter-examples too, so validate must not check them there."""
    applications = catalog.catalog()["applications"]
    for name, entry in applications.items():
        assert set(entry["types_when"]) == {"include_top"}, name
        assert set(entry["types_when"]["include_top"]) == {"classes", "classifier_activation"} & set(
            entry["args"]
        ), name
    disagreements = []
    for name, base in TOP_CASES:
        typed = applications[name]["types_when"]["include_top"]
        # One build with an example of each, two per argument with a counter-example, and one
        # without the top with a counter-example of each.
        cases = [({arg: examples(f)[0] for arg, f in typed.items()}, True, True)]
        cases += [({arg: v}, True, False) for arg, f in typed.items() for v in counter_examples(f)[:2]]
        cases += [({arg: counter_examples(f)[0] for arg, f in typed.items()}, False, True)]
        for values, top, taken in cases:
            wrong = _application_disagrees(name, {"classes": 3, **base, "include_top": top, **values}, taken)
            disagreements += [wrong] if wrong else []
    assert not disagreements, "\n".join(disagreements)


# A true and a false value of each flag a layer's or an optimizer's conditional types hang on.
FLAG_VALUES = {
    "rate": (0.5, 0),
    "stddev": (0.1, 0),
    "dropout": (0.5, 0.0),
    "use_ema": (True, False),
    "apply_class_balancing": (True, False),
    "save_best_only": (True, False),
    "save_weights_only": (True, False),
    "input_axes": ([0], None),
    "output_axes": ([1], None),
}


# A value refused where the flag is true and taken where it is false, where the type's first
# counter-example is refused both ways (a checkpoint's path that is no weights file: a .keras
# file).
OFF_VALUES = {("save_weights_only", "filepath"): "model.keras"}


def test_arguments_read_only_when_another_is_true_are_refused_by_keras_there_alone(tmp_path, monkeypatch):
    """A layer's seed (read when its rate is above 0), an optimizer's moving average's arguments
    (read with use_ema), a loss's and a callback's: with the flag true, Keras takes the examples
    and refuses the counter-examples (built and called, stepped on scratch weights, computed,
    run through epochs); with it false, Keras takes the counter-examples too, so validate checks
    them only where the flag is true."""
    monkeypatch.chdir(tmp_path)  # ModelCheckpoint saves there
    c = catalog.catalog()
    disagreements, checked = [], 0
    sections = {
        "layers": c["layers"],
        "optimizers": c["optimizers"],
        "losses": c["losses"]["classes"],
        "callbacks": c["callbacks"],
        "initializers": c["objects"]["initializers"]["classes"],
    }
    for section, entries in sections.items():
        for name, entry in entries.items():
            for flag, typed in entry.get("types_when", {}).items():
                on, off = FLAG_VALUES[flag]
                for arg, fragment in typed.items():
                    cases = [(v, on, True) for v in examples(fragment)]
                    cases += [(v, on, False) for v in counter_examples(fragment)[:3]]
                    off_value = OFF_VALUES.get((flag, arg))
                    if off_value is None:
                        off_value = counter_examples(fragment)[0]
                    else:
                        cases += [(off_value, on, False)]
                    cases += [(off_value, off, True)]
                    for value, flag_value, taken in cases:
                        args = {flag: flag_value, arg: value}
                        if _flag_refused(section, name, entry, args) == taken:
                            verb = "refused" if taken else "accepted"
                            disagreements.append(f"{verb} {section}.{name}({args})")
                    checked += 1
    assert not disagreements, "\n".join(disagreements)
    assert checked >= 35


# For each argument of `types_where` and the word it is typed at, another word it takes.
OTHER_WORDS = {("output_mode", "int"): "count", ("output_mode", "one_hot"): "int"}


def test_arguments_typed_where_another_is_one_word_are_refused_by_keras_there_alone():
    """A preprocessing layer's sparse where its output_mode is "int", HashedCrossing's num_bins
    where it is "one_hot": there Keras takes the examples and refuses the counter-examples
    (constructed, and called where the layer's defaults can be); with another word it takes
    the counter-examples too, so validate checks them only at that word."""
    disagreements, checked = [], 0
    for name, entry in catalog.catalog()["layers"].items():
        if "types_where" not in entry:
            continue
        cls, base = _layer_class(name), _base_args(name, entry)
        callable_with_defaults = not _refused(cls, base, name, entry)
        for other, words in entry["types_where"].items():
            for word, typed in words.items():
                for arg, fragment in typed.items():
                    wrong = counter_examples(fragment)
                    cases = [(v, word, True) for v in examples(fragment)]
                    cases += [(v, word, False) for v in wrong[:3]]
                    cases += [(v, OTHER_WORDS[other, word], True) for v in wrong[:3]]
                    for value, written, taken in cases:
                        args = {**base, other: written, arg: value}
                        if _refused(cls, args, name, entry, call=callable_with_defaults) == taken:
                            verb = "refused" if taken else "accepted"
                            disagreements.append(f"{verb} {name}({other}={written!r}, {arg}={value!r})")
                    checked += 1
    assert not disagreements, "\n".join(disagreements)
    assert checked == 6


def _flag_refused(section: str, name: str, entry: dict, args: dict) -> bool:
    if section != "layers":
        base = {a: REQUIRED_OTHER[a] for a in entry.get("required", ())}
        try:
            _as_trained(section, name, getattr(getattr(keras, section), name)(**{**base, **args}))
        except Exception:
            return True
        return False
    return _refused(_layer_class(name), {**_base_args(name, entry), **args}, name, entry)


def _build_op(name: str, x: Any, args: dict) -> None:
    """Build a model of op `name` on symbolic input `x`, as graphspec's functional build does
    (a split into no sections returns no tensor, which a model refuses), and compute it on ones
    where build does: for an argument Keras reads only when it computes."""
    entry = catalog.catalog()["ops"][name]
    keras.Model(x, getattr(keras.ops, name)(x, **args))
    operands = {
        entry["required"][0]: x,
        **{k: v for k, v in args.items() if isinstance(v, keras.KerasTensor)},
    }
    values = {k: v for k, v in args.items() if k not in operands}
    ones = scratch_operands(operands)
    found = computed_refusal(
        lambda given: make_operation(name, {**given, **ones}, name),
        values,
        entry.get("computed", []),
        entry.get("stand_ins"),
    )
    if found is not None:
        raise found[1]


# The input of the ops that take no (2, 5, 6) tensor: squeeze takes only axes of size 1, vander a
# vector, diag a vector or a matrix, depth_to_space channels that divide by 4 (its block of 2,
# squared).
OP_INPUT_SHAPES = {
    "squeeze": (1, 5, 1),
    "vander": (5,),
    "diag": (5, 6),
    "depth_to_space": (2, 4, 4, 8),
    "space_to_depth": (2, 4, 4, 2),
}


def test_ops_agree_with_keras():
    """Each op is built on a symbolic input, as a functional build calls it: what validate
    refuses, build refuses (a computation may refuse more: softmax's list of axes, ...)."""
    disagreements, checked = [], 0
    for name, entry in catalog.catalog()["ops"].items():
        function = getattr(keras.ops, name)
        x = keras.Input(batch_shape=OP_INPUT_SHAPES.get(name, (2, 5, 6)))
        for arg, fragment in entry["types"].items():
            # A binary op's other arguments are tried with the input as its second operand too.
            second = entry["required"] == ["x1", "x2"] and arg != "x2"
            others = {**OP_ARGUMENTS.get(name, {}), **({"x2": x} if second else {})}
            for value in examples(fragment):
                try:
                    _build_op(name, x, {**others, arg: value})
                    if types.unconstrained(fragment):
                        # Any value's type: a computation takes the value too.
                        ones = np.ones(x.shape, "float32")
                        computed = {**others, **({"x2": ones} if second else {}), arg: value}
                        function(ones, **computed)
                except Exception as exc:
                    disagreements.append(f"refused ops.{name}({arg}={value!r}): {str(exc)[:100]}")
            for value in counter_examples(fragment):
                try:
                    _build_op(name, x, {**others, arg: value})
                except Exception:
                    continue
                disagreements.append(f"accepted ops.{name}({arg}={value!r})")
            checked += 1
    assert not disagreements, "\n".join(disagreements)
    assert checked >= 30


def _use(section: str, obj: Any) -> None:
    """Use an initializer, regularizer or constraint on a (4, 3) weight, as a layer would (STFT's
    kernel: frames of 4 samples, one channel, 6 frequencies)."""
    if section == "initializers":
        obj((4, 1, 6) if isinstance(obj, keras.initializers.STFT) else (4, 3))
    elif section == "regularizers":
        obj(keras.ops.ones((4, 3)))
    else:
        obj(keras.Variable(np.ones((4, 3), "float32")))


def test_initializers_regularizers_and_constraints_agree_with_keras():
    disagreements, checked = [], 0
    for section, objects in catalog.catalog()["objects"].items():
        module = getattr(keras, section)
        for name, entry in objects["classes"].items():
            cls = getattr(module, name)
            for arg, fragment in entry["types"].items():
                for value in examples(fragment):
                    try:
                        _use(section, cls(**{arg: value}))
                    except Exception as exc:
                        disagreements.append(f"refused {section}.{name}({arg}={value!r}): {str(exc)[:100]}")
                for value in counter_examples(fragment):
                    try:
                        _use(section, cls(**{arg: value}))
                    except Exception:
                        continue
                    disagreements.append(f"accepted {section}.{name}({arg}={value!r})")
                checked += 1
    assert not disagreements, "\n".join(disagreements)
    assert checked >= 15
