"""ViT (Dosovitskiy et al., 2020) in Keras 3: ViT-B/16 at the defaults (86,567,656 parameters).
The other sizes by params: Ti is dim=192, heads=3, mlp=768; S is dim=384, heads=6, mlp=1536.
"""

import keras
from keras import layers, ops


class ClassTokenAndPositions(layers.Layer):
    """Prepends a learned class token to the patches and adds learned position embeddings."""

    def build(self, input_shape):
        _, patches, dim = input_shape
        self.cls = self.add_weight(shape=(1, dim), initializer="zeros", name="cls")
        init = keras.initializers.RandomNormal(stddev=0.02)
        self.positions = self.add_weight(shape=(patches + 1, dim), initializer=init, name="positions")

    def call(self, patches):
        cls = ops.broadcast_to(self.cls, (ops.shape(patches)[0], 1, self.cls.shape[-1]))
        return ops.concatenate([cls, patches], axis=1) + self.positions


def encoder_block(x, dim, heads, mlp, dropout):
    y = layers.LayerNormalization(epsilon=1e-6)(x)
    y = layers.MultiHeadAttention(heads, dim // heads, dropout=dropout)(y, y)
    x = layers.Add()([x, layers.Dropout(dropout)(y)])
    y = layers.LayerNormalization(epsilon=1e-6)(x)
    y = layers.Dense(mlp, activation="gelu")(y)
    y = layers.Dense(dim)(layers.Dropout(dropout)(y))
    return layers.Add()([x, layers.Dropout(dropout)(y)])


def build(image=224, patch=16, dim=768, depth=12, heads=12, mlp=3072, classes=1000, dropout=0.0):
    inputs = keras.Input((image, image, 3), name="image")
    x = layers.Conv2D(dim, patch, strides=patch)(inputs)
    x = layers.Reshape((-1, dim))(x)
    x = ClassTokenAndPositions()(x)
    x = layers.Dropout(dropout)(x)
    for _ in range(depth):
        x = encoder_block(x, dim, heads, mlp, dropout)
    x = layers.LayerNormalization(epsilon=1e-6)(x)
    outputs = layers.Dense(classes, name="logits")(x[:, 0])
    model = keras.Model(inputs, outputs, name="vit")
    model.compile(
        optimizer=keras.optimizers.AdamW(3e-4, weight_decay=0.05),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model
