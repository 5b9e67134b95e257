"""A spec drawn as a graph: `spec_to_dot` makes a pydot graph, `write_plot` writes it to a file.

What Keras's `plot_model` draws, from the spec rather than a built model (so no TensorFlow
unless shapes or dtypes are asked for), and what it leaves out:

- each named output as a node of its own, with its loss, loss weight and metrics;
- a shared layer drawn once, marked as shared, with one edge per call, each edge labelled
  with the call (the node name) it belongs to;
- nested specs as clusters (with `expand_nested`), a shared nested spec drawn once;
- block and repeat structure: node names with dots (`stage2.1.conv`, as blocks expand) are
  grouped into nested clusters by prefix (`stage2` around `stage2.0`, `stage2.1`, ...);
- with `collapse`, each block, repeat and nested spec below `depth` levels as one node
  (`stage2 ×3`), so that a large network draws at a readable size; with `start`/`end`, only
  the part between two nodes.

>>> from graphspec.spec.load import load
>>> spec = load('''
... graphspec: 1
... name: tiny
... inputs: {x: {shape: [4]}}
... layers: {y: {type: Dense, units: 2, in: x}}
... outputs: {y: {loss: mse}}
... ''')
>>> '"x" -> "y"' in spec_to_dot(spec).to_string()
True
"""

from __future__ import annotations

import shutil
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pydot

from graphspec.spec import catalog, nodes
from graphspec.spec.model import REFERENCE

if TYPE_CHECKING:
    from graphspec.spec.load import LoadedSpec
    from graphspec.spec.model import LayerSpec, TypedObject

FORMATS = {".png": "png", ".svg": "svg", ".pdf": "pdf", ".dot": "dot"}
INSTALL_HINT = (
    "install Graphviz (Debian/Ubuntu: apt-get install graphviz; macOS: brew install graphviz), "
    "or write a .dot file, which needs none"
)

_FONT = "Helvetica"
_STYLES = {
    "input": {"shape": "box", "style": "rounded,filled", "fillcolor": "#dbeafe"},
    "layer": {"shape": "box", "style": "filled", "fillcolor": "#f8fafc"},
    "model": {"shape": "box3d", "style": "filled", "fillcolor": "#ede9fe"},
    "output": {"shape": "note", "style": "filled", "fillcolor": "#dcfce7"},
    "folded": {"shape": "box3d", "style": "filled", "fillcolor": "#fefce8", "color": "#ca8a04"},
}
# A shared layer: a double border and a colour of its own, whatever its shape.
_SHARED = {"fillcolor": "#fef3c7", "peripheries": "2"}


class PlotError(Exception):
    """A plot cannot be written: a message, a hint, and the exit status the CLI should use."""

    def __init__(self, message: str, hint: str | None = None, exit_code: int = 2):
        super().__init__(message)
        self.hint = hint
        self.exit_code = exit_code


@dataclass(frozen=True)
class PlotOptions:
    """Keras's plot_model options, plus `show_outputs` (losses and weights of named outputs)."""

    show_shapes: bool = False
    show_dtype: bool = False
    show_layer_names: bool = True
    show_layer_activations: bool = False
    show_trainable: bool = False
    rankdir: str = "TB"
    expand_nested: bool = False
    dpi: int = 96
    show_outputs: bool = True
    # Fold dotted groups (blocks, repeats, their copies) deeper than `depth` levels into one node
    # each: depth 0 draws `stage2` as one node, depth 1 draws it as a cluster of folded copies.
    collapse: bool = False
    depth: int = 0
    # Draw only what is downstream of `start` and upstream of `end` (either may be None).
    start: str | None = None
    end: str | None = None

    def __post_init__(self) -> None:
        if self.rankdir not in ("TB", "LR"):
            raise PlotError(f"rankdir must be TB or LR, got '{self.rankdir}'")
        if self.depth < 0:
            raise PlotError(f"depth must be 0 or more, got {self.depth}")


def _quote(text: str) -> str:
    """A DOT string literal: pydot leaves keywords such as `node` or `graph` unquoted."""
    return '"' + str(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _object_text(value: str | TypedObject) -> str:
    if isinstance(value, str):
        return value
    args = ", ".join(f"{k}={v}" for k, v in value.args.items())
    return f"{value.type}({args})" if args else value.type


def _shape_text(shape: tuple) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


@dataclass
class _Interface:
    """Where a drawn spec's inputs and outputs are: drawn ids, and an edge label for outputs."""

    inputs: dict[str, str] = field(default_factory=dict)
    outputs: dict[str, tuple[str, str]] = field(default_factory=dict)


class _Drawer:
    def __init__(self, options: PlotOptions):
        self.options = options
        self.graph = pydot.Dot(
            graph_type="digraph",
            rankdir=options.rankdir,
            dpi=str(options.dpi),
            fontname=_FONT,
            concentrate="false",
        )
        # Layers, most of the nodes, take their style from the defaults: written once, not per node.
        self.graph.set_node_defaults(fontname=_FONT, fontsize="11", **_STYLES["layer"])
        self.graph.set_edge_defaults(fontname=_FONT, fontsize="9")
        self.clusters = 0
        self.drawn_edges: set[tuple[str, str]] = set()

    # --- containers ---------------------------------------------------------------------------

    def cluster(self, parent: pydot.Graph, label: str, **style: str) -> pydot.Cluster:
        self.clusters += 1
        cluster = pydot.Cluster(f"c{self.clusters}", label=_quote(label), fontname=_FONT, **style)
        parent.add_subgraph(cluster)
        return cluster

    def container(
        self, base: pydot.Graph, groups: dict, children: dict[str, set[str]], name: str
    ) -> pydot.Graph:
        """The cluster a dotted name goes in (`a.b.c` in the cluster of `a.b`, inside `a`);
        `children` is `_children` of the spec's names."""
        parts = name.split(".")
        parent = base
        for depth in range(1, len(parts)):
            prefix = ".".join(parts[:depth])
            if prefix not in groups:
                inside = children[prefix]
                label = prefix + (f" ×{len(inside)}" if all(c.isdigit() for c in inside) else "")
                groups[prefix] = self.cluster(parent, label, style="dashed,rounded", color="#94a3b8")
            parent = groups[prefix]
        return parent

    # --- one spec -----------------------------------------------------------------------------

    def spec(self, loaded: LoadedSpec, scope: str, base: pydot.Graph, top: bool) -> _Interface:
        """Draw `loaded` into `base`, its ids prefixed with `scope`; return its interface."""
        spec, options = loaded.spec, self.options
        signatures = self.signatures(loaded)
        roots = {name: spec.owner(name) or name for name in spec.layers}
        calls: dict[str, list[str]] = defaultdict(list)
        for name in spec.layers:
            calls[roots[name]].append(name)
        names = _children([*spec.inputs, *spec.layers])
        groups: dict[str, pydot.Graph] = {}
        nested: dict[str, _Interface] = {}
        # Only the top-level spec is cut (--from/--to) and folded (--collapse).
        keep = _between(loaded, options.start, options.end) if top else None
        fold = top and options.collapse
        folded: dict[str, list[str]] = defaultdict(list)

        def shown(name: str) -> str:
            """The drawn node that stands for `name`: its folded group, or itself."""
            parts = name.split(".")
            return ".".join(parts[: options.depth + 1]) if fold and len(parts) > options.depth + 1 else name

        for name, spec_input in spec.inputs.items():
            if keep is not None and name not in keep:
                continue
            lines = [name if options.show_layer_names else "", "Input"]
            if options.show_shapes:
                lines.append(_shape_text((None, *spec_input.shape)))
            if options.show_dtype:
                lines.append(spec_input.dtype)
            self.node(self.container(base, groups, names, name), scope + name, lines, "input")

        for name, node in spec.layers.items():
            if keep is not None and name not in keep:
                continue
            if shown(name) != name:
                folded[shown(name)].append(name)
                continue
            if fold and node.spec is not None:
                folded[name].append(name)  # a nested spec is one node, whatever --expand-nested says
                continue
            if roots[name] != name:
                continue
            parent = self.container(base, groups, names, name)
            uses = calls[name]
            if node.spec is not None and options.expand_nested and name in loaded.nested:
                inner = loaded.nested[name]
                label = f"{name}: spec {inner.name}"
                if len(uses) > 1:
                    label += f" (shared: {', '.join(uses)})"
                cluster = self.cluster(
                    parent,
                    label,
                    style="filled,rounded",
                    fillcolor="#f5f3ff",
                    color="#7c3aed" if len(uses) > 1 else "#a78bfa",
                    penwidth="2" if len(uses) > 1 else "1",
                )
                nested[name] = self.spec(inner, f"{scope}{name}/", cluster, top=False)
                continue
            lines = self.layer_lines(loaded, name, node, uses, signatures)
            is_model = node.spec is not None or catalog.is_application(node.type or "")
            self.node(parent, scope + name, lines, "model" if is_model else "layer", shared=len(uses) > 1)

        uses = loaded.expansion.uses() if folded else {}
        for group, members in folded.items():
            self.node(
                self.container(base, groups, names, group),
                scope + group,
                _folded_lines(loaded, group, members, names, uses),
                "folded",
            )

        def source(reference: str) -> tuple[str, list[str]]:
            match = REFERENCE.match(reference)
            target, index = match.group("node"), match.group("index")
            if target in spec.inputs:
                return scope + target, []
            if shown(target) in folded:
                return scope + shown(target), []
            root = roots[target]
            label = [target] if len(calls[root]) > 1 else []
            if root in nested:
                outputs = nested[root].outputs
                key = (
                    next(iter(outputs))
                    if index is None
                    else list(outputs)[int(index)]
                    if index.lstrip("-").isdigit()
                    else index
                )
                inner_id, inner_label = outputs[key]
                return inner_id, label + ([inner_label] if inner_label else [])
            return scope + root, label + ([f"[{index}]"] if index is not None else [])

        for name, node in spec.layers.items():
            if keep is not None and name not in keep:
                continue
            root = roots[name]
            label = [name] if len(calls[root]) > 1 else []
            inputs = list(loaded.nested[root].spec.inputs) if root in nested else []
            for position, (reference, where) in enumerate(node.references()):
                if keep is not None and REFERENCE.match(reference).group("node") not in keep:
                    continue
                source_id, source_label = source(reference)
                if shown(name) in folded:
                    self.edge(source_id, scope + shown(name), " → ".join(source_label), once=True)
                    continue
                key = where[1] if len(where) > 1 and isinstance(where[1], str) else None
                if root in nested:
                    inner = key if key is not None else inputs[min(position, len(inputs) - 1)]
                    target_id = nested[root].inputs[inner]
                elif shown(root) in folded:  # a call of a layer whose owner is folded away
                    target_id = scope + shown(root)
                else:
                    target_id = scope + root
                parts = source_label + ([key] if key is not None and root not in nested else []) + label
                self.edge(source_id, target_id, " → ".join(dict.fromkeys(parts)))

        interface = _Interface({name: scope + name for name in spec.inputs})
        for name, output in spec.outputs.items():
            if keep is not None and REFERENCE.match(output.source or name).group("node") not in keep:
                continue
            source_id, source_label = source(output.source or name)
            interface.outputs[name] = (source_id, " ".join(source_label))
            if top and options.show_outputs:
                output_id = f"{scope}{name} (output)"
                lines = [f"output {name}"]
                if output.loss is not None:
                    lines.append(f"loss: {_object_text(output.loss)}")
                    lines.append(f"weight: {output.weight:g}")
                if output.target is not None:
                    lines.append(f"target: {output.target}")
                if output.metrics:
                    lines.append("metrics: " + ", ".join(_object_text(m) for m in output.metrics))
                self.node(base, output_id, lines, "output")
                self.edge(source_id, output_id, interface.outputs[name][1], style="dashed")
        return interface

    def layer_lines(
        self, loaded: LoadedSpec, name: str, node: LayerSpec, uses: list[str], signatures: dict
    ) -> list[str]:
        options = self.options
        if node.op is not None:
            kind = f"op {node.op}"  # a keras.ops function: drawn like a layer, named as such
        elif nodes.kind_of(node) is not None:
            kind = nodes.label(node)  # weight [1, 768], range 1, random normal
        else:
            kind = node.type or f"spec {loaded.nested[name].name if name in loaded.nested else node.spec}"
        lines = [name if options.show_layer_names else "", kind]
        if len(uses) > 1:
            lines.append(f"shared: {len(uses)} calls")
        activation = node.args.get("activation")
        if options.show_layer_activations and activation is not None:
            shown = activation.get("type") if isinstance(activation, dict) else activation
            lines.append(f"activation: {shown}")
        if options.show_trainable and node.op is None and node.range is None and node.random is None:
            # an op, a range and a random node have no weights
            lines.append("trainable" if node.args.get("trainable", True) else "frozen (not trainable)")
        if options.show_shapes or options.show_dtype:
            for use in uses:
                for suffix, shape, dtype in signatures.get(use, []):
                    text = " ".join(
                        filter(
                            None,
                            [
                                _shape_text(shape) if options.show_shapes else "",
                                dtype if options.show_dtype else "",
                            ],
                        )
                    )
                    prefix = f"{use}{suffix}: " if len(uses) > 1 else (f"{suffix}: " if suffix else "")
                    lines.append(prefix + text)
        return lines

    def signatures(self, loaded: LoadedSpec) -> dict:
        if not (self.options.show_shapes or self.options.show_dtype):
            return {}
        from graphspec.keras.shapes import node_signatures  # TensorFlow: only when asked for

        return node_signatures(loaded)

    # --- primitives ---------------------------------------------------------------------------

    def node(
        self, parent: pydot.Graph, node_id: str, lines: list[str], kind: str, shared: bool = False
    ) -> None:
        text = "\n".join(line for line in lines if line)
        style = {**(_STYLES[kind] if kind != "layer" else {}), **(_SHARED if shared else {})}
        parent.add_node(pydot.Node(_quote(node_id), label=_quote(text), **style))

    def edge(self, source: str, target: str, label: str = "", once: bool = False, **style: str) -> None:
        """An edge; with `once`, none between a pair already joined, nor from a node to itself
        (the edges of a folded group's inside)."""
        if once:
            if source == target or (source, target) in self.drawn_edges:
                return
            self.drawn_edges.add((source, target))
        attributes = {"label": _quote(label)} if label else {}
        self.graph.add_edge(pydot.Edge(_quote(source), _quote(target), **attributes, **style))


def _folded_lines(
    loaded: LoadedSpec, group: str, members: list[str], names: dict[str, set[str]], uses: dict
) -> list[str]:
    """The label of a folded group: its name (`stage2 ×3`), what it is, how many layers."""
    if members == [group]:  # a nested spec
        inner = loaded.nested.get(group)
        return [group, f"spec {inner.name if inner else loaded.spec.layers[group].spec}"]
    inside = names.get(group, set())
    repeat = all(c.isdigit() for c in inside)
    use = uses.get(group) or uses.get(f"{group}.0")
    what = f"block {use.block}" if use is not None else "group"
    count = f"{len(members)} layer{'s' if len(members) != 1 else ''}"
    return [group + (f" ×{len(inside)}" if repeat else ""), f"{what} · {count}"]


def _between(loaded: LoadedSpec, start: str | None, end: str | None) -> set[str] | None:
    """The nodes downstream of `start` and upstream of `end`, both included; None for all.
    `PlotError` for a name that is not a node, or when `end` is not reached from `start`."""
    if start is None and end is None:
        return None
    from graphspec.errors import did_you_mean

    graph = loaded.graph

    def members(flag: str, name: str) -> set[str]:
        # A block use, repeat or copy (`stage2`, `stage2.1`) stands for every node in it.
        found = {name} if name in graph else {n for n in graph if n.startswith(name + ".")}
        if not found:
            groups = _children(list(graph))
            raise PlotError(
                f"{flag}: '{name}' is not a node or a block of {loaded.name}",
                did_you_mean(name, [*graph, *groups]),
            )
        return found

    keep = set(graph)
    if start is not None:
        starts = members("--from", start)
        keep &= set().union(*(graph.descendants(n) for n in starts)) | starts
    if end is not None:
        ends = members("--to", end)
        keep &= set().union(*(graph.ancestors(n) for n in ends)) | ends
    if not keep:
        raise PlotError(f"'{end}' is not reached from '{start}': nothing lies between them")
    return keep


def _children(names: list[str]) -> dict[str, set[str]]:
    """Each dotted prefix of `names` and what follows it: `a.b.c` gives {a: {b}, a.b: {c}}.

    Made in one pass, so that grouping 100,000 expanded names into clusters is linear.
    """
    children: dict[str, set[str]] = defaultdict(set)
    for name in names:
        parts = name.split(".")
        for depth in range(1, len(parts)):
            children[".".join(parts[:depth])].add(parts[depth])
    return children


# Past this many nodes, `graphspec plot` folds blocks unless told not to (`--no-collapse`):
# a 176-layer ResNet-50 drawn whole is a strip too long to read.
AUTO_COLLAPSE = 120


def should_collapse(loaded: LoadedSpec) -> bool:
    """Whether a plot of `loaded` is folded by default: more than `AUTO_COLLAPSE` nodes, some
    of them in blocks, repeats or nested specs to fold."""
    spec = loaded.spec
    if len(spec.inputs) + len(spec.layers) <= AUTO_COLLAPSE:
        return False
    return any("." in name or node.spec is not None for name, node in spec.layers.items())


def spec_to_dot(loaded: LoadedSpec, options: PlotOptions | None = None) -> pydot.Dot:
    """The graph of `loaded` as a pydot graph: a node per input, per layer instance and per
    named output, an edge per tensor read. Node ids are the spec's names (nested ones prefixed
    with `node/`); outputs are `NAME (output)`. Imports TensorFlow only for shapes or dtypes."""
    drawer = _Drawer(options or PlotOptions())
    drawer.graph.set_name(_quote(loaded.name))
    drawer.spec(loaded, "", drawer.graph, top=True)
    return drawer.graph


_DOT_PROGRAM: list[str | None] = []


def graphviz_dot() -> str:
    """The path of Graphviz's `dot`, looked up once; `PlotError` with an install hint if absent."""
    if not _DOT_PROGRAM:
        _DOT_PROGRAM.append(shutil.which("dot"))
    if _DOT_PROGRAM[0] is None:
        raise PlotError(
            "Graphviz's `dot` program is not installed; it renders .png, .svg and .pdf",
            INSTALL_HINT,
            exit_code=1,
        )
    return _DOT_PROGRAM[0]


def write_plot(dot: pydot.Dot, path: Path) -> None:
    """Write `dot` to `path` in the format its extension names, atomically (temporary file and
    rename; `SpecErrors` when it cannot be written there). .dot needs nothing; .png, .svg and
    .pdf need Graphviz's `dot`."""
    path = Path(path)
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise PlotError(
            f"cannot tell the format of '{path}' from its extension",
            "end the file name in " + ", ".join(FORMATS),
        )
    if fmt == "dot":
        data = dot.to_string().encode()
    else:
        program = graphviz_dot()
        try:
            data = dot.create(format=fmt, prog=program)
        except Exception as exc:  # Graphviz's own error text is the useful part
            raise PlotError(
                f"Graphviz could not render {path}: {' '.join(str(exc).split())[:400]}", exit_code=1
            ) from None
    from graphspec.atomic import write_bytes

    write_bytes(path, data)
