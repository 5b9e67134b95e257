"""A convolutional variational autoencoder (Kingma & Welling, 2013) in Keras 3, after the keras.io
MNIST example, as one functional model: it outputs the reconstruction and each sample's KL
divergence, whose loss is its own value (train it with zeros as the `kl` target).
"""

import keras
from keras import layers, ops


class Sampling(layers.Layer):
    """z = mean + exp(log_var / 2) * eps with eps ~ N(0, 1) in training; the mean otherwise."""

    def __init__(self, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.seed = keras.random.SeedGenerator(seed)

    def call(self, inputs, training=None):
        z_mean, z_log_var = inputs
        if not training:
            return z_mean
        eps = keras.random.normal(ops.shape(z_mean), seed=self.seed)
        return z_mean + ops.exp(0.5 * z_log_var) * eps


def build(size=28, channels=1, latent=2, filters=32, hidden=16):
    image = keras.Input((size, size, channels), name="image")
    x = layers.Conv2D(filters, 3, strides=2, padding="same", activation="relu")(image)
    x = layers.Conv2D(2 * filters, 3, strides=2, padding="same", activation="relu")(x)
    x = layers.Dense(hidden, activation="relu")(layers.Flatten()(x))
    z_mean = layers.Dense(latent, name="z_mean")(x)
    z_log_var = layers.Dense(latent, name="z_log_var")(x)
    z = Sampling(seed=1)([z_mean, z_log_var])
    x = layers.Dense((size // 4) * (size // 4) * 2 * filters, activation="relu")(z)
    x = layers.Reshape((size // 4, size // 4, 2 * filters))(x)
    x = layers.Conv2DTranspose(2 * filters, 3, strides=2, padding="same", activation="relu")(x)
    x = layers.Conv2DTranspose(filters, 3, strides=2, padding="same", activation="relu")(x)
    reconstruction = layers.Conv2D(channels, 3, padding="same", activation="sigmoid", name="reconstruction")(
        x
    )
    kl = -0.5 * ops.sum(1 + z_log_var - ops.square(z_mean) - ops.exp(z_log_var), axis=-1)
    kl = layers.Identity(name="kl")(kl)
    model = keras.Model(image, {"reconstruction": reconstruction, "kl": kl}, name="vae")
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss={"reconstruction": "binary_crossentropy", "kl": lambda _, kl: kl},
    )
    return model
