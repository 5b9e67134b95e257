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


def test_every_path_url_or_code_argument_of_the_installed_keras_is_classified():
    assert catalog_gen.unclassified() == [], (
        "classify these in graphspec.policy.CAPABILITIES, then run `make catalog`"
    )


def test_an_argument_a_new_keras_adds_that_looks_like_a_path_is_reported_until_classified(monkeypatch):
    class Uploader(keras.callbacks.Callback):
        def __init__(self, upload_url="https://example.com", cache_dir=None, patience=1):
            super().__init__()

    monkeypatch.setattr(keras.callbacks, "Uploader", Uploader, raising=False)
    assert catalog_gen.unclassified() == [
        ("callbacks", "Uploader", "upload_url"),
        ("callbacks", "Uploader", "cache_dir"),
    ]


def test_the_catalog_records_what_each_argument_can_do():
    callbacks = catalog.catalog()["callbacks"]
    assert callbacks["CSVLogger"]["capabilities"] == {"filename": "write"}
    assert callbacks["RemoteMonitor"]["refused"] == {"argument": "root", "capability": "network"}
    assert catalog.layer("StringLookup")["capabilities"] == {"vocabulary": "read"}
    assert catalog.layer("Lambda")["refused"] == {"argument": "function", "capability": "code"}
    assert catalog.layer("applications.ResNet50")["safe_defaults"] == {"weights": None}
    assert "capabilities" not in catalog.layer("Dense")


def test_a_keras_other_than_the_catalogs_is_warned_about(monkeypatch):
    monkeypatch.setitem(catalog.catalog(), "keras_version", "3.0.0")
    assert catalog.stale_warning(keras.__version__) == (
        f"warning: graphspec checks specs against the arguments of Keras 3.0.0, and Keras "
        f"{keras.__version__} is installed: run `make catalog` to check against it, or install the "
        "tested version (pip install -c constraints.txt -e .)"
    )
    monkeypatch.setitem(catalog.catalog(), "keras_version", keras.__version__)
    assert catalog.stale_warning(keras.__version__) is None
