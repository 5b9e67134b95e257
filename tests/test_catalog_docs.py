"""The committed catalog_docs.json is what the installed Keras's docstrings say, and the schema
gives each argument its text."""

from __future__ import annotations

import importlib.util
import json

from graphspec.keras import catalog_docs_gen
from graphspec.spec import catalog, schema


def test_committed_docs_match_installed_keras():
    committed = json.loads(catalog_docs_gen.DOCS_PATH.read_text(encoding="utf-8"))
    generated = catalog_docs_gen.generate()
    if importlib.util.find_spec("keras_hub") is None:  # KerasHub's docs can only be compared with it
        committed["layers"] = {k: v for k, v in committed["layers"].items() if not catalog.is_hub(k)}
    else:
        assert any(catalog.is_hub(name) for name in generated["layers"])
    assert catalog_docs_gen.render(committed) == catalog_docs_gen.render(generated), (
        "graphspec/spec/catalog_docs.json is stale: run `make catalog`"
    )


def test_an_args_section_is_read_entry_by_entry_with_continuations_and_stops_at_the_next_heading():
    doc = """Summary line
    over two lines.

    Args:
        units: Positive integer,
            dimensionality of the output space.
        activation (str): Activation function to use.
        **kwargs: Base layer keyword arguments.

    Input shape:
        not_an_arg: N-D tensor.
    """
    assert catalog_docs_gen.arguments(doc) == {
        "units": "Positive integer, dimensionality of the output space.",
        "activation": "Activation function to use.",
        "kwargs": "Base layer keyword arguments.",
    }
    assert catalog_docs_gen.summary(doc) == "Summary line over two lines."


def test_long_texts_are_cut_at_a_sentence_end():
    first = "A first sentence long enough to be kept whole, as hovers show it, and ending here."
    assert catalog_docs_gen.shorten(first + " word" * 100) == first
    assert catalog_docs_gen.shorten("x " * 300).endswith(" ...")


def test_the_schema_describes_dense_units_in_keras_words():
    import keras

    rule = next(
        r
        for r in schema.json_schema()["$defs"]["LayerSpec"]["allOf"]
        if r["if"].get("properties", {}).get("type", {}).get("const") == "Dense"
    )
    units = rule["then"]["properties"]["units"]["description"]
    assert units in " ".join(keras.layers.Dense.__doc__.split())
    assert units.startswith("Positive integer")
    assert json.loads(json.dumps(rule))["then"]["description"].startswith("Just your regular")
