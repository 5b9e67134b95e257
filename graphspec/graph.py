"""The spec as a dependency graph, and the checks that need its shape.

Nodes are inputs and layer nodes; an edge `a -> b` means node `b` reads a tensor of `a`.
A shared layer is one layer instance called at several nodes, so sharing adds no edge: the
graph is of calls, not of layer instances, which is why sharing can never create a cycle
(the same distinction Keras draws between a Layer and its Nodes).

The graph is a small class of its own rather than networkx's: `validate` needs only
reachability, strongly connected components and a topological order, and importing networkx
(and the NumPy it brings) cost `validate` half its time (issue 22, BENCHMARKS.md).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator

from graphspec.spec.check import Context
from graphspec.spec.model import REFERENCE, Spec


class Graph:
    """A directed graph of named nodes, each with attributes (`kind`, `order`); edges keep the
    order they were added in. Iterating it gives the nodes in the order they were added."""

    def __init__(self) -> None:
        self.nodes: dict[str, dict] = {}
        self.succ: dict[str, dict[str, None]] = {}
        self.pred: dict[str, dict[str, None]] = {}

    def add_node(self, name: str, **attributes: object) -> None:
        self.nodes.setdefault(name, {}).update(attributes)
        self.succ.setdefault(name, {})
        self.pred.setdefault(name, {})

    def add_edge(self, source: str, target: str) -> None:
        self.add_node(source)
        self.add_node(target)
        self.succ[source][target] = None
        self.pred[target][source] = None

    def has_edge(self, source: str, target: str) -> bool:
        return target in self.succ.get(source, ())

    def __contains__(self, name: object) -> bool:
        return name in self.nodes

    def __iter__(self) -> Iterator[str]:
        return iter(self.nodes)

    def __len__(self) -> int:
        return len(self.nodes)

    def ancestors(self, name: str) -> set[str]:
        """Every node with a path to `name`, `name` itself excluded unless on a cycle."""
        return _reach(name, self.pred)

    def descendants(self, name: str) -> set[str]:
        """Every node a path from `name` reaches, `name` itself excluded unless on a cycle."""
        return _reach(name, self.succ)

    def strongly_connected_components(self) -> list[set[str]]:
        """The graph's strongly connected components (Tarjan's algorithm, without recursion so
        that a 100,000-node chain does not exhaust Python's stack)."""
        index: dict[str, int] = {}
        low: dict[str, int] = {}
        on_stack: set[str] = set()
        stack: list[str] = []
        components: list[set[str]] = []
        for root in self.nodes:
            if root in index:
                continue
            index[root] = low[root] = len(index)
            stack.append(root)
            on_stack.add(root)
            work = [(root, iter(self.succ[root]))]
            while work:
                node, successors = work[-1]
                for successor in successors:
                    if successor not in index:
                        index[successor] = low[successor] = len(index)
                        stack.append(successor)
                        on_stack.add(successor)
                        work.append((successor, iter(self.succ[successor])))
                        break
                    if successor in on_stack:
                        low[node] = min(low[node], index[successor])
                else:
                    work.pop()
                    if work:
                        parent = work[-1][0]
                        low[parent] = min(low[parent], low[node])
                    if low[node] == index[node]:
                        component = set()
                        while True:
                            member = stack.pop()
                            on_stack.discard(member)
                            component.add(member)
                            if member == node:
                                break
                        components.append(component)
        return components

    def cycle_through(self, first: str, within: set[str]) -> list[str]:
        """A cycle from `first` back to it through nodes of `within` (a strongly connected
        component holding `first`): the nodes in order, `first` at both ends. Depth first,
        successors in the order their edges were added."""
        parents: dict[str, str] = {}
        work = [(first, iter(self.succ[first]))]
        while work:
            node, successors = work[-1]
            for successor in successors:
                if successor == first:
                    path = []
                    while node != first:
                        path.append(node)
                        node = parents[node]
                    return [first, *reversed(path), first]
                if successor in within and successor not in parents:
                    parents[successor] = node
                    work.append((successor, iter(self.succ[successor])))
                    break
            else:
                work.pop()
        return [first]


def _reach(name: str, edges: dict[str, dict[str, None]]) -> set[str]:
    seen: set[str] = set()
    frontier = list(edges.get(name, ()))
    while frontier:
        node = frontier.pop()
        if node not in seen:
            seen.add(node)
            frontier.extend(edges[node])
    return seen


def reference_target(reference: str) -> str:
    """The node name a reference like `lstm[1]` reads from."""
    match = REFERENCE.match(reference)
    return match.group("node") if match else reference


def build_graph(spec: Spec) -> Graph:
    """The dependency graph of a spec: inputs, layer nodes, and an edge for each read."""
    graph = Graph()
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


def build_order(spec: Spec, graph: Graph | None = None) -> list[str]:
    """Layer nodes in an order where each comes after what it reads; ties keep file order.
    The graph has no cycle (`check_cycles` refused any)."""
    graph = graph if graph is not None else build_graph(spec)
    waiting = {name: len(graph.pred[name]) for name in graph}
    ready = [(graph.nodes[name]["order"], name) for name, count in waiting.items() if count == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        _, name = heapq.heappop(ready)
        order.append(name)
        for successor in graph.succ[name]:
            waiting[successor] -= 1
            if waiting[successor] == 0:
                heapq.heappush(ready, (graph.nodes[successor]["order"], successor))
    return [n for n in order if graph.nodes[n]["kind"] == "layer"]


def check_cycles(ctx: Context, graph: Graph) -> None:
    for component in graph.strongly_connected_components():
        if len(component) == 1:
            (single,) = component
            if not graph.has_edge(single, single):
                continue
        first = min(component, key=lambda n: graph.nodes[n]["order"])
        cycle = graph.cycle_through(first, component)
        ctx.error(
            "cycle: " + " -> ".join(cycle),
            ("layers", first),
            key=True,
            hint="a layer cannot read its own output, directly or through others",
        )


def check_outputs_reached(ctx: Context, graph: Graph) -> None:
    inputs = set(ctx.spec.inputs)
    for name, target in zip(ctx.spec.outputs, output_nodes(ctx.spec), strict=False):
        if target in graph and not (graph.ancestors(target) | {target}) & inputs:
            ctx.error(
                f"output '{name}' is not reached from any input (graph disconnected)",
                ("outputs", name),
                key=True,
            )


def check_inputs_used(ctx: Context, graph: Graph) -> None:
    reached = set()
    for target in output_nodes(ctx.spec):
        if target in graph:
            reached |= graph.ancestors(target) | {target}
    for name, spec_input in ctx.spec.inputs.items():
        # An optional input may be read by nothing: the model is called with None for it.
        if name not in reached and not spec_input.optional:
            ctx.error(
                f"input '{name}' reaches no output (graph disconnected)",
                ("inputs", name),
                key=True,
                hint="remove it, or connect it to a layer that leads to an output",
            )


def check_dead_nodes(ctx: Context, graph: Graph) -> None:
    needed = set()
    for target in output_nodes(ctx.spec):
        if target in graph:
            needed |= graph.ancestors(target) | {target}
    for name in ctx.spec.layers:
        if name not in needed:
            ctx.warning(
                f"layer '{name}' leads to no output and will not be built", ("layers", name), key=True
            )


GRAPH_CHECKS: tuple[Callable[[Context, Graph], None], ...] = (
    check_cycles,
    check_outputs_reached,
    check_inputs_used,
    check_dead_nodes,
)


def run_graph_checks(ctx: Context) -> Graph:
    """Build the graph, run every check in `GRAPH_CHECKS`, and return the graph."""
    graph = build_graph(ctx.spec)
    for check in GRAPH_CHECKS:
        check(ctx, graph)
    return graph
