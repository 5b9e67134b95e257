"""Blocks: named, parametrised sub-graphs used as nodes, repeated, and shared between specs.

    include: [blocks/common.yaml]             # files whose `blocks:` join this spec's
    blocks:
      conv_bn:
        params: {filters, kernel: 3, strides: 1}   # a param without a value must be given
        in: x                                       # or [x, skip]
        layers:
          conv: {type: Conv2D, filters: "${filters}", kernel_size: "${kernel}", strides: "${strides}",
                 padding: same, in: x}
          bn:   {type: BatchNormalization, in: conv}
        out: bn                                     # or [a, b], or {main: a, skip: b}
    layers:
      stem:   {block: conv_bn, filters: 64, kernel: 7, strides: 2, in: image}
      stage2: {block: conv_bn, repeat: 3, filters: 64, first: {strides: 2}, in: stem}

Expansion is a pure transform of the parsed document, run after top-level `${params}` and
overrides and before pydantic: each use becomes the block's layers, named `USE.LAYER`, or
`USE.COPY.LAYER` when it repeats, and each reference to a use becomes a reference to its output
(`stage2` -> `stage2.2.bn`). Every generated value gets the position of the line inside the
block it came from, with a note naming each use it was expanded through, so that any later
error (pydantic's, the catalog checks', the graph's, Keras's) points at both.
Compact definitions (no `in`, no `params`, a list) are made explicit first by compact.py, and
a use that leaves a param out takes the one of the same name where it is written (`_args`).
docs/blocks.md is the user's reference.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path as FilePath
from typing import Any

from graphspec import budget
from graphspec.errors import Diagnostic, Diagnostics, Location, SpecErrors, did_you_mean
from graphspec.policy import Policy
from graphspec.spec import chains, compact
from graphspec.spec import params as params_module
from graphspec.spec.files import WORKING_TREE, Files
from graphspec.spec.model import REFERENCE
from graphspec.spec.source import Path, Positions, parse

# Keys of a use that are not the block's params.
USE_KEYS = ("block", "repeat", "first", "per_copy", "in", "doc")
# The name of a copy's index in a block's expressions (`${copy}`); no param may take it.
COPY = "copy"
BLOCK_KEYS = compact.BLOCK_KEYS
# What an included file may hold: it is a library of blocks, not a model.
LIBRARY_KEYS = ("graphspec", "doc", "include", "blocks")
# Keys that make a node a layer; a use cannot have them.
_LAYER_KINDS = ("type", "share", "spec", "op")
MAX_DEPTH = 16  # blocks using blocks, and files including files
_NODES_HINT = "check the repeat counts; " + budget.option_hint("nodes")


@dataclass(frozen=True)
class Use:
    """One instance of a block: the node that uses it, and which copy when the use repeats."""

    name: str  # the use's full name: `stage2`, or `stage2.1.proj` inside a block
    block: str
    copy: int | None = None  # 0, 1, ... when the use has `repeat`
    repeat: int | None = None
    location: Location | None = None  # the use's key, in the file that writes it

    @property
    def prefix(self) -> str:
        """What the names of this instance's nodes start with: `stage2.1.`."""
        return f"{self.name}." if self.copy is None else f"{self.name}.{self.copy}."

    def describe(self) -> str:
        if self.copy is None:
            return f"in '{self.name}', a use of block '{self.block}'"
        return f"in copy {self.copy} of '{self.name}' (block '{self.block}', repeat {self.repeat})"


@dataclass
class Expansion:
    """A document with its blocks expanded, and where each generated node came from."""

    data: Any
    # generated node -> the uses it was expanded through, outermost first
    origins: dict[str, tuple[Use, ...]] = field(default_factory=dict)
    # False when expansion reported errors: `data` is then only partly expanded
    complete: bool = True
    # Warnings for old, unquoted `${name}` in included files, shown when the spec is valid
    unquoted: list[Diagnostic] = field(default_factory=list)
    # The spec's params that a top-level use took for a param it did not give (compact.py)
    inherited: set[str] = field(default_factory=set)

    def uses(self) -> dict[str, Use]:
        """Every block instance by its name prefix without the trailing dot (`stage2.1`)."""
        found: dict[str, Use] = {}
        for chain in self.origins.values():
            for use in chain:
                found.setdefault(use.prefix[:-1], use)
        return found


def expand(
    data: Any,
    positions: Positions,
    diagnostics: Diagnostics,
    base_dir: FilePath,
    files: Files = WORKING_TREE,
    policy: Policy | None = None,
    params: dict[str, Any] | None = None,
) -> Expansion:
    """`data` with every block use replaced by the block's layers, and includes merged (read
    from `files`, relative to `base_dir`, as `policy` allows: by default under `base_dir`).
    `params` are the spec's params, computed: what a top-level use's `per_copy` expressions read.

    Positions of generated values are added to `positions`; problems go to `diagnostics`.
    A document without blocks, includes and uses is returned as it is.
    """
    if not isinstance(data, dict) or not _has_blocks(data):
        return Expansion(data)
    before = len(diagnostics.errors)
    try:
        policy = policy or Policy(base_dir).for_spec(base_dir / "spec.yaml")
        expander = _Expander(data, positions, diagnostics, base_dir, files, policy, params or {})
        expansion = expander.run()
    except _TooLarge:
        return Expansion(data, complete=False)
    expansion.complete = len(diagnostics.errors) == before and not expander.failed
    expansion.unquoted = expander.unquoted
    expansion.inherited = expander.inherited
    return expansion


def _has_blocks(data: dict) -> bool:
    layers = data.get("layers")
    uses = isinstance(layers, dict) and any(_is_use(node) for node in layers.values())
    return uses or "blocks" in data or "include" in data


def _is_use(node: Any) -> bool:
    return isinstance(node, dict) and "block" in node


def _local_name(name: Any) -> bool:
    # Local names are joined with dots into generated names, so they have no dots themselves.
    return isinstance(name, str) and REFERENCE.match(name) is not None and "[" not in name and "." not in name


class _TooLarge(Exception):
    """Raised once the budget's nodes are passed: the error is reported, nothing more is worth doing."""


_REQUIRED = object()
_FAILED = object()  # an expression whose error has been reported
_IN_PROGRESS = object()


@dataclass
class _Block:
    name: str
    definition: dict
    params: dict[str, Any]  # name -> default, or _REQUIRED
    inputs: list[str]


@dataclass
class _Instance:
    nodes: list[tuple[str, Any]]
    outputs: list[tuple]  # per copy: (kind, names, references)
    repeat: int | None
    block: str


@dataclass
class _Scope:
    """The layers of the spec, or of one instance of a block, being expanded."""

    layers: dict[str, Any]  # local name -> node, block params substituted
    source: Path  # where `layers` is written: ("layers",) or ("blocks", B, "layers")
    prefix: str  # "" at the top, "stage2.1." inside an instance
    env: dict[str, tuple[str, Location | None]]  # block input -> (reference, where the use gave it)
    # What `${...}` reads here: the spec's params at the top, the copy's params (and `copy`)
    # inside an instance. A use's `per_copy` expressions are evaluated over these.
    params: dict[str, Any] = field(default_factory=dict)
    uses: tuple[Use, ...] = ()  # the instances this scope is inside, outermost first
    block: str | None = None
    instances: dict[str, Any] = field(default_factory=dict)
    emitted: dict[str, list[tuple[str, Any]]] = field(default_factory=dict)

    def what(self, local: str) -> str:
        return f"layer '{local}'" if self.block is None else f"layer '{local}' of block '{self.block}'"


class _Expander:
    def __init__(
        self,
        data: dict,
        positions: Positions,
        diagnostics: Diagnostics,
        base_dir: FilePath,
        files: Files,
        policy: Policy,
        params: dict[str, Any],
    ):
        self.data = dict(data)
        self.params = params
        self.files = files
        self.policy = policy
        self.positions = positions
        self.diagnostics = diagnostics
        self.base_dir = base_dir
        root = FilePath(positions.file)
        self.root_file = root.resolve() if root.is_file() else None
        self.blocks: dict[str, _Block] = {}
        self.inferred: dict[str, dict[str, Location | None]] = {}  # block -> param -> where read
        self.inherited: set[str] = set()
        self._done: dict[str, _Instance] = {}  # every expanded use by its full name
        self.origins: dict[str, tuple[Use, ...]] = {}
        self.count = 0
        self.failed = False  # a use was left unexpanded (its problem may have been reported earlier)
        self._reported: set[tuple] = set()
        self._index: dict[tuple[str, str], list[tuple[Path, Location, bool]]] = {}
        self._origin: dict[str, FilePath | None] = {}  # block -> the file defining it
        self._included: set[FilePath] = set()
        self.unquoted: list[Diagnostic] = []
        self._include_failed = False
        self._sizes: dict[str, int] = {}
        # What block params add to the document, over every instance: a large param value
        # copied into each copy of a repeated block is refused before it is copied.
        self.budget = params_module.Budget(diagnostics)

    # -- reporting -------------------------------------------------------------------------

    def error(self, message: str, location: Location | None, hint: str | None = None) -> None:
        # A problem inside a block is met once per instance; it is reported once.
        key = (message, location, hint)
        if key not in self._reported:
            self._reported.add(key)
            self.diagnostics.error(message, location, hint)

    def loc(self, scope: _Scope | None, path: Path, key: bool = False) -> Location | None:
        """Where `path` is written, with notes naming the instances `scope` is inside."""
        location = self.positions.of(path, key=key)
        if location is None or scope is None or not scope.uses:
            return location
        return replace(location, expansion=_notes(scope.uses) + location.expansion)

    # -- the whole document ----------------------------------------------------------------

    def run(self) -> Expansion:
        chain = (self.root_file,) if self.root_file else ()
        self._collect(self.data, self.positions, self.base_dir, chain, library=False)
        # Compact spellings (no `in`, no `params`, a list) made explicit first (compact.py).
        raw = {name: block.definition for name, block in self.blocks.items()}
        explicit, self.inferred = compact.complete(raw, self.positions, self.diagnostics)
        for name in raw:
            if name in explicit:
                self._define(name, explicit[name])
            else:
                del self.blocks[name]  # its error is reported; its uses are left unexpanded
        self._index_positions()
        layers = self.data.get("layers")
        if not isinstance(layers, dict):
            return Expansion(self.data, self.origins)
        top = _Scope(layers, ("layers",), "", {}, self.params)
        inputs = self.data.get("inputs")
        inputs = inputs if isinstance(inputs, dict) else {}  # a wrong type is reported by validation
        for name in layers:
            if _is_use(layers[name]) and name in inputs:
                self.error(
                    f"layer '{name}' has the same name as an input",
                    self.loc(top, ("layers", name), key=True),
                    hint="every input and layer needs a name of its own",
                )
        nodes = self._run_scope(top)
        self.data["layers"] = self._unique(nodes)
        self._rewrite_outputs(top)
        return Expansion(self.data, self.origins)

    def _unique(self, nodes: list[tuple[str, Any]]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for name, node in nodes:
            if name in result:
                self.error(
                    f"two nodes are named '{name}'",
                    self.positions.key_of(("layers", name)),
                    hint="a use 'U' of a block makes nodes named 'U.LAYER': rename one of them",
                )
                continue
            result[name] = node
        return result

    def _rewrite_outputs(self, top: _Scope) -> None:
        outputs = self.data.get("outputs")
        if not isinstance(outputs, dict):
            return
        rewritten = {}
        for name, output in outputs.items():
            if isinstance(output, dict) and isinstance(output.get("from"), str):
                output = {
                    **output,
                    "from": self._resolve(
                        top, output["from"], ("outputs", name, "from"), f"output '{name}' is"
                    ),
                }
            elif (
                name in top.layers
                and _is_use(top.layers[name])
                and (output is None or isinstance(output, dict))
            ):
                # The use is not a node: its output becomes the model output of the use's name.
                output = {
                    "from": self._resolve(top, name, ("outputs", name), f"output '{name}' is"),
                    **(output or {}),
                }
                self.positions.values[("outputs", name, "from")] = self.positions.key_of(("outputs", name))
            rewritten[name] = output
        self.data["outputs"] = rewritten

    # -- includes and definitions ----------------------------------------------------------

    def _collect(
        self, data: dict, positions: Positions, base_dir: FilePath, chain: tuple, library: bool
    ) -> None:
        """Gather the blocks of `data` and of every file it includes, recursively."""
        blocks = data.get("blocks")
        if blocks is not None and not isinstance(blocks, dict):
            self.error("'blocks' is a mapping of block names to definitions", positions.of(("blocks",)))
            blocks = None
        origin = chain[-1] if chain else None
        for name, definition in (blocks or {}).items():
            if library:
                self._adopt(name, definition, positions, origin)
            else:
                self.blocks[name] = _Block(name, definition, {}, [])
                self._origin[name] = origin
        includes = data.get("include")
        if includes is None:
            return
        if isinstance(includes, str):
            entries = [(includes, ("include",))]
        elif isinstance(includes, list):
            entries = [(entry, ("include", i)) for i, entry in enumerate(includes)]
        else:
            self.error("'include' is a file name or a list of them", positions.of(("include",)))
            return
        for entry, path in entries:
            self._include(entry, positions.of(path), base_dir, chain)

    def _include(self, entry: Any, where: Location | None, base_dir: FilePath, chain: tuple) -> None:
        before = len(self.diagnostics.errors)
        self._read_include(entry, where, base_dir, chain)
        self._include_failed = self._include_failed or len(self.diagnostics.errors) > before

    def _read_include(self, entry: Any, where: Location | None, base_dir: FilePath, chain: tuple) -> None:
        if not isinstance(entry, str) or not entry:
            self.error("an include is the path of a YAML file with blocks", where)
            return
        target = base_dir / entry
        refused = self.policy.spec_refusal(entry, target)
        if refused is not None:
            self.error(f"include '{entry}': {refused.message}", where, hint=refused.hint)
            return
        resolved = target.resolve()
        if chain and resolved == chain[-1]:
            self.error(f"include '{entry}' is this file itself", where)
            return
        if resolved in chain:
            names = " -> ".join(os.path.basename(p) for p in chain[chain.index(resolved) :])
            self.error(f"include '{entry}' includes itself: {names} -> {resolved.name}", where)
            return
        if len(chain) > MAX_DEPTH:
            self.error(f"includes nest more than {MAX_DEPTH} deep", where)
            return
        if not self.files.is_file(resolved):
            candidates = self.files.specs_in(target.parent)
            self.error(
                f"include '{entry}' does not exist",
                where,
                hint=did_you_mean(target.name, candidates)
                or f"paths are relative to the including file's folder ({base_dir})",
            )
            return
        if resolved in self._included:
            return  # a diamond: two files include the same library
        self._included.add(resolved)
        file = self.files.name(resolved, os.path.normpath(str(target)))
        try:
            text = self.files.read(resolved)
            source = parse(text, file)
        except (OSError, UnicodeDecodeError) as exc:
            self.error(f"cannot read include '{entry}': {exc}", where)
            return
        except SpecErrors as exc:
            self.diagnostics.extend(exc.diagnostics)
            return
        self.diagnostics.sources[file] = text
        self.diagnostics.extend(source.diagnostics)
        self.unquoted += source.unquoted
        data = source.data
        if not isinstance(data, dict):
            self.error(f"include '{entry}' is not a mapping with 'blocks'", where)
            return
        for key in data:
            if key not in LIBRARY_KEYS:
                self.error(
                    f"an included file holds blocks; '{key}' is not allowed in it",
                    source.positions.key_of((key,)),
                    hint="allowed keys: " + ", ".join(LIBRARY_KEYS),
                )
        self._collect(data, source.positions, resolved.parent, chain + (resolved,), library=True)

    def _adopt(self, name: Any, definition: Any, positions: Positions, origin: FilePath | None) -> None:
        """Add a block of an included file to the spec's blocks, with its positions."""
        if name in self.blocks:
            if self._origin.get(name) != origin:
                other = self.positions.key_of(("blocks", name))
                self.error(
                    f"block '{name}' is defined twice",
                    positions.key_of(("blocks", name)),
                    hint=f"it is also defined at {other}; rename one of them" if other else None,
                )
            return
        self.blocks[name] = _Block(name, definition, {}, [])
        self._origin[name] = origin
        prefix = ("blocks", name)
        for table, mine in ((positions.values, self.positions.values), (positions.keys, self.positions.keys)):
            for path, location in table.items():
                if path[:2] == prefix:
                    mine[path] = location
        merged = self.data.get("blocks")
        self.data["blocks"] = {**(merged if isinstance(merged, dict) else {}), name: definition}

    def _define(self, name: Any, definition: Any) -> None:
        """Check one block's definition; a valid one gets its params and inputs filled in."""
        path = ("blocks", name)
        key_at = self.positions.key_of(path)
        if not _local_name(name):
            self.error(
                f"'{name}' is not a valid block name: use letters, digits, '_' and '-', "
                "starting with a letter",
                key_at,
            )
        if not isinstance(definition, dict):
            self.error(f"block '{name}' is a mapping with keys in, layers and out", self.positions.of(path))
            del self.blocks[name]
            return
        ok = True
        for key in definition:
            if key not in BLOCK_KEYS:
                ok = False
                self.error(
                    f"unknown key '{key}' in block '{name}'",
                    self.positions.key_of(path + (key,)),
                    hint=did_you_mean(key, BLOCK_KEYS) or "allowed keys: " + ", ".join(BLOCK_KEYS),
                )
        inputs = self._declared_inputs(name, definition.get("in"))
        # Chains, implicit `in` and an implicit `out` (chains.py) made explicit first.
        definition, generated = chains.desugar_block(
            name, definition, inputs or [], self.positions, self.diagnostics
        )
        blocks = self.data.get("blocks")
        if isinstance(blocks, dict) and name in blocks:
            self.data["blocks"] = {**blocks, name: definition}  # what validation sees
        for key in ("in", "layers", "out"):
            if key not in definition:
                ok = False
                self.error(f"blocks.{name} is missing required key '{key}'", key_at)
        params = self._declared_params(name, definition.get("params"))
        layers = definition.get("layers")
        if "layers" in definition and (not isinstance(layers, dict) or not layers):
            ok = False
            self.error(f"block '{name}' needs at least one layer", self.positions.of(path + ("layers",)))
        for local in layers if isinstance(layers, dict) else ():
            where = self.positions.key_of(path + ("layers", local))
            if not _local_name(local) and local not in generated:
                ok = False
                self.error(
                    f"'{local}' is not a valid layer name in a block: use letters, digits, '_' "
                    "and '-', starting with a letter",
                    where,
                )
            elif inputs is not None and local in inputs:
                ok = False
                self.error(
                    f"layer '{local}' of block '{name}' has the same name as an input of the block", where
                )
        out = definition.get("out")
        if "out" in definition and not _valid_out(out):
            ok = False
            self.error(
                f"block '{name}': 'out' is a layer name, a list of them, or a mapping of output "
                "names to layers",
                self.positions.of(path + ("out",)),
            )
        # Every ${...} in the body and the defaults parses and reads only the block's params and
        # `copy`: checked once, here; values are computed for each copy of each use.
        names = {p: None for p in params or {}} | {COPY: 0}
        for key in ("layers", "out", "params"):
            if isinstance(definition.get(key), (dict, list, str)):
                before = len(self.diagnostics.errors)
                params_module.substitute(
                    definition[key],
                    names,
                    self.positions,
                    self.diagnostics,
                    path=path + (key,),
                    skip=(),
                    check_only=True,
                )
                ok = ok and len(self.diagnostics.errors) == before
        if not ok or params is None or inputs is None:
            del self.blocks[name]
            return
        self.blocks[name] = _Block(name, definition, params, inputs)

    def _declared_params(self, block: str, params: Any) -> dict[str, Any] | None:
        path = ("blocks", block, "params")
        if params is None:
            return {}
        if not isinstance(params, dict):
            self.error(
                f"block '{block}': 'params' is a mapping of names to defaults", self.positions.of(path)
            )
            return None
        declared = {}
        for name, default in params.items():
            where = self.positions.key_of(path + (name,))
            if name in USE_KEYS or name == COPY:
                self.error(
                    f"block '{block}' cannot have a param named '{name}': "
                    + (
                        "${copy} is the index of the copy"
                        if name == COPY
                        else f"a use's '{name}' means something else"
                    ),
                    where,
                )
                return None
            if not _local_name(name):
                self.error(f"'{name}' is not a valid param name", where)
                return None
            declared[name] = _REQUIRED if default is None else default
        return declared

    def _declared_inputs(self, block: str, inputs: Any) -> list[str] | None:
        names = [inputs] if isinstance(inputs, str) else inputs
        if inputs is None:
            return None
        if not isinstance(names, list) or not names or not all(_local_name(n) for n in names):
            self.error(
                f"block '{block}': 'in' names the block's inputs: a name or a list of names",
                self.positions.of(("blocks", block, "in")),
            )
            return None
        if len(set(names)) != len(names):
            self.error(f"block '{block}' names an input twice", self.positions.of(("blocks", block, "in")))
            return None
        return names

    def _index_positions(self) -> None:
        """Positions under each block layer, so that copying them per instance is cheap."""
        for table, is_key in ((self.positions.values, False), (self.positions.keys, True)):
            for path, location in list(table.items()):
                if len(path) >= 4 and path[0] == "blocks" and path[2] == "layers":
                    self._index.setdefault((path[1], path[3]), []).append((path[4:], location, is_key))

    # -- scopes and instances ----------------------------------------------------------------

    def _run_scope(self, scope: _Scope) -> list[tuple[str, Any]]:
        """The nodes of `scope`'s layers, uses expanded, in the order the layers are written."""
        for local, node in scope.layers.items():
            if _is_use(node):
                self._instance(scope, local)
            else:
                scope.emitted[local] = [self._plain(scope, local, node)]
        return [pair for local in scope.layers for pair in scope.emitted.get(local, ())]

    def _plain(self, scope: _Scope, local: str, node: Any) -> tuple[str, Any]:
        name = scope.prefix + local
        if scope.block is not None:
            self._count()
            self._place(scope, local, name)
            self.origins[name] = scope.uses
        if not isinstance(node, dict):
            return name, node
        node = dict(node)
        target = ("layers", name)
        if "in" in node:
            node["in"] = self._inbound(
                scope,
                node["in"],
                target + ("in",),
                scope.source + (local, "in"),
                f"{scope.what(local)} reads",
            )
        if isinstance(node.get("share"), str):
            shared = self._resolve(
                scope, node["share"], scope.source + (local, "share"), f"{scope.what(local)} shares"
            )
            match = REFERENCE.match(shared)
            node["share"] = match.group("node") if match else shared
        if scope.block is not None and isinstance(node.get("spec"), str):
            node["spec"] = self._spec_path(scope.block, node["spec"])
        return name, node

    def _spec_path(self, block: str, spec: str) -> str:
        # A nested spec's path is relative to the file of the block that names it; the loader
        # reads it relative to the spec, so it is rewritten to that.
        origin = self._origin.get(block)
        if origin is None or self.root_file is None or os.path.isabs(spec):
            return spec
        return os.path.relpath(origin.parent / spec, self.root_file.parent)

    def _inbound(self, scope: _Scope, inbound: Any, target: Path, source: Path, what: str) -> Any:
        if isinstance(inbound, str):
            reference, where = self._resolve_at(scope, inbound, source, what)
            if where is not None:
                self.positions.values[target] = where
            return reference
        if isinstance(inbound, list):
            return [
                self._inbound(scope, value, target + (i,), source + (i,), what)
                for i, value in enumerate(inbound)
            ]
        if isinstance(inbound, dict):
            return {
                key: self._inbound(scope, value, target + (key,), source + (key,), what)
                for key, value in inbound.items()
            }
        return inbound

    def _place(self, scope: _Scope, local: str, name: str) -> None:
        notes = _notes(scope.uses)
        for rest, at, is_key in self._index.get((scope.block, local), ()):
            table = self.positions.keys if is_key else self.positions.values
            # Made field by field: `dataclasses.replace` costs several times more, once per
            # value of every expanded node.
            table[("layers", name) + rest] = Location(
                at.file, at.line, at.col, at.length, notes + at.expansion
            )

    def _count(self) -> None:
        self.count += 1
        if self.count > budget.current().limits["nodes"]:
            self.diagnostics.error(
                f"blocks expand to more than {budget.current().limits['nodes']:,} nodes",
                self.positions.key_of(("layers",)),
                hint=_NODES_HINT,
            )
            raise _TooLarge

    def _resolve(self, scope: _Scope, reference: str, source: Path, what: str) -> str:
        return self._resolve_at(scope, reference, source, what)[0]

    def _resolve_at(
        self, scope: _Scope, reference: Any, source: Path, what: str
    ) -> tuple[Any, Location | None]:
        """The global reference a reference in `scope` means, and where the use gave it."""
        match = REFERENCE.match(reference) if isinstance(reference, str) else None
        if match is None:
            return reference, None  # reported as "not a reference" by the checks
        target, index = match.group("node"), match.group("index")
        if target in scope.env:
            given, where = scope.env[target]
            if index is None:
                return given, where
            if "[" in given:
                self.error(
                    f"{what} '{reference}', but block input '{target}' is '{given}', which "
                    "cannot be indexed again",
                    self.loc(scope, source),
                )
                return given, where
            return f"{given}[{index}]", where
        node = scope.layers.get(target)
        if _is_use(node):
            instance = self._instance(scope, target)
            if instance is None:
                return reference, None
            return self._pick(scope, target, instance.block, instance.outputs[-1], index, source, what), None
        if target in scope.layers:
            return scope.prefix + reference, None
        head, _, tail = target.rpartition(".")
        if _is_use(scope.layers.get(head)) and tail.isdigit():
            instance = self._instance(scope, head)
            if instance is None:
                return reference, None
            if instance.repeat is None or int(tail) >= instance.repeat:
                self.error(
                    f"{what} '{reference}', but '{head}' has no copy {tail}",
                    self.loc(scope, source),
                    hint=f"it has copies 0 to {instance.repeat - 1}"
                    if instance.repeat
                    else "only a use with 'repeat' has numbered copies",
                )
                return reference, None
            return self._pick(
                scope, target, instance.block, instance.outputs[int(tail)], index, source, what
            ), None
        inner = self._done.get(scope.prefix + target)
        if inner is not None:  # a use inside a use (`encoder.2.conv`): its output
            return self._pick(scope, target, inner.block, inner.outputs[-1], index, source, what), None
        if scope.block is None:
            return reference, None  # an input, a generated node, or an error the checks report
        if _is_use(scope.layers.get(target.split(".")[0])):
            return scope.prefix + reference, None  # a node inside a use in this block
        known = list(scope.env) + list(scope.layers)
        self.error(
            f"{what} '{target}', which is neither an input of block '{scope.block}' nor one of its layers",
            self.loc(scope, source),
            hint=did_you_mean(target, known) or "a block reads only its inputs: " + ", ".join(scope.env),
        )
        return reference, None

    def _pick(
        self,
        scope: _Scope,
        target: str,
        block: str,
        outputs: tuple,
        index: str | None,
        source: Path,
        what: str,
    ) -> str:
        """One output of a block instance: `use`, `use[0]`, `use[name]`."""
        kind, names, references = outputs
        if kind == "single":
            (only,) = references
            if index is None:
                return only
            if "[" in only:
                self.error(
                    f"{what} '{target}[{index}]', but block '{block}' outputs '{only}', which "
                    "cannot be indexed again",
                    self.loc(scope, source),
                )
                return only
            return f"{only}[{index}]"
        shown = names if names is not None else [str(i) for i in range(len(references))]
        if index is None:
            if len(references) == 1:
                return references[0]
            self.error(
                f"{what} '{target}', but block '{block}' has outputs {', '.join(shown)}: pick one "
                f"as '{target}[{shown[0]}]'",
                self.loc(scope, source),
            )
            return references[0]
        if index.lstrip("-").isdigit() and -len(references) <= int(index) < len(references):
            return references[int(index)]
        if names is not None and index in names:
            return references[names.index(index)]
        self.error(
            f"{what} '{target}[{index}]', but block '{block}' has no output '{index}'",
            self.loc(scope, source),
            hint=did_you_mean(index, shown) or "its outputs: " + ", ".join(shown),
        )
        return references[0]

    def _instance(self, scope: _Scope, local: str) -> _Instance | None:
        """The expansion of the use `local` of `scope`, made once, when first needed."""
        done = scope.instances.get(local)
        if done is _IN_PROGRESS:
            self.error(
                f"cycle: {scope.what(local)} reads its own output",
                self.loc(scope, scope.source + (local,), key=True),
                hint="a layer cannot read its own output, directly or through others",
            )
            return None
        if local in scope.instances:
            return done
        scope.instances[local] = _IN_PROGRESS
        instance = self._expand_use(scope, local)
        scope.instances[local] = instance
        if instance is not None:
            self._done[scope.prefix + local] = instance
        scope.emitted[local] = instance.nodes if instance else []
        self.failed = self.failed or instance is None
        return instance

    def _expand_use(self, scope: _Scope, local: str) -> _Instance | None:
        node = scope.layers[local]
        source = scope.source + (local,)
        what = scope.what(local)
        name = node["block"]
        block = self.blocks.get(name) if isinstance(name, str) else None
        if block is None:
            if isinstance(name, str) and name in self._origin or self._include_failed:
                return None  # its definition has errors, or may be in a file that failed: reported
            self.error(
                f"{what} uses block '{name}', which is not defined",
                self.loc(scope, source + ("block",)),
                hint=did_you_mean(str(name), self.blocks)
                or "define it under 'blocks:', or include a file that does",
            )
            return None
        chain = [u.block for u in scope.uses]
        if name in chain:
            cycle = " -> ".join(chain[chain.index(name) :] + [name])
            self.error(f"block '{name}' uses itself: {cycle}", self.loc(scope, source + ("block",)))
            return None
        if len(chain) >= MAX_DEPTH:
            self.error(f"blocks nest more than {MAX_DEPTH} deep", self.loc(scope, source + ("block",)))
            return None
        ok = True
        for kind in _LAYER_KINDS:
            if kind in node:
                ok = False
                self.error(
                    f"{what} uses a block, so it cannot also have '{kind}'",
                    self.loc(scope, source + (kind,), key=True),
                )
        repeat = self._repeat(scope, node, source)
        if repeat is not False:
            # Before `_args`, which makes one mapping per copy: `repeat: 1000000000` is refused
            # from its estimate, not after a billion mappings.
            estimate = (repeat or 1) * self._size(name, ())
            if self.count + estimate > budget.current().limits["nodes"]:
                self.error(
                    f"{what} expands to about {estimate:,} nodes; a spec may have at most "
                    f"{budget.current().limits['nodes']:,}",
                    self.loc(scope, source, key=True),
                    hint=_NODES_HINT,
                )
                raise _TooLarge
        args = self._args(scope, local, node, block, repeat)
        given = self._given(scope, local, node, block)
        if not ok or repeat is False or args is None or given is None:
            return None
        use_at = self.positions.key_of(source)
        nodes: list[tuple[str, Any]] = []
        outputs = []
        previous: tuple | None = None
        for copy, copy_args in enumerate(args):
            # Copies are chained: a later copy's first input is the copy before's first output.
            chained = None if previous is None else (self._first(previous), None)
            feed = self._feed(scope, local, given, copy if repeat else None, chained)
            if feed is None:
                return None
            use = Use(scope.prefix + local, name, copy if repeat else None, repeat or None, use_at)
            env = dict(zip(block.inputs, feed, strict=True))
            inner = self._instantiate(block, copy_args, use, env, scope.uses + (use,))
            nodes += inner[0]
            outputs.append(inner[1])
            previous = inner[1]
            if repeat and previous is None:
                break
        if any(o is None for o in outputs):
            return None
        return _Instance(nodes, outputs, repeat or None, name)

    def _size(self, name: str, seen: tuple[str, ...]) -> int:
        """How many nodes one instance of block `name` makes, as far as is known before expanding.

        Repeats written as `${param}` count once: the estimate is a lower bound, so that a
        `repeat: 1000000` is refused before it is expanded, not after.
        """
        if name in self._sizes:
            return self._sizes[name]
        block = self.blocks.get(name)
        if block is None or name in seen:
            return 1
        size = 0
        for node in block.definition["layers"].values():
            if _is_use(node) and isinstance(node["block"], str):
                repeat = node.get("repeat", 1)
                copies = repeat if _positive_int(repeat) else 1
                size += copies * self._size(node["block"], seen + (name,))
            else:
                size += 1
        self._sizes[name] = size
        return size

    def _repeat(self, scope: _Scope, node: dict, source: Path) -> int | None | bool:
        """The use's repeat count, None without one, False when it is invalid."""
        if "repeat" not in node:
            for key in ("first", "per_copy"):
                if key in node:
                    self.error(
                        f"'{key}' applies to the copies of a use with 'repeat'",
                        self.loc(scope, source + (key,), key=True),
                    )
                    return False
            return None
        repeat = node["repeat"]
        if isinstance(repeat, str) and "${" in repeat:
            return False  # an unknown param, reported where it is written
        if not _positive_int(repeat):
            self.error(
                f"repeat must be a positive integer, got {repeat!r}", self.loc(scope, source + ("repeat",))
            )
            return False
        return repeat

    def _args(
        self, scope: _Scope, local: str, node: dict, block: _Block, repeat: Any
    ) -> list[dict[str, Any]] | None:
        """The block params of each copy: defaults, then the use's values, `first`, `per_copy`."""
        source = scope.source + (local,)
        copies = repeat if isinstance(repeat, int) and not isinstance(repeat, bool) else 1
        ok = True

        def known(name: Any, path: Path) -> bool:
            if name in block.params:
                return True
            self.error(
                f"block '{block.name}' has no param '{name}'",
                self.loc(scope, path, key=True),
                hint=did_you_mean(str(name), block.params)
                or ("its params: " + ", ".join(block.params) if block.params else "it has no params"),
            )
            return False

        given = {}
        for key, value in node.items():
            if key not in USE_KEYS:
                if known(key, source + (key,)):
                    given[key] = value
                else:
                    ok = False
        first = node.get("first", {})
        if not isinstance(first, dict):
            self.error(
                "'first' is a mapping of params to their values in the first copy",
                self.loc(scope, source + ("first",)),
            )
            first, ok = {}, False
        for key in first:
            ok = known(key, source + ("first", key)) and ok
        per_copy = node.get("per_copy", {})
        per_copy = dict(per_copy) if isinstance(per_copy, dict) else per_copy
        if not isinstance(per_copy, dict):
            self.error(
                "'per_copy' is a mapping of params to lists of values, one per copy",
                self.loc(scope, source + ("per_copy",)),
            )
            per_copy, ok = {}, False
        for key, values in per_copy.items():
            path = source + ("per_copy", key)
            if not known(key, path):
                ok = False
            elif key in given:
                ok = False
                self.error(
                    f"param '{key}' is given both for every copy and in 'per_copy'",
                    self.loc(scope, path, key=True),
                )
            elif isinstance(values, str) and "${" in values:
                # One expression for every copy, of `${copy}` and the params of the scope.
                computed = [
                    self._substitute(scope, values, {**scope.params, COPY: copy}, path)
                    for copy in range(copies)
                ]
                if any(value is _FAILED for value in computed):
                    ok = False
                per_copy[key] = computed
            elif not isinstance(values, list) or len(values) != copies:
                ok = False
                count = f"{len(values)} values" if isinstance(values, list) else "not a list"
                self.error(
                    f"per_copy '{key}' needs one value for each of the {copies} copies, got {count}",
                    self.loc(scope, path),
                    hint='or one expression of the copy\'s index, as "${64 * 2 ** copy}"'
                    if not isinstance(values, list)
                    else None,
                )
        if not ok:
            return None
        args = []
        for copy in range(copies):
            values = {
                **block.params,
                **given,
                **(first if copy == 0 else {}),
                **{k: v[copy] for k, v in per_copy.items()},
            }
            args.append(values)
        for param in block.params:
            # A param the use leaves out is the one of the same name where the use is written.
            if param != COPY and param in scope.params:
                for values in args:
                    if values[param] is _REQUIRED:
                        values[param] = scope.params[param]
                        if scope.block is None:
                            self.inherited.add(param)
        missing = [p for p in block.params if any(a[p] is _REQUIRED for a in args)]
        for param in missing:
            partly = param in first and copies > 1
            self.error(
                f"{scope.what(local)} uses block '{block.name}' without its param '{param}'"
                + (" for copies after the first" if partly else ""),
                self.loc(scope, source, key=True),
                hint=self._missing_hint(scope, block.name, param),
            )
        return None if missing else args

    def _missing_hint(self, scope: _Scope, block: str, param: str) -> str:
        """Where the block needs `param`, and where the use looked for it in vain."""
        reads = self.inferred.get(block)
        if reads is not None:
            needs = f"block '{block}' needs '{param}' (at {reads.get(param)})"
        else:
            declared = self.positions.key_of(("blocks", block, "params", param))
            needs = f"'{param}' has no default (at {declared})"
        here = "the spec" if scope.block is None else f"block '{scope.block}'"
        return f"{needs}, and {here} has no param '{param}' to give it: give it in the use"

    def _given(self, scope: _Scope, local: str, node: dict, block: _Block) -> list[tuple[Any, Path]] | None:
        """What the use writes for each input of the block, in the block's order: (value, path)."""
        source = scope.source + (local,)
        what = scope.what(local)
        names = block.inputs
        if "in" not in node:
            self.error(
                f"{'.'.join(map(str, source))} is missing required key 'in'",
                self.loc(scope, source, key=True),
                hint=f"block '{block.name}' reads {', '.join(names)}",
            )
            return None
        inbound = node["in"]
        if isinstance(inbound, dict):
            ok = True
            for key in inbound:
                if key not in names:
                    ok = False
                    self.error(
                        f"block '{block.name}' has no input '{key}'",
                        self.loc(scope, source + ("in", key), key=True),
                        hint=did_you_mean(str(key), names) or "its inputs: " + ", ".join(names),
                    )
            for key in names:
                if key not in inbound:
                    ok = False
                    self.error(
                        f"{what} gives block '{block.name}' no input '{key}'",
                        self.loc(scope, source + ("in",)),
                    )
            if not ok:
                return None
            given = [(inbound[n], source + ("in", n)) for n in names]
        else:
            values = inbound if isinstance(inbound, list) else [inbound]
            paths = (
                [source + ("in", i) for i in range(len(values))]
                if isinstance(inbound, list)
                else [source + ("in",)]
            )
            if len(values) != len(names):
                self.error(
                    f"{what} gives {len(values)} input{'s' if len(values) != 1 else ''} to block "
                    f"'{block.name}', which reads {len(names)}: {', '.join(names)}",
                    self.loc(scope, source + ("in",)),
                )
                return None
            given = list(zip(values, paths, strict=True))
        return given

    def _feed(
        self,
        scope: _Scope,
        local: str,
        given: list[tuple[Any, Path]],
        copy: int | None,
        chained: tuple[str, None] | None,
    ) -> list[tuple[str, Location | None]] | None:
        """What one copy of the use gives each input of the block: (global reference, where it
        is written). `chained` replaces the first input (a later copy reads the one before);
        in a repeated use, `${...}` in the inputs is computed with this copy's `${copy}`."""
        what = scope.what(local)
        feed = []
        for i, (value, path) in enumerate(given):
            if i == 0 and chained is not None:
                feed.append(chained)
                continue
            if copy is not None and isinstance(value, str) and "${" in value:
                value = self._substitute(scope, value, {**scope.params, COPY: copy}, path)
                if value is _FAILED:
                    return None
            if not isinstance(value, str):
                self.error(
                    f"{what}: each input of a block is one reference, got {value!r}", self.loc(scope, path)
                )
                return None
            match = REFERENCE.match(value)
            if match and match.group("node").split(".")[0] == local and local not in scope.env:
                self.error(
                    f"cycle: {what} reads '{value}'"
                    + (f" in copy {copy}" if copy is not None else "")
                    + ", an output of the same use",
                    self.loc(scope, path),
                    hint="copies are chained: each copy reads the one before through the block's first input",
                )
                return None
            reference, where = self._resolve_at(scope, value, path, f"{what} reads")
            feed.append((reference, where or self.loc(scope, path)))
        return feed

    def _substitute(self, scope: _Scope, value: Any, names: dict[str, Any], path: Path) -> Any:
        """`value` (written at `path`) with its `${...}` computed over `names`, or _FAILED; an
        error is reported with notes naming the uses `scope` is inside."""
        found = Diagnostics()
        result = params_module.substitute(
            value, names, self.positions, found, path=path, skip=(), budget=self.budget
        )
        for problem in found.errors:
            self.error(problem.message, _noted(problem.location, scope.uses), problem.hint)
        return _FAILED if found.errors else result

    def _instantiate(
        self, block: _Block, args: dict[str, Any], use: Use, env: dict, uses: tuple[Use, ...]
    ) -> tuple[list[tuple[str, Any]], tuple | None]:
        """One copy of `block`: its nodes, named under `use`, and its outputs."""
        path = ("blocks", block.name)
        self.budget.notes = _notes(uses)
        # Names were checked when the block was defined; values (a division by zero, a string
        # where a number goes) can only be checked here, copy by copy.
        inside = _Scope({}, path + ("layers",), use.prefix, env, {}, uses, block.name)
        found = Diagnostics()
        names = params_module.resolve_params(
            args, self.positions, found, path + ("params",), self.budget, {COPY: use.copy or 0}
        )
        for problem in found.errors:
            self.error(problem.message, _noted(problem.location, uses), problem.hint)
        if names is None:
            return [], None
        names[COPY] = use.copy or 0
        layers = self._substitute(inside, block.definition["layers"], names, path + ("layers",))
        out = self._substitute(inside, block.definition["out"], names, path + ("out",))
        if layers is _FAILED or out is _FAILED:
            return [], None
        scope = _Scope(layers, path + ("layers",), use.prefix, env, names, uses, block.name)
        nodes = self._run_scope(scope)
        what = f"block '{block.name}' outputs"
        if isinstance(out, str):
            return nodes, ("single", None, [self._resolve(scope, out, path + ("out",), what)])
        if isinstance(out, list):
            return nodes, (
                "list",
                None,
                [self._resolve(scope, r, path + ("out", i), what) for i, r in enumerate(out)],
            )
        return nodes, (
            "map",
            list(out),
            [self._resolve(scope, r, path + ("out", k), what) for k, r in out.items()],
        )

    @staticmethod
    def _first(outputs: tuple) -> str:
        return outputs[2][0]


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _valid_out(out: Any) -> bool:
    if isinstance(out, str):
        return True
    if isinstance(out, list):
        return bool(out) and all(isinstance(r, str) for r in out)
    if isinstance(out, dict):
        return bool(out) and all(_local_name(k) and isinstance(r, str) for k, r in out.items())
    return False


def _noted(location: Location | None, uses: tuple[Use, ...]) -> Location | None:
    notes = _notes(uses)
    return replace(location, expansion=notes + location.expansion) if location and notes else location


def _notes(uses: tuple[Use, ...]) -> tuple[tuple[str, Location], ...]:
    """The notes a generated value's location carries: innermost use first."""
    return tuple((use.describe(), use.location) for use in reversed(uses) if use.location is not None)
