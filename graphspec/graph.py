"""The spec as a networkx graph, and the checks that need its shape.

Nodes are inputs and layer nodes; an edge `a -> b` means node `b` reads a tensor of `a`.
A shared layer is one layer instance called at several nodes, so sharing adds no edge: the
graph is of calls, not of layer instances, which is why sharing can never create a cycle
(the same distinction Keras draws between a Layer and its Nodes).
"""

from __future__ import annotations

from collections.abc import Callable

import networkx as nx

from graphspec.spec.check import Context
from graphspec.spec.model import REFERENCE, Spec


def reference_target(reference: str) -> str:
    """The node name a reference like `lstm[1]` reads from."""
    match = REFERENCE.match(reference)
    return match.group("node") if match else reference


def build_graph(spec: Spec) -> nx.DiGraph:
    """The dependency graph of a spec: inputs, layer nodes, and an edge for each read."""
    graph = nx.DiGraph()
    for order, name in enumerate(spec.inputs):
        graph.add_node(name, kind="input", order=order)
    for order, name in enumerate(spec.layers, start=len(spec.inputs)):
        graph.add_node(name, kind="layer", order=order)
    for name, node in spec.layers.items():
        for reference, _ in node.references():
            target = reference_target(reference) if isinstance(reference, str) else None
            if target in graph:
                graph.add_edge(target, name)
    return graph


def output_nodes(spec: Spec) -> list[str]:
    """The node each named output reads."""
    return [reference_target(o.source) if o.source else name for name, o in spec.outputs.items()]


def build_order(spec: Spec, graph: nx.DiGraph | None = None) -> list[str]:
    """Layer nodes in an order where each comes after what it reads; ties keep file order."""
    graph = graph if graph is not None else build_graph(spec)
    order = nx.lexicographical_topological_sort(graph, key=lambda n: graph.nodes[n]["order"])
    return [n for n in order if graph.nodes[n]["kind"] == "layer"]


def check_cycles(ctx: Context, graph: nx.DiGraph) -> None:
    for component in nx.strongly_connected_components(graph):
        if len(component) == 1:
            (single,) = component
            if not graph.has_edge(single, single):
                continue
        first = min(component, key=lambda n: graph.nodes[n]["order"])
        cycle = [first]
        for _, target in nx.find_cycle(graph.subgraph(component), source=first):
            cycle.append(target)
        ctx.error(
            "cycle: " + " -> ".join(cycle),
            ("layers", first),
            key=True,
            hint="a layer cannot read its own output, directly or through others",
        )


def check_outputs_reached(ctx: Context, graph: nx.DiGraph) -> None:
    inputs = set(ctx.spec.inputs)
    for name, target in zip(ctx.spec.outputs, output_nodes(ctx.spec), strict=False):
        if target in graph and not (nx.ancestors(graph, target) | {target}) & inputs:
            ctx.error(
                f"output '{name}' is not reached from any input (graph disconnected)",
                ("outputs", name),
                key=True,
            )


def check_inputs_used(ctx: Context, graph: nx.DiGraph) -> None:
    reached = set()
    for target in output_nodes(ctx.spec):
        if target in graph:
            reached |= nx.ancestors(graph, target) | {target}
    for name, spec_input in ctx.spec.inputs.items():
        # An optional input may be read by nothing: the model is called with None for it.
        if name not in reached and not spec_input.optional:
            ctx.error(
                f"input '{name}' reaches no output (graph disconnected)",
                ("inputs", name),
                key=True,
                hint="remove it, or connect it to a layer that leads to an output",
            )


def check_dead_nodes(ctx: Context, graph: nx.DiGraph) -> None:
    needed = set()
    for target in output_nodes(ctx.spec):
        if target in graph:
            needed |= nx.ancestors(graph, target) | {target}
    for name in ctx.spec.layers:
        if name not in needed:
            ctx.warning(
                f"layer '{name}' leads to no output and will not be built", ("layers", name), key=True
            )


GRAPH_CHECKS: tuple[Callable[[Context, nx.DiGraph], None], ...] = (
    check_cycles,
    check_outputs_reached,
    check_inputs_used,
    check_dead_nodes,
)


def run_graph_checks(ctx: Context) -> nx.DiGraph:
    """Build the graph, run every check in `GRAPH_CHECKS`, and return the graph."""
    graph = build_graph(ctx.spec)
    for check in GRAPH_CHECKS:
        check(ctx, graph)
    return graph
