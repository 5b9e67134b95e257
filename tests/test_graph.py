"""graphspec.graph's own graph agrees with networkx (the library it replaced to keep `validate`
fast) on random graphs: topological order with file-order ties, strongly connected components,
ancestors and descendants, and a cycle through a component's first node."""

from __future__ import annotations

import random

import networkx as nx
import pytest

from graphspec.graph import Graph


def random_graphs(acyclic: bool, count: int = 60) -> list[tuple[Graph, nx.DiGraph]]:
    rng = random.Random(22)
    pairs = []
    for _ in range(count):
        size = rng.randint(1, 30)
        names = [f"n{i}" for i in range(size)]
        rng.shuffle(names)  # the order of names is not the order of nodes
        ours, theirs = Graph(), nx.DiGraph()
        for order, name in enumerate(names):
            ours.add_node(name, kind="layer", order=order)
            theirs.add_node(name, kind="layer", order=order)
        for _ in range(rng.randint(0, size * 2)):
            a, b = rng.randrange(size), rng.randrange(size)
            if acyclic and a >= b:
                continue
            ours.add_edge(names[a], names[b])
            theirs.add_edge(names[a], names[b])
        pairs.append((ours, theirs))
    return pairs


@pytest.mark.parametrize("ours, theirs", random_graphs(acyclic=True))
def test_topological_order_ancestors_and_descendants_agree_with_networkx(ours, theirs):
    from graphspec.graph import build_order

    class Spec:  # build_order reads only the graph when one is given
        pass

    expected = list(nx.lexicographical_topological_sort(theirs, key=lambda n: theirs.nodes[n]["order"]))
    assert build_order(Spec(), ours) == expected
    for name in theirs:
        assert ours.ancestors(name) == nx.ancestors(theirs, name)
        assert ours.descendants(name) == nx.descendants(theirs, name)


@pytest.mark.parametrize("ours, theirs", random_graphs(acyclic=False))
def test_components_and_cycles_agree_with_networkx(ours, theirs):
    components = ours.strongly_connected_components()
    assert sorted(map(sorted, components)) == sorted(map(sorted, nx.strongly_connected_components(theirs)))
    for component in components:
        first = min(component, key=lambda n: theirs.nodes[n]["order"])
        if len(component) == 1 and not theirs.has_edge(first, first):
            continue
        cycle = ours.cycle_through(first, component)
        assert cycle[0] == cycle[-1] == first and len(cycle) >= 2
        assert set(cycle) <= component
        assert all(theirs.has_edge(a, b) for a, b in zip(cycle, cycle[1:], strict=False))


def test_a_long_chain_needs_no_deep_recursion():
    graph = Graph()
    for i in range(50_000):
        graph.add_node(f"n{i}", kind="layer", order=i)
    for i in range(49_999):
        graph.add_edge(f"n{i}", f"n{i + 1}")
    graph.add_edge("n49999", "n0")
    (component,) = graph.strongly_connected_components()
    assert len(component) == 50_000
    assert len(graph.cycle_through("n0", component)) == 50_001
