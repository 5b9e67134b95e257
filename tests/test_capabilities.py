"""The capability policy, red-teamed: a spec reads only specs under its root, writes only inside
its run (or tune) folder, never reaches the network, and never runs code.

Each case in tests/fixtures/capabilities/ is a hostile spec with the message `graphspec
validate` prints for it beside it (`NAME.expected`). `@ROOT@` stands for the sandbox the case
runs in: the spec in `@ROOT@/specs/`, and beside it `@ROOT@/victim/`, files worth stealing or
destroying; `@PORT@` for a loopback listener that counts connections, and `@SPEC@` for the
spec's path. After each command, every file of the sandbox outside the run folder is as it was,
and the listener was never reached.
"""

from __future__ import annotations

import json
import os
import re
import socket
import threading
from pathlib import Path

import pytest
from typer.testing import CliRunner

from graphspec import policy
from graphspec.cli import app

FIXTURES = Path(__file__).parent / "fixtures" / "capabilities"
_CARET = re.compile(r"\^~+")
CASES = sorted(p.stem for p in FIXTURES.glob("*.yaml"))

VICTIM_FILES = {
    "victim.txt": "precious data\n",
    "secret.txt": "root:hunter2\n",
    "lib.yaml": "graphspec: 1\nblocks:\n  b: {in: i, layers: {d: {type: Dense, units: 4, in: i}}, out: d}\n",
    "hosts.yml": "graphspec: 1\nname: hosts\ninputs: {x: {shape: [4]}}\n"
    "layers: {y: {type: Dense, units: 2, in: x}}\noutputs: {y: {}}\n",
}


class Listener:
    """A TCP server on 127.0.0.1 that accepts and counts connections until closed."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(0.2)
        self.port = self.server.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self.server.accept()
            except (TimeoutError, OSError):
                continue
            self.connections += 1
            connection.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.server.close()


class Sandbox:
    """A folder with `specs/`, a `victim/` beside it, and a listener; cwd is the folder."""

    def __init__(self, root: Path, listener: Listener):
        self.root, self.listener = root, listener
        self.specs, self.victim = root / "specs", root / "victim"
        self.specs.mkdir()
        self.victim.mkdir()
        for name, text in VICTIM_FILES.items():
            (self.victim / name).write_text(text)
        self.before = self.snapshot()

    def fill(self, text: str) -> str:
        return text.replace("@ROOT@", str(self.root)).replace("@PORT@", str(self.listener.port))

    def case(self, name: str) -> tuple[Path, str]:
        """The case's spec written into `specs/`, and the message expected for it."""
        spec = self.specs / f"{name}.yaml"
        spec.write_text(self.fill((FIXTURES / f"{name}.yaml").read_text()))
        return spec, (FIXTURES / f"{name}.expected").read_text()

    def message(self, name: str, stderr: str) -> str:
        """`stderr` as the case's .expected file writes it: the sandbox's folder, the listener's
        port and the spec's path as placeholders, and a caret's underline (as long as the path
        the sandbox happens to have) as one `^`."""
        text = stderr.replace(str(self.root), "@ROOT@").replace(str(self.listener.port), "@PORT@")
        return _CARET.sub("^", text.replace(f"specs/{name}.yaml", "@SPEC@"))

    def snapshot(self) -> dict[str, bytes]:
        """Every file and link of the sandbox but the run folders, with its content."""
        found = {}
        for folder, dirs, files in os.walk(self.root):
            dirs[:] = [d for d in dirs if d not in ("runs",)]
            for name in files:
                path = Path(folder) / name
                found[str(path.relative_to(self.root))] = (
                    os.readlink(path).encode() if path.is_symlink() else path.read_bytes()
                )
        return found

    def untouched(self, *written: str) -> None:
        """Nothing outside the run folders changed (but the `written` spec files), and no
        connection reached the listener."""
        after = {k: v for k, v in self.snapshot().items() if k not in written}
        before = {k: v for k, v in self.before.items() if k not in written}
        assert after == before
        assert self.listener.connections == 0


@pytest.fixture
def sandbox(tmp_path, monkeypatch):
    listener = Listener()
    monkeypatch.chdir(tmp_path)
    yield Sandbox(tmp_path, listener)
    listener.close()


def run(*args: str):
    return CliRunner().invoke(app, list(args))


@pytest.mark.parametrize("case", CASES)
def test_hostile_spec_is_refused_by_validate_with_its_message(sandbox, case):
    spec, expected = sandbox.case(case)
    result = run("validate", f"specs/{case}.yaml")
    assert result.exit_code == 2
    assert sandbox.message(case, result.stderr) == expected
    sandbox.untouched(f"specs/{spec.name}")


@pytest.mark.parametrize("case", CASES)
def test_hostile_spec_is_refused_by_train_before_anything_runs(sandbox, case):
    spec, expected = sandbox.case(case)
    result = run("train", f"specs/{case}.yaml", "--synthetic", "--epochs", "1", "--samples", "8")
    assert result.exit_code == 2
    assert sandbox.message(case, result.stderr) == expected
    assert not (sandbox.root / "runs").exists()
    sandbox.untouched(f"specs/{spec.name}")


@pytest.mark.parametrize("case", [c for c in CASES if c.startswith("storage_")])
def test_hostile_search_storage_is_refused_by_tune_before_anything_is_written(sandbox, case):
    spec, expected = sandbox.case(case)
    result = run("tune", f"specs/{case}.yaml", "--synthetic", "--out", "runs/tune")
    assert result.exit_code == 2
    assert sandbox.message(case, result.stderr) == expected
    assert not (sandbox.root / "runs").exists()
    sandbox.untouched(f"specs/{spec.name}")


def _valid_spec(extra: str = "") -> str:
    return (
        "graphspec: 1\nname: s\n" + extra + "inputs: {x: {shape: [4]}}\n"
        "layers: {y: {type: Dense, units: 2, in: x}}\noutputs: {y: {loss: mse}}\n"
    )


def test_a_spec_that_is_a_link_out_of_its_folder_is_not_read(sandbox):
    (sandbox.specs / "model.yaml").symlink_to(sandbox.victim / "hosts.yml")
    result = run("validate", "specs/model.yaml")
    assert result.exit_code == 2
    assert result.stderr == (
        f"error: cannot read specs/model.yaml: specs/model.yaml is a link to "
        f"{sandbox.victim}/hosts.yml, which is outside the root folder {sandbox.specs}\n"
        f"  hint: a spec reads only specs under its root; run again with --root DIR to allow "
        f"specs under DIR (now: {sandbox.specs})\n"
        "1 error\n"
    )
    sandbox.untouched("specs/model.yaml")


def test_a_link_named_like_a_spec_to_a_file_that_is_not_one_is_not_read(sandbox):
    (sandbox.specs / "notes.txt").write_text("a: secret\n")
    (sandbox.specs / "lib.yaml").symlink_to(sandbox.specs / "notes.txt")
    (sandbox.specs / "model.yaml").write_text(_valid_spec("include: lib.yaml\n"))
    result = run("validate", "specs/model.yaml")
    assert result.exit_code == 2
    assert result.stderr.splitlines()[0] == (
        f"specs/model.yaml:3:10: error: include 'lib.yaml': specs/lib.yaml is a link to "
        f"{sandbox.specs}/notes.txt, which is not a spec"
    )


def test_a_nested_spec_through_a_linked_folder_is_judged_where_it_really_is(sandbox):
    (sandbox.specs / "shared").symlink_to(sandbox.victim)
    (sandbox.specs / "model.yaml").write_text(
        "graphspec: 1\nname: s\ninputs: {x: {shape: [4]}}\n"
        "layers: {y: {spec: shared/hosts.yml, in: x}}\noutputs: {y: {}}\n"
    )
    result = run("validate", "specs/model.yaml")
    assert result.exit_code == 2
    assert "is a link to " + str(sandbox.victim / "hosts.yml") in result.stderr.splitlines()[0]


def test_root_widens_what_a_spec_may_read(sandbox):
    (sandbox.specs / "model.yaml").write_text(
        "graphspec: 1\nname: s\ninclude: ../victim/lib.yaml\ninputs: {x: {shape: [4]}}\n"
        "layers:\n  h: {block: b, in: x}\n  y: {spec: ../victim/hosts.yml, in: h}\noutputs: {y: {}}\n"
    )
    assert run("validate", "specs/model.yaml").exit_code == 2
    result = run("validate", "specs/model.yaml", "--root", ".")
    assert result.exit_code == 0, result.output
    assert result.stdout == "specs/model.yaml: ok (1 inputs, 2 layers, 1 outputs)\n"


def test_root_does_not_reach_files_that_are_not_specs(sandbox):
    (sandbox.specs / "model.yaml").write_text(_valid_spec("include: ../victim/secret.txt\n"))
    result = run("validate", "specs/model.yaml", "--root", "/")
    assert result.exit_code == 2
    assert "secret" not in result.stderr.replace("secret.txt", "")
    assert result.stderr.splitlines()[0] == (
        "specs/model.yaml:3:10: error: include '../victim/secret.txt': a spec can only read "
        "other specs (.yaml or .yml files)"
    )


def test_paths_to_write_inside_the_run_are_allowed():
    for value in ("log.csv", "logs", "checkpoints/{epoch:02d}.keras", "a/../b.csv", "./x"):
        assert policy.written_path_refusal(value) is None, value


def test_a_path_to_write_through_a_link_out_of_the_run_is_refused_when_it_is_written(tmp_path):
    run_dir, elsewhere = tmp_path / "run", tmp_path / "elsewhere"
    run_dir.mkdir()
    elsewhere.mkdir()
    (run_dir / "logs").symlink_to(elsewhere)
    assert policy.confined("logs2/x.csv", run_dir) == run_dir.resolve() / "logs2" / "x.csv"
    with pytest.raises(policy.OutsideRun, match="outside the run directory"):
        policy.confined("logs/x.csv", run_dir)


def test_an_inline_vocabulary_is_data(write_spec):
    path = write_spec(
        """
        graphspec: 1
        name: words
        inputs: {x: {shape: [1], dtype: string}}
        layers:
          ids: {type: StringLookup, vocabulary: [a, b, c], in: x}
        outputs: {ids: {}}
        """
    )
    result = run("validate", str(path))
    assert result.exit_code == 0, result.output


def test_an_application_is_built_without_weights_when_the_spec_names_none(write_spec, monkeypatch):
    import keras

    def no_download(*args, **kwargs):
        raise AssertionError(f"graphspec tried to download {args} {kwargs}")

    monkeypatch.setattr(keras.utils, "get_file", no_download)
    monkeypatch.setattr("keras.src.utils.file_utils.get_file", no_download)
    import graphspec

    loaded = graphspec.load(
        write_spec(
            """
            graphspec: 1
            name: app
            inputs: {image: {shape: [32, 32, 3]}}
            layers:
              net: {type: applications.MobileNet, include_top: false, alpha: 0.25, in: image}
            outputs: {net: {}}
            """
        )
    )
    model = loaded.build(compile=False)
    reference = keras.applications.MobileNet(
        include_top=False, alpha=0.25, weights=None, input_shape=(32, 32, 3)
    )
    assert model.count_params() == reference.count_params()


SEARCH = """
search:
  storage: {storage}
  trials: 1
  metric: loss
  params: {{train.batch_size: {{type: categorical, choices: [4, 8]}}}}
train: {{epochs: 1, samples: 16}}
"""


def test_a_spec_storage_is_a_journal_inside_the_tune_folder(sandbox):
    (sandbox.specs / "model.yaml").write_text(_valid_spec() + SEARCH.format(storage="journal.log"))
    result = run("tune", "specs/model.yaml", "--synthetic", "--out", "runs/tune", "-q")
    assert result.exit_code == 0, result.output
    assert (sandbox.root / "runs" / "tune" / "journal.log").is_file()
    sandbox.untouched("specs/model.yaml")


def test_a_tune_that_fails_before_its_study_starts_leaves_no_folder(sandbox):
    (sandbox.specs / "model.yaml").write_text(_valid_spec() + SEARCH.format(storage="missing/journal.log"))
    result = run("tune", "specs/model.yaml", "--synthetic", "--out", "runs/tune", "-q")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: cannot open storage '")
    assert not (sandbox.root / "runs" / "tune").exists()
    sandbox.untouched("specs/model.yaml")


def test_a_tune_folder_whose_tune_json_names_a_file_that_is_not_a_spec_is_not_resumed(sandbox):
    folder = sandbox.root / "runs" / "tune"
    folder.mkdir(parents=True)
    settings = {
        "spec": str(sandbox.victim / "secret.txt"),
        "overrides": [],
        "source": {"synthetic": True, "kind": "teacher"},
        "storage": "study.log",
        "study": "s",
        "seed": 0,
        "digest": "sha256:0",
    }
    (folder / "tune.json").write_text(json.dumps(settings))
    result = run("tune", "--resume", "runs/tune")
    assert result.exit_code == 2
    assert result.stderr.splitlines()[0] == (
        f"error: cannot read {sandbox.victim}/secret.txt: {sandbox.victim}/secret.txt is not a spec"
    )
    assert "hunter2" not in result.output
