"""The book chapter's models as specs, each proven equal to the Keras code the chapter writes.

For every `specs/book_*.yaml` the chapter's own Keras code (Sequential or functional, copied
from its cells) is written out here. The two models must agree on parameter counts (total and
trainable), on the classes of their layers, layer by layer on each node's class and size, on
the numbers the chapter's summaries print, and on the compile settings the chapter uses. For
each, the Keras model's weights are then copied into the spec-built one node by node and
both must compute the same outputs: that proves the wiring, not just the counts.

The chapter's code records, through `Named`, which of its layers each spec node stands for.
The wide-and-deep model, which the chapter names (7.3.3) but does not write, is by hand.
Each model is built once per module (a module-scoped parametrized fixture), and the Keras
session is cleared between models to keep memory low.
"""

from __future__ import annotations

import gc
import os
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from keras import Input, Model, Sequential, applications, layers  # noqa: E402

import graphspec  # noqa: E402
from graphspec.spec.load import LoadedSpec  # noqa: E402

SPECS = Path(__file__).resolve().parent.parent / "specs"

# The chapter's Sequential models pass `input_shape=` to their first layer, as Keras 2 did.
pytestmark = pytest.mark.filterwarnings("ignore:Do not pass an `input_shape`:UserWarning")


class Named(dict):
    """Spec node name -> the Keras layer the chapter's code creates for that node.

    `n("hidden1", layers.Dense(32))` records the layer and returns it, so the chapter's code
    keeps its shape: `x = n("hidden1", layers.Dense(32))(x)`.
    """

    def __call__(self, node: str, layer: Any) -> Any:
        self[node] = layer
        return layer


# --- The chapter's code, cell by cell -------------------------------------------------------


def chapter_mlp(n: Named) -> keras.Model:
    """Section 7.1.1, In [2]."""
    seq_model = Sequential()
    seq_model.add(n("hidden1", layers.Dense(32, activation="relu", input_shape=(64,))))
    seq_model.add(n("hidden2", layers.Dense(32, activation="relu")))
    seq_model.add(n("probs", layers.Dense(10, activation="softmax")))
    return seq_model


def chapter_qa(n: Named) -> keras.Model:
    """Section 7.1.2, In [5]."""
    text_vocabulary_size = 10000
    question_vocabulary_size = 10000
    answer_vocabulary_size = 500
    text_input = Input(shape=(None,), dtype="int32", name="text")
    embedded_text = n("text_embed", layers.Embedding(text_vocabulary_size, 64))(text_input)
    encoded_text = n("text_vec", layers.LSTM(32))(embedded_text)
    question_input = Input(shape=(None,), dtype="int32", name="question")
    embedded_question = n("q_embed", layers.Embedding(question_vocabulary_size, 32))(question_input)
    encoded_question = n("q_vec", layers.LSTM(16))(embedded_question)
    concatenated = layers.concatenate([encoded_text, encoded_question], axis=-1)
    answer = n("answer", layers.Dense(answer_vocabulary_size, activation="softmax"))(concatenated)
    return Model([text_input, question_input], answer)


def chapter_social_media(n: Named) -> keras.Model:
    """Section 7.1.3, In [7]."""
    vocabulary_size = 50000
    num_income_groups = 10
    posts_input = Input(shape=(None,), dtype="int32", name="posts")
    embedded_posts = n("embedded_posts", layers.Embedding(vocabulary_size, 256))(posts_input)
    x = n("conv1", layers.Conv1D(128, 5, activation="relu"))(embedded_posts)
    x = layers.MaxPooling1D(5)(x)
    x = n("conv2", layers.Conv1D(256, 5, activation="relu"))(x)
    x = n("conv3", layers.Conv1D(256, 5, activation="relu"))(x)
    x = layers.MaxPooling1D(5)(x)
    x = n("conv4", layers.Conv1D(256, 5, activation="relu"))(x)
    x = n("conv5", layers.Conv1D(256, 5, activation="relu"))(x)
    x = layers.GlobalMaxPooling1D()(x)
    x = n("hidden", layers.Dense(128, activation="relu"))(x)
    age_prediction = n("age", layers.Dense(1, name="age"))(x)
    income_prediction = n("income", layers.Dense(num_income_groups, activation="softmax", name="income"))(x)
    gender_prediction = n("gender", layers.Dense(1, activation="sigmoid", name="gender"))(x)
    return Model(posts_input, [age_prediction, income_prediction, gender_prediction])


def chapter_inception(n: Named) -> keras.Model:
    """Section 7.1.4, In [10]."""
    x = layers.Input((128, 128, 3))
    branch_a = n("branch_a", layers.Conv2D(128, 1, activation="relu", padding="same", strides=2))(x)
    branch_b = n("branch_b1", layers.Conv2D(128, 1, activation="relu", padding="same"))(x)
    branch_b = n("branch_b", layers.Conv2D(128, 3, activation="relu", strides=2, padding="same"))(branch_b)
    branch_c = layers.AveragePooling2D(3, padding="same", strides=2)(x)
    branch_c = n("branch_c", layers.Conv2D(128, 3, activation="relu", padding="same"))(branch_c)
    branch_d = n("branch_d1", layers.Conv2D(128, 1, activation="relu", padding="same"))(x)
    branch_d = n("branch_d2", layers.Conv2D(128, 3, activation="relu", padding="same"))(branch_d)
    branch_d = n("branch_d", layers.Conv2D(128, 3, activation="relu", padding="same", strides=2))(branch_d)
    output = layers.concatenate([branch_a, branch_b, branch_c, branch_d], axis=-1)
    return Model(x, output)


def chapter_residual_identity(n: Named) -> keras.Model:
    """Section 7.1.4, part 2, the identity residual connection (x given 128 channels)."""
    x = Input(shape=(32, 32, 128))
    y = n("y1", layers.Conv2D(128, 3, activation="relu", padding="same"))(x)
    y = n("y2", layers.Conv2D(128, 3, activation="relu", padding="same"))(y)
    y = n("y3", layers.Conv2D(128, 3, activation="relu", padding="same"))(y)
    y = layers.add([y, x])
    return Model(x, y)


def chapter_residual_projection(n: Named) -> keras.Model:
    """Section 7.1.4, part 2, the linear residual connection (x given 64 channels)."""
    x = Input(shape=(32, 32, 64))
    y = n("y1", layers.Conv2D(128, 3, activation="relu", padding="same"))(x)
    y = n("y2", layers.Conv2D(128, 3, activation="relu", padding="same"))(y)
    y = layers.MaxPooling2D(2, strides=2)(y)
    residual = n("residual", layers.Conv2D(128, 1, strides=2, padding="same"))(x)
    y = layers.add([y, residual])
    return Model(x, y)


def chapter_siamese_lstm(n: Named) -> keras.Model:
    """Section 7.1.5, In [11]."""
    lstm = n("left_output", layers.LSTM(32))
    left_input = Input(shape=(None, 128))
    left_output = lstm(left_input)
    right_input = Input(shape=(None, 128))
    right_output = lstm(right_input)
    merged = layers.concatenate([left_output, right_output], axis=-1)
    predictions = n("predictions", layers.Dense(1, activation="sigmoid"))(merged)
    return Model([left_input, right_input], predictions)


def chapter_twin_camera(n: Named) -> keras.Model:
    """Section 7.1.6, In [12], plus the spec's head (the chapter stops at the merged features)."""
    xception_base = n("xception_base", applications.Xception(weights=None, include_top=False))
    left_input = Input(shape=(250, 250, 3))
    right_input = Input(shape=(250, 250, 3))
    left_features = xception_base(left_input)
    # The chapter writes `right_input = xception_base(right_input)`, a naming slip.
    right_features = xception_base(right_input)
    merged_features = layers.concatenate([left_features, right_features], axis=-1)
    pooled = layers.GlobalAveragePooling2D()(merged_features)
    distance = n("distance", layers.Dense(1))(pooled)
    return Model([left_input, right_input], distance)


def chapter_imdb_conv1d(n: Named) -> keras.Model:
    """Section 7.2.2, In [13]; Keras 3 has no `input_length`, so an Input gives the length."""
    max_features = 2000
    max_len = 500
    model = Sequential()
    model.add(Input(shape=(max_len,)))
    model.add(n("embed", layers.Embedding(max_features, 128, name="embed")))
    model.add(n("conv1", layers.Conv1D(32, 7, activation="relu")))
    model.add(layers.MaxPooling1D(5))
    model.add(n("conv2", layers.Conv1D(32, 7, activation="relu")))
    model.add(layers.GlobalMaxPooling1D())
    model.add(n("sentiment", layers.Dense(1)))
    return model


def chapter_separable_conv(n: Named) -> keras.Model:
    """Section 7.3.1, In [15]."""
    height = 64
    width = 64
    channels = 3
    num_classes = 10
    model = Sequential()
    model.add(
        n("sep1", layers.SeparableConv2D(32, 3, activation="relu", input_shape=(height, width, channels)))
    )
    model.add(n("sep2", layers.SeparableConv2D(64, 3, activation="relu")))
    model.add(layers.MaxPooling2D(2))
    model.add(n("sep3", layers.SeparableConv2D(64, 3, activation="relu")))
    model.add(n("sep4", layers.SeparableConv2D(128, 3, activation="relu")))
    model.add(layers.MaxPooling2D(2))
    model.add(n("sep5", layers.SeparableConv2D(64, 3, activation="relu")))
    model.add(n("sep6", layers.SeparableConv2D(128, 3, activation="relu")))
    model.add(layers.GlobalAveragePooling2D())
    model.add(n("hidden", layers.Dense(32, activation="relu")))
    model.add(n("probs", layers.Dense(num_classes, activation="softmax")))
    return model


def chapter_batchnorm(n: Named) -> keras.Model:
    """Section 7.3.1, part 01: the chapter's two BatchNormalization fragments in one model."""
    model = Sequential()
    model.add(Input(shape=(32, 32, 3)))
    model.add(n("conv", layers.Conv2D(32, 3, activation="relu")))
    model.add(n("conv_bn", layers.BatchNormalization()))
    model.add(layers.GlobalAveragePooling2D())
    model.add(n("dense", layers.Dense(32, activation="relu")))
    model.add(n("dense_bn", layers.BatchNormalization()))
    model.add(n("probs", layers.Dense(10, activation="softmax")))
    return model


def hand_wide_deep(n: Named) -> keras.Model:
    """Not in the chapter (7.3.3 only names it): the spec's wide-and-deep model, by hand."""
    crosses = Input(shape=(1000,))
    categorical = Input(shape=(3,), dtype="int32")
    numeric = Input(shape=(8,))
    embedded = n("embedded", layers.Embedding(1000, 8))(categorical)
    deep = layers.concatenate([layers.Flatten()(embedded), numeric])
    deep = n("deep1", layers.Dense(64, activation="relu"))(deep)
    deep = n("deep2", layers.Dense(32, activation="relu"))(deep)
    click = n("click", layers.Dense(1, activation="sigmoid"))(layers.concatenate([crosses, deep]))
    return Model([crosses, categorical, numeric], click)


# --- What each model must match -------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Case:
    """One spec, the chapter's code for it, and what the chapter prints or sets for it."""

    spec: str
    chapter: Callable[[Named], keras.Model]
    # Spec input names in the order of the chapter model's inputs, and likewise for outputs.
    feed: tuple[str, ...]
    fetch: tuple[str, ...]
    sequential: bool = False
    total: int | None = None  # "Total params" as the chapter's summary prints it
    printed: dict[str, int] = field(default_factory=dict)  # node -> "Param #" in the summary
    named: tuple[str, ...] = ()  # input, output and layer names the chapter's code gives
    compile: dict[str, Any] | None = None  # the chapter's model.compile(...) arguments
    # What the spec deliberately changes after the chapter's last layer, applied to its output.
    post: Callable[[Any], Any] | None = None

    def __repr__(self) -> str:
        return self.spec


CASES = [
    Case(
        "book_mlp.yaml",
        chapter_mlp,
        ("x",),
        ("probs",),
        sequential=True,
        total=3466,
        printed={"hidden1": 2080, "hidden2": 1056, "probs": 330},
        compile={"optimizer": "rmsprop", "loss": "categorical_crossentropy"},
    ),
    Case(
        "book_qa.yaml",
        chapter_qa,
        ("text", "question"),
        ("answer",),
        printed={"text_embed": 640_000, "q_embed": 320_000},
        named=("text", "question"),
        compile={"optimizer": "rmsprop", "loss": "categorical_crossentropy", "metrics": ["acc"]},
    ),
    Case(
        "book_social_media.yaml",
        chapter_social_media,
        ("posts",),
        ("age", "income", "gender"),
        printed={"embedded_posts": 12_800_000, "conv1": 163_968},
        named=("posts", "age", "income", "gender"),
        compile={
            "optimizer": "rmsprop",
            "loss": {"age": "mse", "income": "categorical_crossentropy", "gender": "binary_crossentropy"},
            "loss_weights": {"age": 0.25, "income": 1.0, "gender": 10.0},
        },
    ),
    Case(
        "book_inception.yaml",
        chapter_inception,
        ("x",),
        ("output",),
        printed={"branch_b1": 512, "branch_d1": 512},
    ),
    Case("book_residual_identity.yaml", chapter_residual_identity, ("x",), ("y",)),
    Case("book_residual_projection.yaml", chapter_residual_projection, ("x",), ("y",)),
    Case(
        "book_siamese_lstm.yaml",
        chapter_siamese_lstm,
        ("left", "right"),
        ("predictions",),
        printed={"left_output": 20_608},
    ),
    # One Xception base called on both cameras: the counts show one base's parameters, not
    # two, and the outputs on copied weights show both cameras go through it.
    Case("book_twin_camera.yaml", chapter_twin_camera, ("left_cam", "right_cam"), ("distance",)),
    # The spec restores the sigmoid the chapter's last Dense lacks: no parameters change.
    Case(
        "book_imdb_conv1d.yaml",
        chapter_imdb_conv1d,
        ("review",),
        ("sentiment",),
        sequential=True,
        total=291_937,
        printed={"embed": 256_000, "conv1": 28_704, "conv2": 7200, "sentiment": 33},
        named=("embed",),
        post=keras.ops.sigmoid,
        compile={"optimizer": "rmsprop", "loss": "binary_crossentropy", "metrics": ["acc"]},
    ),
    Case(
        "book_separable_conv.yaml",
        chapter_separable_conv,
        ("image",),
        ("probs",),
        sequential=True,
        compile={"optimizer": "rmsprop", "loss": "categorical_crossentropy"},
    ),
    Case("book_batchnorm.yaml", chapter_batchnorm, ("image",), ("probs",), sequential=True),
    Case("book_wide_deep.yaml", hand_wide_deep, ("crosses", "categorical", "numeric"), ("click",)),
]


@dataclass
class Built:
    case: Case
    loaded: LoadedSpec
    model: keras.Model  # built from the spec
    chapter: keras.Model  # built by the chapter's code
    nodes: Named  # spec node -> the chapter's layer for it


@pytest.fixture(scope="module", params=CASES, ids=repr)
def built(request: pytest.FixtureRequest) -> Iterator[Built]:
    case: Case = request.param
    keras.backend.clear_session()
    loaded = graphspec.load(SPECS / case.spec)
    model = loaded.build()
    nodes = Named()
    chapter = case.chapter(nodes)
    yield Built(case, loaded, model, chapter, nodes)
    del model, chapter, nodes
    keras.backend.clear_session()
    gc.collect()


def _count(weights: list) -> int:
    return sum(int(np.prod(w.shape)) for w in weights)


def _class_names(model: keras.Model, drop_inputs: bool) -> Counter:
    names = Counter(type(layer).__name__ for layer in model.layers)
    if drop_inputs:
        # Keras's Sequential hides its InputLayer; the spec's functional model lists it.
        del names["InputLayer"]
    return names


def _sample(loaded: LoadedSpec, batch: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Random inputs of the spec's shapes and dtypes (null lengths: the input's seq_len or 16)."""
    rng = np.random.default_rng(seed)
    data = {}
    for name, spec in loaded.spec.inputs.items():
        shape = (batch, *(dim if dim is not None else spec.seq_len or 16 for dim in spec.shape))
        if spec.dtype.startswith("int"):
            low, high = spec.range or (0, 10)
            data[name] = rng.integers(int(low), int(high), size=shape).astype(spec.dtype)
        else:
            data[name] = rng.standard_normal(shape).astype(spec.dtype)
    return data


def _copy_weights(b: Built) -> None:
    """The chapter model's weights into the spec model, node by node, covering every weight."""
    for node, layer in b.nodes.items():
        b.model.get_layer(node).set_weights(layer.get_weights())
    weighted = {layer.name for layer in b.model.layers if layer.weights}
    assert weighted == set(b.nodes), "every spec layer with weights needs its chapter layer"


# --- The tests ------------------------------------------------------------------------------


def test_parameter_counts_equal(built: Built) -> None:
    model, chapter = built.model, built.chapter
    assert model.count_params() == chapter.count_params()
    assert _count(model.trainable_weights) == _count(chapter.trainable_weights)
    assert _count(model.non_trainable_weights) == _count(chapter.non_trainable_weights)


def test_layer_classes_equal(built: Built) -> None:
    drop = built.case.sequential
    assert _class_names(built.model, drop) == _class_names(built.chapter, drop)


def test_each_node_matches_its_chapter_layer(built: Built) -> None:
    for node, layer in built.nodes.items():
        mine = built.model.get_layer(node)
        assert type(mine).__name__ == type(layer).__name__, node
        assert mine.count_params() == layer.count_params(), node


def test_input_and_output_names_are_the_specs(built: Built) -> None:
    spec, model = built.loaded.spec, built.model
    assert sorted(t.name for t in model.inputs) == sorted(spec.inputs)
    assert sorted(model.output_names) == sorted(spec.outputs)
    # Layer names equal node names; a shared node calls another node's layer.
    layer_names = {layer.name for layer in model.layers}
    assert {n for n, node in spec.layers.items() if node.share is None} <= layer_names
    assert len(model.inputs) == len(built.chapter.inputs)
    assert len(model.outputs) == len(built.chapter.outputs)


PRINTED = [c for c in CASES if c.total is not None or c.printed]


@pytest.mark.parametrize("built", PRINTED, indirect=True, ids=repr)
def test_counts_the_chapter_prints(built: Built) -> None:
    if built.case.total is not None:
        assert built.model.count_params() == built.case.total
    for node, params in built.case.printed.items():
        assert built.model.get_layer(node).count_params() == params, node


NAMED = [c for c in CASES if c.named]


@pytest.mark.parametrize("built", NAMED, indirect=True, ids=repr)
def test_names_the_chapter_gives(built: Built) -> None:
    def names(model: keras.Model) -> set[str]:
        # Keras names an output after its layer, so layer names cover the output names.
        return {t.name for t in model.inputs} | {layer.name for layer in model.layers}

    assert set(built.case.named) <= names(built.chapter)
    assert set(built.case.named) <= names(built.model)


def _per_output(value: Any, outputs: tuple[str, ...], default: Any) -> dict[str, Any]:
    """A compile argument (one value, a list in output order, or a dict) as output -> value."""
    if value is None:
        return {name: default for name in outputs}
    if isinstance(value, dict):
        return dict(value)
    if isinstance(value, list):
        return dict(zip(outputs, value, strict=True))
    return {name: value for name in outputs}


COMPILED = [c for c in CASES if c.compile]


@pytest.mark.parametrize("built", COMPILED, indirect=True, ids=repr)
def test_compile_is_the_chapters(built: Built) -> None:
    outputs = built.case.fetch
    built.chapter.compile(**built.case.compile)
    mine, theirs = built.model.get_compile_config(), built.chapter.get_compile_config()
    for config in (mine, theirs):
        config["optimizer"]["config"].pop("name")
    assert mine["optimizer"] == theirs["optimizer"]
    assert _per_output(mine["loss"], outputs, None) == _per_output(theirs["loss"], outputs, None)
    weights = [_per_output(c["loss_weights"], outputs, 1.0) for c in (mine, theirs)]
    assert weights[0] == weights[1]
    # The chapter gives a single output's metrics as one list; the spec, one list per output.
    metrics = theirs["metrics"]
    theirs_metrics = {outputs[0]: metrics} if isinstance(metrics, list) and len(outputs) == 1 else metrics
    assert {k: v for k, v in (mine["metrics"] or {}).items() if v} == (theirs_metrics or {})


def test_same_outputs_on_the_same_weights(built: Built) -> None:
    _copy_weights(built)
    data = _sample(built.loaded, batch=2)
    mine = built.model({k: keras.ops.convert_to_tensor(v) for k, v in data.items()}, training=False)
    feed = [data[name] for name in built.case.feed]
    theirs = built.chapter(feed if len(feed) > 1 else feed[0], training=False)
    theirs = theirs if isinstance(theirs, (list, tuple)) else [theirs]
    if built.case.post is not None:
        theirs = [built.case.post(t) for t in theirs]
    assert len(theirs) == len(built.case.fetch)
    for name, expected in zip(built.case.fetch, theirs, strict=True):
        got, expected = keras.ops.convert_to_numpy(mine[name]), keras.ops.convert_to_numpy(expected)
        assert got.shape == expected.shape, name
        assert np.abs(got - expected).max() < 1e-5, name


@pytest.mark.parametrize("built", [CASES[2]], indirect=True, ids=repr)
def test_weighted_losses_sum_as_the_chapters(built: Built) -> None:
    """Social media: the spec's per-output losses and weights give the chapter's total loss."""
    assert built.case.spec == "book_social_media.yaml"
    _copy_weights(built)
    built.chapter.compile(**built.case.compile)
    data = _sample(built.loaded, batch=4)
    rng = np.random.default_rng(1)
    targets = {
        "age": rng.uniform(20, 60, size=(4, 1)).astype("float32"),
        "income": np.eye(10, dtype="float32")[rng.integers(0, 10, size=4)],
        "gender": rng.integers(0, 2, size=(4, 1)).astype("float32"),
    }
    mine = built.model.evaluate(data, targets, verbose=0, return_dict=True)
    theirs = built.chapter.evaluate(
        data["posts"], [targets[k] for k in built.case.fetch], verbose=0, return_dict=True
    )
    # The age loss alone is large (hundreds): unweighted sums would differ by far more.
    assert mine["loss"] == pytest.approx(theirs["loss"], rel=1e-5)
    assert mine["loss"] > 10.0
