"""U-Net (Ronneberger et al., 2015) in Keras 3: `depth` encoder stages of two batch-normalised 3x3
convolutions and a 2x2 max-pool, a bridge, and `depth` decoder stages that upsample and join the
encoder stage of the same resolution. Padded convolutions, so the mask has the image's size.
"""

import keras
from keras import layers


def double_conv(x, filters):
    for _ in range(2):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.ReLU()(x)
    return x


def build(size=128, channels=3, classes=3, depth=4, filters=64):
    image = keras.Input((size, size, channels), name="image")
    x, skips = image, []
    for i in range(depth):
        x = double_conv(x, filters * 2**i)
        skips.append(x)
        x = layers.MaxPooling2D(2)(x)
    x = double_conv(x, filters * 2**depth)
    for i in reversed(range(depth)):
        x = layers.Conv2DTranspose(filters * 2**i, 2, strides=2)(x)
        x = layers.Concatenate()([skips[i], x])
        x = double_conv(x, filters * 2**i)
    mask = layers.Conv2D(classes, 1, activation="softmax", name="mask")(x)
    model = keras.Model(image, mask, name="unet")
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"]
    )
    return model
