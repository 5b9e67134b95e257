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
    if isinstance(definition, list):
        return _chain_block(name, definition, positions, diagnostics)
    if isinstance(definition, dict) and "in" not in definition and "layers" in definition:
        positions.values[("blocks", name, "in")] = positions.key_of(("blocks", name))
        return {**definition, "in": IMPLICIT_INPUT}
    return definition


def _chain_block(name: str, elements: list, positions: Positions, diagnostics: Diagnostics) -> Any:
    """A list block as `{in: x, layers: {dense: ..., dense_1: ...}}`; elements after the first
    read the one before (chains.py gives them their `in`)."""
    path = ("blocks", name)
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
        if i > 0 and "in" in element:
            diagnostics.error(
                f"only the first layer of chain block '{name}' may have 'in': each other one reads "
                "the layer before it",
                positions.key_of(path + (i, "in")),
                hint="write the block as a mapping with 'layers' to wire it otherwise",
            )
            return _FAILED
        base = chains.base_name(element)
        seen = counts.get(base, 0)
        counts[base] = seen + 1
        local = base if seen == 0 else f"{base}_{seen}"
        layers[local] = element
        moves[path + (i,)] = path + ("layers", local)
    for table in (positions.values, positions.keys):
        for old_path, location in list(table.items()):
            if len(old_path) > 2 and old_path[:3] in moves:
                table[moves[old_path[:3]] + old_path[3:]] = location
    for new in moves.values():
        positions.keys.setdefault(new, positions.values.get(new))
    where = positions.of(path)
    positions.values[path + ("in",)] = where
    positions.values[path + ("layers",)] = where
    return {"in": IMPLICIT_INPUT, "layers": layers}


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
