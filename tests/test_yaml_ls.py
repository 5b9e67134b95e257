"""The committed JSON Schema in a real editor's language server: yaml-language-server (the one VS
Code's YAML extension, Neovim's yamlls and others run), pinned in tests/yaml-ls/package-lock.json
and installed by `make yaml-ls` into .cache/yaml-ls. The test drives it over LSP on stdio as an
editor does, and runs check-jsonschema on the same files: both must agree.

Without Node.js, or before `make yaml-ls`, the server's tests are skipped, saying why.
"""

from __future__ import annotations

import json
import queue
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = ROOT / "schemas" / "graphspec.schema.json"
SERVER = (
    ROOT / ".cache" / "yaml-ls" / "node_modules" / "yaml-language-server" / "bin" / "yaml-language-server"
)
PINNED = json.loads((ROOT / "tests" / "yaml-ls" / "package.json").read_text())["dependencies"]
DOCS = ROOT / "graphspec" / "spec" / "catalog_docs.json"
SPECS = sorted((ROOT / "specs").glob("*.yaml"))
NODE = shutil.which("node")

needs_server = pytest.mark.skipif(
    NODE is None or not SERVER.is_file(),
    reason="Node.js is not installed (yaml-language-server needs it)"
    if NODE is None
    else "yaml-language-server is not installed: `make yaml-ls` installs it into .cache/yaml-ls",
)

# Two mistakes, each on a line of its own, in an otherwise valid spec: a misspelt argument and a
# value of the wrong type.
BAD = """\
graphspec: 1
name: bad
inputs:
  x: {shape: [8]}
layers:
  h:
    type: Dense
    units: 4
    activaton: relu
  y:
    type: Dense
    units: "abc"
outputs:
  y: {loss: mse}
"""
TYPO_LINE, WRONG_TYPE_LINE = 8, 11  # 0-based, as LSP counts

# The cursor on the empty line inside a Conv2D node (line 8, column 4); hover on kernel_size.
COMPLETE = """\
graphspec: 1
name: complete
inputs:
  x: {shape: [8, 8, 3]}
layers:
  h:
    type: Conv2D
    kernel_size: 3
    
outputs:
  h: {}
"""
CURSOR, KERNEL_SIZE = {"line": 8, "character": 4}, {"line": 7, "character": 6}


class Client:
    """A minimal LSP client over a child process's stdio: requests, notifications, and the
    diagnostics the server publishes, by document URI."""

    def __init__(self, argv: list[str]):
        self.process = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
        )
        self.inbox: queue.Queue = queue.Queue()
        self.diagnostics: dict[str, list] = {}
        self.settings: dict[str, object] = {}
        self.next_id = 0
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        stream = self.process.stdout
        while True:
            length = None
            while True:
                line = stream.readline()
                if not line:
                    self.inbox.put(None)
                    return
                if line in (b"\r\n", b"\n"):
                    break
                name, _, value = line.decode().partition(":")
                if name.lower() == "content-length":
                    length = int(value)
            self.inbox.put(json.loads(stream.read(length)))

    def _send(self, message: dict) -> None:
        body = json.dumps({"jsonrpc": "2.0", **message}).encode()
        self.process.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.process.stdin.flush()

    def notify(self, method: str, params: dict) -> None:
        self._send({"method": method, "params": params})

    def request(self, method: str, params: dict, timeout: float = 30) -> object:
        self.next_id += 1
        wanted = self.next_id
        self._send({"id": wanted, "method": method, "params": params})
        while True:
            message = self._next(timeout)
            if message.get("id") == wanted and "method" not in message:
                assert "error" not in message, message
                return message.get("result")

    def wait_for_diagnostics(self, uris: list[str], timeout: float = 30) -> dict[str, list]:
        while not all(uri in self.diagnostics for uri in uris):
            self._next(timeout)
        return {uri: self.diagnostics[uri] for uri in uris}

    def _next(self, timeout: float) -> dict:
        message = self.inbox.get(timeout=timeout)
        assert message is not None, "yaml-language-server exited"
        if message.get("method") == "textDocument/publishDiagnostics":
            self.diagnostics[message["params"]["uri"]] = message["params"]["diagnostics"]
        elif message.get("method") == "workspace/configuration":  # the server reads the settings
            items = message["params"]["items"]
            self._send({"id": message["id"], "result": [self.settings.get(i.get("section")) for i in items]})
        elif "method" in message and "id" in message:  # another request of the server's: accept it
            self._send({"id": message["id"], "result": None})
        return message

    def close(self) -> None:
        try:
            self.request("shutdown", {}, timeout=5)
            self.notify("exit", {})
            self.process.wait(timeout=5)
        except Exception:
            self.process.kill()
            self.process.wait()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("yaml-ls")
    client = Client([NODE, str(SERVER), "--stdio"])
    client.request(
        "initialize",
        {
            "processId": None,
            "rootUri": folder.as_uri(),
            "capabilities": {
                "textDocument": {
                    "completion": {"completionItem": {"snippetSupport": False}},
                    "hover": {"contentFormat": ["plaintext"]},
                    "publishDiagnostics": {},
                }
            },
        },
    )
    client.notify("initialized", {})
    # What an editor's settings say: this schema for every .yaml file, nothing from SchemaStore.
    settings = {
        "validate": True,
        "completion": True,
        "hover": True,
        "schemaStore": {"enable": False},
        "schemas": {SCHEMA.as_uri(): ["*.yaml"]},
    }
    client.settings = {"yaml": settings}
    client.notify("workspace/didChangeConfiguration", {"settings": client.settings})
    yield client, folder
    client.close()


def _open(client: Client, path: Path, text: str) -> str:
    uri = path.as_uri()
    client.notify(
        "textDocument/didOpen",
        {"textDocument": {"uri": uri, "languageId": "yaml", "version": 1, "text": text}},
    )
    return uri


@needs_server
def test_the_pinned_server_is_the_installed_one():
    installed = json.loads((SERVER.parent.parent / "package.json").read_text())["version"]
    assert installed == PINNED["yaml-language-server"]


@needs_server
def test_a_typo_and_a_wrong_type_each_get_a_diagnostic_on_their_own_line(server):
    client, folder = server
    uri = _open(client, folder / "bad.yaml", BAD)
    found = client.wait_for_diagnostics([uri])[uri]
    by_line = {}
    for diagnostic in found:
        by_line.setdefault(diagnostic["range"]["start"]["line"], []).append(diagnostic["message"])
    assert set(by_line) == {TYPO_LINE, WRONG_TYPE_LINE}, found
    assert any("activaton" in message for message in by_line[TYPO_LINE]), found
    assert any("integer" in message.lower() for message in by_line[WRONG_TYPE_LINE]), found


@needs_server
def test_every_spec_in_specs_gets_no_diagnostic(server):
    client, _ = server
    uris = [_open(client, path, path.read_text()) for path in SPECS]
    found = client.wait_for_diagnostics(uris)
    assert {uri: d for uri, d in found.items() if d} == {}


@needs_server
def test_completion_inside_a_layer_offers_its_own_arguments_and_hover_shows_keras_words(server):
    client, folder = server
    uri = _open(client, folder / "complete.yaml", COMPLETE)
    # Half written: Conv2D's required argument is still missing, and that is all that is wrong.
    found = client.wait_for_diagnostics([uri])[uri]
    assert [d["message"] for d in found] == ['Missing property "filters".'], found
    document = {"textDocument": {"uri": uri}}
    result = client.request("textDocument/completion", {**document, "position": CURSOR})
    items = result["items"] if isinstance(result, dict) else result
    labels = {item["label"] for item in items}
    assert {"filters", "strides", "padding", "activation", "kernel_initializer", "in", "call"} <= labels
    assert "units" not in labels and "rate" not in labels  # Dense's and Dropout's, not Conv2D's
    hover = client.request("textDocument/hover", {**document, "position": KERNEL_SIZE})
    keras_words = json.loads(DOCS.read_text())["layers"]["Conv2D"]["args"]["kernel_size"]
    assert keras_words in json.dumps(hover["contents"]), hover


FACTOR = """\
graphspec: 1
name: factors
inputs:
  x: {{shape: [9, 9, 3]}}
layers:
  a: {{type: {layer}, factor: {factor}, in: x}}
outputs:
  a: {{loss: mse}}
"""


# A Hashing layer's sparse output: refused where its output_mode is "int" (its default).
SPARSE = """\
graphspec: 1
name: hashed
inputs:
  x: {{shape: [3]}}
layers:
  a: {{type: Hashing, num_bins: 4, sparse: true{mode}, in: x}}
outputs:
  a: {{loss: mse}}
"""


def _check_jsonschema(*paths: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--schemafile", str(SCHEMA), *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_jsonschema_agrees_on_the_same_files(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD)
    taken = tmp_path / "taken.yaml"
    taken.write_text(FACTOR.format(layer="RandomContrast", factor="[-0.5, 0.5]"))
    past = tmp_path / "past.yaml"
    past.write_text(FACTOR.format(layer="RandomBrightness", factor="[2, 3]"))
    sparse_int = tmp_path / "sparse_int.yaml"
    sparse_int.write_text(SPARSE.format(mode=""))
    sparse_count = tmp_path / "sparse_count.yaml"
    sparse_count.write_text(SPARSE.format(mode=", output_mode: count"))
    # One run for all files: check-jsonschema checks the schema itself first, most of its time.
    result = _check_jsonschema(bad, taken, past, sparse_int, sparse_count, *SPECS)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "'activaton' was unexpected" in result.stdout
    assert "'abc' is not of type 'integer'" in result.stdout
    refused = {line.split("::")[0].strip() for line in result.stdout.splitlines() if "::$" in line}
    assert refused == {str(bad), str(past), str(sparse_int)}, result.stdout


@needs_server
def test_an_image_factor_pair_is_checked_at_its_ends_as_keras_checks_it(server):
    """[-0.5, 0.5] is a contrast factor Keras takes (it checks only that the low end is at most 1
    and the high end at least 0: `prefixItems` in the schema); [2, 3] is past the brightness
    factor's bounds."""
    client, folder = server
    taken = _open(client, folder / "taken.yaml", FACTOR.format(layer="RandomContrast", factor="[-0.5, 0.5]"))
    past = _open(client, folder / "past.yaml", FACTOR.format(layer="RandomBrightness", factor="[2, 3]"))
    found = client.wait_for_diagnostics([taken, past])
    assert found[taken] == [], found
    assert {d["range"]["start"]["line"] for d in found[past]} == {5}, found


@needs_server
def test_an_argument_typed_where_another_is_one_word_is_checked_there(server):
    """A sparse output is refused where output_mode is its default, "int", and taken where it is
    written "count" (`if`/`then` on the other argument's word)."""
    client, folder = server
    default = _open(client, folder / "sparse_int.yaml", SPARSE.format(mode=""))
    counts = _open(client, folder / "sparse_count.yaml", SPARSE.format(mode=", output_mode: count"))
    found = client.wait_for_diagnostics([default, counts])
    assert found[counts] == [], found
    assert {d["range"]["start"]["line"] for d in found[default]} == {5}, found
