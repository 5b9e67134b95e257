"""Export round-trips Keras's own test models: export -> build with the original's weights ->
the same outputs, in the same structure and dtypes, and the same trainable weights.

The models are in `tests/fixtures/keras_corpus.py`, each taken from a Keras test file; the few
export refuses are listed there with the exact message and the reason. Nothing in between may
be lost silently: a dtype policy, `trainable`, an optional input, or the structure (a list
stays a list, in its order; a single tensor stays one; a nested dict stays nested).
"""

from __future__ import annotations

import gc
import os
import textwrap

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from fixtures.keras_corpus import CASES, REFUSED  # noqa: E402
from keras import layers  # noqa: E402

import graphspec  # noqa: E402
from graphspec.errors import SpecErrors  # noqa: E402
from graphspec.keras.export import Export, export_model  # noqa: E402
from graphspec.keras.weights import load_weights_by_name  # noqa: E402

pytestmark = pytest.mark.filterwarnings(
    "ignore:Do not pass an `input_shape`:UserWarning",
    "ignore:.*does not support masking:UserWarning",
    "ignore:The structure of `inputs` doesn't match:UserWarning",
    "ignore:When providing `inputs` as a dict:UserWarning",
)
TOLERANCE = 1e-5


@pytest.fixture(autouse=True)
def _fresh_keras():
    keras.backend.clear_session()
    yield
    keras.backend.clear_session()
    gc.collect()


def _graph(model: keras.Model) -> keras.Model:
    return model._functional if isinstance(model, keras.Sequential) else model


def _listed(structure):
    """A structure with tuples as lists: YAML has lists only (docs/format.md, structure)."""
    if isinstance(structure, (list, tuple)):
        return [_listed(v) for v in structure]
    if isinstance(structure, dict):
        return {k: _listed(v) for k, v in structure.items()}
    return structure


def input_names(model: keras.Model):
    """The model's inputs as the structure it takes them in, each input by its name."""
    return _listed(keras.tree.map_structure(lambda t: t._keras_history[0].name, _graph(model)._inputs_struct))


def feed(model: keras.Model, seed: int = 0):
    """Random data in the structure `model` takes, the same for the same input names; a few
    leading zeros per sequence so that masks have something to mask."""
    rng = np.random.default_rng(seed)
    data = {}
    for tensor in keras.tree.flatten(_graph(model)._inputs_struct):
        shape = tuple(d if d is not None else 2 for d in tensor.shape)
        name = tensor._keras_history[0].name
        if "int" in str(tensor.dtype):
            value = rng.integers(1, 10, size=shape)
        else:
            value = rng.standard_normal(shape)
        if len(shape) >= 2 and shape[1] > 2:
            value[:, -1] = 0  # a padded last step
        data[name] = value.astype(str(tensor.dtype))
    return keras.tree.map_structure(lambda t: data[t._keras_history[0].name], _graph(model)._inputs_struct)


def rebuild(exported: Export, tmp_path) -> keras.Model:
    path = tmp_path / "exported.yaml"
    exported.write(path)
    loaded = graphspec.load(path)
    assert loaded.diagnostics.errors == []
    return loaded.build(compile=False)


def assert_round_trip(original: keras.Model, tmp_path) -> keras.Model:
    """Export, build, load the original's weights: the same model, seen from outside."""
    rebuilt = rebuild(export_model(original), tmp_path)
    load_weights_by_name(rebuilt, original)
    assert input_names(rebuilt) == input_names(original)
    assert sum(w.size for w in map(np.asarray, rebuilt.trainable_weights)) == sum(
        w.size for w in map(np.asarray, original.trainable_weights)
    )
    assert len(rebuilt.non_trainable_weights) == len(original.non_trainable_weights)
    expected = original(feed(original))
    actual = rebuilt(feed(rebuilt))
    shape_of = lambda v: (str(v.dtype), tuple(v.shape))  # noqa: E731
    assert _listed(keras.tree.map_structure(shape_of, actual)) == _listed(
        keras.tree.map_structure(shape_of, expected)
    )
    for got, want in zip(keras.tree.flatten(actual), keras.tree.flatten(expected), strict=True):
        got, want = np.asarray(got, dtype="float64"), np.asarray(want, dtype="float64")
        assert float(np.max(np.abs(got - want), initial=0.0)) <= TOLERANCE
    return rebuilt


# --- the corpus ---------------------------------------------------------------------------------


@pytest.mark.parametrize("case", [c for c in CASES if c.name not in REFUSED], ids=repr)
def test_a_keras_test_model_round_trips(case, tmp_path):
    assert_round_trip(case.make(), tmp_path)


@pytest.mark.parametrize("case", [c for c in CASES if c.name in REFUSED], ids=repr)
def test_a_keras_test_model_export_cannot_write_is_refused_with_the_reason(case):
    with pytest.raises(SpecErrors) as exc:
        export_model(case.make())
    assert exc.value.diagnostics.errors[0].message == REFUSED[case.name]


def test_the_corpus_is_large_and_mostly_exported():
    assert len(CASES) >= 50
    assert len(REFUSED) <= 3


# --- what used to be lost silently --------------------------------------------------------------


def test_a_dtype_policy_is_written_as_the_layers_dtype(tmp_path):
    inputs = keras.Input((4,), name="x")
    mixed = layers.Dense(3, dtype="mixed_float16", name="mixed")(inputs)
    model = keras.Model(inputs, layers.Dense(2, dtype="float16", name="half")(mixed))
    exported = export_model(model)
    assert exported.spec["layers"]["mixed"]["dtype"] == "mixed_float16"
    assert exported.spec["layers"]["half"]["dtype"] == "float16"
    rebuilt = assert_round_trip(model, tmp_path)
    assert rebuilt.get_layer("mixed").dtype_policy.name == "mixed_float16"
    assert str(rebuilt.output.dtype) == "float16"


def test_a_frozen_model_comes_back_frozen(tmp_path):
    inputs = keras.Input((4,), name="x")
    model = keras.Model(inputs, layers.Dense(2, name="d")(inputs), trainable=False)
    exported = export_model(model)
    assert exported.spec["trainable"] is False
    rebuilt = assert_round_trip(model, tmp_path)
    assert rebuilt.trainable is False and rebuilt.trainable_weights == []


def test_a_frozen_nested_model_comes_back_frozen_and_its_parent_trainable(tmp_path):
    inner_in = keras.Input((3,), name="inner_in")
    inner = keras.Model(inner_in, layers.Dense(2, name="inner_dense")(inner_in), name="inner")
    inner.trainable = False
    inputs = keras.Input((3,), name="x")
    model = keras.Model(inputs, layers.Dense(1, name="head")(inner(inputs)), name="outer")
    exported = export_model(model)
    assert "trainable" not in exported.spec
    assert "trainable: false" in exported.files()["outer.inner.yaml"]
    rebuilt = assert_round_trip(model, tmp_path)
    assert rebuilt.get_layer("inner").trainable is False
    assert [w.path for w in rebuilt.trainable_weights] == ["head/kernel", "head/bias"]


def test_an_optional_input_comes_back_optional(tmp_path):
    required, optional = keras.Input((2,), name="required"), keras.Input((2,), name="extra", optional=True)
    model = keras.Model([required, optional], layers.Dense(3, name="d")(required))
    exported = export_model(model)
    assert exported.spec["inputs"]["extra"] == {"shape": [2], "optional": True}
    rebuilt = assert_round_trip(model, tmp_path)
    assert rebuilt._inputs_struct[1]._keras_history[0].optional is True


def test_a_list_of_inputs_stays_a_list_in_its_order(tmp_path):
    # Equal shapes: an input re-ordered by name would be swapped silently.
    names = ["title", "text_body", "tags"]
    inputs = [keras.Input((4,), name=n) for n in names]
    merged = layers.Concatenate(name="cat")(inputs)
    model = keras.Model(inputs, layers.Dense(2, name="out")(merged))
    exported = export_model(model)
    assert exported.spec["structure"] == {"inputs": names, "outputs": "out"}
    rebuilt = assert_round_trip(model, tmp_path)
    assert [t._keras_history[0].name for t in rebuilt._inputs_struct] == names


def test_a_single_tensor_model_takes_and_gives_a_single_tensor(tmp_path):
    model = keras.Sequential([keras.Input((3,)), layers.Dense(2, name="d")])
    rebuilt = assert_round_trip(model, tmp_path)
    result = rebuilt(np.ones((1, 3), "float32"))
    assert keras.tree.is_nested(result) is False


def test_nested_outputs_of_any_structure_come_back_in_it(tmp_path):
    inputs = keras.Input((4,), name="x")
    y1, y2, y3 = (layers.Dense(n, name=f"y{n}")(inputs) for n in (1, 2, 3))
    model = keras.Model(inputs, {"a": (y1, y2), "b": {"c": y3}})
    exported = export_model(model)
    assert exported.spec["structure"]["outputs"] == {"a": ["y1", "y2"], "b": {"c": "y3"}}
    assert exported.to_yaml().endswith(
        textwrap.dedent("""\
        structure:
          inputs: x
          outputs:
            a: [y1, y2]
            b: {c: y3}
        """)
    )
    assert_round_trip(model, tmp_path)


def test_an_output_keyed_like_an_input_is_renamed_and_keeps_its_key(tmp_path):
    inputs = keras.Input((4,), name="bar")
    model = keras.Model(inputs, {"bar": layers.Dense(2, name="d")(inputs)})
    exported = export_model(model)
    assert exported.spec["outputs"] == {"bar_2": {"from": "d"}}
    assert exported.spec["structure"]["outputs"] == {"bar": "bar_2"}
    rebuilt = assert_round_trip(model, tmp_path)
    assert list(rebuilt(np.ones((1, 4), "float32"))) == ["bar"]


def test_losses_of_list_outputs_follow_them(tmp_path):
    inputs = keras.Input((4,), name="x")
    model = keras.Model(inputs, [layers.Dense(2, name="a")(inputs), layers.Dense(1, name="b")(inputs)])
    model.compile(optimizer="adam", loss=["mse", "mae"], loss_weights=[1.0, 0.5])
    exported = export_model(model)
    assert exported.spec["outputs"] == {"a": {"loss": "mse"}, "b": {"loss": "mae", "weight": 0.5}}
    path = tmp_path / "exported.yaml"
    exported.write(path)
    rebuilt = graphspec.load(path).build()
    x = np.ones((4, 4), "float32")
    ys = [np.zeros((4, 2), "float32"), np.zeros((4, 1), "float32")]
    load_weights_by_name(rebuilt, model)
    assert rebuilt.evaluate(x, ys, verbose=0) == pytest.approx(model.evaluate(x, ys, verbose=0), rel=1e-5)


# --- the format's checks ------------------------------------------------------------------------


def test_a_structure_must_name_every_input_once(write_spec):
    path = write_spec("""
        graphspec: 1
        name: s
        inputs: {a: {shape: [2]}, b: {shape: [2]}}
        layers:
          cat: {type: Concatenate, in: [a, b]}
        outputs: {cat: {}}
        structure:
          inputs: [a, a, c]
        """)
    with pytest.raises(SpecErrors) as exc:
        graphspec.load(path)
    messages = [(e.location.line, e.message) for e in exc.value.diagnostics.errors]
    assert messages == [
        (8, "structure.inputs names 'a' twice"),
        (8, "structure.inputs names 'c', which is not one of the spec's inputs"),
        (8, "structure.inputs leaves out 'b': it names every one of the spec's inputs"),
    ]


def test_an_output_from_another_node_named_like_an_input_is_a_located_error(write_spec):
    path = write_spec("""
        graphspec: 1
        name: s
        inputs: {bar: {shape: [2]}}
        layers:
          d: {type: Dense, units: 2, in: bar}
        outputs:
          bar: {from: d}
        """)
    with pytest.raises(SpecErrors) as exc:
        graphspec.load(path)
    assert [(e.location.line, e.message) for e in exc.value.diagnostics.errors] == [
        (7, "output 'bar' (from 'd') has the same name as an input")
    ]


def test_a_masking_spec_graphspec_built_exports_again(write_spec, tmp_path):
    # Keras puts the Masking layer's mask computation (not_equal, any) in the graph; export
    # leaves it to Keras, which computes it again from the layer, rather than refusing it.
    path = write_spec("""
        graphspec: 1
        name: masked
        inputs: {x: {shape: [5, 3]}}
        layers:
          mask: {type: Masking, in: x}
          lstm: {type: LSTM, units: 4, in: mask}
        outputs: {lstm: {}}
        """)
    original = graphspec.load(path).build(compile=False)
    exported = export_model(original)
    assert exported.spec["layers"] == {
        "mask": {"type": "Masking", "in": "x"},
        "lstm": {"type": "LSTM", "units": 4, "in": "mask"},
    }
    assert "structure" not in exported.spec
    assert_round_trip(original, tmp_path)


def test_losses_given_in_a_nested_structure_are_refused_not_dropped():
    inputs = keras.Input((4,), name="x")
    y1, y2 = layers.Dense(1, name="y1")(inputs), layers.Dense(2, name="y2")(inputs)
    model = keras.Model(inputs, {"a": [y1, y2]})
    model.compile(optimizer="adam", loss={"a": ["mse", "mae"]})
    with pytest.raises(SpecErrors) as exc:
        export_model(model)
    assert exc.value.diagnostics.errors[0].message == (
        "the model was compiled with a loss for 'a', which is not one of its outputs as a spec "
        "names them (y1, y2)"
    )


def test_a_spec_with_a_structure_trains_and_its_run_keeps_the_structure(write_spec, tmp_path):
    from graphspec.keras.train import DataSource, train

    path = write_spec("""
        graphspec: 1
        name: s
        inputs: {a: {shape: [2]}, b: {shape: [2]}}
        layers:
          cat: {type: Concatenate, in: [a, b]}
          p: {type: Dense, units: 1, in: cat}
          d: {type: Dense, units: 3, in: cat}
        outputs: {p: {loss: mse}, d: {loss: mse, weight: 0.5}}
        structure:
          inputs: [b, a]
          outputs: {scores: [d, p]}
        train: {epochs: 4, samples: 64, batch_size: 16, seed: 3}
        """)
    result = train(graphspec.load(path), DataSource(True, "teacher"), runs_root=tmp_path / "runs", verbose=0)
    # Training fed and scored it by name, as any spec.
    assert result.history["loss"][-1] < result.history["loss"][0]
    assert {"p_loss", "d_loss"} <= set(result.history)
    saved = keras.models.load_model(result.model_path)
    a, b = np.ones((2, 2), "float32"), np.zeros((2, 2), "float32")
    out = saved.predict([b, a], verbose=0)
    assert list(out) == ["scores"] and [o.shape for o in out["scores"]] == [(2, 3), (2, 1)]
    # The run's model is the trained one: its weights are the trained twin's.
    rebuilt = graphspec.load(path).build()
    rebuilt.set_weights(saved.get_weights())
    np.testing.assert_allclose(rebuilt.predict([b, a], verbose=0)["scores"][1], out["scores"][1])
