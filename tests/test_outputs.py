"""What graphspec writes and prints: every file whole or not at all, readable under the user's
umask; an output it cannot write, a count out of bounds or a damaged run refused with one clear
message and exit status 2, never a traceback; terminal escapes in any message shown, never sent.

Tests that need TensorFlow (build, export, tune) come last and use the smallest models.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import sys
import warnings
from pathlib import Path

import pytest
from typer.testing import CliRunner

from graphspec import atomic
from graphspec.cli import _failure, app
from graphspec.errors import Diagnostic, Location, SpecErrors, printable

runner = CliRunner()
SPEC = """\
graphspec: 1
name: tiny
inputs: {x: {shape: [4]}}
layers: {y: {type: Dense, units: 2, in: x}}
outputs: {y: {loss: mse}}
"""
ON_LINUX = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc is Linux's")


@pytest.fixture
def spec(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(SPEC)
    return path


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def _short_writes(monkeypatch, after: int) -> None:
    """Make every write through graphspec.atomic fail, as on a full disk, after `after` bytes."""

    def write_all(fd: int, data: bytes) -> None:
        os.write(fd, data[:after])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(atomic, "_write_all", write_all)


# ---------------------------------------------------------------- escapes in messages


def test_printable_escapes_control_characters_and_keeps_newlines_and_tabs():
    text = "a\x1b]52;c;cm0K\x07b\x9b31m\r\x7f\u202e\U000e0001\tc\nd"
    assert printable(text) == "a\\x1b]52;c;cm0K\\x07b\\x9b31m\\x0d\\x7f\\u202e\\U000e0001\tc\nd"
    assert printable("x\ny", newlines=False) == "x\\x0ay"


def test_a_diagnostic_escapes_its_file_name_message_hint_and_notes():
    use = Location("use\x1b.yaml", 3, 1)
    location = Location("f\x1b[2J.yaml", 1, 1, expansion=(("used as 'b\x07'", use),))
    rendered = Diagnostic("type 'a\x1b]0;t\x07'", location, hint="try \x1b[31m").render()
    assert rendered == (
        "f\\x1b[2J.yaml:1:1: error: type 'a\\x1b]0;t\\x07'\n"
        "  hint: try \\x1b[31m\n"
        "  note: used as 'b\\x07', at use\\x1b.yaml:3:1"
    )


def test_an_escape_in_a_plot_error_is_shown_escaped(spec, tmp_path):
    output = tmp_path / "x\x1b]0;title\x07.txt"
    result = runner.invoke(app, ["plot", str(spec), "-o", str(output)])
    assert result.exit_code == 2
    assert result.stderr == (
        f"error: cannot tell the format of '{tmp_path}/x\\x1b]0;title\\x07.txt' from its extension\n"
        "  hint: end the file name in .png, .svg, .pdf, .dot\n"
    )


def test_an_escape_in_a_spec_file_name_is_shown_escaped_in_status_lines(tmp_path):
    # validate's `NAME: ok`, diff's `---`/`+++` headers and expand's `# Expanded from` comment.
    raw = tmp_path / "a\x1b]0;t\x07.yaml"
    raw.write_text(SPEC)
    other = tmp_path / "b.yaml"
    other.write_text(SPEC.replace("units: 2", "units: 3"))
    shown = f"{tmp_path}/a\\x1b]0;t\\x07.yaml"
    result = runner.invoke(app, ["validate", str(raw)])
    assert result.exit_code == 0
    assert result.stdout == f"{shown}: ok (1 inputs, 1 layers, 1 outputs)\n"
    result = runner.invoke(app, ["diff", str(raw), str(other)])
    assert result.exit_code == 1
    assert result.stdout.startswith(f"--- {shown}\n+++ {other}\n")
    result = runner.invoke(app, ["expand", str(raw), "--set", "layers.y.units=4"])
    assert result.exit_code == 0
    assert f"# Expanded from {shown} by `graphspec expand --set layers.y.units=4`:" in result.stdout
    for text in (result.stdout,):
        assert "\x1b" not in text and "\x07" not in text


def test_a_format_character_in_a_changed_value_is_shown_escaped_by_diff(tmp_path):
    lookup = "graphspec: 1\nname: t\ninputs: {{x: {{shape: [1], dtype: string}}}}\n" + (
        "layers: {{y: {{type: StringLookup, vocabulary: [{word}], in: x}}}}\noutputs: {{y: {{loss: mse}}}}\n"
    )
    old, new = tmp_path / "old.yaml", tmp_path / "new.yaml"
    old.write_text(lookup.format(word='"a"'))
    new.write_text(lookup.format(word='"a\\u202e\\x1b"'))
    result = runner.invoke(app, ["diff", str(old), str(new)])
    assert result.exit_code == 1
    assert "\u202e" not in result.stdout and "\x1b" not in result.stdout
    assert "\\u202e" in result.stdout


def test_a_newline_in_a_spec_file_name_does_not_end_expand_s_comment(tmp_path):
    raw = tmp_path / "a\nlayers: {}\n.yaml"
    raw.write_text(SPEC)
    result = runner.invoke(app, ["expand", str(raw)])
    assert result.exit_code == 0
    assert f"# Expanded from {tmp_path}/a\\x0alayers: {{}}\\x0a.yaml by `graphspec expand`:" in result.stdout


def test_an_escape_in_the_error_of_a_long_running_command_is_shown_escaped(capsys):
    raised = _failure(RuntimeError("loss is nan\x1b]52;c;cm0K\x07\x1b[2J"), "training", debug=False)
    assert raised.exit_code == 1
    assert capsys.readouterr().err == "error: training failed: loss is nan\\x1b]52;c;cm0K\\x07\\x1b[2J\n"


# ---------------------------------------------------------------- atomic writes


def test_the_temporary_file_is_named_after_the_target_keeping_its_ending():
    assert atomic.partial_path("runs/model.keras") == Path("runs/.model.partial.keras")
    assert atomic.partial_path("w/e3.weights.h5") == Path("w/.e3.partial.weights.h5")
    assert atomic.partial_path("history") == Path(".history.partial")


def test_a_writer_failing_midway_leaves_the_old_content(tmp_path):
    target = tmp_path / "spec.yaml"
    target.write_text("old\n")
    with pytest.raises(RuntimeError), atomic.replacing(target) as temporary:
        temporary.write_text("half of the new")
        assert target.read_text() == "old\n"
        raise RuntimeError("killed midway")
    assert target.read_text() == "old\n"


def test_a_writer_failing_midway_leaves_no_temporary_file(tmp_path):
    target = tmp_path / "spec.yaml"
    target.write_text("old\n")
    with pytest.raises(RuntimeError), atomic.replacing(target) as temporary:
        temporary.write_text("half of the new")
        raise RuntimeError("killed midway")
    assert _files(tmp_path) == ["spec.yaml"]


def test_a_full_disk_midway_is_an_error_and_the_old_content_stays(tmp_path, monkeypatch):
    target = tmp_path / "history.json"
    target.write_text("old\n")
    _short_writes(monkeypatch, after=4)
    with pytest.raises(SpecErrors) as caught:
        atomic.write_text(target, "the whole new content\n")
    assert str(caught.value) == f"error: cannot write {target}: No space left on device"
    assert target.read_text() == "old\n"
    assert _files(tmp_path) == ["history.json"]


def test_a_written_file_gets_the_mode_of_the_umask(tmp_path, umask_022):
    target = tmp_path / "trials.csv"
    atomic.write_text(target, "number\n")
    assert target.stat().st_mode & 0o777 == 0o644


def test_a_stale_temporary_file_from_a_killed_write_is_gone_after_the_next_write(tmp_path, umask_022):
    target = tmp_path / "model.dot"
    stale = tmp_path / ".model.partial.dot"
    stale.write_text("half of a write killed long ago, and longer than the next one")
    stale.chmod(0o600)
    atomic.write_text(target, "digraph {}\n")
    assert _files(tmp_path) == ["model.dot"]
    assert target.read_text() == "digraph {}\n"
    assert target.stat().st_mode & 0o777 == 0o644


def test_a_failed_write_removes_the_folders_it_made(tmp_path, monkeypatch):
    def refuse(temporary: Path) -> int:
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))

    monkeypatch.setattr(atomic, "_open_locked", refuse)
    target = tmp_path / "new" / "sub" / "x.dot"
    with pytest.raises(SpecErrors) as caught:
        atomic.write_text(target, "digraph {}\n")
    assert str(caught.value) == (
        f"error: cannot write {target}: cannot create a file in {target.parent} (Permission denied)"
    )
    assert _files(tmp_path) == []


def test_a_symbolic_link_in_place_of_the_temporary_file_is_never_followed(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    (tmp_path / ".x.partial.dot").symlink_to(victim)
    with pytest.raises(SpecErrors):
        atomic.write_text(tmp_path / "x.dot", "digraph {}\n")
    assert victim.read_text() == "precious\n"
    assert not (tmp_path / "x.dot").exists()


def test_a_run_file_is_written_whole_with_the_mode_of_the_umask(tmp_path, umask_022):
    from graphspec import run_dir

    run_dir.write_json(tmp_path / "overrides.json", {"overrides": []})
    assert json.loads((tmp_path / "overrides.json").read_text()) == {"overrides": []}
    assert (tmp_path / "overrides.json").stat().st_mode & 0o777 == 0o644
    assert _files(tmp_path) == ["overrides.json"]


def test_a_plot_is_written_with_the_mode_of_the_umask(spec, tmp_path, umask_022):
    output = tmp_path / "tiny.dot"
    result = runner.invoke(app, ["plot", str(spec), "-o", str(output)])
    assert result.exit_code == 0
    assert output.stat().st_mode & 0o777 == 0o644


def test_a_plot_failing_midway_keeps_the_old_plot(spec, tmp_path, monkeypatch):
    output = tmp_path / "tiny.dot"
    output.write_text("old plot\n")
    _short_writes(monkeypatch, after=10)
    result = runner.invoke(app, ["plot", str(spec), "-o", str(output)])
    assert result.exit_code == 2
    assert result.stderr == f"error: cannot write {output}: No space left on device\n1 error\n"
    assert output.read_text() == "old plot\n"
    assert _files(tmp_path) == ["tiny.dot", "tiny.yaml"]


# ---------------------------------------------------------------- outputs that cannot be written

# The commands that take -o, with what they read (export's model file is made in `model_file`).
OUTPUT_COMMANDS = {
    "build": (".keras", lambda spec, model: ["build", str(spec)]),
    "plot": (".dot", lambda spec, model: ["plot", str(spec)]),
    "export": (".yaml", lambda spec, model: ["export", str(model)]),
}


@pytest.fixture
def model_path(tmp_path: Path) -> Path:
    # Every check below refuses the output before the model is read: it need not exist.
    return tmp_path / "absent.keras"


@pytest.mark.parametrize("command", OUTPUT_COMMANDS)
def test_an_output_under_a_regular_file_is_refused(command, spec, model_path, tmp_path):
    ending, arguments = OUTPUT_COMMANDS[command]
    blocker = tmp_path / "somefile.txt"
    blocker.write_text("not a folder\n")
    output = blocker / f"x{ending}"
    result = runner.invoke(app, [*arguments(spec, model_path), "-o", str(output)])
    assert result.exit_code == 2
    assert result.stderr == f"error: cannot write {output}: {blocker} is a file, not a folder\n1 error\n"
    assert blocker.read_text() == "not a folder\n"
    assert _files(tmp_path) == ["somefile.txt", "tiny.yaml"]


@pytest.mark.parametrize("command", OUTPUT_COMMANDS)
def test_an_output_onto_an_existing_folder_is_refused(command, spec, model_path, tmp_path):
    ending, arguments = OUTPUT_COMMANDS[command]
    folder = tmp_path / f"out{ending}"
    folder.mkdir()
    result = runner.invoke(app, [*arguments(spec, model_path), "-o", str(folder)])
    assert result.exit_code == 2
    assert result.stderr == f"error: cannot write {folder}: it is a folder\n1 error\n"
    assert _files(tmp_path) == [f"out{ending}", "tiny.yaml"]


# Root may write in /proc by its permissions, and is refused by the file system instead.
PROC_REFUSAL = "Permission denied" if not os.access("/proc", os.W_OK) else "No such file or directory"


@ON_LINUX
def test_a_plot_under_proc_is_refused(spec):
    result = runner.invoke(app, ["plot", str(spec), "-o", "/proc/tiny.dot"])
    assert result.exit_code == 2
    assert result.stderr == (
        f"error: cannot write /proc/tiny.dot: cannot create a file in /proc ({PROC_REFUSAL})\n1 error\n"
    )


# ---------------------------------------------------------------- bounds on a spec's values


@pytest.mark.parametrize(
    ("key", "value", "bound"),
    [
        ("samples", 10**30, "less than or equal to 1000000000"),
        ("epochs", 10**30, "less than or equal to 1000000"),
        ("batch_size", 10**30, "less than or equal to 1000000"),
        ("seq_len", 10**30, "less than or equal to 1000000"),
        ("seed", -1, "greater than or equal to 0"),
    ],
)
def test_a_training_count_out_of_bounds_is_an_error_at_its_line(key, value, bound, tmp_path):
    path = tmp_path / "counts.yaml"
    path.write_text(SPEC + f"train: {{{key}: {value}}}\n")
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 2
    column = len(f"train: {{{key}: ") + 1
    assert result.stderr.splitlines()[0] == f"{path}:6:{column}: error: train.{key}: should be {bound}"


def test_an_overlong_spec_name_is_an_error_at_its_line(tmp_path):
    path = tmp_path / "long.yaml"
    path.write_text(SPEC.replace("name: tiny", "name: " + "a" * 10_000))
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 2
    assert result.stderr.splitlines()[0] == (
        f"{path}:2:7: error: name: a spec name is at most 100 characters; this one has 10,000"
    )


def test_a_spec_name_outside_ascii_is_an_error_at_its_line(tmp_path):
    path = tmp_path / "accents.yaml"
    path.write_text(SPEC.replace("name: tiny", "name: modèle"), encoding="utf-8")
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 2
    assert result.stderr.splitlines()[0] == (
        f"{path}:2:7: error: name: a spec name is ASCII letters, digits, '_', '.' and '-', "
        "starting with a letter or '_'"
    )


# ---------------------------------------------------------------- damaged runs and tunes


@pytest.fixture
def killed_run(tmp_path: Path) -> tuple[Path, Path]:
    """A run killed mid-training: its final path and its .partial folder."""
    partial = tmp_path / "runs" / "tiny" / ".20260101-000000.partial"
    partial.mkdir(parents=True)
    (partial / "spec.yaml").write_text(SPEC)
    (partial / "overrides.json").write_text(
        '{\n  "overrides": [],\n  "synthetic": true,\n  "kind": "random"\n}\n'
    )
    return partial.parent / "20260101-000000", partial


def test_resume_of_a_run_without_overrides_json_says_it_is_missing(killed_run):
    final, partial = killed_run
    (partial / "overrides.json").unlink()
    result = runner.invoke(app, ["train", "--resume", str(final)])
    assert result.exit_code == 2
    assert result.stderr == (
        f"error: {partial}/overrides.json is missing\n"
        f"  hint: this run cannot be resumed: train it again, and remove {partial}\n"
        "1 error\n"
    )


def test_resume_of_a_run_with_corrupt_overrides_json_is_an_error_at_its_place(killed_run):
    final, partial = killed_run
    (partial / "overrides.json").write_text('{\n  "overrides": [],\n  "synthetic": tru\n')
    result = runner.invoke(app, ["train", "--resume", str(final)])
    assert result.exit_code == 2
    assert result.stderr == (
        f"{partial}/overrides.json:3:16: error: overrides.json is damaged: invalid JSON: Expecting value\n"
        '    "synthetic": tru\n'
        "                 ^\n"
        f"  hint: this run cannot be resumed: train it again, and remove {partial}\n"
        "1 error\n"
    )


def test_resume_of_a_run_with_a_wrong_value_in_overrides_json_is_an_error_at_its_key(killed_run):
    final, partial = killed_run
    (partial / "overrides.json").write_text('{\n  "overrides": [],\n  "data": 7\n}\n')
    result = runner.invoke(app, ["train", "--resume", str(final)])
    assert result.exit_code == 2
    assert result.stderr == (
        f"{partial}/overrides.json:3:3: error: overrides.json is damaged: 'data' should be a string\n"
        '    "data": 7\n'
        "    ^~~~~~\n"
        f"  hint: this run cannot be resumed: train it again, and remove {partial}\n"
        "1 error\n"
    )


def test_resume_of_a_run_without_spec_yaml_says_it_is_missing(killed_run):
    final, partial = killed_run
    (partial / "spec.yaml").unlink()
    result = runner.invoke(app, ["train", "--resume", str(final)])
    assert result.exit_code == 2
    assert result.stderr == (
        f"error: {partial}/spec.yaml is missing\n"
        f"  hint: this run cannot be resumed: train it again, and remove {partial}\n"
        "1 error\n"
    )


def test_resume_of_a_tune_with_corrupt_tune_json_is_an_error_at_its_place(tmp_path):
    (tmp_path / "tune.json").write_text('{\n  "spec": "tiny.yaml",\n  oops\n}\n')
    result = runner.invoke(app, ["tune", "--resume", str(tmp_path)])
    assert result.exit_code == 2
    assert result.stderr == (
        f"{tmp_path}/tune.json:3:3: error: tune.json is damaged: invalid JSON: "
        "Expecting property name enclosed in double quotes\n"
        "    oops\n"
        "    ^\n"
        f"  hint: this tune cannot be resumed: start a new one, or mend {tmp_path}/tune.json\n"
        "1 error\n"
    )


def test_resume_of_a_tune_whose_tune_json_lacks_a_setting_is_an_error_naming_it(tmp_path):
    (tmp_path / "tune.json").write_text('{"spec": "tiny.yaml", "overrides": []}\n')
    result = runner.invoke(app, ["tune", "--resume", str(tmp_path)])
    assert result.exit_code == 2
    assert result.stderr == (
        f"{tmp_path}/tune.json:1:1: error: tune.json is damaged: 'source' is missing\n"
        '  {"spec": "tiny.yaml", "overrides": []}\n'
        "  ^\n"
        f"  hint: this tune cannot be resumed: start a new one, or mend {tmp_path}/tune.json\n"
        "1 error\n"
    )


# ---------------------------------------------------------------- with TensorFlow


@pytest.fixture
def saved_model(tmp_path: Path) -> Path:
    import keras

    inputs = keras.Input((4,), name="x")
    model = keras.Model(inputs, keras.layers.Dense(2, name="y")(inputs), name="tiny")
    path = tmp_path / "tiny.keras"
    model.save(path)
    return path


@ON_LINUX
@pytest.mark.parametrize("command", ["build", "export"])
def test_a_model_output_under_proc_is_refused(command, spec, saved_model):
    ending, arguments = OUTPUT_COMMANDS[command]
    output = f"/proc/tiny{ending}"
    result = runner.invoke(app, [*arguments(spec, saved_model), "-o", output])
    assert result.exit_code == 2
    assert result.stderr.endswith(
        f"error: cannot write {output}: cannot create a file in /proc ({PROC_REFUSAL})\n1 error\n"
    )


def test_a_run_directory_under_a_regular_file_is_refused(spec, tmp_path):
    blocker = tmp_path / "somefile.txt"
    blocker.write_text("not a folder\n")
    output = blocker / "run"
    result = runner.invoke(app, ["train", str(spec), "--synthetic", "--out", str(output), "--quiet"])
    assert result.exit_code == 2
    assert result.stderr == (
        f"error: cannot create run directory {output}: {blocker} is a file, not a folder\n1 error\n"
    )
    assert _files(tmp_path) == ["somefile.txt", "tiny.yaml"]


def test_a_runs_link_leading_elsewhere_is_refused_before_anything_is_written(spec, tmp_path, monkeypatch):
    # A repository can ship `runs/NAME` (or `runs`) as a link: a run goes only where asked.
    work, elsewhere = tmp_path / "work", tmp_path / "elsewhere"
    work.mkdir()
    elsewhere.mkdir()
    monkeypatch.chdir(work)
    (work / "runs").mkdir()
    (work / "runs" / "tiny").symlink_to(elsewhere)
    result = runner.invoke(app, ["train", str(spec), "--synthetic", "--quiet"])
    assert result.exit_code == 2
    assert result.stderr == (
        f"error: runs/tiny is a link to {elsewhere}, outside runs: a run is not written through it\n"
        "  hint: remove the link, or name the run's folder with --out\n1 error\n"
    )
    (work / "runs" / "tiny").unlink()
    (work / "runs").rmdir()
    (work / "runs").symlink_to(elsewhere)
    result = runner.invoke(app, ["train", str(spec), "--synthetic", "--quiet"])
    assert result.exit_code == 2
    assert result.stderr == (
        f"error: runs is a link to {elsewhere}, outside {work}: a run is not written through it\n"
        f"  hint: give --runs-dir {elsewhere} if that is meant\n1 error\n"
    )
    assert list(elsewhere.iterdir()) == []
    # A link that stays inside is followed as before: `runs/tiny -> runs/tiny-v2`.
    (work / "runs").unlink()
    (work / "runs" / "tiny-v2").mkdir(parents=True)
    (work / "runs" / "tiny").symlink_to(work / "runs" / "tiny-v2")
    from graphspec import run_dir as rd

    assert rd.checked_base(Path("runs"), "tiny") == Path("runs/tiny")


def test_a_built_model_is_saved_with_the_mode_of_the_umask(spec, tmp_path, umask_022):
    output = tmp_path / "tiny.keras"
    result = runner.invoke(app, ["build", str(spec), "-o", str(output)])
    assert result.exit_code == 0
    assert output.stat().st_mode & 0o777 == 0o644
    assert _files(tmp_path) == ["tiny.keras", "tiny.yaml"]


def test_a_build_failing_midway_keeps_the_old_model(spec, tmp_path, monkeypatch):
    import keras

    def save_half(model, path, *args, **kwargs):
        Path(path).write_bytes(b"PK half a zip")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(keras.Model, "save", save_half)
    output = tmp_path / "tiny.keras"
    output.write_bytes(b"the old model")
    result = runner.invoke(app, ["build", str(spec), "-o", str(output)])
    assert result.exit_code == 2
    assert result.stderr == f"error: cannot write {output}: No space left on device\n1 error\n"
    assert output.read_bytes() == b"the old model"
    assert _files(tmp_path) == ["tiny.keras", "tiny.yaml"]


def test_an_export_failing_midway_keeps_the_old_spec(saved_model, tmp_path, monkeypatch):
    output = tmp_path / "exported.yaml"
    output.write_text("old spec\n")
    _short_writes(monkeypatch, after=10)
    result = runner.invoke(app, ["export", str(saved_model), "-o", str(output)])
    assert result.exit_code == 2
    assert result.stderr == f"error: cannot write {output}: No space left on device\n1 error\n"
    assert output.read_text() == "old spec\n"
    assert _files(tmp_path) == ["exported.yaml", "tiny.keras"]


TUNE_SPEC = (
    SPEC
    + """\
search:
  metric: loss
  trials: 2
  params:
    layers.y.units: {type: categorical, choices: [3]}
"""
)


class _Records(logging.Handler):
    def __init__(self):
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_a_failed_trial_is_one_line_of_graphspec_instead_of_optunas_traceback(tmp_path, monkeypatch):
    def diverge(*args, **kwargs):
        raise RuntimeError("the loss diverged\x1b[2J")

    monkeypatch.setattr("graphspec.keras.train.train", diverge)
    spec = tmp_path / "search.yaml"
    spec.write_text(TUNE_SPEC)
    records = _Records()
    logging.getLogger("optuna").addHandler(records)
    try:
        with warnings.catch_warnings(record=True) as warned:
            warnings.simplefilter("always")
            result = runner.invoke(
                app, ["tune", str(spec), "--synthetic", "--out", str(tmp_path / "tune"), "--quiet"]
            )
    finally:
        logging.getLogger("optuna").removeHandler(records)
    assert result.exit_code == 0
    # Optuna's warning that two trials give equal importances is graphspec's note, not a
    # Python warning naming Optuna's source.
    assert not [w for w in warned if "optuna" in w.filename]
    assert "note: parameter importances are drawn equal: too few trials to compare them" in result.output
    assert [line for line in result.stderr.splitlines() if "trial" in line.lower()] == [
        "warning: trial 0 failed, with layers.y.units=3: the loss diverged\\x1b[2J",
        "warning: trial 1 failed, with layers.y.units=3: the loss diverged\\x1b[2J",
    ]
    assert not [message for message in records.messages if " failed" in message]
