"""The YOLOv8 classifier (Ultralytics yolov8-cls) in Keras 3: a CSP backbone of strided
convolutions and C2f stages, then a 1x1 convolution to 1280 channels, pooling and a linear
classifier. Variants n/s/m/l/x scale the stages' repeats by `depth` and their channels by
`width`, rounded up to a multiple of 8.
"""

import math

import keras
from keras import layers, ops

VARIANTS = {"n": (0.33, 0.25), "s": (0.33, 0.50), "m": (0.67, 0.75), "l": (1.00, 1.00), "x": (1.00, 1.25)}


def conv(x, filters, kernel=1, strides=1):
    x = layers.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=False)(x)
    x = layers.BatchNormalization(epsilon=1e-3, momentum=0.97)(x)
    return layers.Activation("silu")(x)


def c2f(x, filters, repeats, shortcut=True):
    half = filters // 2
    parts = list(ops.split(conv(x, 2 * half), 2, axis=-1))
    for _ in range(repeats):
        y = conv(conv(parts[-1], half, 3), half, 3)
        parts.append(layers.Add()([parts[-1], y]) if shortcut else y)
    return conv(layers.Concatenate()(parts), filters)


def build(depth=0.33, width=0.25, max_channels=1024, size=224, classes=1000):
    def channels(c):
        return math.ceil(min(c, max_channels) * width / 8) * 8

    def repeats(n):
        return max(round(n * depth), 1)

    image = keras.Input((size, size, 3), name="image")
    x = conv(image, channels(64), 3, 2)
    for filters, n in [(128, 3), (256, 6), (512, 6), (1024, 3)]:
        x = conv(x, channels(filters), 3, 2)
        x = c2f(x, channels(filters), repeats(n))
    x = layers.GlobalAveragePooling2D()(conv(x, 1280))
    probabilities = layers.Dense(classes, activation="softmax", name="probabilities")(x)
    model = keras.Model(image, probabilities, name="yolov8_cls")
    model.compile(
        optimizer=keras.optimizers.SGD(0.01, momentum=0.937),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model
