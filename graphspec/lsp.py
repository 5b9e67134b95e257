"""`graphspec lsp`: a language server over stdio (pygls) that shows `graphspec validate`'s
problems while a spec is edited, goes to definitions, hovers on nodes (with their output
shapes) and renames them.

The protocol only: what it answers comes from graphspec.lsp_analysis, and the shapes from a
worker process graphspec.lsp_shapes runs (this process never imports Keras). Installed with
the `lsp` extra (`pip install 'graphspec[lsp]'`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidRequest
from pygls.lsp.server import LanguageServer
from pygls.uris import from_fs_path, to_fs_path
from pygls.workspace import TextDocument

from graphspec import __version__, budget
from graphspec.lsp_analysis import Document, Problem, Span, problems
from graphspec.lsp_shapes import ShapeService, content_key, hover_lines

_SEVERITY = {"error": types.DiagnosticSeverity.Error, "warning": types.DiagnosticSeverity.Warning}


def _range(span: Span, held: TextDocument | None = None) -> types.Range:
    """The LSP range of a span. graphspec counts characters (code points); the client may count
    UTF-16 units, as LSP does by default: `held`, the document as the editor holds it, converts."""
    plain = types.Range(types.Position(span.line, span.start), types.Position(span.line, span.end))
    return held.position_codec.range_to_client_units(held.lines, plain) if held is not None else plain


def _position(held: TextDocument, position: types.Position) -> tuple[int, int]:
    """A client's position as (line, character in code points)."""
    server = held.position_codec.position_from_client_units(held.lines, position)
    return server.line, server.character


def _diagnostic(problem: Problem, held: TextDocument) -> types.Diagnostic:
    message = problem.message + (f"\nhint: {problem.hint}" if problem.hint else "")
    return types.Diagnostic(
        range=_range(problem.span, held),
        message=message,
        severity=_SEVERITY[problem.severity],
        source="graphspec",
    )


class GraphspecServer(LanguageServer):
    """The server, with each open document's last analysis: the parsed text, and the spec as
    loaded when it was valid (hover shows its substituted arguments, and its output shapes
    once `shapes` has worked them out; None: no shapes)."""

    def __init__(self, root: Path | None = None, shapes: bool = True) -> None:
        super().__init__("graphspec", __version__)
        self.root = root
        # uri -> (document, the last valid load, whether that load is of an older text)
        self.analyses: dict[str, tuple[Document, Any, bool]] = {}
        # The worker loads each spec under the limits this server validates with (--limit).
        self.shapes = ShapeService(budget.current().limits) if shapes else None

    def analyse(self, uri: str) -> None:
        """Parse and validate the document at `uri` as the editor holds it; publish its problems."""
        held = self.workspace.get_text_document(uri)
        text = held.source
        path = to_fs_path(uri) if uri.startswith("file:") else None
        document = Document(text, Path(path) if path else None, self.root)
        found, loaded = problems(document)
        previous = self.analyses.get(uri)
        # Hover keeps the last valid load while an edit in progress breaks the spec.
        if loaded is not None:
            self.analyses[uri] = (document, loaded, False)
            if self.shapes is not None:
                root = str(self.root) if self.root else None
                self.shapes.request(uri, content_key(loaded), text, document.name, path, root)
        else:
            self.analyses[uri] = (document, previous[1] if previous else None, previous is not None)
        self.text_document_publish_diagnostics(
            types.PublishDiagnosticsParams(uri=uri, diagnostics=[_diagnostic(p, held) for p in found])
        )

    def document(self, uri: str) -> tuple[Document, Any, bool]:
        if uri not in self.analyses:
            self.analyse(uri)
        return self.analyses[uri]

    def shape_lines(self, loaded: Any) -> Callable[[str], list[str]]:
        """What hover says of each node's output shapes in `loaded` (a function of the node)."""
        state = self.shapes.state(content_key(loaded)) if self.shapes and loaded is not None else None
        return lambda node: hover_lines(state, node)

    def shutdown(self) -> None:
        # However the server ends (`exit`, a lost client), the worker goes with it.
        if self.shapes is not None:
            self.shapes.close()
        super().shutdown()


def make_server(root: Path | None = None, shapes: bool = True) -> GraphspecServer:
    """A server with every feature registered (not yet started); specs may read nested specs
    and includes under `root` (default: each spec's own folder), as with `validate --root`.
    Without `shapes`, hover shows no output shapes and no worker process is started."""
    server = GraphspecServer(root, shapes)

    @server.feature(types.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls: GraphspecServer, params: types.DidOpenTextDocumentParams) -> None:
        ls.analyse(params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls: GraphspecServer, params: types.DidChangeTextDocumentParams) -> None:
        ls.analyse(params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_DID_SAVE)
    def did_save(ls: GraphspecServer, params: types.DidSaveTextDocumentParams) -> None:
        # A saved file can change what other files see (an included block file, a nested spec).
        ls.analyse(params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: GraphspecServer, params: types.DidCloseTextDocumentParams) -> None:
        ls.analyses.pop(params.text_document.uri, None)
        if ls.shapes is not None:
            ls.shapes.forget(params.text_document.uri)
        ls.text_document_publish_diagnostics(
            types.PublishDiagnosticsParams(uri=params.text_document.uri, diagnostics=[])
        )

    @server.feature(types.SHUTDOWN)
    def on_shutdown(ls: GraphspecServer, params: None) -> None:
        # The client asks before it exits: the worker's memory is given back at once.
        if ls.shapes is not None:
            ls.shapes.close()

    @server.feature(types.TEXT_DOCUMENT_DEFINITION)
    def definition(ls: GraphspecServer, params: types.DefinitionParams) -> types.Location | None:
        document, _, _ = ls.document(params.text_document.uri)
        held = ls.workspace.get_text_document(params.text_document.uri)
        target = document.definition(*_position(held, params.position))
        if target is None:
            return None
        if target.path == document.path:
            return types.Location(uri=params.text_document.uri, range=_range(target.span, held))
        # Another file: its names are ASCII in practice, and its text is not held here.
        return types.Location(uri=from_fs_path(str(target.path)) or "", range=_range(target.span))

    @server.feature(types.TEXT_DOCUMENT_HOVER)
    def hover(ls: GraphspecServer, params: types.HoverParams) -> types.Hover | None:
        document, loaded, stale = ls.document(params.text_document.uri)
        held = ls.workspace.get_text_document(params.text_document.uri)
        text = document.hover(*_position(held, params.position), loaded, stale, ls.shape_lines(loaded))
        if text is None:
            return None
        return types.Hover(contents=types.MarkupContent(kind=types.MarkupKind.Markdown, value=text))

    @server.feature(types.TEXT_DOCUMENT_RENAME)
    def rename(ls: GraphspecServer, params: types.RenameParams) -> types.WorkspaceEdit:
        document, _, _ = ls.document(params.text_document.uri)
        held = ls.workspace.get_text_document(params.text_document.uri)
        edits = document.rename(*_position(held, params.position), params.new_name)
        if isinstance(edits, str):
            raise JsonRpcInvalidRequest(edits)
        return types.WorkspaceEdit(
            changes={params.text_document.uri: [types.TextEdit(_range(s, held), new) for s, new in edits]}
        )

    return server


def serve(root: Path | None = None, shapes: bool = True) -> None:
    """Run the server on stdin and stdout until the client ends it."""
    make_server(root, shapes).start_io()
