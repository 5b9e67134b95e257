"""Compact block definitions, made explicit before blocks.py checks and expands them.

    blocks:
      mlp: [{type: Dense, units: "${hidden}", activation: gelu}, {type: Dense, units: "${dim}"}]
      encoder:                     # no `params:`, no `in:`
        layers:
          attn: {type: MultiHeadAttention, num_heads: "${heads}", key_dim: "${dim // heads}",
                 in: {query: x, value: x}}
          res: {type: Add, in: [x, attn]}
          ffn: {block: mlp}        # hidden and dim: the encoder's own params of those names

- A block without `in:` has one input, named `x`.
- A block without `params:` has as params the names its `${...}` expressions read (`copy`
  aside), and the params that the blocks it uses need and are not given there; each is required
  at every use. A written `params:` stays authoritative.
- A block whose value is a list is a chain block: one input `x`, the list a chain (chains.py)
  whose elements are named after their types (`dense`, `dense_1`), its output the last one.
  A block's `layers:` may be a list too, named the same way: a chain block with its own `in:`.
- A block mapping with none of the keys doc, params, in, layers and out is its `layers:`.

What a use does not give is looked up where the use is written (blocks.py, `_args`). This is a
pure rewrite of the parsed document (no TensorFlow): the explicit spelling is what every later
stage sees, so both spellings have the same fingerprint.
"""

from __future__ import annotations

from typing import Any

from graphspec.errors import Diagnostics, Location
from graphspec.spec import chains, expr
from graphspec.spec import params as params_module
from graphspec.spec.source import Path, Positions

# The keys of a block written out in full; a mapping with none of them is its `layers:`.
BLOCK_KEYS = ("doc", "params", "in", "layers", "out")

# The input of a block that does not name its inputs.
IMPLICIT_INPUT = "x"
_COPY = "copy"
_FAILED = object()  # a definition whose error has been reported


def complete(
    blocks: dict[str, Any], positions: Positions, diagnostics: Diagnostics
) -> tuple[dict[str, Any], dict[str, dict[str, Location | None]]]:
    """Every definition of `blocks` in the explicit spelling, less those whose errors were
    reported; and, for each block whose params were inferred, where each param is first read
    or needed (what an error about a missing one cites)."""
    done = {name: _explicit(name, definition, positions, diagnostics) for name, definition in blocks.items()}
    failed = {name for name, definition in done.items() if definition is _FAILED}
    inferred: dict[str, dict[str, Location | None]] = {}
    for name in done:
        _infer(name, done, positions, inferred, ())
    # A block that needs the params of a failed block cannot know its own: it is left out too,
    # so that its uses are not reported again for params it would have had.
    failed |= {name for name, reads in inferred.items() if reads is _FAILED}
    done = {name: definition for name, definition in done.items() if name not in failed}
    inferred = {name: reads for name, reads in inferred.items() if name not in failed}
    for name, reads in inferred.items():
        done[name] = {**done[name], "params": dict.fromkeys(reads)}
    return done, inferred


def _explicit(name: str, definition: Any, positions: Positions, diagnostics: Diagnostics) -> Any:
    path = ("blocks", name)
    if isinstance(definition, list):
        layers = _chain_layers(name, definition, path, positions, diagnostics)
        if layers is _FAILED:
            return _FAILED
        positions.values[path + ("layers",)] = positions.of(path)
        definition = {"layers": layers}
    elif isinstance(definition, dict) and definition and not set(definition) & set(BLOCK_KEYS):
        _move(positions, {path + (local,): path + ("layers", local) for local in definition})
        positions.values[path + ("layers",)] = positions.of(path)
        definition = {"layers": definition}
    elif isinstance(definition, dict) and isinstance(definition.get("layers"), list):
        layers = _chain_layers(name, definition["layers"], path + ("layers",), positions, diagnostics)
        if layers is _FAILED:
            return _FAILED
        definition = {**definition, "layers": layers}
    if isinstance(definition, dict) and "in" not in definition and "layers" in definition:
        positions.values[path + ("in",)] = positions.key_of(path)
        return {**definition, "in": IMPLICIT_INPUT}
    return definition


def _chain_layers(
    name: str, elements: list, path: Path, positions: Positions, diagnostics: Diagnostics
) -> Any:
    """The chain `elements` (written at `path`) as the layers mapping `{dense: ..., dense_1: ...}`,
    the positions moved to match; those without `in` read the one before (chains.py gives them
    their `in`)."""
    if not elements:
        diagnostics.error(f"chain block '{name}' has no layers", positions.of(path))
        return _FAILED
    layers: dict[str, Any] = {}
    counts: dict[str, int] = {}
    moves: dict[Path, Path] = {}
    for i, element in enumerate(elements):
        if not isinstance(element, dict):
            diagnostics.error(
                f"each layer of chain block '{name}' is a mapping, as a layer is", positions.of(path + (i,))
            )
            return _FAILED
        base = chains.base_name(element)
        seen = counts.get(base, 0)
        counts[base] = seen + 1
        local = base if seen == 0 else f"{base}_{seen}"
        layers[local] = element
        moves[path + (i,)] = ("blocks", name, "layers", local)
    _move(positions, moves)
    return layers


def _move(positions: Positions, moves: dict[Path, Path]) -> None:
    """Give the paths `moves` maps to (and everything under them) the positions of their sources."""
    depth = len(next(iter(moves)))
    for table in (positions.values, positions.keys):
        for old_path, location in list(table.items()):
            if len(old_path) >= depth and old_path[:depth] in moves:
                table[moves[old_path[:depth]] + old_path[depth:]] = location
    for new in moves.values():
        positions.keys.setdefault(new, positions.values.get(new))


def _infer(
    name: str,
    blocks: dict[str, Any],
    positions: Positions,
    inferred: dict[str, Any],
    seen: tuple[str, ...],
) -> Any:
    """The params block `name` needs with no default, and where each is first read; None for
    a block that is not a valid mapping (blocks.py reports it) or that uses itself; _FAILED
    for one that is, or needs the params of, a block whose error is reported."""
    definition = blocks.get(name)
    if definition is _FAILED:
        return _FAILED
    if not isinstance(definition, dict) or name in seen:
        return None
    params = definition.get("params")
    if "params" in definition:
        if not isinstance(params, dict):
            return None
        return {p: positions.key_of(("blocks", name, "params", p)) for p, d in params.items() if d is None}
    if name in inferred:
        return inferred[name]
    reads: dict[str, Location | None] = {}
    for key in ("layers", "out"):
        for path, text in _strings(definition.get(key), ("blocks", name, key)):
            for found in _names(text):
                if found != _COPY:
                    reads.setdefault(found, positions.of(path))
    for path, use in _uses(definition.get("layers"), ("blocks", name, "layers")):
        needed = _infer(use["block"], blocks, positions, inferred, seen + (name,)) or {}
        if needed is _FAILED:
            inferred[name] = _FAILED
            return _FAILED
        per_copy = use.get("per_copy")
        given = set(use) | (set(per_copy) if isinstance(per_copy, dict) else set())
        for param in needed:
            if param not in given:
                reads.setdefault(param, positions.key_of(path))
    inferred[name] = reads
    return reads


def _names(text: str) -> list[str]:
    """The names the `${...}` expressions in `text` read, in order; one that does not parse is
    skipped (blocks.py reports it where it is written)."""
    names = []
    for match in params_module.PLACEHOLDER.finditer(text):
        try:
            names += [name for name, _, _ in expr.parse(match.group(1)).names()]
        except expr.ExprError:
            continue
    return names


def _strings(value: Any, path: Path) -> list[tuple[Path, str]]:
    """Every string under `value` with its path, in the order written."""
    if isinstance(value, str):
        return [(path, value)] if "${" in value else []
    if isinstance(value, dict):
        return [pair for key, item in value.items() for pair in _strings(item, path + (key,))]
    if isinstance(value, list):
        return [pair for i, item in enumerate(value) for pair in _strings(item, path + (i,))]
    return []


def _uses(layers: Any, path: Path) -> list[tuple[Path, dict]]:
    """The block uses among `layers` (and in chains), with their paths."""
    found = []
    items = layers.items() if isinstance(layers, dict) else ()
    for local, node in items:
        nodes = enumerate(node) if isinstance(node, list) else [(None, node)]
        for i, one in nodes:
            if isinstance(one, dict) and isinstance(one.get("block"), str):
                found.append((path + (local,) if i is None else path + (local, i), one))
    return found
