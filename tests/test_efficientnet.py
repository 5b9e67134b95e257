"""specs/efficientnet.yaml: EfficientNet B0-B3 by --set, equal to keras.applications'."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter

import keras
import pytest

import graphspec

SPEC = "specs/efficientnet.yaml"
# The paper's compound scaling: (width_coefficient, depth_coefficient, resolution), Keras's
# dropout before the classifier, and the parameter count of EfficientNetBx(weights=None).
VARIANTS = {
    "B0": ((1.0, 1.0, 224), 0.2, 5_330_571),
    "B1": ((1.0, 1.1, 240), 0.2, 7_856_239),
    "B2": ((1.1, 1.2, 260), 0.3, 9_177_569),
    "B3": ((1.2, 1.4, 300), 0.3, 12_320_535),
}


def _layer_types(model: keras.Model) -> Counter:
    return Counter(type(layer).__name__ for layer in model.layers)


def _signature(model: keras.Model) -> Counter:
    return Counter(
        (type(layer).__name__, str(layer.output.shape), getattr(layer, "rate", None))
        for layer in model.layers
    )


@pytest.mark.parametrize("variant", VARIANTS)
def test_each_variant_is_keras_efficientnet_parameter_for_parameter(variant):
    (width, depth, resolution), dropout, params = VARIANTS[variant]
    overrides = [f"width_coefficient={width}", f"depth_coefficient={depth}", f"resolution={resolution}"]
    model = graphspec.load(SPEC, [*overrides, f"dropout_rate={dropout}"]).build(compile=False)
    reference = getattr(keras.applications, f"EfficientNet{variant}")(weights=None)
    assert model.count_params() == reference.count_params() == params
    assert _layer_types(model) == _layer_types(reference)
    # The same output shapes (so paddings and strides) and Dropout rates (the stochastic depth
    # of every residual block, and the classifier's), layer for layer up to names.
    assert _signature(model) == _signature(reference)


def test_the_default_is_b0_and_validating_it_imports_no_tensorflow():
    code = (
        "import sys, graphspec\n"
        f"loaded = graphspec.load({SPEC!r})\n"
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules\n"
        "assert [loaded.spec.params[p] for p in ('width_coefficient', 'depth_coefficient', 'resolution')]"
        " == [1.0, 1.0, 224]\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
