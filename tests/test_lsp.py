"""`graphspec lsp` driven by a real LSP client (pygls's) over stdio, as an editor drives it:
validate's problems published at their ranges as the text changes, go to definition, hover,
rename; hover's output shapes, worked out by a worker process that goes with the server."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("pygls", reason="graphspec lsp needs the lsp extra (pygls): pip install '.[lsp]'")

from lsprotocol import types  # noqa: E402
from pygls.lsp.client import LanguageClient  # noqa: E402
from pygls.uris import from_fs_path  # noqa: E402

import graphspec  # noqa: E402
from graphspec.spec.load import load_text  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent

SPEC = """\
graphspec: 1
name: tiny
params: {width: 3}
include: [blocks.yaml]
inputs:
  x: {shape: [4]}
layers:
  h: {type: Dense, units: "${width}", in: x}
  g: {share: h, in: x}
  m: {math: "h + g * 2"}
  b: {block: mlp, in: m}
  e: {spec: encoder.yaml, in: b}
  y: {type: Dense, units: 1, in: [e]}
outputs:
  y: {loss: mse}
"""
BLOCKS = """\
graphspec: 1
blocks:
  mlp:
    in: [x]
    layers:
      d: {type: Dense, units: 4, in: x}
"""
ENCODER = """\
graphspec: 1
name: encoder
inputs:
  z: {shape: [4]}
layers:
  out: {type: Dense, units: 2, in: z}
outputs:
  out: {}
"""


def position(text: str, line: int, needle: str, offset: int = 0) -> types.Position:
    """The position of `needle` on 0-based `line` of `text`, `offset` characters into it."""
    return types.Position(line, text.splitlines()[line].index(needle) + offset)


class Session:
    """A client connected to `python -m graphspec lsp`, keeping what the server publishes."""

    def __init__(self, *options: str) -> None:
        self.options = options
        self.client = LanguageClient("graphspec-test", "1")
        self.published: asyncio.Queue = asyncio.Queue()

        @self.client.feature(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
        def on_diagnostics(params: types.PublishDiagnosticsParams) -> None:
            self.published.put_nowait(params)

    async def start(self) -> None:
        await self.client.start_io(sys.executable, "-m", "graphspec", "lsp", *self.options, cwd=str(ROOT))
        await self.client.initialize_async(
            types.InitializeParams(capabilities=types.ClientCapabilities(), root_uri=None)
        )
        self.client.initialized(types.InitializedParams())

    async def diagnostics(self, uri: str) -> list[types.Diagnostic]:
        while True:
            params = await asyncio.wait_for(self.published.get(), 60)
            if params.uri == uri:
                return list(params.diagnostics)

    @property
    def pid(self) -> int:
        return self.client._server.pid

    async def hover(self, uri: str, position: types.Position) -> str:
        found = await self.client.text_document_hover_async(
            types.HoverParams(types.TextDocumentIdentifier(uri), position)
        )
        return found.contents.value if found else ""

    async def stop(self) -> None:
        await self.client.shutdown_async(None)
        self.client.exit(None)
        await self.client.stop()


def run(coroutine):
    return asyncio.run(coroutine)


@pytest.fixture
def spec_files(tmp_path: Path) -> Path:
    (tmp_path / "blocks.yaml").write_text(BLOCKS)
    (tmp_path / "encoder.yaml").write_text(ENCODER)
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC)
    return spec


def test_problems_follow_the_edits_and_navigation_hover_rename_answer(spec_files: Path):
    assert graphspec.load(spec_files).spec.layers  # the spec is valid to start with
    uri = from_fs_path(str(spec_files))

    async def scenario() -> None:
        # Shapes have tests of their own: this one needs no Keras worker.
        session = Session("--no-shapes")
        await session.start()
        client = session.client
        try:
            client.text_document_did_open(
                types.DidOpenTextDocumentParams(types.TextDocumentItem(uri, "yaml", 1, SPEC))
            )
            assert await session.diagnostics(uri) == []

            # A one-character edit: `e` -> `f` in y's `in:` is a dangling reference, at its range.
            line = 12
            at = position(SPEC, line, "[e]", 1)
            change = types.TextDocumentContentChangePartial(
                range=types.Range(at, types.Position(line, at.character + 1)), text="f"
            )
            client.text_document_did_change(
                types.DidChangeTextDocumentParams(
                    types.VersionedTextDocumentIdentifier(version=2, uri=uri), [change]
                )
            )
            (problem,) = await session.diagnostics(uri)
            assert problem.severity == types.DiagnosticSeverity.Error
            assert problem.message.startswith("layer 'y' reads 'f', which is not defined")
            assert (problem.range.start.line, problem.range.start.character) == (line, at.character)
            assert problem.range.end.character == at.character + 1

            # A cycle, written as a whole new text.
            cyclic = SPEC.replace('units: "${width}", in: x}', 'units: "${width}", in: y}')
            client.text_document_did_change(
                types.DidChangeTextDocumentParams(
                    types.VersionedTextDocumentIdentifier(version=3, uri=uri),
                    [types.TextDocumentContentChangeWholeDocument(text=cyclic)],
                )
            )
            (problem,) = await session.diagnostics(uri)
            assert problem.message.startswith("cycle: h -> m -> b.d -> e -> y -> h")
            assert problem.range.start == types.Position(7, 2)

            # Ranges count UTF-16 units, LSP's default: an emoji before the name is two of them.
            emoji = SPEC.replace("units: 1, in: [e]}", 'units: 1, doc: "\U0001f60b", in: [f]}')
            client.text_document_did_change(
                types.DidChangeTextDocumentParams(
                    types.VersionedTextDocumentIdentifier(version=4, uri=uri),
                    [types.TextDocumentContentChangeWholeDocument(text=emoji)],
                )
            )
            (problem,) = await session.diagnostics(uri)
            assert "reads 'f'" in problem.message
            assert problem.range.start.character == emoji.splitlines()[12].index("[f]") + 1 + 1

            # Back to the valid text: the problems are cleared.
            client.text_document_did_change(
                types.DidChangeTextDocumentParams(
                    types.VersionedTextDocumentIdentifier(version=5, uri=uri),
                    [types.TextDocumentContentChangeWholeDocument(text=SPEC)],
                )
            )
            assert await session.diagnostics(uri) == []

            async def definition(line: int, needle: str, offset: int = 0) -> types.Location:
                found = await client.text_document_definition_async(
                    types.DefinitionParams(
                        types.TextDocumentIdentifier(uri), position(SPEC, line, needle, offset)
                    )
                )
                return found

            # `in: x` -> the input; `share: h` -> the node; `block: mlp` -> the included file's
            # block; `spec: encoder.yaml` -> the file; a reference in a list -> the node.
            found = await definition(7, "in: x", 4)
            assert found.uri == uri and found.range.start == types.Position(5, 2)
            found = await definition(8, "share: h", 7)
            assert found.uri == uri and found.range.start == types.Position(7, 2)
            found = await definition(10, "mlp")
            assert found.uri == from_fs_path(str(spec_files.parent / "blocks.yaml"))
            assert found.range.start == types.Position(2, 2)
            found = await definition(11, "encoder.yaml")
            assert found.uri == from_fs_path(str(spec_files.parent / "encoder.yaml"))
            found = await definition(12, "[e]", 1)
            assert found.uri == uri and found.range.start == types.Position(11, 2)

            # Hover on a node: its type and its arguments with ${width} substituted.
            hover = await client.text_document_hover_async(
                types.HoverParams(types.TextDocumentIdentifier(uri), types.Position(7, 2))
            )
            assert "`Dense`" in hover.contents.value and "units: `3`" in hover.contents.value

            # Rename h: its key, share: h and the name in the math expression.
            edit = await client.text_document_rename_async(
                types.RenameParams(types.TextDocumentIdentifier(uri), types.Position(7, 2), "hidden")
            )
            renamed = apply(SPEC, edit.changes[uri])
            assert "  hidden: {type: Dense" in renamed
            assert "{share: hidden, in: x}" in renamed and '"hidden + g * 2"' in renamed
        finally:
            await session.stop()
        # The renamed spec is the same model with the new name.
        spec_files.write_text(renamed)
        before = load_text(SPEC, "before.yaml", base=spec_files)
        after = graphspec.load(spec_files)
        assert list(after.spec.layers) == ["hidden" if n == "h" else n for n in before.spec.layers]
        assert after.spec.layers["hidden"].args == before.spec.layers["h"].args
        assert after.spec.layers["g"].share == "hidden"

    run(scenario())


def apply(text: str, edits: list[types.TextEdit]) -> str:
    lines = text.split("\n")
    for edit in sorted(edits, key=lambda e: (e.range.start.line, e.range.start.character), reverse=True):
        start, end = edit.range.start, edit.range.end
        assert start.line == end.line
        line = lines[start.line]
        lines[start.line] = line[: start.character] + edit.new_text + line[end.character :]
    return "\n".join(lines)


SHAPED = """\
graphspec: 1
name: shaped
inputs:
  x: {shape: [4]}
layers:
  h: {type: Dense, units: 64, in: x}
  y: {type: Dense, units: 1, in: h}
outputs:
  y: {loss: mse}
"""


def children(pid: int) -> list[int]:
    """The processes whose parent is `pid` (Linux's /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[1] == str(pid):
            found.append(int(entry.name))
    return found


def keras_shape(units: int) -> str:
    """The output shape Keras gives Dense(units) on an input of shape (4,), as hover writes it."""
    import keras

    return str(tuple(keras.layers.Dense(units)(keras.Input((4,))).shape))


async def settled_hover(session: Session, uri: str, position: types.Position) -> str:
    """Hover until it no longer says the shapes are being worked out (the worker imports Keras
    first: seconds); every answer before says "computing"."""
    deadline = time.monotonic() + 120
    while True:
        text = await session.hover(uri, position)
        if "shape: computing…" not in text or time.monotonic() > deadline:
            return text
        await asyncio.sleep(0.2)


def test_hover_shows_the_output_shape_keras_gives_and_the_new_one_after_an_edit(tmp_path: Path):
    spec = tmp_path / "shaped.yaml"
    spec.write_text(SHAPED)
    uri = from_fs_path(str(spec))
    on_h = types.Position(5, 2)

    async def scenario() -> tuple[str, str, str, int]:
        session = Session()
        await session.start()
        try:
            session.client.text_document_did_open(
                types.DidOpenTextDocumentParams(types.TextDocumentItem(uri, "yaml", 1, SHAPED))
            )
            assert await session.diagnostics(uri) == []
            before = await settled_hover(session, uri, on_h)
            (worker,) = children(session.pid)
            # TensorFlow is loaded in the worker, never in the server.
            assert "libtensorflow" in Path(f"/proc/{worker}/maps").read_text()
            assert "libtensorflow" not in Path(f"/proc/{session.pid}/maps").read_text()

            # units: 64 -> 32. The first hover after the edit is about the new text: the old
            # shape is never shown for it.
            at = position(SHAPED, 5, "64")
            change = types.TextDocumentContentChangePartial(
                range=types.Range(at, types.Position(5, at.character + 2)), text="32"
            )
            session.client.text_document_did_change(
                types.DidChangeTextDocumentParams(
                    types.VersionedTextDocumentIdentifier(version=2, uri=uri), [change]
                )
            )
            assert await session.diagnostics(uri) == []
            first = await session.hover(uri, on_h)
            after = await settled_hover(session, uri, on_h)
            assert children(session.pid) == [worker]  # the same worker: Keras imported once
        finally:
            await session.stop()
        return before, first, after, worker

    before, first, after, worker = run(scenario())
    assert f"- shape: `{keras_shape(64)}` float32" in before.split("\n")
    assert f"- shape: `{keras_shape(32)}` float32" in after.split("\n")
    assert keras_shape(32) == "(None, 32)"
    assert "- shape: computing…" in first.split("\n") or after == first
    # The worker went with the server.
    deadline = time.monotonic() + 10
    while os.path.exists(f"/proc/{worker}") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not os.path.exists(f"/proc/{worker}")


def test_with_no_shapes_hover_has_no_shapes_and_no_worker_is_started(tmp_path: Path):
    spec = tmp_path / "shaped.yaml"
    spec.write_text(SHAPED)
    uri = from_fs_path(str(spec))

    async def scenario() -> tuple[str, list[int]]:
        session = Session("--no-shapes")
        await session.start()
        try:
            session.client.text_document_did_open(
                types.DidOpenTextDocumentParams(types.TextDocumentItem(uri, "yaml", 1, SHAPED))
            )
            assert await session.diagnostics(uri) == []
            # Past the debounce, when a worker would have been started.
            await asyncio.sleep(1.5)
            hover = await session.hover(uri, types.Position(5, 2))
            return hover, children(session.pid)
        finally:
            await session.stop()

    hover, started = run(scenario())
    assert "units: `64`" in hover and "shape" not in hover
    assert started == []
