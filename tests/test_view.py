"""`graphspec view` and `graphspec diff --html`: the page's data, its safety, and the page as a
real browser (headless Chromium) draws it.

Chromium runs from its own command line: `--dump-dom` prints the page after its script ran, and
the page reads actions from its URL fragment (`#unfold=conv2&click=NODE`), so each test is one
browser start. Without Chromium (`make chromium` installs it) the browser tests are skipped.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from typer.testing import CliRunner

import graphspec
from graphspec.cli import app
from graphspec.view import page_data, render_page

runner = CliRunner()
SPECS = sorted(Path("specs").glob("*.yaml"))
BROWSER = next(
    (shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None
)
needs_browser = pytest.mark.skipif(
    BROWSER is None, reason="Chromium is not installed (make chromium installs it on Debian as root)"
)

MLP = """
graphspec: 1
name: mlp
inputs: {x: {shape: [8]}}
layers:
  hidden1: {type: Dense, units: 32, activation: relu, in: x}
  hidden2: {type: Dense, units: 32, activation: relu, in: hidden1}
  drop: {type: Dropout, rate: 0.5, in: hidden2}
  probs: {type: Dense, units: 10, activation: softmax, in: drop}
outputs:
  probs: {loss: categorical_crossentropy}
"""


def _dom(page: Path, fragment: str = "", profile: Path | None = None) -> str:
    """The page's DOM once its script has run, as Chromium prints it."""
    profile = profile or page.parent / f".chromium-{page.stem}"
    result = subprocess.run(
        [
            BROWSER,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            f"--user-data-dir={profile}",
            "--virtual-time-budget=5000",
            "--window-size=1400,900",
            "--dump-dom",
            page.resolve().as_uri() + (f"#{fragment}" if fragment else ""),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert 'data-ready="1"' in result.stdout, result.stderr[-2000:]
    return result.stdout


def _shown(dom: str) -> list[str]:
    """The `data-node` of every node drawn, in drawing order."""
    return [html.unescape(n) for n in re.findall(r'<g class="node[^"]*" data-node="([^"]*)"', dom)]


def _write(tmp_path: Path, loaded, name: str = "model.html") -> Path:
    path = tmp_path / name
    path.write_text(render_page(page_data(loaded)))
    return path


def _folded_count(data: dict) -> int:
    """How many nodes a page shows with every group folded: each node outside groups, and
    each outermost group."""
    groups = {g["id"]: g for g in data["groups"]}
    shown = set()
    for node in data["nodes"]:
        top, parent = node["id"], node.get("parent")
        while parent is not None:
            top, parent = parent, groups[parent]["parent"]
        shown.add(top)
    return len(shown)


# --- in a browser ------------------------------------------------------------------------------


@needs_browser
def test_every_spec_renders_one_element_per_visible_node(tmp_path):
    pages = {}
    for path in SPECS:
        data = page_data(graphspec.load(path))
        page = tmp_path / f"{path.stem}.html"
        page.write_text(render_page(data))
        pages[path.stem] = (page, data)
    # Two browsers at a time: each mostly waits for its page's virtual time.
    with ThreadPoolExecutor(2) as pool:
        doms = dict(zip(pages, pool.map(lambda item: _dom(item[0]), pages.values()), strict=True))
    for stem, (_, data) in pages.items():
        shown = _shown(doms[stem])
        assert len(shown) == len(set(shown)) == _folded_count(data), stem
        assert f'data-visible="{len(shown)}"' in doms[stem], stem


@needs_browser
def test_folding_and_unfolding_resnet50_stages_changes_the_nodes_shown(tmp_path):
    page = _write(tmp_path, graphspec.load("specs/resnet50.yaml"))
    folded = _shown(_dom(page))
    assert {"conv2", "conv3", "conv4", "conv5"} <= set(folded)
    assert not [n for n in folded if n.startswith("conv2.")]
    assert re.search(r'data-node="conv2" [^>]*data-block="conv2" data-open="0"', _dom(page))
    # Unfolding conv2 shows its projection block and its repeat, still folded; a click on the
    # folded conv3 unfolds it; folding conv2 again brings the first picture back.
    unfolded = _dom(page, "unfold=conv2&click=conv3")
    shown = set(_shown(unfolded))
    assert {"conv2.block1", "conv2.blocks", "conv3.block1", "conv3.blocks"} <= shown
    assert "conv2" not in shown and "conv3" not in shown
    assert re.search(r'class="cluster[^"]*" data-block="conv2" data-open="1"', unfolded)
    assert _shown(_dom(page, "unfold=conv2&fold=conv2")) == folded


@needs_browser
def test_clicking_a_node_shows_its_yaml_line(tmp_path):
    loaded = graphspec.load("specs/resnet50.yaml")
    node = "conv3.blocks.1.branch.conv2"
    where = loaded.location("layers", node, key=True)
    dom = _dom(_write(tmp_path, loaded), f"click={node}")
    assert f'data-selected="{node}"' in dom
    assert f"{where.file}:{where.line}" in dom
    line = re.search(rf'<span class="yaml-line" data-line="{where.line}">(.*?)</span>(.*?)\n', dom)
    assert line and "conv2: {type: Conv2D" in line.group(2)
    assert "a use of block 'stage'" in dom  # the block use it came from


@needs_browser
def test_search_marks_the_nodes_whose_name_or_type_matches(tmp_path):
    dom = _dom(_write(tmp_path, graphspec.load("specs/book_inception.yaml")), "search=Conv2D")
    marked = re.findall(r'<g class="node[^"]* match" data-node="([^"]*)"', dom)
    loaded = graphspec.load("specs/book_inception.yaml")
    assert set(marked) == {n for n, layer in loaded.spec.layers.items() if layer.type == "Conv2D"}


@needs_browser
def test_the_diff_page_marks_added_removed_and_changed_nodes(write_spec, tmp_path):
    old = write_spec(MLP, "old.yaml")
    new = write_spec(
        MLP.replace("units: 32, activation: relu, in: x", "units: 64, activation: relu, in: x")
        .replace("  drop: {type: Dropout, rate: 0.5, in: hidden2}\n", "")
        .replace("in: drop}", "in: norm}")
        .replace("outputs:", "  norm: {type: LayerNormalization, in: hidden2}\noutputs:"),
        "new.yaml",
    )
    page = tmp_path / "diff.html"
    result = runner.invoke(app, ["diff", str(old), str(new), "--html", str(page)])
    assert result.exit_code == 1, result.output
    dom = _dom(page, "click=hidden1")
    changes = dict(re.findall(r'data-node="([^"]*)"[^>]*data-change="([^"]*)"', dom))
    assert changes == {"hidden1": "changed", "drop": "removed", "norm": "added", "probs": "changed"}
    assert re.search(r'<th>units</th><td><span class="old">32</span> → <span class="new">64</span>', dom)


@needs_browser
def test_text_from_a_spec_cannot_inject_script(write_spec, tmp_path):
    hostile = "</script><script>document.title='pwned'</script><img src=x onerror=alert(1)>"
    path = write_spec(
        f"""
        graphspec: 1
        name: evil
        doc: {json.dumps(hostile)}
        inputs: {{x: {{shape: [4], dtype: string, doc: {json.dumps(hostile)}}}}}
        layers:
          y: {{type: StringLookup, vocabulary: [{json.dumps(hostile)}], doc: {json.dumps(hostile)}, in: x}}
        outputs: {{y: {{loss: mse, doc: {json.dumps(hostile)}}}}}
        """
    )
    page = tmp_path / "evil.html"
    assert runner.invoke(app, ["view", str(path), "-o", str(page)]).exit_code == 0
    text = page.read_text()
    assert text.count("<script") == 2 and "<img" not in text  # only the page's own markup
    dom = _dom(page, "click=y")
    assert "<title>evil · graphspec</title>" in dom and "pwned" not in dom.split("</title>")[0]
    assert dom.count("<script") == 2 and "<img" not in dom
    assert html.escape(hostile, quote=False) in dom  # shown as text, in the panel


# --- the page's data and the commands ----------------------------------------------------------


def test_view_and_plot_without_shapes_do_not_import_tensorflow(tmp_path):
    poisoned = tmp_path / "poisoned"
    poisoned.mkdir()
    for module in ("tensorflow", "keras"):
        (poisoned / f"{module}.py").write_text(f"raise ImportError('{module} was imported')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(poisoned), os.environ.get("PYTHONPATH", "")])}
    for command in (
        ["view", "specs/book_twin_camera.yaml", "-o", str(tmp_path / "m.html")],
        ["plot", "specs/resnet50.yaml", "--collapse", "-o", str(tmp_path / "m.dot")],
    ):
        result = subprocess.run(
            [sys.executable, "-m", "graphspec", *command], capture_output=True, text=True, env=env
        )
        assert result.returncode == 0, result.stderr
    assert (tmp_path / "m.html").stat().st_size > 0 and (tmp_path / "m.dot").stat().st_size > 0


def test_view_with_shapes_shows_output_shapes_and_parameter_counts():
    loaded = graphspec.load("specs/book_mlp.yaml")
    data = page_data(loaded, shapes=True)
    model = loaded.build(compile=False)
    nodes = {n["id"]: n for n in data["nodes"]}
    for layer in model.layers[1:]:
        assert nodes[layer.name]["params"] == layer.count_params()
        assert nodes[layer.name]["shapes"] == [["", list(layer.output.shape)]]
    assert data["total_params"] == model.count_params()


def test_blocks_repeats_and_nested_specs_are_groups_with_their_parents(write_spec):
    write_spec(
        """
        graphspec: 1
        name: enc
        inputs: {t: {shape: [4]}}
        layers: {f: {type: Dense, units: 2, in: t}}
        outputs: {f: {}}
        """,
        "enc.yaml",
    )
    path = write_spec(
        """
        graphspec: 1
        name: top
        blocks:
          pair:
            in: x
            layers:
              a: {type: Dense, units: 4, in: x}
              b: {type: ReLU, in: a}
            out: b
        inputs: {x: {shape: [4]}}
        layers:
          stage: {block: pair, repeat: 2, in: x}
          enc: {spec: enc.yaml, in: stage}
        outputs: {enc: {loss: mse}}
        """
    )
    data = page_data(graphspec.load(path))
    groups = {g["id"]: (g["label"], g["kind"], g["parent"], g["layers"]) for g in data["groups"]}
    assert groups == {
        "stage": ("stage ×2", "repeat", None, 4),
        "stage.0": ("stage.0", "copy", "stage", 2),
        "stage.1": ("stage.1", "copy", "stage", 2),
        "enc": ("enc: spec enc", "spec", None, 1),
    }
    nodes = {n["id"]: n for n in data["nodes"]}
    assert nodes["stage.1.a"]["parent"] == "stage.1" and nodes["enc/f"]["parent"] == "enc"
    assert ["stage.1.b", "enc/t", ""] in data["edges"] and ["enc/f", "enc (output)", ""] in data["edges"]


def test_outputs_and_shared_layers_are_marked():
    data = page_data(graphspec.load("specs/book_siamese_lstm.yaml"))
    nodes = {n["id"]: n for n in data["nodes"]}
    shared = [n for n in nodes.values() if n.get("share")]
    assert shared and all("shared weights" in n["shared"] for n in shared)
    outputs = [n for n in nodes.values() if n["kind"] == "output"]
    assert outputs and all("loss" in n["output"] and "weight" in n["output"] for n in outputs)


def test_the_page_is_one_file_that_loads_nothing_from_the_network(tmp_path):
    page = tmp_path / "r.html"
    assert runner.invoke(app, ["view", "specs/resnet50.yaml", "-o", str(page)]).exit_code == 0
    text = page.read_text()
    assert "default-src 'none'" in text
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text)
    assert not re.search(r"<(link|iframe|img|object)\b", text)


def test_the_page_s_policy_runs_only_its_own_script(tmp_path):
    # No 'unsafe-inline' for scripts: the policy names the hash of the page's one script, so a
    # script that escaped into the page would not run even if escaping failed.
    page = tmp_path / "m.html"
    assert runner.invoke(app, ["view", "specs/book_mlp.yaml", "-o", str(page)]).exit_code == 0
    text = page.read_text()
    policy = re.search(r'http-equiv="Content-Security-Policy" content="([^"]*)"', text).group(1)
    script_src = re.search(r"script-src ([^;]*);", policy).group(1)
    assert "unsafe-inline" not in script_src
    inline = re.findall(r"<script>(.*?)</script>", text, re.DOTALL)
    assert len(inline) == 1
    digest = base64.b64encode(hashlib.sha256(inline[0].encode()).digest()).decode()
    assert script_src == f"'sha256-{digest}'"


def test_an_invalid_spec_is_reported_at_its_line_and_writes_no_page(write_spec, tmp_path):
    path = write_spec(MLP.replace("in: hidden1}", "in: hiden1}"))
    page = tmp_path / "model.html"
    result = runner.invoke(app, ["view", str(path), "-o", str(page)])
    assert result.exit_code == 2
    assert (
        f"{path}:6:59: error: layer 'hidden2' reads 'hiden1'" in result.stderr
        and "did you mean 'hidden1'" in result.stderr
    )
    assert not page.exists() and list(tmp_path.glob(".*partial*")) == []


def test_a_page_that_cannot_be_written_is_one_error_before_loading(tmp_path):
    (tmp_path / "file").write_text("")
    result = runner.invoke(app, ["view", "specs/book_mlp.yaml", "-o", str(tmp_path / "file" / "m.html")])
    assert result.exit_code == 2 and "cannot write" in result.stderr


def test_diff_html_reads_git_revisions_and_exits_like_diff(tmp_path):
    page = tmp_path / "d.html"
    result = runner.invoke(
        app, ["diff", "HEAD:specs/book_mlp.yaml", "specs/book_mlp.yaml", "--html", str(page)]
    )
    assert result.exit_code in (0, 1), result.output
    assert "HEAD:specs/book_mlp.yaml → specs/book_mlp.yaml" in page.read_text()


def test_diff_html_with_params_shows_each_nodes_parameter_change(write_spec):
    from graphspec.diff import diff
    from graphspec.view import diff_page_data

    old = graphspec.load(write_spec(MLP, "old.yaml"))
    new = graphspec.load(
        write_spec(
            MLP.replace("units: 32, activation: relu, in: x", "units: 64, activation: relu, in: x"),
            "new.yaml",
        )
    )
    data = diff_page_data(old, new, diff(old, new, params=True))
    nodes = {n["id"]: n for n in data["nodes"]}
    assert nodes["hidden1"]["params_change"] == [8 * 32 + 32, 8 * 64 + 64]
    assert nodes["hidden1"]["changes"] == [["units", 32, 64]] and "change" not in nodes["x"]


def test_a_changed_block_starts_unfolded_and_an_unchanged_one_folded(write_spec):
    from graphspec.diff import diff
    from graphspec.view import diff_page_data

    spec = textwrap.dedent(
        """
        graphspec: 1
        name: two
        blocks:
          pair:
            params: {units: 4}
            in: x
            layers: {a: {type: Dense, units: "${units}", in: x}}
            out: a
        inputs: {x: {shape: [4]}}
        layers:
          first: {block: pair, in: x}
          second: {block: pair, units: UNITS, in: first}
        outputs: {second: {loss: mse}}
        """
    )
    old = graphspec.load(write_spec(spec.replace("UNITS", "4"), "old.yaml"))
    new = graphspec.load(write_spec(spec.replace("UNITS", "8"), "new.yaml"))
    groups = {g["id"]: g for g in diff_page_data(old, new, diff(old, new))["groups"]}
    assert groups["second"].get("open") and groups["second"]["change"] == "changed"
    assert not groups["first"].get("open") and "change" not in groups["first"]


def test_an_op_node_is_labelled_with_its_op_as_plot_labels_it():
    loaded = graphspec.load(
        """
graphspec: 1
name: ops
inputs: {x: {shape: [8]}}
layers:
  h: {type: Dense, units: 4, in: x}
  y: {op: add, in: [h, h]}
outputs:
  y: {}
"""
    )
    nodes = {n["id"]: n for n in page_data(loaded)["nodes"]}
    assert nodes["y"]["type"] == "op add" and nodes["h"]["type"] == "Dense"


@needs_browser
def test_the_page_shows_what_each_fine_tuning_stage_freezes(write_spec, tmp_path):
    path = write_spec(
        """
        graphspec: 1
        name: staged
        inputs: {x: {shape: [4]}}
        layers:
          base1: {type: Dense, units: 4, in: x}
          base2: {type: Dense, units: 4, in: base1}
          head: {type: Dense, units: 2, in: base2}
        outputs: {head: {loss: mse}}
        train:
          stages:
            - {epochs: 2, freeze: "base*"}
            - {epochs: 3, unfreeze: [{"base*": {top: 1}}], optimizer: {type: SGD, learning_rate: 0.01}}
        """
    )
    page = tmp_path / "staged.html"
    assert runner.invoke(app, ["view", str(path), "-o", str(page)]).exit_code == 0
    overview = _dom(page)
    assert "<li>2 epochs; freeze base* = base1, base2</li>" in overview
    assert "<li>3 epochs; unfreeze base* (top 1) = base2; optimizer SGD(learning_rate=0.01)</li>" in overview
    clicked = _dom(page, "click=base1", profile=tmp_path / ".chromium-click")
    assert "Fine-tuning stages" in clicked
    assert "<tr><th>stage 1</th><td>frozen</td></tr><tr><th>stage 2</th><td>as built</td></tr>" in clicked
