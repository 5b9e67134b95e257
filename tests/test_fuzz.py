"""Property-based fuzzing: mutated specs end in a model or a located graphspec error, never a crash.

Valid specs (the book's, and small ones that build fast) are mutated the ways a careless edit or
a hostile file would: keys removed, renamed, retyped; values of the wrong type; references
dangling or turned into cycles; random bytes spliced into the text. `graphspec.load` must return
a spec or raise `SpecErrors` whose every diagnostic has a position; `build` likewise. Any other
exception is a bug. Run more cases with `FUZZ_EXAMPLES=20000 pytest tests/test_fuzz.py`.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import graphspec
from graphspec import SpecErrors
from graphspec.spec.source import parse

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "2000"))
BUILD_EXAMPLES = max(1, EXAMPLES // 13)  # a build costs ~0.25 s: 150 of them in CI
SPECS = sorted(Path(__file__).resolve().parent.parent.glob("specs/*.yaml"))
SMALL = """
graphspec: 1
name: small
params: {width: 4}
inputs:
  x: {shape: [6]}
  seq: {shape: [null, 3]}
layers:
  h: {type: Dense, units: "${width}", activation: relu, in: x}
  r: {type: LSTM, units: 2, return_state: true, in: seq}
  s: {type: Identity, in: "r[1]"}
  m: {type: Concatenate, axis: -1, in: [h, s]}
  d: {type: Dropout, rate: 0.1, in: m, call: {training: false}}
  left: {type: Dense, units: 2, in: d}
  right: {share: left, in: d}
  y: {type: Add, in: [left, right]}
outputs:
  y: {loss: mse, weight: 0.5, metrics: [mae]}
  h: {loss: {type: Huber, delta: 2.0}}
compile:
  optimizer: {type: Adam, learning_rate: 0.001}
"""

VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 10**13),
    st.floats(allow_nan=True),
    st.text(max_size=12),
    st.sampled_from(["x", "h", "m", "y", "r[7]", "r[x]", "Dense", "${width}", "${nope}", "[", "relu", "mse"]),
    st.lists(st.sampled_from(["x", "h", "m", "y", "seq", "nope"]), max_size=3),
    st.dictionaries(
        st.sampled_from(["type", "in", "units", "query", "share", "spec", "loss"]),
        st.sampled_from(["x", "Dense", 3, None, "h"]),
        max_size=3,
    ),
)


def _paths(tree, prefix=()):
    yield prefix
    if isinstance(tree, dict):
        for key, value in tree.items():
            yield from _paths(value, prefix + (key,))
    elif isinstance(tree, list):
        for i, value in enumerate(tree):
            yield from _paths(value, prefix + (i,))


def _parent(tree, path):
    for key in path[:-1]:
        tree = tree[key]
    return tree


@st.composite
def mutated_tree(draw, text: str):
    tree = parse(text).data  # graphspec's reader: plain YAML forbids `${x}` inside flow mappings
    for _ in range(draw(st.integers(1, 4))):
        paths = [p for p in _paths(tree) if p]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent, key = _parent(tree, path), path[-1]
        action = draw(st.sampled_from(["delete", "rename", "retype", "cycle", "dangle"]))
        if action == "delete":
            del parent[key]
        elif action == "rename" and isinstance(parent, dict):
            parent[draw(st.sampled_from(["type", "in", "unitz", "share", "x", "layers", "zz"]))] = parent.pop(
                key
            )
        elif action == "cycle" and isinstance(tree.get("layers"), dict) and tree["layers"]:
            names = list(tree["layers"])
            node = tree["layers"][draw(st.sampled_from(names))]
            if isinstance(node, dict):
                node["in"] = draw(st.sampled_from(names))
        elif action == "dangle" and isinstance(parent, dict) and "in" in parent:
            parent["in"] = "missing_node"
        else:
            parent[key] = draw(VALUES)
    return tree


def _check(text: str, build: bool) -> None:
    try:
        loaded = graphspec.load(text)
        if build:
            loaded.build(compile=True, max_params=10_000_000)
    except SpecErrors as exc:
        for diagnostic in exc.diagnostics.errors:
            assert diagnostic.location is not None, diagnostic.render()
            assert diagnostic.message


FUZZ = settings(
    max_examples=EXAMPLES, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck)
)


@FUZZ
@given(data=st.data())
def test_mutated_specs_validate_or_fail_with_a_located_error(data):
    text = data.draw(st.sampled_from([p.read_text() for p in SPECS] + [SMALL]))
    tree = data.draw(mutated_tree(text))
    _check(yaml.safe_dump(tree, sort_keys=False), build=False)


@FUZZ
@given(
    text=st.sampled_from([SMALL] + [p.read_text() for p in SPECS]),
    position=st.floats(0, 1),
    junk=st.binary(min_size=1, max_size=8),
)
def test_random_bytes_in_the_text_fail_with_a_located_error(text, position, junk):
    cut = int(len(text) * position)
    _check(text[:cut] + junk.decode("latin-1") + text[cut:], build=False)


@settings(
    max_examples=BUILD_EXAMPLES, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck)
)
@given(data=st.data())
def test_mutated_small_specs_build_or_fail_with_a_located_error(data):
    import keras

    # In a loop over examples: skip the gc.collect() each clear would run (Keras says so too).
    keras.backend.clear_session(free_memory=False)
    _check(yaml.safe_dump(data.draw(mutated_tree(SMALL)), sort_keys=False), build=True)


def test_the_unmutated_small_spec_builds():
    # The fuzzed specs start valid, so failures come from the mutations, not the seed.
    model = graphspec.load(SMALL).build()
    assert sorted(model.output_names) == ["h", "y"]
