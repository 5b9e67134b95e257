"""What changed between two specs: layers, connections, inputs, outputs, losses, training, search.

Both specs are compared after params, overrides and blocks are resolved (`LoadedSpec.spec`), on
the same canonical forms the fingerprint hashes (`graphspec/fingerprint.py`): two specs differ
here exactly when one of their two fingerprints differs or their `search:` sections do (a
search is not part of what a run trains, so no fingerprint holds it). So an argument added or
removed at its Keras default, or respelled (`kernel_size: 3` for `[3, 3]`), is no change; what
is shown for a change is what each spec writes. Layers are matched by node name, and a
`share:` node by the call it is (its name is not part of the model).
With `params=True` both models are built (TensorFlow is imported then, and only then) to
count the parameters of each changed layer and of the whole model.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import yaml

from graphspec.errors import printable
from graphspec.fingerprint import (
    architecture_form,
    canonical_json,
    layer_nodes,
    model_form,
    node_names,
    training_form,
)
from graphspec.spec.stages import describe_stage, frozen_summary

if TYPE_CHECKING:
    from graphspec.spec.load import LoadedSpec
    from graphspec.spec.model import LayerSpec

ADDED, REMOVED, CHANGED = "added", "removed", "changed"
_UNSET = "(unset)"


@dataclass
class Change:
    """One value that differs: `key` (an argument, a field, or a dotted path), old and new.

    `status` says whether the key was added, removed, or changed; an absent side is None.
    """

    key: str
    old: Any
    new: Any
    status: str = CHANGED


@dataclass
class Entry:
    """A node, input or output that exists on one side only, with what it is there."""

    name: str
    value: dict[str, Any]


@dataclass
class Changed:
    """A node, input or output on both sides, with the values that differ."""

    name: str
    changes: list[Change]


@dataclass
class Connection:
    """A layer on both sides that reads different tensors: its `in`, before and after."""

    name: str
    old: Any
    new: Any


@dataclass
class ParamCount:
    """Parameters of one layer node before and after; None where the node does not exist."""

    name: str
    old: int | None
    new: int | None


@dataclass
class ParamsDiff:
    """Parameter counts of each added, removed or changed layer, and of the whole models."""

    layers: list[ParamCount]
    total_old: int
    total_new: int


@dataclass
class SpecDiff:
    """Everything that differs between two resolved specs, old first."""

    old: str
    new: str
    layers_added: list[Entry] = field(default_factory=list)
    layers_removed: list[Entry] = field(default_factory=list)
    layers_changed: list[Changed] = field(default_factory=list)
    connections_changed: list[Connection] = field(default_factory=list)
    inputs_added: list[Entry] = field(default_factory=list)
    inputs_removed: list[Entry] = field(default_factory=list)
    inputs_changed: list[Changed] = field(default_factory=list)
    outputs_added: list[Entry] = field(default_factory=list)
    outputs_removed: list[Entry] = field(default_factory=list)
    outputs_changed: list[Changed] = field(default_factory=list)
    losses_changed: list[Changed] = field(default_factory=list)
    model_changed: list[Change] = field(default_factory=list)
    training_changed: list[Change] = field(default_factory=list)
    search_changed: list[Change] = field(default_factory=list)
    params: ParamsDiff | None = None

    @property
    def differ(self) -> bool:
        """Whether anything but the parameter counts differs."""
        return any(getattr(self, name) for name in _SECTIONS)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready data: every section (empty ones included), `differ`, and `params`."""
        data = asdict(self)
        data["differ"] = self.differ
        return data


# The sections that say the model itself differs; training and search follow.
ARCHITECTURE_SECTIONS = (
    "layers_added",
    "layers_removed",
    "layers_changed",
    "connections_changed",
    "inputs_added",
    "inputs_removed",
    "inputs_changed",
    "outputs_added",
    "outputs_removed",
    "outputs_changed",
    "losses_changed",
    "model_changed",
)
_SECTIONS = (*ARCHITECTURE_SECTIONS, "training_changed", "search_changed")
_LOSS_FIELDS = ("loss", "target", "weight", "metrics")


def diff(
    old: LoadedSpec, new: LoadedSpec, old_name: str = "old", new_name: str = "new", params: bool = False
) -> SpecDiff:
    """The differences from `old` to `new`, named `old_name` and `new_name` in renderings.

    Values are compared in the fingerprint's canonical form, so an argument added or removed
    at its Keras default, or written in another spelling Keras reads the same, is no change;
    what is shown is what each spec writes. With `params`, both models are built to count
    parameters per changed layer and in total.
    """
    result = SpecDiff(old_name, new_name)
    # An output read with `from` is an Identity layer of the built model (`layer_nodes`); it is
    # shown as one only against a spec that writes that layer out, and as an output otherwise.
    old_identities = _identities(old, new)
    new_identities = _identities(new, old)
    old_arch, new_arch = architecture_form(old, old_identities), architecture_form(new, new_identities)
    old_layers, new_layers = layer_nodes(old, old_identities), layer_nodes(new, new_identities)
    old_keys, new_keys = node_names(old, old_layers), node_names(new, new_layers)
    pairs, removed, added = _match_layers(old_keys, new_keys, list(new_layers))

    for name in removed:
        result.layers_removed.append(Entry(name, _entry(old_layers[name])))
    for name in added:
        result.layers_added.append(Entry(name, _entry(new_layers[name])))
    for old_node, name in pairs:
        before, after = old_arch["layers"][old_keys[old_node]], new_arch["layers"][new_keys[name]]
        if before["in"] != after["in"]:
            result.connections_changed.append(
                Connection(name, old_layers[old_node].inbound, new_layers[name].inbound)
            )
        changes = _layer_changes(old_layers[old_node], new_layers[name], before, after)
        if changes:
            result.layers_changed.append(Changed(name, changes))

    _compare_named(
        old_arch["inputs"],
        new_arch["inputs"],
        result.inputs_added,
        result.inputs_removed,
        result.inputs_changed,
    )
    outputs_changed: list[Changed] = []
    _compare_outputs(old, new, old_arch["outputs"], new_arch["outputs"], result, outputs_changed)
    for item in outputs_changed:
        losses = [c for c in item.changes if c.key in _LOSS_FIELDS]
        others = [c for c in item.changes if c.key not in _LOSS_FIELDS]
        if losses:
            result.losses_changed.append(Changed(item.name, losses))
        if others:
            result.outputs_changed.append(Changed(item.name, others))
    result.model_changed = _dict_changes(model_form(old), model_form(new))

    old_training, new_training = _training(old), _training(new)
    result.training_changed = _dict_changes(old_training, new_training)
    result.search_changed = _dict_changes(_search(old), _search(new))

    if params:
        result.params = _params(old, new, result)
    return result


def _identities(loaded: LoadedSpec, other: LoadedSpec) -> set[str]:
    """The outputs of `loaded` read with `from` that `other` writes as the Identity layer
    they build."""
    layers = other.spec.layers
    return {
        n
        for n, o in loaded.spec.outputs.items()
        if o.source is not None and n in layers and layers[n].type == "Identity"
    }


def _match_layers(
    old_keys: dict[str, str], new_keys: dict[str, str], new_order: list[str]
) -> tuple[list[tuple[str, str]], list[str], list[str]]:
    """Layer nodes paired (old name, new name) in the new spec's order, then those only in the
    old spec and only in the new. Nodes pair by their name in the canonical form (`node_names`):
    by name, and a `share:` node by the call it is, whatever it is called. A node left unpaired
    pairs with one of the same name on the other side (a share node reading something else)."""
    new_by_key = {key: name for name, key in new_keys.items()}
    old_key_set = set(old_keys.values())
    pairs = [(name, new_by_key[key]) for name, key in old_keys.items() if key in new_by_key]
    removed = [name for name, key in old_keys.items() if key not in new_by_key]
    added = [name for name, key in new_keys.items() if key not in old_key_set]
    for name in [n for n in removed if n in added]:
        pairs.append((name, name))
        removed.remove(name)
        added.remove(name)
    order = {name: i for i, name in enumerate(new_order)}
    pairs.sort(key=lambda pair: order[pair[1]])
    return pairs, removed, added


def _entry(node: LayerSpec) -> dict[str, Any]:
    value: dict[str, Any] = {}
    if node.type is not None:
        value = {"type": node.type, **node.args}
    elif node.op is not None:
        value = {"op": node.op, **node.args}
    elif node.share is not None:
        value = {"share": node.share}
    elif node.spec is None:  # weight, range, random
        value = {node.node_kind: getattr(node, node.node_kind), **node.args}
    else:
        value = {"spec": node.spec}
    value["in"] = node.inbound
    if node.call:
        value["call"] = node.call
    return value


def _layer_changes(a: LayerSpec, b: LayerSpec, before: dict, after: dict) -> list[Change]:
    changes: list[Change] = []
    kind_a, kind_b = a.node_kind, b.node_kind
    if kind_a != kind_b:
        changes.append(Change(kind_a, getattr(a, kind_a), None, REMOVED))
        changes.append(Change(kind_b, None, getattr(b, kind_b), ADDED))
        changes += _dict_changes(a.args, b.args)
    elif kind_a in ("type", "op", "weight", "range", "random"):
        # An op (weight, range, random) node changes as a layer does: its kind's value, its arguments
        if getattr(a, kind_a) != getattr(b, kind_a):
            changes.append(Change(kind_a, getattr(a, kind_a), getattr(b, kind_a)))
        changes += _arg_changes(a.args, b.args, before["args"], after["args"])
    elif kind_a == "share":
        if before["share"] != after["share"]:
            changes.append(Change("share", a.share, b.share))
    elif before["spec"] != after["spec"]:
        # The nested spec's own architecture changed (or the file it names did).
        old_hash = _short(before["spec"])
        new_hash = _short(after["spec"])
        changes.append(Change("spec", f"{a.spec} ({old_hash})", f"{b.spec} ({new_hash})"))
    # Compared without the arguments at their call's default, shown as each spec writes them.
    changes += _dict_changes(
        {k: a.call[k] for k in before["call"]}, {k: b.call[k] for k in after["call"]}, prefix="call."
    )
    return changes


def _arg_changes(old: dict, new: dict, old_form: dict, new_form: dict) -> list[Change]:
    """The arguments whose canonical values (`old_form`, `new_form`: defaults left out) differ,
    shown as each spec writes them: an argument added or removed at its default is no change."""
    changes = []
    for key in list(old_form) + [k for k in new_form if k not in old_form]:
        if canonical_json(old_form.get(key, _UNSET)) == canonical_json(new_form.get(key, _UNSET)):
            continue
        status = ADDED if key not in old else REMOVED if key not in new else CHANGED
        changes.append(Change(key, old.get(key), new.get(key), status))
    return changes


def _short(form: Any) -> str:
    import hashlib

    return "architecture " + hashlib.sha256(canonical_json(form).encode()).hexdigest()[:12]


def _compare_outputs(
    old: LoadedSpec, new: LoadedSpec, old_form: dict, new_form: dict, result: SpecDiff, changed: list
) -> None:
    """Outputs compared in canonical form (`from` is the tensor, however named), shown as written."""
    for name in old_form:
        if name not in new_form:
            result.outputs_removed.append(Entry(name, _raw_output(old, name)))
    for name in new_form:
        if name not in old_form:
            result.outputs_added.append(Entry(name, _raw_output(new, name)))
            continue
        before, after = _raw_output(old, name), _raw_output(new, name)
        changes = [
            Change(key, before.get(key), after.get(key), _status(key, old_form[name], new_form[name]))
            for key in [*old_form[name], *(k for k in new_form[name] if k not in old_form[name])]
            if canonical_json(old_form[name].get(key)) != canonical_json(new_form[name].get(key))
        ]
        if changes:
            changed.append(Changed(name, changes))


def _status(key: str, old: dict, new: dict) -> str:
    """Whether `key` of an output's canonical form was added, removed or changed (`target:`
    is absent from an output that sets none)."""
    return ADDED if key not in old else REMOVED if key not in new else CHANGED


def _raw_output(loaded: LoadedSpec, name: str) -> dict[str, Any]:
    data = loaded.spec.outputs[name].model_dump(mode="json", by_alias=True)
    data.pop("doc", None)
    if data.get("target") is None:
        data.pop("target", None)
    return data


def _compare_named(old: dict, new: dict, added: list, removed: list, changed: list) -> None:
    for name, value in old.items():
        if name not in new:
            removed.append(Entry(name, value))
    for name, value in new.items():
        if name not in old:
            added.append(Entry(name, value))
        else:
            changes = _dict_changes(old[name], value)
            if changes:
                changed.append(Changed(name, changes))


def _training(loaded: LoadedSpec) -> dict[str, Any]:
    """compile.*, train.*, inputs.NAME.range/seq_len and layers.NAME.adapt as one flat mapping."""
    form = training_form(loaded)
    flat = {f"compile.{k}": v for k, v in form["compile"].items()}
    flat.update({f"train.{k}": v for k, v in form["train"].items() if k != "stages"})
    # A stage reads as what it freezes: its patterns with the layers they name in this spec.
    for i, stage in enumerate(frozen_summary(loaded.spec)):
        flat[f"train.stages[{i + 1}]"] = describe_stage(stage)
    for name, data in form["data"].items():
        flat.update({f"inputs.{name}.{k}": v for k, v in data.items()})
    # What learns from the data before fit: `true`, or its settings (`{samples: N}`).
    flat.update({f"layers.{name}.adapt": how or True for name, how in form.get("adapt", {}).items()})
    return flat


def _search(loaded: LoadedSpec) -> dict[str, Any]:
    """search.* and search.params.PATH as one flat mapping, defaults filled in (settings) or
    left out (a param's fields), so that writing a default out is no change."""
    search = loaded.spec.search
    if search is None:
        return {}
    data = search.model_dump(mode="json", exclude_none=True, exclude={"params"})
    flat = {f"search.{k}": v for k, v in data.items()}
    for path, param in search.params.items():
        flat[f"search.params.{path}"] = param.model_dump(mode="json", exclude_defaults=True)
    return flat


def _dict_changes(old: dict, new: dict, prefix: str = "") -> list[Change]:
    changes = []
    for key, value in old.items():
        if key not in new:
            changes.append(Change(prefix + key, value, None, REMOVED))
        elif canonical_json(new[key]) != canonical_json(value):
            changes.append(Change(prefix + key, value, new[key]))
    for key, value in new.items():
        if key not in old:
            changes.append(Change(prefix + key, None, value, ADDED))
    return changes


def _params(old: LoadedSpec, new: LoadedSpec, result: SpecDiff) -> ParamsDiff:
    from graphspec.keras.counts import param_counts

    old_counts, old_total = param_counts(old)
    new_counts, new_total = param_counts(new)
    names = [e.name for e in result.layers_removed] + [c.name for c in result.layers_changed]
    names += [e.name for e in result.layers_added]
    names += [c.name for c in result.connections_changed if c.name not in names]
    layers = [
        ParamCount(
            n,
            old_counts.get(n) if n in old.spec.layers else None,
            new_counts.get(n) if n in new.spec.layers else None,
        )
        for n in names
    ]
    return ParamsDiff(layers, old_total, new_total)


# ---------------------------------------------------------------- rendering


def render_json(result: SpecDiff) -> str:
    """The diff as JSON for tools: every section, `differ`, and `params` (null without --params)."""
    return json.dumps(result.as_dict(), indent=2, default=str) + "\n"


def render_text(result: SpecDiff) -> str:
    """The diff for people: a header, then one line per difference, grouped; '' when equal."""
    if not result.differ and result.params is None:
        return ""
    # The names are paths and git revisions as given: escapes in them are shown, never sent.
    lines = [f"--- {printable(result.old, newlines=False)}", f"+++ {printable(result.new, newlines=False)}"]

    def section(title: str, items: list[str]) -> None:
        if items:
            lines.append(f"{title} ({len(items)}):")
            lines.extend(items)

    section("layers added", [f"  + {e.name}: {_describe(e.value)}" for e in result.layers_added])
    section("layers removed", [f"  - {e.name}: {_describe(e.value)}" for e in result.layers_removed])
    section("layers changed", [f"  ~ {c.name}: {_changes(c.changes)}" for c in result.layers_changed])
    section(
        "connections changed",
        [f"  ~ {c.name}: in {_value(c.old)} -> {_value(c.new)}" for c in result.connections_changed],
    )
    section("inputs added", [f"  + {e.name}: {_value(e.value)}" for e in result.inputs_added])
    section("inputs removed", [f"  - {e.name}: {_value(e.value)}" for e in result.inputs_removed])
    section("inputs changed", [f"  ~ {c.name}: {_changes(c.changes)}" for c in result.inputs_changed])
    section(
        "outputs added", [f"  + {e.name}: {_value(_compact_output(e.value))}" for e in result.outputs_added]
    )
    section(
        "outputs removed",
        [f"  - {e.name}: {_value(_compact_output(e.value))}" for e in result.outputs_removed],
    )
    section("outputs changed", [f"  ~ {c.name}: {_changes(c.changes)}" for c in result.outputs_changed])
    section("losses changed", [f"  ~ {c.name}: {_changes(c.changes)}" for c in result.losses_changed])
    section("model changed", [f"  ~ {_change(c)}" for c in result.model_changed])
    section("training changed", [f"  ~ {_change(c)}" for c in result.training_changed])
    section("search changed", [f"  ~ {_change(c)}" for c in result.search_changed])
    if result.params is not None:
        p = result.params
        rows = [(c.name, _count(c.old), _count(c.new), _delta(c.old, c.new)) for c in p.layers]
        rows.append(("total", _count(p.total_old), _count(p.total_new), _delta(p.total_old, p.total_new)))
        width = [max(len(r[i]) for r in rows) for i in range(4)]
        lines.append("parameters (before -> after):")
        for name, before, after, delta in rows:
            lines.append(
                f"  {name.ljust(width[0])}  {before.rjust(width[1])} -> {after.rjust(width[2])}"
                f"  {delta}".rstrip()
            )
    # Values are quoted as YAML, which leaves some characters raw (U+202E and other format
    # characters): the text is escaped whole, as messages are.
    return printable("\n".join(lines)) + "\n"


def _value(value: Any) -> str:
    if value is None:
        return "null"
    text = yaml.safe_dump(value, default_flow_style=True, sort_keys=False, width=1 << 30, allow_unicode=True)
    return text.removesuffix("\n").removesuffix("\n...").strip()


def _change(change: Change) -> str:
    if change.status == ADDED:
        return f"{change.key} {_UNSET} -> {_value(change.new)}"
    if change.status == REMOVED:
        return f"{change.key} {_value(change.old)} -> {_UNSET}"
    return f"{change.key} {_value(change.old)} -> {_value(change.new)}"


def _changes(changes: list[Change]) -> str:
    return "; ".join(_change(c) for c in changes)


def _describe(node: dict[str, Any]) -> str:
    """`Dense(units=2, activation=relu) <- x`, `shares lstm <- right`, `spec enc.yaml <- x`."""
    node = dict(node)
    inbound = node.pop("in")
    call = node.pop("call", None)
    if "type" in node or "op" in node:
        kind = node.pop("type", None) or "ops." + node.pop("op")
        what = f"{kind}({', '.join(f'{k}={_value(v)}' for k, v in node.items())})"
    elif kind := next((k for k in ("weight", "range", "random") if k in node), None):
        value = node.pop(kind)
        what = f"{kind} {_value(value)}" + (
            f"({', '.join(f'{k}={_value(v)}' for k, v in node.items())})" if node else ""
        )
    elif "share" in node:
        what = f"shares {node['share']}"
    else:
        what = f"spec {node['spec']}"
    text = f"{what} <- {_value(inbound)}"
    return text + (f" call {_value(call)}" if call else "")


def _compact_output(value: dict[str, Any]) -> dict[str, Any]:
    defaults = {"from": None, "loss": None, "weight": 1.0, "metrics": []}
    return {k: v for k, v in value.items() if defaults.get(k, object()) != v} or {"loss": None}


def _count(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def _delta(old: int | None, new: int | None) -> str:
    if old is None or new is None or old == new:
        return ""
    return f"({new - old:+,})"


# ---------------------------------------------------------------- git


def git_external_diff(args: list[str]) -> str:
    """The text git shows for a spec, as an external diff driver (`diff.graphspec.command`).

    git passes `PATH OLD-FILE OLD-HEX OLD-MODE NEW-FILE NEW-HEX NEW-MODE` (or only PATH for an
    unmerged file). Errors are shown in the text rather than failing, since a failing driver
    stops the whole `git diff`.
    """
    from pathlib import Path

    from graphspec.errors import SpecErrors, printable
    from graphspec.spec.files import read_regular
    from graphspec.spec.load import load_text

    if len(args) == 1:
        return f"* Unmerged path {printable(args[0], newlines=False)}\n"
    if len(args) != 7:
        return f"graphspec git-diff: expected 7 arguments from git, got {len(args)}\n"
    path, old_file, _, _, new_file, _, _ = args
    shown = printable(path, newlines=False)
    header = f"diff --graphspec a/{shown} b/{shown}\n"
    if old_file == "/dev/null":
        return header + f"new spec {shown}\n"
    if new_file == "/dev/null":
        return header + f"deleted spec {shown}\n"
    try:
        # Bounded as any spec file: regular, at most 5 MB, charged to the command's budget.
        old_text = read_regular(Path(old_file), f"a/{path}").decode("utf-8")
        new_text = read_regular(Path(new_file), f"b/{path}").decode("utf-8")
        old = load_text(old_text, f"a/{path}", base=Path(path))
        new = load_text(new_text, f"b/{path}", base=Path(path))
    except (SpecErrors, OSError, UnicodeDecodeError) as exc:
        text = exc.diagnostics.render() if isinstance(exc, SpecErrors) else printable(str(exc))
        return header + f"cannot compare: {text}\n"
    result = diff(old, new, f"a/{path}", f"b/{path}")
    if not result.differ:
        return header + "no change to the resolved spec (only formatting, comments or docs)\n"
    return header + render_text(result)
