"""`graphspec plot`: every spec drawn to real images and to DOT, and what plot_model lacks."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pydot
import pytest
from typer.testing import CliRunner

import graphspec
from graphspec import plot
from graphspec.cli import app
from graphspec.plot import PlotError, PlotOptions, spec_to_dot, write_plot

runner = CliRunner()
SPECS = sorted(Path("specs").glob("*.yaml"))
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

ENCODER = """
graphspec: 1
name: encoder
inputs: {tokens: {shape: [null], dtype: int32}}
layers:
  embed: {type: Embedding, input_dim: 100, output_dim: 8, in: tokens}
  seq: {type: LSTM, units: 4, return_state: true, in: embed}
  features: {type: Dense, units: 4, activation: relu, in: "seq[0]"}
outputs:
  features: {}
  state: {from: "seq[1]"}
"""

PAIR = """
graphspec: 1
name: pair
inputs:
  a: {shape: [null], dtype: int32}
  b: {shape: [null], dtype: int32}
layers:
  enc_a: {spec: encoder.yaml, in: a}
  enc_b: {share: enc_a, in: b}
  stage1.0.dense: {type: Dense, units: 4, in: "enc_a[features]"}
  stage1.0.act: {type: ReLU, in: stage1.0.dense}
  stage1.1.dense: {type: Dense, units: 4, in: stage1.0.act}
  stage1.1.act: {type: ReLU, in: stage1.1.dense}
  merged: {type: Concatenate, in: [stage1.1.act, "enc_b[state]"]}
  score: {type: Dense, units: 3, activation: softmax, in: merged}
outputs:
  score: {loss: sparse_categorical_crossentropy, metrics: [accuracy]}
"""


@pytest.fixture
def pair(write_spec):
    write_spec(ENCODER, "encoder.yaml")
    return graphspec.load(write_spec(PAIR, "pair.yaml"))


def _nodes(graph: pydot.Graph) -> dict[str, pydot.Node]:
    """Every node of a graph and of its clusters, by unquoted name."""
    found = {n.get_name().strip('"'): n for n in graph.get_nodes() if n.get_name() not in ("node", "edge")}
    for sub in graph.get_subgraphs():
        found.update(_nodes(sub))
    return found


def _edges(graph: pydot.Dot) -> list[tuple[str, str, str]]:
    return [
        (e.get_source().strip('"'), e.get_destination().strip('"'), (e.get("label") or "").strip('"'))
        for e in graph.get_edges()
    ]


def _clusters(graph: pydot.Graph) -> dict[str, pydot.Subgraph]:
    found = {}
    for sub in graph.get_subgraphs():
        found[sub.get("label").strip('"')] = sub
        found.update(_clusters(sub))
    return found


@pytest.mark.parametrize("path", SPECS, ids=[p.stem for p in SPECS])
def test_every_spec_plots_to_png_svg_and_a_dot_that_names_every_node(path, tmp_path):
    loaded = graphspec.load(path)
    dot = spec_to_dot(loaded)
    write_plot(dot, tmp_path / "model.png")
    write_plot(dot, tmp_path / "model.svg")
    write_plot(dot, tmp_path / "model.dot")
    assert (tmp_path / "model.png").read_bytes()[:8] == PNG_SIGNATURE
    assert ElementTree.parse(tmp_path / "model.svg").getroot().tag == "{http://www.w3.org/2000/svg}svg"
    text = (tmp_path / "model.dot").read_text()
    shared = {n for n, node in loaded.spec.layers.items() if node.share is not None}
    for name in list(loaded.spec.inputs) + [n for n in loaded.spec.layers if n not in shared]:
        assert f'"{name}" [label="{name}\\n' in text, name
    for name in shared:  # drawn once, at the layer they share; each call is an edge label
        assert f'[label="{name}"]' in text, name
    for name in loaded.spec.outputs:
        assert f'"{name} (output)" [label="output {name}\\n' in text, name
    # The DOT file is Graphviz's own input: it renders to the same picture.
    rendered = subprocess.run(["dot", "-Tsvg", str(tmp_path / "model.dot")], capture_output=True)
    assert rendered.returncode == 0 and b"<svg" in rendered.stdout


def test_a_plot_without_shapes_does_not_import_tensorflow(tmp_path):
    code = textwrap.dedent(f"""
        import sys
        import graphspec
        from graphspec.plot import spec_to_dot, write_plot
        write_plot(spec_to_dot(graphspec.load("specs/book_twin_camera.yaml")), {str(tmp_path / "m.svg")!r})
        heavy = sorted(m for m in ("tensorflow", "keras") if m in sys.modules)
        print(heavy)
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "[]\n"
    assert (tmp_path / "m.svg").stat().st_size > 0


def test_a_shared_layer_is_drawn_once_with_an_edge_per_call():
    dot = spec_to_dot(graphspec.load("specs/book_siamese_lstm.yaml"))
    nodes = _nodes(dot)
    assert "right_output" not in nodes
    lstm = nodes["left_output"]
    assert lstm.get("label") == '"left_output\\nLSTM\\nshared: 2 calls"'
    assert lstm.get("peripheries") == "2"
    edges = _edges(dot)
    assert ("left", "left_output", "left_output") in edges
    assert ("right", "left_output", "right_output") in edges
    assert [e for e in edges if e[1] == "merged"] == [
        ("left_output", "merged", "left_output"),
        ("left_output", "merged", "right_output"),
    ]


def test_each_named_output_is_drawn_with_its_loss_and_weight():
    nodes = _nodes(spec_to_dot(graphspec.load("specs/book_social_media.yaml")))
    assert nodes["age (output)"].get("label") == '"output age\\nloss: mse\\nweight: 0.25"'
    assert (
        nodes["income (output)"].get("label")
        == '"output income\\nloss: categorical_crossentropy\\nweight: 1"'
    )
    assert nodes["gender (output)"].get("label") == '"output gender\\nloss: binary_crossentropy\\nweight: 10"'
    assert nodes["age (output)"].get("shape") == "note"
    wide = _nodes(spec_to_dot(graphspec.load("specs/book_wide_deep.yaml")))
    assert (
        wide["click (output)"].get("label")
        == '"output click\\nloss: binary_crossentropy\\nweight: 1\\nmetrics: accuracy, AUC"'
    )
    hidden = _nodes(
        spec_to_dot(graphspec.load("specs/book_social_media.yaml"), PlotOptions(show_outputs=False))
    )
    assert "age (output)" not in hidden


def test_nested_specs_are_clusters_when_expanded_and_a_node_when_not(pair):
    flat = spec_to_dot(pair)
    assert _nodes(flat)["enc_a"].get("shape") == "box3d"
    assert ("enc_a", "stage1.0.dense", "enc_a → [features]") in _edges(flat)
    assert ("enc_a", "merged", "enc_b → [state]") in _edges(flat)

    expanded = spec_to_dot(pair, PlotOptions(expand_nested=True))
    cluster = _clusters(expanded)["enc_a: spec encoder (shared: enc_a, enc_b)"]
    assert set(_nodes(cluster)) == {"enc_a/tokens", "enc_a/embed", "enc_a/seq", "enc_a/features"}
    edges = _edges(expanded)
    # Each call of the shared nested spec enters at its input, and leaves from the inner node.
    assert ("a", "enc_a/tokens", "enc_a") in edges and ("b", "enc_a/tokens", "enc_b") in edges
    assert ("enc_a/features", "stage1.0.dense", "enc_a") in edges
    assert ("enc_a/seq", "merged", "enc_b → [1]") in edges
    assert ("enc_a/seq", "enc_a/features", "[0]") in edges


def test_dotted_names_from_blocks_are_grouped_in_clusters_by_prefix(pair):
    clusters = _clusters(spec_to_dot(pair))
    stage = clusters["stage1 ×2"]
    assert set(_clusters(stage)) == {"stage1.0", "stage1.1"}
    assert set(_nodes(clusters["stage1.1"])) == {"stage1.1.dense", "stage1.1.act"}
    assert set(_nodes(stage)) == {"stage1.0.dense", "stage1.0.act", "stage1.1.dense", "stage1.1.act"}


def test_shapes_and_dtypes_are_those_of_the_built_model():
    loaded = graphspec.load("specs/book_qa.yaml")
    nodes = _nodes(spec_to_dot(loaded, PlotOptions(show_shapes=True, show_dtype=True)))
    model = loaded.build()
    for name in ("text_vec", "merged", "answer"):
        tensor = model.get_layer(name).output
        assert nodes[name].get("label").endswith(f'\\n{tuple(tensor.shape)} {tensor.dtype}"'), name
    assert nodes["merged"].get("label") == '"merged\\nConcatenate\\n(None, 48) float32"'
    assert nodes["text"].get("label") == '"text\\nInput\\n(None, None)\\nint32"'


def test_shapes_of_a_shared_layer_are_given_per_call():
    nodes = _nodes(spec_to_dot(graphspec.load("specs/book_siamese_lstm.yaml"), PlotOptions(show_shapes=True)))
    assert (
        nodes["left_output"].get("label")
        == '"left_output\\nLSTM\\nshared: 2 calls\\nleft_output: (None, 32)\\nright_output: (None, 32)"'
    )


def test_plot_model_options_activations_trainable_names_direction_dpi(write_spec):
    loaded = graphspec.load(
        write_spec("""
        graphspec: 1
        name: opts
        inputs: {x: {shape: [4]}}
        layers:
          h: {type: Dense, units: 3, activation: relu, trainable: false, in: x}
          y: {type: Dense, units: 1, in: h}
        outputs: {y: {loss: mse}}
    """)
    )
    dot = spec_to_dot(
        loaded,
        PlotOptions(
            show_layer_activations=True, show_trainable=True, rankdir="LR", dpi=200, show_layer_names=False
        ),
    )
    nodes = _nodes(dot)
    assert nodes["h"].get("label") == '"Dense\\nactivation: relu\\nfrozen (not trainable)"'
    assert nodes["y"].get("label") == '"Dense\\ntrainable"'
    assert dot.get("rankdir") == "LR" and dot.get("dpi") == "200"
    with pytest.raises(PlotError, match="rankdir must be TB or LR, got 'BT'"):
        PlotOptions(rankdir="BT")


def test_a_layer_named_like_a_dot_keyword_is_still_a_node(write_spec, tmp_path):
    loaded = graphspec.load(
        write_spec("""
        graphspec: 1
        name: keywords
        inputs: {graph: {shape: [4]}}
        layers:
          node: {type: Dense, units: 3, in: graph}
          edge: {type: Dense, units: 1, in: node}
        outputs: {edge: {loss: mse}}
    """)
    )
    write_plot(spec_to_dot(loaded), tmp_path / "k.dot")
    parsed = pydot.graph_from_dot_file(str(tmp_path / "k.dot"))[0]
    assert {"graph", "node", "edge", "edge (output)"} <= set(_nodes(parsed))


def test_cli_plot_writes_the_format_of_the_extension(tmp_path):
    out = tmp_path / "qa.pdf"
    result = runner.invoke(app, ["plot", "specs/book_qa.yaml", "-o", str(out), "--rankdir", "LR"])
    assert result.exit_code == 0, result.stderr
    assert result.stdout == f"wrote {out}\n"
    assert out.read_bytes()[:5] == b"%PDF-"


def test_cli_plot_of_an_unknown_extension_is_an_error(tmp_path):
    result = runner.invoke(app, ["plot", "specs/book_qa.yaml", "-o", str(tmp_path / "qa.jpg")])
    assert result.exit_code == 2
    assert result.stderr == (
        f"error: cannot tell the format of '{tmp_path / 'qa.jpg'}' from its extension\n"
        "  hint: end the file name in .png, .svg, .pdf, .dot\n"
    )
    assert not (tmp_path / "qa.jpg").exists()


def test_without_graphviz_images_fail_with_an_install_hint_and_dot_still_works(tmp_path, monkeypatch):
    monkeypatch.setattr(plot.shutil, "which", lambda name: None)
    monkeypatch.setattr(plot, "_DOT_PROGRAM", [])
    result = runner.invoke(app, ["plot", "specs/book_qa.yaml", "-o", str(tmp_path / "qa.png")])
    assert result.exit_code == 1
    assert result.stderr == (
        "error: Graphviz's `dot` program is not installed; it renders .png, .svg and .pdf\n"
        "  hint: install Graphviz (Debian/Ubuntu: apt-get install graphviz; macOS: brew install graphviz), "
        "or write a .dot file, which needs none\n"
    )
    assert list(tmp_path.iterdir()) == []
    result = runner.invoke(app, ["plot", "specs/book_qa.yaml", "-o", str(tmp_path / "qa.dot")])
    assert result.exit_code == 0
    assert (tmp_path / "qa.dot").read_text().startswith('digraph "question_answering" {')


def test_cli_plot_of_an_invalid_spec_reports_it(write_spec, tmp_path):
    path = write_spec("""
        graphspec: 1
        name: bad
        inputs: {x: {shape: [4]}}
        layers: {y: {type: Dense, unitz: 1, in: x}}
        outputs: {y: {loss: mse}}
    """)
    result = runner.invoke(app, ["plot", str(path), "-o", str(tmp_path / "bad.svg")])
    assert result.exit_code == 2
    assert result.stderr == (
        f"{path}:4:27: error: layer 'y': Dense has no argument 'unitz'\n"
        "  layers: {y: {type: Dense, unitz: 1, in: x}}\n"
        "                            ^~~~~\n"
        "  hint: did you mean 'units'?\n"
        "1 error\n"
    )
    assert not (tmp_path / "bad.svg").exists()


# --- plots that scale: folding and parts ---------------------------------------------------------


def _drawn(loaded, **options) -> set[str]:
    return set(_nodes(spec_to_dot(loaded, PlotOptions(**options))))


def test_collapse_draws_each_block_of_resnet50_as_one_node():
    loaded = graphspec.load("specs/resnet50.yaml")
    drawn = _drawn(loaded, collapse=True)
    assert {"conv2", "conv3", "conv4", "conv5", "pool1_pool", "avg_pool"} <= drawn
    assert not [n for n in drawn if "." in n]
    text = spec_to_dot(loaded, PlotOptions(collapse=True)).to_string()
    assert '"conv2" [label="conv2\\nblock stage · 32 layers"' in text
    assert '"pool1_pool" -> "conv2";' in text and '"conv2" -> "conv3";' in text


def test_collapse_depth_unfolds_that_many_levels():
    drawn = _drawn(graphspec.load("specs/resnet50.yaml"), collapse=True, depth=1)
    assert {"conv2.block1", "conv2.blocks", "conv5.blocks"} <= drawn and "conv2" not in drawn
    labels = _clusters(
        spec_to_dot(graphspec.load("specs/resnet50.yaml"), PlotOptions(collapse=True, depth=1))
    )
    assert "conv2" in labels


def test_collapse_folds_repeats_and_nested_specs(pair):
    drawn = _drawn(pair, collapse=True, expand_nested=True)
    assert {"stage1", "enc_a", "merged", "score"} <= drawn
    assert not [n for n in drawn if n.startswith(("stage1.", "enc_a/"))]


def test_from_and_to_draw_only_the_part_between_them():
    loaded = graphspec.load("specs/resnet50.yaml")
    drawn = _drawn(loaded, start="conv3.block1.add", end="conv3.blocks.0.add")
    assert drawn == {
        "conv3.block1.add",
        "conv3.block1.out",
        *(n for n in loaded.spec.layers if n.startswith("conv3.blocks.0.branch.")),
        "conv3.blocks.0.add",
    }
    part = _drawn(loaded, collapse=True, start="conv3", end="conv4")
    assert part == {"conv3", "conv4"}


def test_from_an_unknown_node_is_an_error_with_a_hint():
    with pytest.raises(PlotError, match="--from: 'avg_pol' is not a node or a block") as caught:
        spec_to_dot(graphspec.load("specs/resnet50.yaml"), PlotOptions(start="avg_pol"))
    assert caught.value.hint == "did you mean 'avg_pool'?"


def test_cli_plot_folds_a_large_block_spec_by_default_and_says_so(tmp_path):
    result = runner.invoke(app, ["plot", "specs/resnet50.yaml", "-o", str(tmp_path / "r.dot")])
    assert result.exit_code == 0, result.output
    assert "blocks drawn folded (--no-collapse draws every layer" in result.stderr
    assert '"conv2" [label=' in (tmp_path / "r.dot").read_text()
    whole = runner.invoke(
        app, ["plot", "specs/resnet50.yaml", "--no-collapse", "-o", str(tmp_path / "w.dot")]
    )
    assert whole.exit_code == 0 and "folded" not in whole.stderr
    assert '"conv2.block1.add" [label=' in (tmp_path / "w.dot").read_text()
    small = runner.invoke(app, ["plot", "specs/book_mlp.yaml", "-o", str(tmp_path / "m.dot")])
    assert small.exit_code == 0 and "folded" not in small.stderr
