"""`graphspec lsp`: how long after a one-character edit of a 1,000-layer spec its diagnostics
arrive at the client (a real client over stdio), beside loading the same text in-process; and
the same with edits a second apart, so that the hover's shape worker (graphspec.lsp_shapes)
imports Keras and builds the spec after each while the next edit is analysed, beside a server
started with --no-shapes."""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from pathlib import Path

from bench_validate import generated_spec
from harness import PYTHON, ROOT, Row, Timing, not_measured, time_call

TARGET_S = 0.1
NAME = "lsp diagnostics round trip, 1,000-layer spec, one-character edit"
NAME_SHAPES = "lsp round trip as above, edits 1 s apart: the shape worker builds between them"
# Longer than the debounce (graphspec.lsp_shapes.DEBOUNCE_S), so each edit is built.
PAUSE_S = 1.0


def _cpu_seconds(pid: int) -> float:
    """The user + system CPU time process `pid` has used so far (Linux's /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _round_trips(
    path: Path,
    text: str,
    edits: int,
    pause_s: float = 0.0,
    options: tuple[str, ...] = (),
    edited: str = "n0",
) -> tuple[list[float], float]:
    """Each edit's round trip, `pause_s` apart, to a server started with `options`, and the
    server's CPU time per edit."""
    from lsprotocol import types
    from pygls.lsp.client import LanguageClient
    from pygls.uris import from_fs_path

    client = LanguageClient("bench", "1")
    published: asyncio.Queue = asyncio.Queue()

    @client.feature(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    def on_diagnostics(params: types.PublishDiagnosticsParams) -> None:
        published.put_nowait((time.perf_counter(), params))

    await client.start_io(PYTHON, "-m", "graphspec", "lsp", *options, cwd=str(ROOT))
    await client.initialize_async(types.InitializeParams(capabilities=types.ClientCapabilities()))
    client.initialized(types.InitializedParams())
    uri = from_fs_path(str(path))
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(types.TextDocumentItem(uri, "yaml", 1, text))
    )
    await asyncio.wait_for(published.get(), 120)
    # The edit: `units: 8` of the first layer with them becomes 9, and back, one character
    # each time (or the units of the layer `edited` names).
    line = next(i for i, t in enumerate(text.split("\n")) if t.startswith(f"  {edited}:") and "units: " in t)
    column = text.split("\n")[line].index("units: ") + len("units: ")
    was = text.split("\n")[line][column]
    times = []
    pid = client._server.pid
    cpu_before = _cpu_seconds(pid)
    for version in range(2, edits + 2):
        await asyncio.sleep(pause_s)
        where = types.Range(types.Position(line, column), types.Position(line, column + 1))
        change = types.TextDocumentContentChangePartial(range=where, text="9" if version % 2 == 0 else was)
        start = time.perf_counter()
        client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                types.VersionedTextDocumentIdentifier(version=version, uri=uri), [change]
            )
        )
        arrived, params = await asyncio.wait_for(published.get(), 120)
        if params.diagnostics:
            raise RuntimeError(f"unexpected diagnostics: {params.diagnostics[:3]}")
        times.append(arrived - start)
    cpu = (_cpu_seconds(pid) - cpu_before) / edits
    if pause_s and "--no-shapes" not in options:
        await _shape_shown(client, uri, text)
    await client.shutdown_async(None)
    client.exit(None)
    await client.stop()
    return times, cpu


async def _shape_shown(client, uri: str, text: str) -> None:
    """Raise unless hover on the last layer shows its shape (in a minute): the worker did build."""
    from lsprotocol import types

    line = next(i for i, t in enumerate(text.split("\n")) if t.startswith("  out:"))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = await client.text_document_hover_async(
            types.HoverParams(types.TextDocumentIdentifier(uri), types.Position(line, 2))
        )
        said = found.contents.value if found else ""
        if "shape: `" in said:
            return
        if "shape: computing" not in said:
            raise RuntimeError(f"hover shows no shape: {said}")
        await asyncio.sleep(0.2)
    raise RuntimeError("hover showed no shape within a minute")


def run() -> list[Row]:
    try:
        import pygls  # noqa: F401
    except ImportError:
        return [not_measured(NAME, f"< {TARGET_S} s", "python bench/run.py lsp", "pygls not installed")]
    from graphspec.spec.load import load_text

    text = generated_spec(1_000)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "generated_1000.yaml"
        path.write_text(text)
        samples, server_cpu = asyncio.run(_round_trips(path, text, 21))
        trips = Timing(samples)
        loading = time_call(lambda: load_text(text, str(path), base=path), repeats=11)
        start = time.process_time()
        load_text(text, str(path), base=path)
        cpu = time.process_time() - start
        # The last layer's units: the model stays valid for Keras (a 9 in a residual block's
        # Dense is refused by its Add), so each edit is built whole.
        shaped, shaped_cpu = asyncio.run(_round_trips(path, text, 21, PAUSE_S, edited="out"))
        plain, plain_cpu = asyncio.run(_round_trips(path, text, 21, PAUSE_S, ("--no-shapes",), edited="out"))
    with_shapes, without = Timing(shaped), Timing(plain)
    return [
        Row(
            NAME,
            f"{trips}; server CPU per edit {server_cpu:.3f} s",
            f"load_text of the same spec in-process: {loading}, CPU {cpu:.3f} s",
            trips.median / loading.median,
            f"< {TARGET_S} s",
            trips.median < TARGET_S,
            "python bench/run.py lsp",
            note=f"load average {os.getloadavg()[0]:.2f}",
        ),
        Row(
            NAME_SHAPES,
            f"{with_shapes}; server CPU per edit {shaped_cpu:.3f} s",
            f"the same with --no-shapes: {without}; server CPU per edit {plain_cpu:.3f} s",
            with_shapes.median / without.median,
            f"< {TARGET_S} s",
            with_shapes.median < TARGET_S,
            "python bench/run.py lsp",
            note=f"load average {os.getloadavg()[0]:.2f}",
        ),
    ]
