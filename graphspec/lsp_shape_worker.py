"""The process that works out output shapes for `graphspec lsp`'s hover, so that the server
never imports Keras (seconds, and about a gigabyte) and a spec that makes Keras crash, hang or
allocate cannot take the server down.

Started by graphspec.lsp_shapes as `python -m graphspec.lsp_shape_worker MEMORY_BYTES`, it
confines itself (at most MEMORY_BYTES of data, a lower CPU priority, killed with the server),
imports Keras once, says `{"ready": true}` and then answers one JSON line per request on
stdin with one JSON line on stdout:

    {"id": 1, "key": "...", "text": "...", "name": "spec.yaml", "path": "/abs/spec.yaml" | null,
     "root": "/abs" | null, "limits": {"bytes": 20000000, ...}}
    -> {"id": 1, "key": "...", "shapes": {"h": [["", [null, 3], "float32"]], ...}}
    -> {"id": 1, "key": "...", "error": "why they are not known"}

The spec is loaded again here, from the same text and under the same limits and root as the
server loaded it (graphspec.budget), and built with its weights declared, never allocated
(graphspec.keras.shapes.declared_signatures). `key` is that load's content key, which may
differ from the request's where a file the spec includes changed in between.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import IO, Any

# How far below the editor and the server the worker runs: it never competes with a keystroke.
NICENESS = 10
_PR_SET_PDEATHSIG = 1


def confine(memory_bytes: int) -> None:
    """Cap this process's data (heap and private mappings: an allocation past it fails, as
    MemoryError or a crash, not by swapping the machine), lower its priority, and have Linux
    kill it when the server that started it dies, however it dies."""
    import resource
    import signal

    if sys.platform == "linux":
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    resource.setrlimit(resource.RLIMIT_DATA, (memory_bytes, memory_bytes))
    # Last, so that a lowered priority tells a watcher the rest is done.
    os.nice(NICENESS)


def answer(request: dict[str, Any]) -> dict[str, Any]:
    """The reply to one request: the shapes of every node the spec's outputs need, or why not."""
    import keras

    from graphspec import budget
    from graphspec.errors import SpecErrors
    from graphspec.keras.shapes import declared_signatures
    from graphspec.lsp_shapes import content_key
    from graphspec.spec.load import load_text

    key = request["key"]
    path, root = request.get("path"), request.get("root")
    try:
        budget.activate(budget.Budget(request.get("limits") or {}))
        loaded = load_text(
            request["text"],
            request["name"],
            base=Path(path) if path else None,
            root=Path(root) if root else None,
        )
        key = content_key(loaded)
        # Each spec builds in a fresh session: layer names do not count up across requests,
        # and what the last model left behind is freed.
        keras.backend.clear_session()
        found = declared_signatures(loaded)
    except SpecErrors as exc:
        first = exc.diagnostics.items[0] if exc.diagnostics.items else None
        return {"id": request["id"], "key": key, "error": first.message if first else str(exc)}
    except MemoryError:
        return {"id": request["id"], "key": key, "error": "building it ran out of the worker's memory"}
    except Exception as exc:  # Keras's own failures, of any kind: reported, the worker goes on
        return {"id": request["id"], "key": key, "error": f"{type(exc).__name__}: {exc}"}
    finally:
        budget.activate(None)
    shapes = {name: [[suffix, list(shape), dtype] for suffix, shape, dtype in s] for name, s in found.items()}
    return {"id": request["id"], "key": key, "shapes": shapes}


def serve(requests: IO[bytes], replies: IO[str]) -> None:
    """Answer each request line until `requests` ends (the server closed the pipe or died)."""
    for line in requests:
        reply = answer(json.loads(line))
        replies.write(json.dumps(reply) + "\n")
        replies.flush()


def main(argv: list[str]) -> None:
    confine(int(argv[0]))
    # The replies get their own copy of stdout; whatever Keras or TensorFlow print goes to
    # stderr (which the server discards) instead of into the replies.
    replies = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    try:
        import keras  # noqa: F401  (once, before saying ready)

        import graphspec.keras.shapes  # noqa: F401
    except Exception as exc:  # no Keras, or no backend: every hover says so, once
        replies.write(json.dumps({"ready": False, "error": " ".join(str(exc).split())[:300]}) + "\n")
        replies.flush()
        return
    replies.write(json.dumps({"ready": True}) + "\n")
    replies.flush()
    serve(sys.stdin.buffer, replies)


if __name__ == "__main__":
    main(sys.argv[1:])
