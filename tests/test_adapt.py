"""Preprocessing layers that learn from the data (`adapt:`): validated without TensorFlow, adapted
on the training split alone, batch by batch, on what reaches them through the graph, and saved
in model.keras so that stock Keras predicts from raw columns.

Each adapted state is compared with Keras's or NumPy's own on the same rows. Tables are written
at test time; the real one is scikit-learn's wine, with two categorical columns derived from it.
"""

from __future__ import annotations

import csv
import inspect
import json
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from typer.testing import CliRunner

import graphspec
from graphspec.cli import app
from graphspec.errors import SpecErrors
from graphspec.keras.adapt import adapt_layers, sampled_rows
from graphspec.keras.build import build_model_and_tensors
from graphspec.keras.train import DataSource, train
from graphspec.spec.adapt import ADAPTABLE

runner = CliRunner()
ROOT = Path(__file__).resolve().parent.parent

# 12 training rows (a table's validation split is its last rows) and 4 validation rows whose
# numbers and city are unlike the training rows': an adapted state that saw them would show it.
ROWS = [(float(i), float(10 - 2 * i), ["Oslo", "Rome", "Lima"][i % 3]) for i in range(12)]
ROWS += [(1000.0 + i, -500.0, "Zurich") for i in range(4)]

SPEC = """
graphspec: 1
name: adapted
inputs:
  x: {shape: [2]}
  city: {shape: [1], dtype: string}
layers:
  norm: {type: Normalization, adapt: true, in: x}
  ids: {type: StringLookup, adapt: true, in: city}
  vec: {type: Embedding, input_dim: 8, output_dim: 2, in: ids}
  flat: {type: Flatten, in: vec}
  joined: {type: Concatenate, in: [norm, flat]}
  kind: {type: Dense, units: 2, activation: softmax, in: joined}
outputs:
  kind: {loss: sparse_categorical_crossentropy, metrics: [accuracy]}
train: {epochs: 1, batch_size: 4, validation_split: 0.25, seed: 0}
data:
  inputs:
    x: {columns: [a, b]}
"""


def _csv(path: Path, rows: list[tuple]) -> Path:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["a", "b", "city", "kind"])
        for i, (a, b, city) in enumerate(rows):
            writer.writerow([a, b, city, i % 2])
    return path


def _train(spec: Path, data: Path, out: Path) -> tuple[keras.Model, object]:
    """Train `spec` on `data`; the model as built (its layers are the trained ones) and the result."""
    built: list[keras.Model] = []
    result = train(graphspec.load(spec), DataSource(data=data), out=out, verbose=0, on_built=built.append)
    return built[0], result


def test_the_adaptable_layers_are_the_keras_layers_with_an_adapt_method():
    with_adapt = {
        name
        for name in dir(keras.layers)
        if inspect.isclass(getattr(keras.layers, name)) and hasattr(getattr(keras.layers, name), "adapt")
    }
    assert set(ADAPTABLE) == with_adapt


def test_normalization_learns_the_training_rows_mean_and_variance(write_spec, tmp_path):
    model, _ = _train(write_spec(SPEC), _csv(tmp_path / "t.csv", ROWS), tmp_path / "run")
    training = np.array([[a, b] for a, b, _ in ROWS[:12]])
    norm = model.get_layer("norm")
    np.testing.assert_allclose(np.ravel(norm.mean), training.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(np.ravel(norm.variance), training.var(axis=0), rtol=1e-5)


def test_string_lookup_learns_the_training_rows_distinct_strings(write_spec, tmp_path):
    model, _ = _train(write_spec(SPEC), _csv(tmp_path / "t.csv", ROWS), tmp_path / "run")
    vocabulary = model.get_layer("ids").get_vocabulary(include_special_tokens=False)
    assert sorted(str(token) for token in vocabulary) == ["Lima", "Oslo", "Rome"]  # no "Zurich"


def test_a_layer_after_stateless_layers_adapts_on_their_output(write_spec, tmp_path):
    spec = write_spec(
        SPEC.replace(
            "norm: {type: Normalization, adapt: true, in: x}",
            "scaled: {type: Rescaling, scale: 2.0, offset: 1.0, in: x}\n"
            "  dropped: {type: Dropout, rate: 0.5, in: scaled}\n"
            "  norm: {type: Normalization, adapt: true, in: dropped}",
        )
    )
    model, _ = _train(spec, _csv(tmp_path / "t.csv", ROWS), tmp_path / "run")
    seen = 2 * np.array([[a, b] for a, b, _ in ROWS[:12]]) + 1  # Dropout is off: inference mode
    np.testing.assert_allclose(np.ravel(model.get_layer("norm").mean), seen.mean(axis=0), rtol=1e-5)


def test_a_layer_after_a_trainable_layer_is_refused_at_its_adapt(write_spec, tmp_path):
    spec = write_spec(
        SPEC.replace(
            "norm: {type: Normalization, adapt: true, in: x}",
            "dense: {type: Dense, units: 3, in: x}\n  norm: {type: Normalization, adapt: true, in: dense}",
        )
    )
    out = tmp_path / "run"
    with pytest.raises(SpecErrors) as caught:
        _train(spec, _csv(tmp_path / "t.csv", ROWS), out)
    assert caught.value.diagnostics.render().splitlines()[:4] == [
        f"{spec}:8:31: error: layer 'norm' is adapted on what reaches it, and that passes through "
        "'dense' (Dense), whose weights training changes: what it learned would not fit the trained model",
        "    norm: {type: Normalization, adapt: true, in: dense}",
        "                                ^~~~~",
        "  hint: adapt a layer fed from the inputs through layers without trainable weights, or "
        "freeze 'dense' (trainable: false)",
    ]
    assert not out.exists() and not list(tmp_path.glob(".*partial*"))


def test_a_learned_token_that_keras_cannot_save_is_refused(write_spec, tmp_path):
    rows = [(float(i), 1.0, "New\nYork" if i == 3 else "Oslo") for i in range(8)]
    spec = write_spec(SPEC)
    out = tmp_path / "run"
    with pytest.raises(SpecErrors) as caught:
        _train(spec, _csv(tmp_path / "t.csv", rows), out)
    assert caught.value.diagnostics.render().splitlines()[0] == (
        f"{spec}:8:29: error: layer 'ids' learned the token 'New\\nYork', which Keras cannot save: it "
        "writes a vocabulary one token a line, and would read this one back as other tokens"
    )
    assert not out.exists()


def test_a_model_whose_lookup_never_adapted_is_not_saved(write_spec, tmp_path):
    # Keras itself writes such a file and then cannot load it: its table is rebuilt empty.
    keras.saving.save_model(
        keras.Sequential([keras.Input((1,), dtype="string"), keras.layers.StringLookup()]),
        tmp_path / "k.keras",
    )
    with pytest.raises(Exception, match="cannot be empty"):
        keras.saving.load_model(tmp_path / "k.keras")
    spec = write_spec(SPEC)
    out = tmp_path / "m.keras"
    result = runner.invoke(app, ["build", str(spec), "-o", str(out)])
    assert result.exit_code == 2
    assert result.output.splitlines()[-5] == (
        f"{spec}:8:3: error: layer 'ids' (StringLookup) has no vocabulary yet, and Keras cannot "
        "load a model saved so"
    )
    assert not out.exists() and list(tmp_path.iterdir()) == [tmp_path / "k.keras", spec]


def test_discretization_integer_lookup_and_text_vectorization_learn_as_keras_adapts(write_spec, tmp_path):
    spec = write_spec(
        """
        graphspec: 1
        name: others
        inputs:
          v: {shape: [1]}
          n: {shape: [1], dtype: int64}
          words: {shape: [], dtype: string}
        layers:
          bins: {type: Discretization, num_bins: 4, adapt: true, in: v}
          codes: {type: IntegerLookup, adapt: true, in: n}
          tokens: {type: TextVectorization, max_tokens: 20, output_mode: multi_hot, pad_to_max_tokens: true,
                   adapt: true, in: words}
          bins_hot: {type: CategoryEncoding, num_tokens: 4, output_mode: one_hot, in: bins}
          codes_hot: {type: CategoryEncoding, num_tokens: 8, output_mode: one_hot, in: codes}
          joined: {type: Concatenate, in: [bins_hot, codes_hot, tokens]}
          kind: {type: Dense, units: 2, activation: softmax, in: joined}
        outputs:
          kind: {loss: sparse_categorical_crossentropy}
        train: {epochs: 1, batch_size: 3, validation_split: 0.25, seed: 0}
        """
    )
    rng = np.random.default_rng(0)
    values = rng.normal(size=16).round(3)
    codes = [7, 3, 3, 9, 7, 7, 1, 3, 9, 7, 3, 1, 42, 42, 42, 42]  # 42: validation rows only
    texts = ["red fish", "blue fish", "one fish two", "red red"] * 3 + ["unseen words"] * 4
    table = tmp_path / "t.csv"
    with open(table, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["v", "n", "words", "kind"])
        writer.writerows(
            [v, c, t, i % 2] for i, (v, c, t) in enumerate(zip(values, codes, texts, strict=True))
        )
    model, result = _train(spec, table, tmp_path / "run")

    bins = keras.layers.Discretization(num_bins=4)
    bins.adapt(values[:12, None])
    np.testing.assert_allclose(model.get_layer("bins").bin_boundaries, bins.bin_boundaries)
    codes_layer = keras.layers.IntegerLookup()
    codes_layer.adapt(np.array(codes[:12])[:, None])
    assert model.get_layer("codes").get_vocabulary() == codes_layer.get_vocabulary()
    tokens = keras.layers.TextVectorization(max_tokens=20, output_mode="multi_hot", pad_to_max_tokens=True)
    tokens.adapt(np.array(texts[:12]))
    assert model.get_layer("tokens").get_vocabulary() == tokens.get_vocabulary()
    assert "unseen" not in tokens.get_vocabulary()

    # evaluate and predict rebuild the model from its spec: the adapted state comes with it.
    preds = tmp_path / "preds.npz"
    predicted = runner.invoke(app, ["predict", str(result.run_dir), "--data", str(table), "-o", str(preds)])
    assert predicted.exit_code == 0, predicted.output
    x = {
        "v": values[:, None].astype("float32"),
        "n": np.array(codes)[:, None],
        "words": np.array(texts, dtype=object),
    }
    expected = keras.ops.convert_to_numpy(model.predict_on_batch(x)["kind"])
    np.testing.assert_allclose(np.load(preds)["kind"], expected, rtol=1e-5, atol=1e-6)


def test_a_sample_cap_draws_that_many_training_rows_by_the_seed():
    read = lambda rows: {"x": np.asarray(rows)}  # noqa: E731
    batches = sampled_rows(100, read, batch_size=4, seed=7)
    drawn = np.concatenate([b["x"] for b in batches(["x"], 10)])
    assert len(drawn) == 10 and len(set(drawn)) == 10 and list(drawn) == sorted(drawn)
    assert list(np.concatenate([b["x"] for b in batches(["x"], 10)])) == list(drawn)  # the seed's draw
    assert list(np.concatenate([b["x"] for b in batches(["x"], None)])) == list(range(100))


def test_adapt_samples_caps_what_the_layer_sees(write_spec):
    spec = write_spec(
        SPEC.replace(
            "norm: {type: Normalization, adapt: true", "norm: {type: Normalization, adapt: {samples: 5}"
        )
    )
    loaded = graphspec.load(spec)
    model, tensors = build_model_and_tensors(loaded)
    x = np.arange(40, dtype="float32").reshape(20, 2)
    cities = np.array([["Oslo"]] * 20, dtype=object)
    asked = []

    def batches(names, samples):
        asked.append((names, samples))
        rows = np.arange(samples or 20)
        yield {n: {"x": x, "city": cities}[n][rows] for n in names}

    counts = adapt_layers(loaded, model, tensors, batches)
    assert counts == {"norm": 5, "ids": 20}
    assert asked == [(["x"], 5), (["city"], None)]
    np.testing.assert_allclose(np.ravel(model.get_layer("norm").mean), x[:5].mean(axis=0))


# --- validate, without TensorFlow --------------------------------------------------------------


def test_validate_refuses_adapt_where_it_cannot_work(write_spec):
    spec = write_spec(
        """
        graphspec: 1
        name: bad
        inputs:
          x: {shape: [3]}
          c: {shape: [1], dtype: string}
          d: {shape: [1], dtype: string}
        layers:
          norm: {type: Normalization, adapt: true, mean: 0.0, in: x}
          dense: {type: Dense, units: 2, adapt: {samples: 10}, in: norm}
          cross: {type: HashedCrossing, num_bins: 8, adapt: true, in: [c, d]}
          look: {type: StringLookup, output_mode: one_hot, adapt: true, in: c}
          both: {type: Concatenate, in: [dense, look, cross]}
          out: {type: Dense, units: 1, in: both}
        outputs:
          out: {loss: mse}
        """
    )
    result = runner.invoke(app, ["validate", str(spec)])
    assert result.exit_code == 2
    lines = [line for line in result.stderr.splitlines() if ": error: " in line or "hint:" in line]
    assert lines == [
        f"{spec}:8:44: error: layer 'norm' is adapted and sets 'mean': it learns that from the data, "
        "or is given it, not both",
        "  hint: remove 'mean', or remove adapt",
        f"{spec}:9:34: error: layer 'dense': Dense has no adapt method; it learns nothing from data",
        "  hint: the layers that adapt: Discretization, IntegerLookup, Normalization, StringLookup, "
        "TextVectorization",
        f"{spec}:10:46: error: layer 'cross': HashedCrossing has no adapt method; it learns nothing "
        "from data",
        "  hint: HashedCrossing hashes its inputs into bins, the same for any data: it needs no adapt",
        f"{spec}:11:52: error: layer 'look' is adapted with output_mode 'one_hot', whose width is the "
        "size of the vocabulary it learns; the layers after it are built before it is adapted",
        "  hint: fix its width: set max_tokens: N and pad_to_max_tokens: true",
    ]


# --- the wine table: learned, and predicted from raw columns in stock Keras ---------------------


@pytest.fixture(scope="module")
def wine(tmp_path_factory) -> Path:
    """scikit-learn's wine as a CSV, rows shuffled: 13 numeric columns n_0..n_12, two
    categorical ones derived from them (strength from alcohol's tertiles, shade from hue's
    median), and the cultivar as c0, c1, c2."""
    datasets = pytest.importorskip(
        "sklearn.datasets", reason="scikit-learn (the test extra) is not installed"
    )
    loaded = datasets.load_wine()
    order = np.random.default_rng(0).permutation(len(loaded.target))
    x, y = loaded.data[order], loaded.target[order]
    alcohol, hue = x[:, 0], x[:, 10]
    low, high = np.quantile(alcohol, [1 / 3, 2 / 3])
    strength = np.where(alcohol < low, "light", np.where(alcohol < high, "medium", "strong"))
    shade = np.where(hue < np.median(hue), "dark", "pale")
    path = tmp_path_factory.mktemp("wine") / "wine.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([f"n_{i}" for i in range(13)] + ["strength", "shade", "cultivar"])
        for row, s, h, label in zip(x, strength, shade, y, strict=True):
            writer.writerow([*(f"{v:g}" for v in row), s, h, f"c{label}"])
    return path


WINE = ["first=strength", "second=shade", "label=cultivar"]


@pytest.fixture(scope="module")
def wine_run(wine, tmp_path_factory):
    """specs/tabular.yaml trained on the wine table."""
    loaded = graphspec.load(ROOT / "specs" / "tabular.yaml", WINE)
    out = tmp_path_factory.mktemp("runs") / "wine"
    return train(loaded, DataSource(data=wine), out=out, verbose=0)


def test_the_wine_table_is_learned_with_adapted_normalization_and_lookups(wine_run):
    assert wine_run.metrics["val_accuracy"] >= 0.9


# Stock Keras, in a process where graphspec cannot be imported: the raw columns of the table's
# first rows in, the probabilities out.
STOCK = """
import csv, json, sys
sys.modules["graphspec"] = None  # any import of graphspec fails
import keras
import numpy as np
model = keras.saving.load_model(sys.argv[1])
with open(sys.argv[2]) as handle:
    rows = list(csv.DictReader(handle))[:int(sys.argv[3])]
x = {
    "numbers": np.array([[float(r[f"n_{i}"]) for i in range(13)] for r in rows], dtype="float32"),
    "first": np.array([[r["strength"]] for r in rows], dtype=object),
    "second": np.array([[r["shade"]] for r in rows], dtype=object),
}
print(json.dumps(np.asarray(model.predict_on_batch(x)["label"]).tolist()))
"""


def test_the_saved_model_predicts_from_raw_columns_in_stock_keras(wine_run, wine, tmp_path):
    count = 20
    stock = subprocess.run(
        [sys.executable, "-c", STOCK, str(wine_run.model_path), str(wine), str(count)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert stock.returncode == 0, stock.stderr[-3000:]
    expected = np.array(json.loads(stock.stdout.splitlines()[-1]))
    preds = tmp_path / "preds.npz"
    result = runner.invoke(app, ["predict", str(wine_run.run_dir), "--data", str(wine), "-o", str(preds)])
    assert result.exit_code == 0, result.output
    np.testing.assert_allclose(np.load(preds)["label"][:count], expected, rtol=1e-5, atol=1e-6)


def test_adapting_streams_batches_without_holding_the_split(write_spec):
    """80 MB of training rows pass, a batch at a time, through a stateless layer into an adapted
    Normalization; what Python allocates at its peak stays near a few batches."""
    import tracemalloc

    spec = write_spec(
        """
        graphspec: 1
        name: streamed
        inputs:
          x: {shape: [10]}
        layers:
          scaled: {type: Rescaling, scale: 0.5, in: x}
          norm: {type: Normalization, adapt: true, in: scaled}
          out: {type: Dense, units: 1, in: norm}
        outputs:
          out: {loss: mse}
        """
    )
    loaded = graphspec.load(spec)
    model, tensors = build_model_and_tensors(loaded)
    count, size = 250, 4000  # 1,000,000 rows of 10 float64: 80 MB

    def batches(names, samples):
        for index in range(count):
            rng = np.random.default_rng(index)
            yield {"x": rng.normal(3.0, 2.0, size=(size, 10))}

    tracemalloc.start()
    try:
        counts = adapt_layers(loaded, model, tensors, batches)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert counts == {"norm": count * size}
    assert peak < 10 * size * 10 * 8  # ten batches' worth, against 250 in the split
    np.testing.assert_allclose(np.ravel(model.get_layer("norm").mean), 1.5, atol=0.01)
    np.testing.assert_allclose(np.ravel(model.get_layer("norm").variance), 1.0, atol=0.02)


def test_adapt_is_in_the_training_fingerprint_not_the_architectures(write_spec):
    from graphspec.fingerprint import fingerprint

    def hashes(text: str):
        return fingerprint(graphspec.load(write_spec(text)))

    plain = hashes(SPEC.replace("adapt: true, ", ""))
    adapted = hashes(SPEC)
    sampled = hashes(SPEC.replace("Normalization, adapt: true", "Normalization, adapt: {samples: 5}"))
    assert plain.architecture == adapted.architecture == sampled.architecture
    assert len({plain.training, adapted.training, sampled.training}) == 3
    assert hashes(SPEC.replace("adapt: true, ", "adapt: false, ")) == plain


# --- the other kinds of training data ----------------------------------------------------------

NORMALIZED = """
graphspec: 1
name: normalized
inputs:
  x: {shape: [3], range: [10, 20]}
layers:
  norm: {type: Normalization, adapt: true, in: x}
  y: {type: Dense, units: 1, in: norm}
outputs:
  y: {loss: mse}
train: {epochs: 1, batch_size: 8, seed: 0, samples: 64, validation_split: 0.25}
"""


def test_npz_arrays_adapt_on_their_training_rows(write_spec, tmp_path):
    x = np.arange(60, dtype="float32").reshape(20, 3)
    np.savez(tmp_path / "d.npz", x=x, y=np.zeros((20, 1), dtype="float32"))
    model, _ = _train(write_spec(NORMALIZED), tmp_path / "d.npz", tmp_path / "run")
    np.testing.assert_allclose(np.ravel(model.get_layer("norm").mean), x[:15].mean(axis=0), rtol=1e-6)


def test_an_image_folder_adapts_on_its_images(write_spec, tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 255, size=(6, 4, 4, 3), dtype=np.uint8)
    for i, image in enumerate(pixels):
        folder = tmp_path / "pics" / ("cat" if i % 2 else "dog")
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / f"{i}.png")
    spec = write_spec(
        """
        graphspec: 1
        name: pictures
        inputs:
          image: {shape: [4, 4, 3]}
        layers:
          norm: {type: Normalization, axis: -1, adapt: true, in: image}
          flat: {type: Flatten, in: norm}
          label: {type: Dense, units: 2, activation: softmax, in: flat}
        outputs:
          label: {loss: sparse_categorical_crossentropy}
        train: {epochs: 1, batch_size: 4, seed: 0}
        """
    )
    model, _ = _train(spec, tmp_path / "pics", tmp_path / "run")
    channels = pixels.reshape(-1, 3).astype("float64")  # no validation split: every image trains
    np.testing.assert_allclose(np.ravel(model.get_layer("norm").mean), channels.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(np.ravel(model.get_layer("norm").variance), channels.var(axis=0), rtol=1e-4)


def test_synthetic_data_adapts_on_its_training_batches(write_spec, tmp_path):
    built: list[keras.Model] = []
    loaded = graphspec.load(write_spec(NORMALIZED))
    train(loaded, DataSource(synthetic=True), out=tmp_path / "run", verbose=0, on_built=built.append)
    mean = np.ravel(built[0].get_layer("norm").mean)
    np.testing.assert_allclose(mean, 15.0, atol=1.0)  # uniform in [10, 20): 48 training samples
    np.testing.assert_allclose(np.ravel(built[0].get_layer("norm").variance), 100 / 12, rtol=0.35)


def test_in_memory_rows_adapt_many_at_a_time_within_bounds():
    from graphspec.keras.adapt import ADAPT_BATCH_BYTES, MAX_ADAPT_BATCH, adapt_batch_rows

    numbers = np.zeros((10, 13), dtype="float32")
    assert adapt_batch_rows({"x": numbers}, 32) == min(MAX_ADAPT_BATCH, ADAPT_BATCH_BYTES // 52)
    images = np.zeros((2, 224, 224, 3), dtype="float32")  # 602,112 bytes a row
    assert adapt_batch_rows({"x": images}, 32) == 32  # never fewer than the training batch
    assert adapt_batch_rows({"x": np.zeros((2, 1))}, 16) == MAX_ADAPT_BATCH


def test_a_lookup_after_a_hashed_crossing_adapts_on_the_crossed_ids(write_spec, tmp_path):
    """HashedCrossing learns nothing (validate refuses adapt on it), and a layer after it is
    adapted on its output: here the crossed ids of two string columns, fed from both inputs."""
    spec = write_spec(
        """
        graphspec: 1
        name: crossed
        inputs:
          city: {shape: [1], dtype: string}
          kind: {shape: [1], dtype: string}
        layers:
          cross: {type: HashedCrossing, num_bins: 1000, in: [city, kind]}
          ids: {type: IntegerLookup, max_tokens: 8, output_mode: one_hot, pad_to_max_tokens: true,
                adapt: true, in: cross}
          label: {type: Dense, units: 2, activation: softmax, in: ids}
        outputs:
          label: {loss: sparse_categorical_crossentropy}
        train: {epochs: 1, batch_size: 4, validation_split: 0.25, seed: 0}
        data:
          inputs:
            kind: {column: sort}
        """
    )
    cities = ["Oslo", "Rome", "Lima", "Oslo"] * 3 + ["Zurich"] * 4
    sorts = ["a", "b", "a", "b"] * 3 + ["z"] * 4
    table = tmp_path / "t.csv"
    table.write_text(
        "city,sort,label\n"
        + "".join(f"{c},{s},{i % 2}\n" for i, (c, s) in enumerate(zip(cities, sorts, strict=True)))
    )
    model, _ = _train(spec, table, tmp_path / "run")

    crossing = keras.layers.HashedCrossing(num_bins=1000)
    crossed = crossing(
        (np.array(cities[:12], dtype=object)[:, None], np.array(sorts[:12], dtype=object)[:, None])
    )
    expected = keras.layers.IntegerLookup(max_tokens=8, output_mode="one_hot", pad_to_max_tokens=True)
    expected.adapt(keras.ops.convert_to_numpy(crossed))
    assert model.get_layer("ids").get_vocabulary() == expected.get_vocabulary()
    assert len(expected.get_vocabulary()) == 1 + 4  # the OOV id and four crossings of training rows


def test_a_killed_run_adapts_again_when_it_resumes(write_spec, tmp_path):
    from fixtures.killed import kill_after, train_process

    rows = [(float(i % 97), float(i % 13), ["Oslo", "Rome", "Lima"][i % 3]) for i in range(4000)]
    spec = write_spec(SPEC.replace("epochs: 1, batch_size: 4", "epochs: 4, batch_size: 8"))
    table = _csv(tmp_path / "t.csv", rows)
    run, partial = tmp_path / "run", tmp_path / ".run.partial"
    kill_after(train_process(str(spec), "--data", str(table), "--out", str(run)), partial)
    resumed = train_process("--resume", str(run))
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read()

    model = keras.saving.load_model(run / "model.keras")
    training = np.array([[a, b] for a, b, _ in rows[:3000]])
    np.testing.assert_allclose(np.ravel(model.get_layer("norm").mean), training.mean(axis=0), rtol=1e-5)
    vocabulary = model.get_layer("ids").get_vocabulary(include_special_tokens=False)
    assert sorted(str(token) for token in vocabulary) == ["Lima", "Oslo", "Rome"]


@pytest.mark.parametrize(
    "value, message, hint",
    [
        ("3", "6:38: error: layers.norm.adapt: should be true, false or {samples: N}", None),
        ("{sample: 5}", "6:39: error: unknown key 'sample' in layers.norm.adapt", "did you mean 'samples'?"),
        (
            "{samples: 0}",
            "6:48: error: layers.norm.adapt.samples: should be greater than or equal to 1",
            None,
        ),
    ],
)
def test_an_adapt_value_of_the_wrong_form_is_one_error_at_its_place(write_spec, value, message, hint):
    spec = write_spec(
        "graphspec: 1\nname: t\ninputs:\n  x: {shape: [3]}\nlayers:\n"
        f"  norm: {{type: Normalization, adapt: {value}, in: x}}\noutputs:\n  norm: {{loss: mse}}\n"
    )
    result = runner.invoke(app, ["validate", str(spec)])
    assert result.exit_code == 2
    lines = result.stderr.splitlines()
    assert lines[0] == f"{spec}:{message}" and lines[-1] == "1 error"
    assert (f"  hint: {hint}" in lines) == (hint is not None)


def test_diff_shows_a_change_of_adapt_as_a_training_change(write_spec):
    old = write_spec(SPEC, "old.yaml")
    new = write_spec(
        SPEC.replace("Normalization, adapt: true", "Normalization, adapt: {samples: 50}").replace(
            "StringLookup, adapt: true, ", "StringLookup, "
        ),
        "new.yaml",
    )
    result = runner.invoke(app, ["diff", str(old), str(new)])
    assert result.exit_code == 1
    assert result.stdout.splitlines()[2:] == [
        "training changed (2):",
        "  ~ layers.norm.adapt true -> {samples: 50}",
        "  ~ layers.ids.adapt true -> (unset)",
    ]


def test_view_shows_adapt_beside_a_nodes_arguments(write_spec):
    from graphspec.view import page_data

    spec = write_spec(SPEC.replace("StringLookup, adapt: true", "StringLookup, adapt: {samples: 5}"))
    nodes = {node["id"]: node for node in page_data(graphspec.load(spec))["nodes"]}
    assert nodes["norm"]["args"] == {"adapt": True}
    assert nodes["ids"]["args"] == {"adapt": {"samples": 5}}
    assert "adapt" not in nodes["vec"]["args"]


def test_a_text_folder_trains_through_an_adapted_text_vectorization(write_spec, tmp_path):
    texts = {"pos": ["a fine film", "fine acting, fine story"], "neg": ["a dull film", "dull and long"]}
    for label, items in texts.items():
        (tmp_path / "reviews" / label).mkdir(parents=True)
        for i, text in enumerate(items):
            (tmp_path / "reviews" / label / f"{i}.txt").write_text(text)
    spec = write_spec(
        """
        graphspec: 1
        name: reviews
        inputs:
          review: {shape: [], dtype: string}
        layers:
          words: {type: TextVectorization, max_tokens: 16, output_mode: multi_hot, pad_to_max_tokens: true,
                  adapt: true, in: review}
          label: {type: Dense, units: 2, activation: softmax, in: words}
        outputs:
          label: {loss: sparse_categorical_crossentropy}
        train: {epochs: 2, batch_size: 2, seed: 0}
        """
    )
    model, result = _train(spec, tmp_path / "reviews", tmp_path / "run")
    expected = keras.layers.TextVectorization(max_tokens=16, output_mode="multi_hot", pad_to_max_tokens=True)
    expected.adapt(np.array([t for items in texts.values() for t in items]))
    assert model.get_layer("words").get_vocabulary() == expected.get_vocabulary()
    assert len(json.loads((result.run_dir / "history.json").read_text())["loss"]) == 2
