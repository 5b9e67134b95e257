"""Chains: layers written without plumbing, made explicit before blocks are expanded.

    layers:
      stem: [{type: Conv2D, filters: 32, kernel_size: 3, in: image},  # a chain of unnamed
             {type: BatchNormalization}, {type: ReLU}]                # layers: stem.conv2d, ...
      pool: {type: GlobalAveragePooling2D}                             # no `in`: reads stem

- A node without `in` reads the node written just before it in the same `layers:` mapping; the
  first one reads the spec's only input (a block's first input).
- A node whose value is a list is a chain: its elements are named `CHAIN.TYPE` after Keras's own
  auto-naming (`Conv2D` -> `conv2d`, `ReLU` -> `re_lu`; `_1`, `_2` for a type met again in the
  chain); each element without `in` reads the one before. A reference to the chain is a
  reference to its last element.
- In `in`, a negative integer counts back through the layers as written, chain elements one by
  one: `-1` is the layer just before (`{type: Concatenate, in: [skip, -1]}` in a chain), `-2`
  the one before that; counting back past the first layer reaches what the first one reads.
- A block's `out` may be left out: it is the block's last layer.

This is a pure rewrite of the parsed document (no TensorFlow): the result is the explicit
spelling, so `graphspec expand`, the fingerprint and diff see the same model either way. Every
generated value gets the position of what it was made from, so errors point at the chain's
element, or at the node whose `in` was left out.
"""

from __future__ import annotations

import re
from typing import Any

from graphspec.errors import Diagnostics
from graphspec.spec import math
from graphspec.spec.model import REFERENCE
from graphspec.spec.source import Path, Positions

# Node kinds, in the order a chain element's name is taken from them.
_KINDS = ("type", "op", "block", "share", "spec", "weight", "range", "random", "math")


def snake_case(name: str) -> str:
    """A class name as Keras names its layers: `Conv2D` -> `conv2d`, `ReLU` -> `re_lu`,
    `BatchNormalization` -> `batch_normalization` (keras.src.utils.naming.to_snake_case)."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def base_name(node: dict) -> str:
    """What a chain element is named after: its type (snake case), or the kind of node it is."""
    for kind in _KINDS:
        value = node.get(kind)
        if isinstance(value, str) and value:
            if kind == "type":
                return snake_case(value.rsplit(".", 1)[-1])  # applications.ResNet50 -> res_net50
            if kind == "spec":
                return snake_case(value.rsplit("/", 1)[-1].split(".")[0]) or "spec"
            return snake_case(value.rsplit(".", 1)[-1]) or kind
        if kind in node:
            return kind
    return "layer"


class Desugarer:
    """Rewrites the `layers:` of a spec or a block into the explicit spelling."""

    def __init__(self, positions: Positions, diagnostics: Diagnostics):
        self.positions = positions
        self.diagnostics = diagnostics
        self.failed = False
        self.refused: list[Path] = []  # counts in `in` refused, where they are: not fatal
        self._under: dict[Path, list] | None = None
        self._written: set = set()
        self._order: list[str] = []  # the layers written so far, chain elements one by one

    def error(self, message: str, location: Any, hint: str | None = None) -> None:
        self.failed = True
        self.diagnostics.error(message, location, hint)

    def layers(
        self, layers: dict, source: Path, first: str | None, no_first: str
    ) -> tuple[dict, dict[str, str]]:
        """`layers` (written at `source`) with implicit `in` filled in and chains flattened,
        and what each chain's name now means (its last element). `first` is what the first node
        reads without `in`; when None, `no_first` says why there is nothing to read."""
        if not any(
            isinstance(n, list)
            or (isinstance(n, dict) and ("in" not in n or "math" in n or _counts(n["in"])))
            for n in layers.values()
        ):
            return layers, {}
        result: dict[str, Any] = {}
        chains: dict[str, str] = {}
        self._written = set(layers)
        self._order = [] if first is None else [first]
        previous = first
        for local, node in layers.items():
            path = source + (local,)
            if isinstance(node, list):
                last = self._chain(result, local, node, path, previous, no_first)
                if last is not None:
                    chains[str(local)] = last
                previous = str(local)
                continue
            if isinstance(node, dict) and "in" in node:
                node = self._counted(node, path)
            self._order.append(str(local))
            if isinstance(node, dict) and "math" in node:
                node = math.with_references(node, path, self.positions, self.diagnostics)
            elif isinstance(node, dict) and "in" not in node:
                node = self._implicit(node, path, previous, no_first, key=True)
            result[local] = node
            previous = str(local)
        if chains:
            result = {name: self._rename(node, chains) for name, node in result.items()}
        return result, chains

    def _implicit(self, node: dict, path: Path, previous: str | None, no_first: str, key: bool) -> dict:
        where = self.positions.of(path, key=key)
        if previous is None:
            self.error(
                f"layer '{path[-1]}' has no 'in' and no layer before it to read: {no_first}",
                where,
                hint="say what it reads with 'in'",
            )
            return node
        self.positions.values[path + ("in",)] = where
        return {**node, "in": previous}

    def _chain(
        self, result: dict, local: str, elements: list, path: Path, previous: str | None, no_first: str
    ) -> str | None:
        """Add the elements of chain `local` to `result`; the name of its last one, or None."""
        if not elements:
            self.error(f"chain '{local}' has no layers", self.positions.of(path))
            return None
        counts: dict[str, int] = {}
        name = None
        for i, element in enumerate(elements):
            at = path + (i,)
            if not isinstance(element, dict):
                self.error(
                    f"each layer of chain '{local}' is a mapping, as a layer is", self.positions.of(at)
                )
                return None
            base = base_name(element)
            seen = counts.get(base, 0)
            counts[base] = seen + 1
            new = f"{local}.{base}" if seen == 0 else f"{local}.{base}_{seen}"
            target = path[:-1] + (new,)
            if new in result or new in self._written:
                self.error(
                    f"chain '{local}' names its layer {i} '{new}', which is also the name of another layer",
                    self.positions.of(at),
                    hint="rename that layer, or the chain",
                )
                return None
            self._move(at, target)
            if "in" in element:
                element = self._counted(element, target)
            self._order.append(new)
            if "math" in element:
                element = math.with_references(element, target, self.positions, self.diagnostics)
            elif "in" not in element:
                reads = name if name is not None else previous
                element = self._implicit(element, target, reads, no_first, key=False)
            result[new] = element
            name = new
        return name

    def _counted(self, node: dict, path: Path) -> dict:
        """`node` with the numbers in its `in` (counting back through the layers written before
        it, `-1` the one just before) replaced by the names they count to."""
        if not _counts(node["in"]):
            return node
        before = len(self._order)  # the layers written before this one (the first's input first)

        def name(value: Any, at: Path) -> Any:
            if isinstance(value, list):
                return [name(v, at + (i,)) for i, v in enumerate(value)]
            if isinstance(value, dict):
                return {k: name(v, at + (k,)) for k, v in value.items()}
            if not _is_count(value):
                return value
            # Not fatal: the number stays, and validation, which refuses it too, is not told
            # twice (load.py); the spec's other errors are still found.
            if value >= 0:
                self.refused.append(at)
                self.diagnostics.error(
                    f"layer '{path[-1]}' reads {value}: a number in 'in' counts back through the "
                    "layers written before this one, and is negative",
                    self.positions.of(at),
                    hint="-1 is the layer just before, -2 the one before that",
                )
                return value
            if -value > before:
                self.refused.append(at)
                self.diagnostics.error(
                    f"layer '{path[-1]}' reads {value}, but "
                    + (
                        "no layer or input comes"
                        if not before
                        else "only 1 layer or input comes"
                        if before == 1
                        else f"only {before} layers or inputs come"
                    )
                    + " before it",
                    self.positions.of(at),
                    hint="-1 is the layer just before; the first layer's -1 is what it reads without 'in'",
                )
                return value
            return self._order[value]

        return {**node, "in": name(node["in"], path + ("in",))}

    def _move(self, old: Path, new: Path) -> None:
        """Copy the positions under `old` to `new`: a chain element becomes a named node."""
        n = len(old)
        element = self.positions.values.get(old)
        if self._under is None:
            # Positions under each chain element, gathered once: not a walk of every position
            # for every element.
            self._under = {}
            for table in (self.positions.values, self.positions.keys):
                for path, location in table.items():
                    if len(path) > n and isinstance(path[n - 1], int):
                        self._under.setdefault(path[:n], []).append((table, path, location))
        for table, path, location in self._under.get(old, ()):
            table[new + path[n:]] = location
        if element is not None:
            self.positions.keys[new] = element
            self.positions.values[new] = element

    def _rename(self, node: Any, chains: dict[str, str]) -> Any:
        """`node` with its references to chains made references to their last elements."""
        if not isinstance(node, dict):
            return node
        renamed = dict(node)
        if "in" in node:
            renamed["in"] = rename_references(node["in"], chains)
        if isinstance(node.get("share"), str) and node["share"] in chains:
            renamed["share"] = chains[node["share"]]
        return renamed


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _counts(value: Any) -> bool:
    """Whether an `in` holds a number: a layer named by counting back."""
    if isinstance(value, list):
        return any(_counts(v) for v in value)
    if isinstance(value, dict):
        return any(_counts(v) for v in value.values())
    return _is_count(value)


def rename_references(value: Any, chains: dict[str, str]) -> Any:
    """References (a string, or lists and mappings of them) with chain names replaced."""
    if isinstance(value, str):
        match = REFERENCE.match(value)
        if match and match.group("node") in chains:
            index = match.group("index")
            return chains[match.group("node")] + (f"[{index}]" if index is not None else "")
        return value
    if isinstance(value, list):
        return [rename_references(v, chains) for v in value]
    if isinstance(value, dict):
        return {k: rename_references(v, chains) for k, v in value.items()}
    return value


def desugar_spec(data: dict, positions: Positions, diagnostics: Diagnostics) -> tuple[dict, list[Path]]:
    """The spec `data` with its top-level layers made explicit; outputs named after a chain, or
    reading one (`from`), read its last element. Blocks' layers are done by blocks.py.

    Also returns where a count in `in` was refused: each such error is one of `diagnostics`'
    new errors that leaves the rest fit to check; any other new error does not."""
    layers = data.get("layers")
    if not isinstance(layers, dict):
        return data, []
    inputs = data.get("inputs")
    names = list(inputs) if isinstance(inputs, dict) else []
    first = names[0] if len(names) == 1 else None
    no_first = "the first layer reads the spec's input only when there is exactly one, and there are " + (
        f"{len(names)} ({', '.join(map(str, names))})" if names else "none"
    )
    desugarer = Desugarer(positions, diagnostics)
    new_layers, chains = desugarer.layers(layers, ("layers",), first, no_first)
    if new_layers is layers:
        return data, desugarer.refused
    data = {**data, "layers": new_layers}
    outputs = data.get("outputs")
    if chains and isinstance(outputs, dict):
        rewritten = {}
        for name, output in outputs.items():
            if isinstance(output, dict) and isinstance(output.get("from"), str):
                output = {**output, "from": rename_references(output["from"], chains)}
            elif name in chains and (output is None or isinstance(output, dict)):
                output = {"from": chains[name], **(output or {})}
                positions.values[("outputs", name, "from")] = positions.key_of(("outputs", name))
            rewritten[name] = output
        data["outputs"] = rewritten
    return data, desugarer.refused


def desugar_block(
    name: str, definition: dict, inputs: list[str], positions: Positions, diagnostics: Diagnostics
) -> tuple[dict, set[str]]:
    """Block `name`'s definition with its layers made explicit and its `out` filled in (the last
    layer) when left out; and the names chains made (they have dots, which written names may not)."""
    layers = definition.get("layers")
    if not isinstance(layers, dict) or not layers:
        return definition, set()
    source = ("blocks", name, "layers")
    desugarer = Desugarer(positions, diagnostics)
    new_layers, chains = desugarer.layers(
        layers, source, inputs[0] if inputs else None, f"block '{name}' has no inputs to read"
    )
    definition = {**definition, "layers": new_layers}
    if "out" not in definition:
        last = list(layers)[-1]
        definition["out"] = chains.get(str(last), last)
        positions.values[("blocks", name, "out")] = positions.key_of(source + (last,))
    elif chains:
        definition["out"] = rename_references(definition["out"], chains)
    generated = {n for n in new_layers if n not in layers}
    return definition, generated
