"""Whole networks in specs/, each against its Keras reference built here.

ResNet-50 and MobileNetV2 are compared with keras.applications; the Transformer classifier and
the U-Net with the same networks written by hand in Keras. Each is built once per session.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import keras
import pytest

import graphspec

SPECS = Path(__file__).resolve().parent.parent / "specs"
NETWORKS = ("resnet50", "mobilenet_v2", "transformer_classifier", "unet")


def trainable(model: keras.Model) -> int:
    return sum(int(w.numpy().size) for w in model.trainable_weights)


def layer_classes(model: keras.Model) -> Counter:
    return Counter(type(layer).__name__ for layer in model.layers)


def build(name: str, overrides: list[str] | None = None) -> keras.Model:
    return graphspec.load(SPECS / f"{name}.yaml", overrides).build(compile=False)


@pytest.fixture(scope="module")
def resnet50() -> tuple[keras.Model, keras.Model]:
    return build("resnet50"), keras.applications.ResNet50(weights=None)


def test_resnet50_is_keras_resnet50(resnet50):
    ours, reference = resnet50
    assert ours.count_params() == reference.count_params() == 25_636_712
    assert trainable(ours) == trainable(reference)
    assert layer_classes(ours) == layer_classes(reference)
    assert ours.output_shape == reference.output_shape == (None, 1000)
    assert len((SPECS / "resnet50.yaml").read_text().splitlines()) <= 120


def test_resnet50_layers_are_named_after_their_blocks(resnet50):
    ours, _ = resnet50
    names = {layer.name for layer in ours.layers}
    assert {
        "conv1_conv",
        "conv2.block1.conv0",
        "conv3.blocks.2.branch.conv3",
        "conv5.blocks.1.out",
        "predictions",
    } <= names
    # Stage 2 keeps its resolution; stage 3's projection halves it.
    assert ours.get_layer("conv2.block1.out").output.shape == (None, 56, 56, 256)
    assert ours.get_layer("conv3.block1.out").output.shape == (None, 28, 28, 512)


def test_mobilenet_v2_is_keras_mobilenet_v2():
    ours, reference = build("mobilenet_v2"), keras.applications.MobileNetV2(weights=None)
    assert ours.count_params() == reference.count_params() == 3_538_984
    assert trainable(ours) == trainable(reference)
    assert layer_classes(ours) == layer_classes(reference)
    assert ours.get_layer("conv_1.relu").output.shape == reference.get_layer("out_relu").output.shape


def transformer_reference(
    vocab=20000, seq_len=200, dim=64, heads=4, key_dim=16, ff_dim=128, depth=2, dropout=0.1, classes=2
) -> keras.Model:
    layers = keras.layers
    tokens = keras.Input((seq_len,), dtype="int32")
    positions = keras.Input((seq_len,), dtype="int32")
    x = layers.Add()([layers.Embedding(vocab, dim)(tokens), layers.Embedding(seq_len, dim)(positions)])
    for _ in range(depth):
        attention = layers.MultiHeadAttention(heads, key_dim, dropout=dropout)(x, x)
        x = layers.LayerNormalization(epsilon=1e-6)(layers.Add()([x, layers.Dropout(dropout)(attention)]))
        hidden = layers.Dense(ff_dim, activation="gelu")(x)
        feed_forward = layers.Dropout(dropout)(layers.Dense(dim)(hidden))
        x = layers.LayerNormalization(epsilon=1e-6)(layers.Add()([x, feed_forward]))
    x = layers.Dropout(dropout)(layers.GlobalAveragePooling1D()(x))
    return keras.Model([tokens, positions], layers.Dense(classes, activation="softmax")(x))


@pytest.mark.parametrize("overrides, depth", [([], 2), (["depth=3", "heads=8", "key_dim=8"], 3)])
def test_transformer_classifier_is_the_encoder_written_in_keras(overrides, depth):
    ours = build("transformer_classifier", overrides)
    heads, key_dim = (8, 8) if overrides else (4, 16)
    reference = transformer_reference(depth=depth, heads=heads, key_dim=key_dim)
    assert ours.count_params() == reference.count_params()
    assert trainable(ours) == trainable(reference)
    assert layer_classes(ours) == layer_classes(reference)
    assert ours.get_layer(f"encoder.{depth - 1}.feed_forward.hidden").output.shape == (None, 200, 128)


def unet_reference(size=128, channels=3, classes=3, depth=4, filters=64) -> keras.Model:
    layers = keras.layers

    def double_conv(x, filters):
        for _ in range(2):
            x = layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
            x = layers.ReLU()(layers.BatchNormalization()(x))
        return x

    image = keras.Input((size, size, channels))
    x, skips = image, []
    widths = [filters * 2**i for i in range(depth)]
    for width in widths:
        skips.append(double_conv(x, width))
        x = layers.MaxPooling2D(2)(skips[-1])
    x = double_conv(x, filters * 2**depth)
    for width, skip in zip(reversed(widths), reversed(skips), strict=True):
        x = layers.Conv2DTranspose(width, 2, strides=2)(x)
        x = double_conv(layers.Concatenate()([skip, x]), width)
    return keras.Model(image, layers.Conv2D(classes, 1, activation="softmax")(x))


def test_unet_is_the_unet_written_in_keras():
    # Parameters do not depend on the image size: a small image keeps the test quick.
    ours, reference = build("unet", ["size=32"]), unet_reference(size=32)
    assert ours.count_params() == reference.count_params()
    assert trainable(ours) == trainable(reference)
    assert layer_classes(ours) == layer_classes(reference)
    assert ours.output_shape == (None, 32, 32, 3)
    # The skip connections join encoder and decoder stages of the same resolution.
    assert ours.get_layer("decoder.0.concatenate").input[0].shape == (None, 4, 4, 512)
    assert ours.get_layer("decoder.3.concatenate").input[0].shape == (None, 32, 32, 64)


@pytest.mark.parametrize("depth", range(1, 7))
def test_unet_depth_is_one_param(depth):
    # Decoder copy k reads encoder copy depth - 1 - k through `${copy}` in its `in:`.
    overrides = ["size=64", "filters=4", f"depth={depth}"]
    ours, reference = build("unet", overrides), unet_reference(size=64, depth=depth, filters=4)
    assert ours.count_params() == reference.count_params()
    assert layer_classes(ours) == layer_classes(reference)
    assert ours.output_shape == (None, 64, 64, 3)
    for k in range(depth):
        level = depth - 1 - k
        skip = ours.get_layer(f"decoder.{k}.concatenate").input[0]
        assert skip.shape == (None, 64 >> level, 64 >> level, 4 << level)


@pytest.mark.parametrize("name", NETWORKS)
def test_expanded_network_is_the_same_spec(name, tmp_path):
    loaded = graphspec.load(SPECS / f"{name}.yaml")
    expanded = tmp_path / f"{name}.yaml"
    expanded.write_text(loaded.expanded())
    again = graphspec.load(expanded)
    drop = {"params", "blocks", "include"}
    assert again.spec.model_dump(exclude=drop) == loaded.spec.model_dump(exclude=drop)
    assert again.expansion.origins == {}
