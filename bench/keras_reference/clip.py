"""A CLIP-style dual encoder (Radford et al., 2021) in Keras 3: a ViT image encoder and a causal
Transformer text encoder read at its end-of-text token (the largest token id), both projected to
one space and L2-normalised; their similarities times a learned temperature are the (B, B)
logits, trained so that each image picks its own text and each text its own image.
ViT-B/32 sizes by default (CLIP uses quick-GELU; this uses GELU).
"""

import math

import keras
from keras import layers, ops


class ClassToken(layers.Layer):
    """Prepends a learned token to a sequence."""

    def build(self, input_shape):
        self.token = self.add_weight(shape=(1, input_shape[-1]), initializer="zeros", name="token")

    def call(self, x):
        token = ops.broadcast_to(self.token, (ops.shape(x)[0], 1, self.token.shape[-1]))
        return ops.concatenate([token, x], axis=1)


class PositionEmbedding(layers.Layer):
    """Adds a learned embedding of each position to a sequence of fixed length."""

    def build(self, input_shape):
        init = keras.initializers.RandomNormal(stddev=0.01)
        self.positions = self.add_weight(shape=input_shape[1:], initializer=init, name="positions")

    def call(self, x):
        return x + self.positions


class Similarity(layers.Layer):
    """Cosine similarities of every image with every text, scaled by a learned temperature."""

    def build(self, input_shape):
        init = keras.initializers.Constant(math.log(1 / 0.07))
        self.logit_scale = self.add_weight(shape=(), initializer=init, name="logit_scale")

    def call(self, image, text):
        return ops.exp(self.logit_scale) * ops.matmul(image, ops.transpose(text))


def transformer(x, width, depth, heads, causal=False):
    for _ in range(depth):
        y = layers.LayerNormalization(epsilon=1e-5)(x)
        x = layers.Add()([x, layers.MultiHeadAttention(heads, width // heads)(y, y, use_causal_mask=causal)])
        y = layers.LayerNormalization(epsilon=1e-5)(x)
        y = layers.Dense(4 * width, activation="gelu")(y)
        x = layers.Add()([x, layers.Dense(width)(y)])
    return x


def contrastive_loss(_, logits):
    labels = ops.arange(ops.shape(logits)[0])
    ce = keras.losses.sparse_categorical_crossentropy
    return (ce(labels, logits, from_logits=True) + ce(labels, ops.transpose(logits), from_logits=True)) / 2


def build(
    image_size=224,
    patch=32,
    image_width=768,
    image_depth=12,
    image_heads=12,
    vocab=49408,
    context=77,
    text_width=512,
    text_depth=12,
    text_heads=8,
    embed=512,
):
    image = keras.Input((image_size, image_size, 3), name="image")
    x = layers.Conv2D(image_width, patch, strides=patch, use_bias=False)(image)
    x = PositionEmbedding()(ClassToken()(layers.Reshape((-1, image_width))(x)))
    x = transformer(layers.LayerNormalization(epsilon=1e-5)(x), image_width, image_depth, image_heads)
    x = layers.LayerNormalization(epsilon=1e-5)(x[:, 0])
    image_embedding = layers.UnitNormalization()(layers.Dense(embed, use_bias=False)(x))

    tokens = keras.Input((context,), dtype="int32", name="tokens")
    x = PositionEmbedding()(layers.Embedding(vocab, text_width)(tokens))
    x = layers.LayerNormalization(epsilon=1e-5)(
        transformer(x, text_width, text_depth, text_heads, causal=True)
    )
    end = ops.argmax(tokens, axis=-1)
    x = ops.take_along_axis(x, end[:, None, None], axis=1)[:, 0]
    text_embedding = layers.UnitNormalization()(layers.Dense(embed, use_bias=False)(x))

    logits = Similarity(name="logits")(image_embedding, text_embedding)
    model = keras.Model({"image": image, "tokens": tokens}, logits, name="clip")
    model.compile(optimizer=keras.optimizers.AdamW(5e-4, weight_decay=0.2), loss=contrastive_loss)
    return model
