"""specs/gpt2_small.yaml: GPT-2 small as the paper has it, and causal."""

from __future__ import annotations

import numpy as np

import graphspec

TINY = ["vocab=97", "context=16", "layers=2", "heads=2", "width=32"]


def test_gpt2_small_has_the_papers_parameter_count():
    model = graphspec.load("specs/gpt2_small.yaml").build(compile=False)
    assert model.count_params() == 124_439_808


def test_the_output_projection_is_the_token_embedding():
    model = graphspec.load("specs/gpt2_small.yaml", TINY).build(compile=False)
    embedding = model.get_layer("embed")
    # One weight matrix serves both ends: 97 x 32 counted once.
    assert [tuple(w.shape) for w in embedding.weights] == [(97, 32)]
    tokens = np.arange(16, dtype="int32")[None, :] % 97
    logits = model.predict({"tokens": tokens}, verbose=0)["logits"]
    hidden = model.get_layer("ln_f").output
    import keras

    before = keras.Model(model.input, hidden).predict({"tokens": tokens}, verbose=0)
    np.testing.assert_allclose(logits, before @ embedding.embeddings.numpy().T, rtol=1e-4, atol=1e-4)


def test_changing_later_tokens_leaves_earlier_logits_unchanged():
    model = graphspec.load("specs/gpt2_small.yaml", TINY).build(compile=False)
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, 97, (2, 16)).astype("int32")
    changed = tokens.copy()
    changed[:, 10:] = rng.integers(0, 97, (2, 6))
    first = model.predict({"tokens": tokens}, verbose=0)["logits"]
    second = model.predict({"tokens": changed}, verbose=0)["logits"]
    np.testing.assert_allclose(first[:, :10], second[:, :10], rtol=1e-5, atol=1e-5)
    assert not np.allclose(first[:, 10:], second[:, 10:])


def test_positions_are_learned_from_zero_to_the_context_length():
    model = graphspec.load("specs/gpt2_small.yaml", TINY).build(compile=False)
    import keras

    # An op node is an operation, not a layer: its output is what the position embedding reads.
    positions = keras.Model(model.input, model.get_layer("places").input)
    got = positions.predict({"tokens": np.zeros((1, 16), dtype="int32")}, verbose=0)
    assert got.tolist() == [list(range(16))]
