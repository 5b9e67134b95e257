"""The committed Keras catalog is exactly what the installed Keras generates."""

from __future__ import annotations

import keras

from graphspec.keras import catalog_gen
from graphspec.spec import catalog


def test_committed_catalog_matches_installed_keras():
    assert catalog.CATALOG_PATH.read_text() == catalog_gen.render(catalog_gen.generate()), (
        "graphspec/spec/catalog.json is stale: run `make catalog`"
    )


def test_catalog_names_keras_version():
    assert catalog.catalog()["keras_version"] == keras.__version__


def test_every_catalog_layer_is_a_keras_layer_with_those_arguments():
    import inspect

    for name, entry in catalog.catalog()["layers"].items():
        cls = getattr(keras.layers, name)
        parameters = inspect.signature(cls.__init__).parameters
        for arg in entry["required"]:
            assert parameters[arg].default is inspect.Parameter.empty, (name, arg)


def test_applications_are_offered_with_their_prefix():
    entry = catalog.layer("applications.Xception")
    assert "include_top" in entry["args"] and "weights" in entry["args"]
    assert "input_tensor" not in entry["args"]
