"""A Llama-style decoder (Touvron et al., 2023) in Keras 3 and KerasHub: pre-norm blocks with
RMSNorm, rotary position embeddings, grouped-query causal attention and a SwiGLU feed-forward;
projections to and from heads are EinsumDense, as in KerasHub's own Llama.
Small by default; Llama-2-7B is vocab=32000, dim=4096, depth=32, heads=32, kv_heads=32, hidden=11008.
"""

import keras
import keras_hub
from keras import layers, ops


def attention(x, dim, heads, kv_heads):
    head_dim = dim // heads
    q = layers.EinsumDense("...d,dnh->...nh", (heads, head_dim))(x)
    k = layers.EinsumDense("...d,dnh->...nh", (kv_heads, head_dim))(x)
    v = layers.EinsumDense("...d,dnh->...nh", (kv_heads, head_dim))(x)
    rope = keras_hub.layers.RotaryEmbedding(max_wavelength=10000)
    q, k = rope(q), rope(k)
    k = ops.repeat(k, heads // kv_heads, axis=2)
    v = ops.repeat(v, heads // kv_heads, axis=2)
    y = ops.dot_product_attention(q, k, v, is_causal=True)
    return layers.EinsumDense("...nh,nhd->...d", dim)(y)


def feed_forward(x, dim, hidden):
    gate = layers.Dense(hidden, activation="silu", use_bias=False)(x)
    up = layers.Dense(hidden, use_bias=False)(x)
    return layers.Dense(dim, use_bias=False)(layers.Multiply()([gate, up]))


def build(vocab=32000, dim=512, depth=8, heads=8, kv_heads=2, hidden=1408, eps=1e-6):
    tokens = keras.Input((None,), dtype="int32", name="tokens")
    x = layers.Embedding(vocab, dim)(tokens)
    for _ in range(depth):
        x = layers.Add()([x, attention(layers.RMSNormalization(epsilon=eps)(x), dim, heads, kv_heads)])
        x = layers.Add()([x, feed_forward(layers.RMSNormalization(epsilon=eps)(x), dim, hidden)])
    x = layers.RMSNormalization(epsilon=eps)(x)
    logits = layers.Dense(vocab, use_bias=False, name="logits")(x)
    model = keras.Model(tokens, logits, name="llama")
    model.compile(
        optimizer=keras.optimizers.AdamW(3e-4, weight_decay=0.1),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return model
