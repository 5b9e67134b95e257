"""A spec as one self-contained HTML page (`graphspec view`), and two specs as a visual diff
(`graphspec diff --html`).

The page is the graph of a spec with every block, repeat and nested spec folded into one node,
unfolded by a click; search, pan and zoom; and, for a clicked node, its layer type, arguments,
what it reads, the block use it came from and its lines of YAML. Everything it needs is in the
file: the data as JSON, and the script and style from `graphspec/web/`. Nothing is loaded from
the network, so it opens from disk in any browser.

This module turns a `LoadedSpec` into that data (`page_data`, `diff_page_data`) and the data
into HTML (`render_page`). It imports TensorFlow only with `shapes=True` (or a diff's
`--params`), which builds the model for output shapes and parameter counts.

>>> from graphspec.spec.load import load
>>> spec = load('''
... graphspec: 1
... name: tiny
... inputs: {x: {shape: [4]}}
... layers: {y: {type: Dense, units: 2, in: x}}
... outputs: {y: {loss: mse}}
... ''')
>>> [node["id"] for node in page_data(spec)["nodes"]]
['x', 'y', 'y (output)']
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field
from html import escape
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from graphspec.spec import catalog, nodes
from graphspec.spec.model import REFERENCE, LayerSpec

if TYPE_CHECKING:
    from graphspec.diff import SpecDiff
    from graphspec.spec.load import LoadedSpec

# A node's YAML shown on a click: its key line and the lines indented below it, up to this many.
MAX_SOURCE_LINES = 40
# What a page embeds of one argument value: a vocabulary of 100,000 words is not worth showing.
MAX_VALUE_CHARS = 2_000


def page_data(loaded: LoadedSpec, shapes: bool = False) -> dict[str, Any]:
    """What the page draws, as JSON-ready data: `nodes` (inputs, layer calls, named outputs;
    nested specs' layers under `NODE/`), `edges` ([from, to, label]) and `groups` (blocks,
    repeats, their copies and nested specs, each with its parent). With `shapes`, the model is
    built (TensorFlow) and each top-level node gets its output shapes and parameter count."""
    collector = _Collector()
    collector.spec(loaded, "", None, top=True)
    if shapes:
        collector.add_shapes(loaded)
    return collector.finish(loaded, title=loaded.name)


def diff_page_data(old: LoadedSpec, new: LoadedSpec, result: SpecDiff) -> dict[str, Any]:
    """The page of `new` with what `old` had and `new` lost drawn in place, each node marked
    `added`, `removed` or `changed` (with each argument's old and new value), from `result`
    (`graphspec.diff.diff` of the two). Groups holding a change start unfolded."""
    from graphspec.diff import render_text

    before, after = _Collector(), _Collector()
    before.spec(old, "", None, top=True)
    after.spec(new, "", None, top=True)
    changes = _node_changes(result)
    for node_id, node in after.nodes.items():
        if node_id not in before.nodes:
            node["change"] = "added"
        elif node_id in changes:
            node["change"] = "changed"
            node["changes"] = changes[node_id]
    # What only `old` has is put back, beside what it was connected to.
    for node_id, node in before.nodes.items():
        if node_id not in after.nodes:
            node["change"] = "removed"
            after.nodes[node_id] = node
            parent = node.get("parent")
            while parent is not None and parent not in after.groups:
                after.groups[parent] = before.groups[parent]
                parent = before.groups[parent].get("parent")
    present = {(source, target) for source, target, _ in after.edges}
    for source, target, label in before.edges:
        if (source, target) not in present and source in after.nodes and target in after.nodes:
            after.edges.append([source, target, label, "removed"])
    if result.params is not None:
        for count in result.params.layers:
            if count.name in after.nodes:
                after.nodes[count.name]["params_change"] = [count.old, count.new]
    for group_id, group in after.groups.items():
        if group_id in changes:  # a nested spec whose own architecture changed
            group["changes"] = changes[group_id]
    data = after.finish(new, title=f"{result.old} → {result.new}")
    data["diff"] = {"old": result.old, "new": result.new, "summary": render_text(result)}
    if result.params is not None:
        data["diff"]["params"] = [result.params.total_old, result.params.total_new]
    _mark_groups(data)
    return data


def render_page(data: dict[str, Any]) -> str:
    """The HTML page of `data`: one file with its script, style and data inside.

    Text from a spec never becomes markup: the data is JSON in a `<script
    type="application/json">` with `<`, `>` and `&` written as `\\u003c`, `\\u003e`, `\\u0026`
    (so no `</script>` can end it early), and the script puts text in the page only as text.
    """
    web = resources.files("graphspec") / "web"
    style = (web / "view.css").read_text(encoding="utf-8")
    script = (web / "view.js").read_text(encoding="utf-8")
    payload = json.dumps(data, ensure_ascii=False, separators=(",", ":"), default=str)
    payload = payload.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    # U+2028 and U+2029 are line ends to old JavaScript parsers; JSON.parse takes them escaped.
    payload = payload.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    return _TEMPLATE.format(
        title=escape(data["title"]),
        style=style,
        data=payload,
        script=script,
        script_hash=script_hash(script),
    )


def script_hash(script: str) -> str:
    """The CSP source that allows the page's own script and no other: the sha256 of the
    `<script>` element's text as the template writes it (the script between two newlines).
    The policy has no 'unsafe-inline': a script that escaped into the page would not run."""
    digest = hashlib.sha256(f"\n{script}\n".encode()).digest()
    return f"'sha256-{base64.b64encode(digest).decode('ascii')}'"


_TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; \
style-src 'unsafe-inline'; script-src {script_hash}; img-src data:">
<title>{title} · graphspec</title>
<style>
{style}
</style>
</head>
<body>
<script type="application/json" id="graphspec-data">{data}</script>
<script>
{script}
</script>
</body>
</html>
"""


# ---------------------------------------------------------------- collecting


def _type_label(node: LayerSpec) -> str:
    """What a node is, as the view shows it: a layer's type, `op NAME`, `spec FILE`, or one
    of graphspec's own nodes (`weight [1, 768]`, `range 1`, `random normal`)."""
    if node.type is not None:
        return node.type
    if node.op is not None:
        return f"op {node.op}"
    if nodes.kind_of(node) is not None:
        return nodes.label(node)
    return f"spec {node.spec}"


def _short(value: Any) -> Any:
    """`value` for the page: long values cut, with a note of how long they were."""
    text = json.dumps(value, default=str)
    if len(text) <= MAX_VALUE_CHARS:
        return value
    return f"{text[:MAX_VALUE_CHARS]}… ({len(text):,} characters)"


def _adapt(node: LayerSpec) -> dict[str, Any]:
    """`adapt` shown beside a node's arguments (what the layer learns before fit is part of it):
    true, or its settings; nothing when the node is not adapted."""
    if node.adapted is None:
        return {}
    return {"adapt": node.adapted.model_dump(exclude_none=True) or True}


@dataclass
class _Interface:
    """Where a nested spec's inputs and outputs are on the page: node ids (and output labels)."""

    inputs: dict[str, str] = field(default_factory=dict)
    outputs: dict[str, tuple[str, str]] = field(default_factory=dict)


class _Collector:
    """Nodes, edges and groups of one or more specs, in file order, by id."""

    def __init__(self) -> None:
        self.nodes: dict[str, dict[str, Any]] = {}
        self.edges: list[list[Any]] = []
        self.groups: dict[str, dict[str, Any]] = {}
        self.lines: dict[str, list[str]] = {}
        self.total_params: int | None = None  # with shapes: the whole model's

    # --- one spec -----------------------------------------------------------------------------

    def spec(self, loaded: LoadedSpec, scope: str, parent: str | None, top: bool) -> _Interface:
        spec = loaded.spec
        uses = loaded.expansion.uses()
        self.lines.setdefault(loaded.source.file, loaded.source.text.splitlines())
        owners = {name: spec.owner(name) or name for name in spec.layers}
        calls: dict[str, list[str]] = {}
        for name in spec.layers:
            calls.setdefault(owners[name], []).append(name)
        nested: dict[str, _Interface] = {}

        for name, spec_input in spec.inputs.items():
            self.node(
                loaded,
                scope,
                name,
                self.container(scope, name, parent, uses),
                kind="input",
                type="Input",
                args={"shape": spec_input.shape, "dtype": spec_input.dtype},
                where=("inputs", name),
                doc=spec_input.doc,
            )

        for name, node in spec.layers.items():
            container = self.container(scope, name, parent, uses)
            if node.spec is not None and name in loaded.nested:
                inner = loaded.nested[name]
                group_id = scope + name
                location = loaded.location("layers", name, key=True)
                self.groups[group_id] = {
                    "id": group_id,
                    "label": f"{name}: spec {inner.name}",
                    "kind": "spec",
                    "parent": container,
                    "block": node.spec,
                    "where": str(location) if location else None,
                }
                nested[name] = self.spec(inner, f"{group_id}/", group_id, top=False)
                continue
            owner = owners[name]
            shared = None
            if owner != name:
                shared = f"calls the layer of '{owner}' (shared weights)"
            elif len(calls[name]) > 1:
                shared = f"its layer is called {len(calls[name])} times: {', '.join(calls[name])}"
            kind_node = spec.layers[owner] if owner in spec.layers else node
            if node.type is not None:
                kind, type_ = "layer", node.type
            elif node.share is not None:
                kind, type_ = "layer", _type_label(kind_node)
            else:
                kind, type_ = "layer", _type_label(node)
            if type_.startswith("spec ") or catalog.is_application(type_):
                kind = "model"
            self.node(
                loaded,
                scope,
                name,
                container,
                kind=kind,
                type=type_,
                args={k: _short(v) for k, v in node.args.items()} | _adapt(node),
                reads=node.inbound,
                call=node.call or None,
                shared=shared,
                calls=len(calls[owner]) if owner in calls and len(calls[owner]) > 1 else None,
                share=node.share,
                where=("layers", name),
                doc=node.doc,
                origin=[
                    use.describe() + (f" ({use.location})" if use.location else "")
                    for use in loaded.origin(name)
                ],
            )

        def source(reference: str) -> tuple[str, str]:
            match = REFERENCE.match(reference)
            target, index = match.group("node"), match.group("index")
            if target in nested:
                outputs = nested[target].outputs
                if index is None:
                    key = next(iter(outputs))
                elif index.lstrip("-").isdigit():
                    key = list(outputs)[int(index)]
                else:
                    key = index
                return outputs[key][0], key if len(outputs) > 1 else ""
            return scope + target, f"[{index}]" if index is not None else ""

        for name, node in spec.layers.items():
            inputs = list(loaded.nested[name].spec.inputs) if name in nested else []
            for position, (reference, where) in enumerate(node.references()):
                source_id, label = source(reference)
                key = where[1] if len(where) > 1 and isinstance(where[1], str) else None
                if name in nested:
                    inner = key if key is not None else inputs[min(position, len(inputs) - 1)]
                    target_id = nested[name].inputs[inner]
                else:
                    target_id = scope + name
                    label = " ".join(filter(None, [label, key]))
                self.edges.append([source_id, target_id, label])

        interface = _Interface({name: scope + name for name in spec.inputs})
        for name, output in spec.outputs.items():
            source_id, label = source(output.source or name)
            interface.outputs[name] = (source_id, label)
            if not top:
                continue
            output_id = f"{name} (output)"
            loss = output.loss
            self.node(
                loaded,
                "",
                name,
                None,
                node_id=output_id,
                kind="output",
                type="output",
                output={
                    "loss": loss if isinstance(loss, str) or loss is None else loss.model_dump(),
                    "weight": output.weight,
                    "metrics": [m if isinstance(m, str) else m.model_dump() for m in output.metrics],
                    "from": output.source,
                    **({"target": output.target} if output.target is not None else {}),
                },
                where=("outputs", name),
                doc=output.doc,
            )
            self.edges.append([source_id, output_id, label])
        return interface

    def container(self, scope: str, name: str, parent: str | None, uses: dict) -> str | None:
        """The group a dotted name is in (`a.b.c` in `a.b`, inside `a`), made as needed."""
        parts = name.split(".")
        for depth in range(1, len(parts)):
            prefix = ".".join(parts[:depth])
            group_id = scope + prefix
            if group_id not in self.groups:
                self.groups[group_id] = self.group(group_id, prefix, parent, uses)
            parent = group_id
        return parent

    def group(self, group_id: str, prefix: str, parent: str | None, uses: dict) -> dict[str, Any]:
        use = uses.get(prefix)
        first_copy = uses.get(prefix + ".0")
        group = {"id": group_id, "label": prefix, "kind": "group", "parent": parent, "block": None}
        if use is not None:
            group.update(kind="copy" if use.copy is not None else "block", block=use.block)
            group["where"] = str(use.location) if use.location else None
        elif first_copy is not None and first_copy.copy is not None and first_copy.name == prefix:
            group.update(
                kind="repeat",
                block=first_copy.block,
                label=f"{prefix} ×{first_copy.repeat}",
                where=str(first_copy.location) if first_copy.location else None,
            )
        return group

    def node(
        self,
        loaded: LoadedSpec,
        scope: str,
        name: str,
        parent: str | None,
        where: tuple,
        node_id: str | None = None,
        **fields: Any,
    ) -> None:
        node_id = node_id or scope + name
        record = {"id": node_id, "name": name, "parent": parent}
        record.update((k, v) for k, v in fields.items() if v not in (None, [], {}))
        location = loaded.location(*where, key=True)
        if location is not None:
            record["source"] = {
                "file": location.file,
                "line": location.line,
                "text": self.source_lines(loaded, location.file, location.line, location.col),
            }
        self.nodes[node_id] = record

    def source_lines(self, loaded: LoadedSpec, file: str, line: int, col: int) -> list[str]:
        """The key line at `line` and the lines indented deeper below it (the node's YAML)."""
        lines = self.lines.get(file)
        if lines is None:
            lines = self.lines[file] = _read_lines(loaded, file)
        if not 0 < line <= len(lines):
            return []
        indent = col - 1
        end = line
        while end < len(lines) and end - line < MAX_SOURCE_LINES:
            text = lines[end]
            if text.strip() and len(text) - len(text.lstrip()) <= indent:
                break
            end += 1
        while end > line and not lines[end - 1].strip():
            end -= 1
        return lines[line - 1 : end]

    # --- shapes -------------------------------------------------------------------------------

    def add_shapes(self, loaded: LoadedSpec) -> None:
        """Output shapes and parameter counts of the top-level nodes, from the built model."""
        from graphspec.keras.build import build_model_and_tensors  # TensorFlow: only when asked
        from graphspec.keras.shapes import flatten

        model, tensors = build_model_and_tensors(loaded, compile=False)
        owned = {layer.name: layer.count_params() for layer in model.layers}
        for name, value in tensors.items():
            node = self.nodes.get(name)
            if node is None:
                node = self.groups.get(name)  # a nested spec: its outputs are the group's
            if node is None:
                continue
            node["shapes"] = [
                [suffix, [None if d is None else int(d) for d in tensor.shape]]
                for suffix, tensor in flatten(value)
            ]
        for name, layer in loaded.spec.layers.items():
            target = self.nodes.get(name) or self.groups.get(name)
            if target is not None:
                target["params"] = 0 if layer.share is not None else owned.get(name, 0)
        self.total_params = model.count_params()

    # --- the page's data ----------------------------------------------------------------------

    def finish(self, loaded: LoadedSpec, title: str) -> dict[str, Any]:
        """The collected graph as the page's data, each group with its count of layer nodes and
        (with shapes) the sum of their parameters."""
        groups = self.groups
        for group in groups.values():
            group["layers"] = 0
            if "params" not in group:
                group["total_params"] = 0
        for node in self.nodes.values():
            if node["kind"] in ("input", "output"):
                continue
            parent = node.get("parent")
            while parent is not None:
                group = groups[parent]
                group["layers"] += 1
                if "total_params" in group:
                    group["total_params"] += node.get("params", 0)
                parent = group.get("parent")
        for group in groups.values():
            if "params" in group:
                group["total_params"] = group["params"]
        data: dict[str, Any] = {
            "title": title,
            "name": loaded.name,
            "doc": loaded.spec.doc,
            "file": str(loaded.path) if loaded.path else loaded.source.file,
            "nodes": list(self.nodes.values()),
            "edges": self.edges,
            "groups": list(groups.values()),
        }
        if self.total_params is not None:
            data["total_params"] = self.total_params
        _add_stages(data, loaded)
        return data


def _add_stages(data: dict[str, Any], loaded: LoadedSpec) -> None:
    """The fine-tuning stages (`train.stages`) on the page: one line each, and on every
    top-level layer node (or nested spec's group) a stage names, what it is in each stage."""
    from graphspec.spec.stages import describe_stage, frozen_summary, stage_states

    summary = frozen_summary(loaded.spec)
    if not summary:
        return
    data["stages"] = [describe_stage(entry) for entry in summary]
    states = stage_states(loaded.spec)
    # A top-level node's id is its name, a block use's layers keep theirs inside its group, and
    # a nested spec is drawn as a group of that name.
    for item in (*data["nodes"], *data["groups"]):
        if item["id"] in states:
            item["stages"] = states[item["id"]]


def _read_lines(loaded: LoadedSpec, file: str) -> list[str]:
    """The lines of an included file, which the loader has read and allowed; [] when it
    cannot be read again (a `REV:PATH` include)."""
    path = Path(file)
    try:
        return path.read_text(encoding="utf-8").splitlines() if path.is_file() else []
    except (OSError, UnicodeDecodeError):
        return []


# ---------------------------------------------------------------- diffs


def _node_changes(result: SpecDiff) -> dict[str, list[list[Any]]]:
    """Each changed node's changes as [what, old, new]: arguments, connections, outputs."""
    changes: dict[str, list[list[Any]]] = {}
    for item in result.layers_changed + result.inputs_changed:
        changes.setdefault(item.name, []).extend([c.key, c.old, c.new] for c in item.changes)
    for connection in result.connections_changed:
        changes.setdefault(connection.name, []).append(["in", connection.old, connection.new])
    for item in result.outputs_changed + result.losses_changed:
        changes.setdefault(f"{item.name} (output)", []).extend([c.key, c.old, c.new] for c in item.changes)
    return changes


def _mark_groups(data: dict[str, Any]) -> None:
    """A group's change: `added` or `removed` when all its nodes are, `changed` when any of
    them changed; changed groups start unfolded, the others stay folded."""
    groups = {group["id"]: group for group in data["groups"]}
    seen: dict[str, set[str]] = {group_id: set() for group_id in groups}
    for node in data["nodes"]:
        parent = node.get("parent")
        status = node.get("change", "same")
        while parent is not None:
            seen[parent].add(status)
            parent = groups[parent].get("parent")
    for group_id, statuses in seen.items():
        if groups[group_id].get("changes"):
            statuses.add("changed")
        if statuses in ({"added"}, {"removed"}):
            groups[group_id]["change"] = statuses.pop()
        elif statuses - {"same"}:
            groups[group_id]["change"] = "changed"
            groups[group_id]["open"] = True
