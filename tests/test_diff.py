"""`graphspec diff`: what it reports, how it exits, and specs read from git revisions."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

import graphspec
from graphspec.cli import app
from graphspec.diff import Change, Changed, Connection, Entry, diff, git_external_diff, render_text
from graphspec.spec.load import load_text

runner = CliRunner()

OLD = """
graphspec: 1
name: net
inputs:
  x: {shape: [4]}
  extra: {shape: [2]}
layers:
  h1:  {type: Dense, units: 8, activation: relu, in: x}
  h2:  {type: Dense, units: 8, in: h1}
  cat: {type: Concatenate, in: [h2, extra]}
  out: {type: Dense, units: 1, in: cat}
  aux: {type: Dense, units: 2, in: h1}
outputs:
  out: {loss: mse}
  aux: {loss: mse, weight: 0.5}
train: {epochs: 2}
"""

NEW = """
graphspec: 1
name: net
inputs:
  x: {shape: [6]}
  extra: {shape: [2]}
layers:
  h1:   {type: Dense, units: 16, activation: tanh, use_bias: false, in: x}
  drop: {type: Dropout, rate: 0.5, in: h1}
  cat:  {type: Concatenate, in: [drop, extra]}
  out:  {type: Dense, units: 1, in: cat}
outputs:
  out: {loss: mae}
  aux: {loss: mse, weight: 0.5, from: drop}
train: {epochs: 3}
"""


def spec(text: str, name: str = "<test>"):
    return load_text(textwrap.dedent(text), name)


def test_every_kind_of_difference_is_reported():
    result = diff(spec(OLD), spec(NEW), "old.yaml", "new.yaml")
    assert result.differ
    assert result.layers_added == [Entry("drop", {"type": "Dropout", "rate": 0.5, "in": "h1"})]
    assert result.layers_removed == [
        Entry("h2", {"type": "Dense", "units": 8, "in": "h1"}),
        Entry("aux", {"type": "Dense", "units": 2, "in": "h1"}),
    ]
    assert result.layers_changed == [
        Changed(
            "h1",
            [
                Change("units", 8, 16),
                Change("activation", "relu", "tanh"),
                Change("use_bias", None, False, "added"),
            ],
        )
    ]
    assert result.connections_changed == [Connection("cat", ["h2", "extra"], ["drop", "extra"])]
    assert result.inputs_changed == [Changed("x", [Change("shape", [4], [6])])]
    assert result.outputs_changed == [Changed("aux", [Change("from", None, "drop")])]
    assert result.losses_changed == [Changed("out", [Change("loss", "mse", "mae")])]
    assert result.training_changed == [Change("train.epochs", 2, 3)]
    assert result.params is None


def test_the_text_is_one_line_per_difference():
    assert render_text(diff(spec(OLD), spec(NEW), "old.yaml", "new.yaml")) == textwrap.dedent("""\
        --- old.yaml
        +++ new.yaml
        layers added (1):
          + drop: Dropout(rate=0.5) <- h1
        layers removed (2):
          - h2: Dense(units=8) <- h1
          - aux: Dense(units=2) <- h1
        layers changed (1):
          ~ h1: units 8 -> 16; activation relu -> tanh; use_bias (unset) -> false
        connections changed (1):
          ~ cat: in [h2, extra] -> [drop, extra]
        inputs changed (1):
          ~ x: shape [4] -> [6]
        outputs changed (1):
          ~ aux: from null -> drop
        losses changed (1):
          ~ out: loss mse -> mae
        training changed (1):
          ~ train.epochs 2 -> 3
        """)


def test_inputs_and_outputs_added_and_removed():
    new = OLD.replace("extra: {shape: [2]}", "other: {shape: [2]}").replace("[h2, extra]", "[h2, other]")
    new = new.replace("  aux: {loss: mse, weight: 0.5}\n", "  h2: {}\n")
    result = diff(spec(OLD), spec(new))
    assert [(e.name, e.value["shape"], e.value["dtype"]) for e in result.inputs_added] == [
        ("other", [2], "float32")
    ]
    assert [e.name for e in result.inputs_removed] == ["extra"]
    assert [e.name for e in result.outputs_added] == ["h2"]
    assert [e.name for e in result.outputs_removed] == ["aux"]
    text = render_text(result)
    assert "  + h2: {loss: null}\n" in text
    assert "  - aux: {loss: mse, weight: 0.5}\n" in text


def test_the_same_model_written_differently_does_not_differ():
    same = "# reformatted\n" + OLD.replace(
        "{type: Dense, units: 8, in: h1}", "{in: h1, units: 8, type: Dense}"
    )
    result = diff(spec(OLD), spec(same))
    assert not result.differ
    assert render_text(result) == ""


SEARCHED = (
    OLD.replace("units: 8, activation", "units: ${width}, activation")
    + """
params: {width: 8}
search:
  trials: 10
  params:
    params.width: {type: int, low: 4, high: 32}
"""
)


def test_a_changed_search_is_a_difference():
    changed = SEARCHED.replace("high: 32}", "high: 64, log: true}").replace(
        "trials: 10", "trials: 10\n  sampler: random"
    )
    result = diff(spec(SEARCHED), spec(changed))
    assert result.differ
    assert render_text(result).splitlines()[2:] == [
        "search changed (2):",
        "  ~ search.sampler tpe -> random",
        "  ~ search.params.params.width {type: int, low: 4, high: 32} -> "
        "{type: int, low: 4, high: 64, log: true}",
    ]


def test_a_search_default_written_out_is_no_difference():
    explicit = SEARCHED.replace("trials: 10", "trials: 10\n  metric: val_loss\n  goal: minimize").replace(
        "high: 32}", "high: 32, log: false}"
    )
    assert not diff(spec(SEARCHED), spec(explicit)).differ


def test_params_counts_each_changed_layer_and_the_totals():
    result = diff(spec(OLD), spec(NEW), params=True)
    counts = {c.name: (c.old, c.new) for c in result.params.layers}
    # Dense(8) on 4 features: 4*8+8; Dense(16, no bias) on 6: 6*16. Dropout has none.
    assert counts == {
        "h2": (8 * 8 + 8, None),
        "aux": (8 * 2 + 2, None),
        "h1": (4 * 8 + 8, 6 * 16),
        "drop": (None, 0),
        "cat": (0, 0),
    }
    old_total = (4 * 8 + 8) + (8 * 8 + 8) + (10 * 1 + 1) + (8 * 2 + 2)
    new_total = 6 * 16 + (18 * 1 + 1)  # the aux output is now the dropout's: no weights
    assert (result.params.total_old, result.params.total_new) == (old_total, new_total)
    text = render_text(result)
    assert "parameters (before -> after):\n" in text
    assert f"  total  {old_total:>3} -> {new_total:>3}  ({new_total - old_total:+,})\n" in text


def test_cli_exit_status_is_like_diff(write_spec):
    old, new = write_spec(OLD, "old.yaml"), write_spec(NEW, "new.yaml")
    same = runner.invoke(app, ["diff", str(old), str(old)])
    assert (same.exit_code, same.stdout) == (0, "")
    changed = runner.invoke(app, ["diff", str(old), str(new)])
    assert changed.exit_code == 1
    assert changed.stdout.startswith(f"--- {old}\n+++ {new}\nlayers added (1):\n")
    missing = runner.invoke(app, ["diff", str(old), str(old.parent / "nope.yaml")])
    assert missing.exit_code == 2
    assert missing.stderr == f"error: no such file: {old.parent / 'nope.yaml'}\n1 error\n"


def test_set_applies_to_both_specs_of_a_diff():
    same = runner.invoke(
        app, ["diff", "specs/mlp_search.yaml", "specs/mlp_search.yaml", "--set", "hidden=24"]
    )
    assert (same.exit_code, same.stdout) == (0, "")
    narrower = runner.invoke(
        app, ["diff", "specs/mlp_search.yaml", "specs/book_mlp.yaml", "--set", "hidden=24"]
    )
    assert narrower.exit_code == 1
    assert "layers changed" not in narrower.stdout  # both were given 24 units
    unknown = runner.invoke(app, ["diff", "specs/mlp_search.yaml", "specs/book_mlp.yaml", "--set", "nope=1"])
    assert unknown.exit_code == 2
    assert "override sets param 'nope', which the spec does not declare" in unknown.stderr


def test_cli_json_is_for_tools(write_spec):
    old, new = write_spec(OLD, "old.yaml"), write_spec(NEW, "new.yaml")
    result = runner.invoke(app, ["diff", str(old), str(new), "--json"])
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert data["differ"] is True
    assert data["old"] == str(old) and data["new"] == str(new)
    assert data["layers_changed"][0]["changes"][0] == {
        "key": "units",
        "old": 8,
        "new": 16,
        "status": "changed",
    }
    assert data["connections_changed"] == [{"name": "cat", "old": ["h2", "extra"], "new": ["drop", "extra"]}]
    assert data["params"] is None
    same = runner.invoke(app, ["diff", str(old), str(old), "--json"])
    assert same.exit_code == 0 and json.loads(same.stdout)["differ"] is False


# --- git revisions ----------------------------------------------------------------------------


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.email=t@example.com", "-c", "user.name=t", *args],
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
    ).stdout


@pytest.fixture
def repo(tmp_path, monkeypatch):
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    git(tmp_path, "init", "-q")
    (tmp_path / "spec.yaml").write_text(textwrap.dedent(OLD))
    git(tmp_path, "add", "spec.yaml")
    git(tmp_path, "commit", "-q", "-m", "old")
    (tmp_path / "spec.yaml").write_text(textwrap.dedent(NEW))
    git(tmp_path, "commit", "-q", "-a", "-m", "new")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_revisions_are_read_from_git(repo):
    result = runner.invoke(app, ["diff", "HEAD~1:spec.yaml", "HEAD:spec.yaml"])
    assert result.exit_code == 1
    expected = render_text(diff(spec(OLD), spec(NEW), "HEAD~1:spec.yaml", "HEAD:spec.yaml"))
    assert result.stdout == expected
    # A revision against the working tree, and the same revision twice.
    assert runner.invoke(app, ["diff", "HEAD:spec.yaml", "spec.yaml"]).exit_code == 0
    assert runner.invoke(app, ["diff", "HEAD~1:spec.yaml", "HEAD~1:spec.yaml"]).exit_code == 0


OUTER = """
graphspec: 1
name: outer
include: lib/blocks.yaml
inputs: {x: {shape: [4]}}
layers:
  enc: {spec: parts/enc.yaml, in: x}
  head: {block: head, in: enc}
outputs: {head: {loss: mse}}
"""
ENC = """
graphspec: 1
name: enc
inputs: {x: {shape: [4]}}
layers: {h: {type: Dense, units: UNITS, in: x}}
outputs: {h: {}}
"""
BLOCKS = """
blocks:
  head:
    in: x
    layers: {out: {type: Dense, units: 1, activation: ACTIVATION, in: x}}
    out: out
"""


@pytest.fixture
def nested_repo(tmp_path, monkeypatch):
    """outer.yaml, with a nested spec and an included block that change in the second commit."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    (tmp_path / "parts").mkdir()
    (tmp_path / "lib").mkdir()
    git(tmp_path, "init", "-q")
    for message, units, activation in (("old", 8, "linear"), ("new", 16, "sigmoid")):
        (tmp_path / "outer.yaml").write_text(textwrap.dedent(OUTER))
        (tmp_path / "parts" / "enc.yaml").write_text(textwrap.dedent(ENC).replace("UNITS", str(units)))
        (tmp_path / "lib" / "blocks.yaml").write_text(
            textwrap.dedent(BLOCKS).replace("ACTIVATION", activation)
        )
        git(tmp_path, "add", ".")
        git(tmp_path, "commit", "-q", "-m", message)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_a_revision_reads_its_nested_specs_and_includes_from_the_same_revision(nested_repo):
    result = runner.invoke(app, ["diff", "HEAD~1:outer.yaml", "HEAD:outer.yaml"])
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[2] == "layers changed (2):"
    assert lines[3].startswith("  ~ enc: spec parts/enc.yaml (architecture ")
    assert lines[4] == "  ~ head.out: activation linear -> sigmoid"
    assert runner.invoke(app, ["diff", "HEAD:outer.yaml", "outer.yaml"]).exit_code == 0
    assert runner.invoke(app, ["diff", "HEAD~1:outer.yaml", "outer.yaml"]).exit_code == 1


def test_errors_in_a_revisions_nested_files_name_them_in_that_revision(nested_repo):
    def commit_then_mend(path: str, broken: str, good: str) -> None:
        (nested_repo / path).write_text(broken)
        git(nested_repo, "commit", "-q", "-a", "-m", f"break {path}")
        (nested_repo / path).write_text(good)  # only the revision is broken

    enc = (nested_repo / "parts" / "enc.yaml").read_text()
    commit_then_mend("parts/enc.yaml", enc.replace("Dense", "Dens"), enc)
    result = runner.invoke(app, ["fingerprint", "HEAD:outer.yaml"])
    assert result.exit_code == 2
    assert "HEAD:parts/enc.yaml:5:20: error: layer 'h' has unknown type 'Dens'\n" in result.stderr
    assert runner.invoke(app, ["fingerprint", "outer.yaml"]).exit_code == 0

    outer = (nested_repo / "outer.yaml").read_text()
    commit_then_mend("outer.yaml", outer.replace("blocks.yaml", "block.yaml"), outer)
    result = runner.invoke(app, ["fingerprint", "HEAD:outer.yaml"])
    assert result.exit_code == 2
    assert result.stderr.splitlines()[:2] == [
        "HEAD:outer.yaml:4:10: error: include 'lib/block.yaml' does not exist",
        "  include: lib/block.yaml",
    ]
    assert "  hint: did you mean 'blocks.yaml'?" in result.stderr.splitlines()


def test_fingerprint_of_a_revision_is_that_of_its_text(repo):
    result = runner.invoke(app, ["fingerprint", "HEAD~1:spec.yaml", "--json"])
    assert result.exit_code == 0
    from graphspec.fingerprint import fingerprint

    assert json.loads(result.stdout)["architecture"] == fingerprint(spec(OLD)).architecture


def test_a_revision_that_does_not_exist_is_a_clear_error(repo):
    result = runner.invoke(app, ["diff", "HEAD~5:spec.yaml", "HEAD:spec.yaml"])
    assert result.exit_code == 2
    assert result.stderr == (
        "error: cannot read 'HEAD~5:spec.yaml' from git: invalid object name 'HEAD~5'.\n1 error\n"
    )
    result = runner.invoke(app, ["diff", "HEAD:nope.yaml", "HEAD:spec.yaml"])
    assert result.exit_code == 2
    assert result.stderr == (
        "error: cannot read 'HEAD:nope.yaml' from git: path 'nope.yaml' does not exist in 'HEAD'\n1 error\n"
    )


def test_a_revision_that_looks_like_an_option_is_refused(repo):
    result = runner.invoke(app, ["fingerprint", "--", f"--output={repo / 'x'}:spec.yaml"])
    assert result.exit_code == 2
    assert result.stderr.startswith(
        f"error: '--output={repo / 'x'}:spec.yaml' is neither a file nor REV:PATH\n"
    )
    assert sorted(p.name for p in repo.iterdir()) == [".git", "spec.yaml"]  # git wrote no file


def test_errors_in_a_revision_name_the_revision(repo):
    (repo / "spec.yaml").write_text(textwrap.dedent(NEW).replace("units: 16", "unitz: 16"))
    git(repo, "commit", "-q", "-a", "-m", "broken")
    result = runner.invoke(app, ["diff", "HEAD~1:spec.yaml", "HEAD:spec.yaml"])
    assert result.exit_code == 2
    assert result.stderr == textwrap.dedent("""\
        HEAD:spec.yaml:8:23: error: layer 'h1': Dense has no argument 'unitz'
            h1:   {type: Dense, unitz: 16, activation: tanh, use_bias: false, in: x}
                                ^~~~~
          hint: did you mean 'units'?
        1 error
        """)


def test_git_uses_graphspec_as_a_diff_driver(repo):
    # What the README tells users to do, with this Python's graphspec as the command.
    (repo / ".gitattributes").write_text("*.yaml diff=graphspec\n")
    git(repo, "config", "diff.graphspec.command", f"{sys.executable} -m graphspec git-diff")
    shown = git(repo, "diff", "HEAD~1", "HEAD", "--", "spec.yaml")
    body = render_text(diff(spec(OLD), spec(NEW), "a/spec.yaml", "b/spec.yaml"))
    assert shown == "diff --graphspec a/spec.yaml b/spec.yaml\n" + body


def test_the_driver_tells_formatting_from_change(tmp_path):
    old, new = tmp_path / "old", tmp_path / "new"
    old.write_text(textwrap.dedent(OLD))
    new.write_text("# only a comment more\n" + textwrap.dedent(OLD))
    args = ["spec.yaml", str(old), "0" * 40, "100644", str(new), "1" * 40, "100644"]
    assert git_external_diff(args) == (
        "diff --graphspec a/spec.yaml b/spec.yaml\n"
        "no change to the resolved spec (only formatting, comments or docs)\n"
    )
    assert git_external_diff(["spec.yaml", "/dev/null", ".", ".", str(new), ".", "."]).endswith(
        "new spec spec.yaml\n"
    )
    new.write_text("graphspec: 1\nname: [\n")
    assert (
        "\ncannot compare: b/spec.yaml:3:1: error: invalid YAML: did not find expected node content\n"
        in git_external_diff(args)
    )


def test_resnet50_against_itself_with_one_change(tmp_path):
    text = Path("specs/resnet50.yaml").read_text()
    changed = tmp_path / "resnet50.yaml"
    changed.write_text(
        text.replace(
            "conv4:       {block: stage, filters: 256, expand: 1024, identities: 5",
            "conv4:       {block: stage, filters: 256, expand: 1024, identities: 4",
        )
    )
    result = diff(graphspec.load("specs/resnet50.yaml"), graphspec.load(changed))
    assert [e.name for e in result.layers_removed][:3] == [
        "conv4.blocks.4.branch.conv1",
        "conv4.blocks.4.branch.bn1",
        "conv4.blocks.4.branch.relu1",
    ]
    assert len(result.layers_removed) == 10 and not result.layers_added  # 8 in the branch, add, out
    assert result.connections_changed == [
        Connection("conv5.block1.conv0", "conv4.blocks.4.out", "conv4.blocks.3.out"),
        Connection("conv5.block1.branch.conv1", "conv4.blocks.4.out", "conv4.blocks.3.out"),
    ]


# --- Keras's defaults and other spellings of the same model -----------------------------------


def test_an_argument_added_at_its_keras_default_is_no_change():
    explicit = OLD.replace(
        "h2:  {type: Dense, units: 8, in: h1}",
        "h2:  {type: Dense, units: 8, use_bias: true, activation: linear,"
        " kernel_initializer: GlorotUniform, in: h1}",
    )
    assert explicit != OLD
    result = diff(spec(OLD), spec(explicit))
    assert not result.differ
    assert render_text(result) == ""


def test_an_argument_changed_from_its_default_written_out_shows_both_values():
    explicit = OLD.replace(
        "{type: Dense, units: 8, in: h1}", "{type: Dense, units: 8, use_bias: true, in: h1}"
    )
    changed = OLD.replace(
        "{type: Dense, units: 8, in: h1}", "{type: Dense, units: 8, use_bias: false, in: h1}"
    )
    assert diff(spec(explicit), spec(changed)).layers_changed == [
        Changed("h2", [Change("use_bias", True, False)])
    ]
    # Left out, a value other than the default is removed; written back at the default, it is
    # a change from that value to the default's.
    assert diff(spec(changed), spec(OLD)).layers_changed == [
        Changed("h2", [Change("use_bias", False, None, "removed")])
    ]


def test_a_share_node_renamed_is_no_change():
    shared = """
    graphspec: 1
    name: shared
    inputs: {a: {shape: [4]}, b: {shape: [4]}, c: {shape: [4]}}
    layers:
      left:  {type: Dense, units: 3, in: a}
      right: {share: left, in: b}
      both:  {type: Concatenate, in: [left, right, c]}
    outputs: {both: {loss: mse}}
    """
    renamed = shared.replace("right: {share", "left_2: {share").replace("[left, right,", "[left, left_2,")
    assert not diff(spec(shared), spec(renamed)).differ
    # A share node of the same name reading something else is that node, changed.
    other = shared.replace("{share: left, in: b}", "{share: left, in: c}").replace("right, c]", "right, b]")
    assert diff(spec(shared), spec(other)).connections_changed == [
        Connection("right", "b", "c"),
        Connection("both", ["left", "right", "c"], ["left", "right", "b"]),
    ]


def test_an_output_read_with_from_against_its_identity_layer_written_out_is_no_change():
    written = NEW.replace("aux: {loss: mse, weight: 0.5, from: drop}", "aux: {loss: mse, weight: 0.5}")
    written = written.replace(
        "  out:  {type: Dense", "  aux:  {type: Identity, in: drop}\n  out:  {type: Dense"
    )
    assert not diff(spec(NEW), spec(written)).differ
    assert not diff(spec(written), spec(NEW)).differ
