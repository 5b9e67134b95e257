"""README's VS Code settings for `graphspec lsp`, checked as far as this machine can: there is no
VS Code here to run them in (tests/test_neovim.py runs the Neovim ones in Neovim). The block must
be settings the Generic LSP Client (v2) extension reads, with the types it declares
(tests/fixtures/vscode: its configuration schema), and the command and arguments it names must
start a server that answers an LSP client over stdio, as the extension would start it.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
from pathlib import Path

import jsonschema
import pytest

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = ROOT / "tests" / "fixtures" / "vscode" / "glspc-configuration.schema.json"
DANGLING = """\
graphspec: 1
name: t
inputs:
  x: {shape: [4]}
layers:
  y: {type: Dense, units: 1, in: xx}
outputs:
  y: {loss: mse}
"""


def readme_vscode_settings() -> dict:
    """The `settings.json` entries README gives for VS Code's generic LSP client."""
    readme = (ROOT / "README.md").read_text()
    after = readme.split('install the "Generic LSP Client (v2)" extension', 1)[1]
    block = after.split("```json\n", 1)[1].split("```", 1)[0]
    return json.loads("{" + block.strip().rstrip(",") + "}")


def test_readmes_vscode_settings_are_the_generic_lsp_clients_own_with_its_types():
    settings = readme_vscode_settings()
    jsonschema.validate(settings, json.loads(SCHEMA.read_text()))
    assert settings == {
        "glspc.server.command": "graphspec",
        "glspc.server.commandArguments": ["lsp"],
        "glspc.server.languageId": ["yaml"],
    }


def test_the_command_readme_gives_vscode_starts_a_server_that_publishes_diagnostics(tmp_path):
    pytest.importorskip("pygls", reason="graphspec lsp needs the lsp extra (pygls): pip install '.[lsp]'")
    from lsprotocol import types
    from pygls.lsp.client import BaseLanguageClient

    settings = readme_vscode_settings()
    command = shutil.which(settings["glspc.server.command"], path=str(Path(sys.executable).parent))
    if command is None:
        pytest.skip(f"the graphspec command is not installed beside {sys.executable}")
    spec = tmp_path / "spec.yaml"
    spec.write_text(DANGLING)

    async def diagnostics() -> list:
        client = BaseLanguageClient("vscode-like", "1")
        published: asyncio.Future = asyncio.get_running_loop().create_future()

        @client.feature(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
        def on_diagnostics(params):
            if not published.done():
                published.set_result(params.diagnostics)

        await client.start_io(command, *settings["glspc.server.commandArguments"], "--no-shapes")
        await client.initialize_async(types.InitializeParams(capabilities=types.ClientCapabilities()))
        client.initialized(types.InitializedParams())
        client.text_document_did_open(
            types.DidOpenTextDocumentParams(
                types.TextDocumentItem(
                    spec.as_uri(), settings["glspc.server.languageId"][0], 1, spec.read_text()
                )
            )
        )
        try:
            return await asyncio.wait_for(published, 60)
        finally:
            await client.shutdown_async(None)
            client.exit(None)
            await client.stop()

    (found,) = asyncio.run(diagnostics())
    assert found.message.startswith("layer 'y' reads 'xx', which is not defined")
    assert found.range.start.line == 5
