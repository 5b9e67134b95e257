"""Output shapes for `graphspec lsp`'s hover, worked out beside the server, never in it.

Knowing a node's output shape takes Keras: seconds to import, about a gigabyte, and a build
that a hostile spec can make long or large. The server stays as fast as validation: after each
valid analysis it asks this module for the shapes of that load (`ShapeService.request`), which
waits until the edits pause (the debounce), then sends the spec to one long-lived worker
process (graphspec.lsp_shape_worker) that imported Keras once. Answers are kept by the load's
content key (the text of every file it read), so a hover shows shapes only when they belong to
the text it describes.

The worker runs under a memory cap and a lower priority, each answer under a timeout; a worker
that crashes, runs out of memory or overruns is killed, the hover says why, and the next
request starts a new one. No Keras here.
"""

from __future__ import annotations

import hashlib
import json
import os
import select
import subprocess
import sys
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from graphspec.spec.load import LoadedSpec

# Edits closer together than this are one edit: shapes are worked out once typing pauses.
DEBOUNCE_S = 0.5
# One spec's build (a 1,000-layer spec takes about 1.2 s on a 2-core machine).
TIMEOUT_S = 30.0
# Importing Keras with TensorFlow, on a machine busy with other work.
START_TIMEOUT_S = 120.0
# The worker's data: TensorFlow and a 1,000-layer model take about 0.5 GB of it.
MEMORY_BYTES = 4 * 1024**3
# Answers kept: a few documents, each with a few recent versions.
KEPT = 32
# A reply longer than this is not an answer (100,000 nodes' shapes take a few MB).
_MAX_REPLY = 256 * 1024**2


@dataclass(frozen=True)
class Shapes:
    """One load's output shapes: for each node an output needs, its (suffix, shape, dtype)
    signatures (graphspec.keras.shapes); or `error`, why they are not known."""

    signatures: dict[str, list[tuple[str, tuple, str]]] | None = None
    error: str | None = None


# What `ShapeService.state` says of a load whose shapes are being worked out.
COMPUTING = "computing"


def content_key(loaded: LoadedSpec) -> str:
    """A hash of the text of every file `loaded` read (the spec, its includes, its nested specs),
    by name: equal keys, the same model."""
    digest = hashlib.sha256()
    pending = [loaded]
    while pending:
        one = pending.pop()
        for name, text in sorted(one.diagnostics.sources.items()):
            digest.update(json.dumps([name, text]).encode())
        pending += [one.nested[name] for name in sorted(one.nested)]
    return digest.hexdigest()


def hover_lines(state: Shapes | str | None, node: str) -> list[str]:
    """What hover says of `node`'s output shapes, given what `ShapeService.state` knows of the
    load: "shape: `(None, 64)` float32", one line per output; nothing where nothing is known."""
    if state is None:
        return []
    if state == COMPUTING:
        return ["shape: computing…"]
    assert isinstance(state, Shapes)
    if state.signatures is None:
        error = " ".join(str(state.error).split())
        return [f"shape: not known ({error if len(error) <= 200 else error[:197] + '...'})"]
    found = state.signatures.get(node, [])
    return [f"shape{suffix}: `{tuple(shape)}` {dtype}" for suffix, shape, dtype in found]


@dataclass
class _Request:
    key: str
    text: str
    name: str
    path: str | None
    root: str | None
    due: float


class ShapeService:
    """Works out the shapes of each document's latest valid load in one worker process, started
    on the first request. Thread-safe: the server calls `request` and `state` from its own
    thread; one thread of the service talks to the worker."""

    def __init__(
        self,
        limits: dict[str, int],
        debounce_s: float = DEBOUNCE_S,
        timeout_s: float = TIMEOUT_S,
        memory_bytes: int = MEMORY_BYTES,
    ) -> None:
        # The limits the spec is loaded under in the worker: the server's own (--limit).
        self.limits = dict(limits)
        self.debounce_s = debounce_s
        self.timeout_s = timeout_s
        self.memory_bytes = memory_bytes
        self.workers_started = 0
        self._changed = threading.Condition()
        self._wanted: dict[str, _Request] = {}  # document uri -> its latest load's request
        self._running: str | None = None  # the key being worked out
        self._known: OrderedDict[str, Shapes] = OrderedDict()
        self._thread: threading.Thread | None = None
        self._worker: subprocess.Popen | None = None
        self._buffer = b""
        self._next_id = 0
        self._closed = False
        self._unloadable: str | None = None  # why the worker could not import Keras, once it said

    def request(self, uri: str, key: str, text: str, name: str, path: str | None, root: str | None) -> None:
        """Ask for the shapes of document `uri`'s load `key` (of `text`, read as the file `path`
        under `root`), replacing its earlier request; worked out once `uri` has not changed for
        the debounce."""
        with self._changed:
            if self._closed:
                return
            if key in self._known or key == self._running:
                self._wanted.pop(uri, None)
                return
            due = time.monotonic() + self.debounce_s
            self._wanted[uri] = _Request(key, text, name, path, root, due)
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="graphspec-shapes", daemon=True)
                self._thread.start()
            self._changed.notify_all()

    def forget(self, uri: str) -> None:
        """Drop document `uri`'s request (the editor closed it)."""
        with self._changed:
            self._wanted.pop(uri, None)

    def state(self, key: str) -> Shapes | str | None:
        """The shapes of load `key`; `COMPUTING` while they are being worked out; None when
        they were never asked for (or were forgotten)."""
        with self._changed:
            if key in self._known:
                return self._known[key]
            if key == self._running or any(r.key == key for r in self._wanted.values()):
                return COMPUTING
            return None

    @property
    def worker_pid(self) -> int | None:
        """The worker's process id while one runs."""
        worker = self._worker
        return worker.pid if worker is not None and worker.poll() is None else None

    def close(self) -> None:
        """Stop: the worker is killed and nothing more is worked out."""
        with self._changed:
            self._closed = True
            self._wanted.clear()
            self._changed.notify_all()
        self._stop_worker()

    # --- the service's thread ------------------------------------------------------------

    def _loop(self) -> None:
        while True:
            with self._changed:
                request = self._next_due()
                if request is None:
                    return
                self._running = request.key
            try:
                found, key = self._compute(request)
            except Exception as exc:  # a fault of ours: said on hover, and the service goes on
                self._stop_worker()
                found, key = Shapes(error=f"{type(exc).__name__}: {exc}"), request.key
            with self._changed:
                self._running = None
                for one in {request.key, key}:
                    self._known[one] = found
                    self._known.move_to_end(one)
                while len(self._known) > KEPT:
                    self._known.popitem(last=False)
                self._changed.notify_all()

    def _next_due(self) -> _Request | None:
        """Wait (holding the condition) for a request whose document stopped changing; None
        once the service is closed."""
        while not self._closed:
            now = time.monotonic()
            due = [(r.due, uri) for uri, r in self._wanted.items()]
            if due:
                when, uri = min(due)
                if when <= now:
                    return self._wanted.pop(uri)
                self._changed.wait(when - now)
            else:
                self._changed.wait()
        return None

    def _compute(self, request: _Request) -> tuple[Shapes, str]:
        """Ask the worker (started if none runs); a failure of any kind is an answer."""
        if self._unloadable is not None:
            return Shapes(error=self._unloadable), request.key
        try:
            if self._worker is None or self._worker.poll() is not None:
                ready = self._start_worker()
                if ready.get("ready") is not True:
                    # Not installed, or no backend: trying again at each edit would not help.
                    self._stop_worker()
                    self._unloadable = f"Keras could not be loaded: {ready.get('error')}"
                    return Shapes(error=self._unloadable), request.key
            self._next_id += 1
            message = {
                "id": self._next_id,
                "key": request.key,
                "text": request.text,
                "name": request.name,
                "path": request.path,
                "root": request.root,
                "limits": self.limits,
            }
            worker = self._worker
            if worker is None or worker.stdin is None:  # closed while it started
                raise _WorkerFailed("the language server is stopping")
            worker.stdin.write(json.dumps(message).encode() + b"\n")
            worker.stdin.flush()
            reply = self._reply(self.timeout_s, f"working them out took longer than {self.timeout_s:g} s")
        except _WorkerFailed as exc:
            self._stop_worker()
            return Shapes(error=str(exc)), request.key
        except OSError as exc:  # the pipe broke: the worker died before reading the request
            status = self._stop_worker()
            return Shapes(error=f"the shape worker stopped ({status or exc})"), request.key
        key = reply.get("key") or request.key
        if "shapes" in reply:
            signatures = {
                name: [(suffix, tuple(shape), dtype) for suffix, shape, dtype in outputs]
                for name, outputs in reply["shapes"].items()
            }
            return Shapes(signatures=signatures), key
        return Shapes(error=str(reply.get("error"))), key

    def _start_worker(self) -> dict[str, Any]:
        self._stop_worker()
        self._buffer = b""
        self.workers_started += 1
        # Started from the service's own thread, which lives as long as the service: Linux's
        # parent-death signal, which the worker asks for, follows the thread that started it.
        self._worker = subprocess.Popen(
            [sys.executable, "-m", "graphspec.lsp_shape_worker", str(self.memory_bytes)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            # Keras's and TensorFlow's chatter; the replies say what went wrong.
            stderr=subprocess.DEVNULL,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3")},
        )
        return self._reply(START_TIMEOUT_S, f"loading Keras took longer than {START_TIMEOUT_S:g} s")

    def _reply(self, timeout_s: float, overdue: str) -> dict[str, Any]:
        """The worker's next line as JSON, within `timeout_s`; raises _WorkerFailed (saying
        `overdue` on a timeout) when it does not come."""
        worker = self._worker
        if worker is None or worker.stdout is None:  # closed meanwhile
            raise _WorkerFailed("the language server is stopping")
        deadline = time.monotonic() + timeout_s
        descriptor = worker.stdout.fileno()
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if self._closed:
                raise _WorkerFailed("the language server is stopping")
            if left <= 0:
                raise _WorkerFailed(overdue)
            # Short waits, so that closing the service is not held up by a long build.
            readable, _, _ = select.select([descriptor], [], [], min(left, 0.5))
            if not readable:
                continue
            chunk = os.read(descriptor, 1 << 20)
            if not chunk:
                status = self._stop_worker() or "it was stopped"
                raise _WorkerFailed(f"the shape worker stopped ({status})")
            self._buffer += chunk
            if len(self._buffer) > _MAX_REPLY:
                raise _WorkerFailed("the shape worker's reply was too long")
        line, _, self._buffer = self._buffer.partition(b"\n")
        try:
            return json.loads(line)
        except ValueError:
            raise _WorkerFailed("the shape worker's reply was not JSON") from None

    def _stop_worker(self) -> str | None:
        """Kill the worker, if one runs, and reap it; how it ended, in words."""
        worker, self._worker = self._worker, None
        if worker is None:
            return None
        if worker.poll() is None:
            worker.kill()
        try:
            code = worker.wait(timeout=10)
        except subprocess.TimeoutExpired:
            return "it could not be stopped"
        for pipe in (worker.stdin, worker.stdout):
            try:
                if pipe is not None:
                    pipe.close()
            except OSError:
                pass
        return f"killed by signal {-code}" if code < 0 else f"exit status {code}"


class _WorkerFailed(Exception):
    """The worker gave no answer; the message says why, as the hover shows it."""
