"""validate refuses a keras.applications model reading a spec input of a shape the model cannot
take (graphspec/spec/check.py, check_application_inputs), and Keras refuses the same specs when
they are built; the shapes it takes, validate and Keras both take.

MobileNet with alpha 0.25 (default size 224) is the application: the smallest to build."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
from fixtures import agreement

from graphspec.errors import SpecErrors
from graphspec.spec import catalog
from graphspec.spec.load import load_text

SPEC = """\
graphspec: 1
name: base
inputs:
  image: {{shape: {shape}}}
layers:
  base: {{type: applications.MobileNet, alpha: 0.25, include_top: {top}, classes: 2, in: image}}
  again: {{share: base, in: image}}
  both: {{type: Concatenate, in: [base, again]}}
outputs:
  both: {{loss: mse}}
"""

REFUSED = [
    # include_top (any true value, as Python reads it) fixes the image at the default size.
    ("[96, 96, 3]", "true"),
    ("[96, 96, 3]", '"abc"'),
    ("[224, 224]", "true"),
]
# Keras checks neither the channels nor, without the top, the size.
TAKEN = [
    ("[224, 224, 3]", "true"),
    ("[224, 224, 3]", '"abc"'),
    ("[224, 224, 1]", "true"),
    ("[null, null, 3]", "true"),
    ("[96, 96, 1]", "false"),
]


def _load(text: str):
    return load_text(text, "spec.yaml", [], base=Path("spec.yaml"))


def builds(text: str) -> bool:
    """Whether Keras builds the spec `text` (graphspec's build, compiled, without validate's checks)."""
    import keras

    try:
        with warnings.catch_warnings(), agreement.without_validate_checks():
            warnings.simplefilter("ignore")
            _load(text).build(compile=True)
    except Exception:
        return False
    finally:
        keras.backend.clear_session()
    return True


def test_the_catalog_records_each_applications_default_size():
    applications = catalog.catalog()["applications"]
    assert applications["Xception"]["default_size"] == 299
    assert applications["MobileNet"]["default_size"] == 224
    assert applications["NASNetLarge"]["default_size"] == 331
    # MobileNetV3 sizes its input itself: nothing recorded, nothing checked.
    assert "default_size" not in applications["MobileNetV3Small"]


@pytest.mark.parametrize(("shape", "top"), REFUSED, ids=[f"{s}-{t}" for s, t in REFUSED])
def test_an_input_the_application_cannot_take_is_refused_by_validate_and_by_keras(shape, top):
    text = SPEC.format(shape=shape, top=top)
    with pytest.raises(SpecErrors) as refused:
        _load(text)
    shown = shape.replace(" ", "").replace(",", ", ")
    given = {"true": "true", '"abc"': "'abc' (read as true)"}[top]
    column = text.splitlines()[5].index("in: image") + len("in: ") + 1
    assert str(refused.value).splitlines()[0] == (
        f"spec.yaml:6:{column}: error: layer 'base' reads 'image' of shape {shown}, and "
        f"applications.MobileNet with include_top {given} and no input_shape takes [224, 224, channels]"
    )
    # The shared call is refused too, where it reads its input.
    assert "layer 'again' reads 'image'" in str(refused.value)
    assert not builds(text)


@pytest.mark.parametrize(("shape", "top"), TAKEN, ids=[f"{s}-{t}" for s, t in TAKEN])
def test_an_input_the_application_takes_is_taken_by_validate_and_by_keras(shape, top):
    text = SPEC.format(shape=shape, top=top)
    _load(text)
    assert builds(text)
