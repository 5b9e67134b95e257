"""Fine-tuning stages (`train.stages`): which layer nodes a stage's `freeze` and `unfreeze` name,
and the checks `validate` makes of them. No TensorFlow here (`graphspec.keras.stages` applies them).

A pattern names layer nodes of the spec (after block expansion):
- a node's name (a share node names the layer it shares);
- a block use's name: the layers it expanded to, `NAME.*`;
- a glob of node names (`*`, `?`, `[...]`), as `fnmatch` reads it.
`{NAME: {top: N}}` takes the last N: of a nested model's own layers when the pattern names one
nested model (a nested spec, a keras.applications model, a KerasHub backbone), else of the
matched nodes in the spec's order.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from graphspec.errors import did_you_mean
from graphspec.spec.model import Spec

if TYPE_CHECKING:
    from graphspec.spec.check import Context

GLOB_CHARACTERS = "*?["
# Nodes that make no layer with weights: freezing them would do nothing.
WEIGHTLESS = ("op", "range", "random")
APPLICATION_PREFIX = "applications."
HUB_PREFIX = "keras_hub."


def is_nested_model(spec: Spec, name: str) -> bool:
    """Whether node `name` is a model of its own layers: a nested spec, an application, a backbone."""
    node = spec.layers.get(name)
    if node is None:
        return False
    return node.spec is not None or (
        node.type is not None and node.type.startswith((APPLICATION_PREFIX, HUB_PREFIX))
    )


def matched_nodes(spec: Spec, pattern: str) -> list[str]:
    """The layer nodes (owners, for shares) that `pattern` names, in the spec's order, each once."""
    names = list(spec.layers)
    if pattern in spec.layers:
        found = [pattern]
    elif any(c in pattern for c in GLOB_CHARACTERS):
        found = [n for n in names if fnmatch.fnmatchcase(n, pattern)]
    else:
        found = [n for n in names if n.startswith(pattern + ".")]
    owners: list[str] = []
    for name in found:
        owner = spec.owner(name)
        if owner is not None and owner not in owners:
            owners.append(owner)
    return owners


def frozen_summary(spec: Spec) -> list[dict[str, Any]]:
    """Each stage as text-ready facts: its epochs, optimizer, and the nodes it freezes and
    unfreezes (with `top`), for `diff` and `view`. [] without stages."""
    summary = []
    for stage in spec.train.stages or []:
        entry: dict[str, Any] = {"epochs": stage.epochs}
        for key in ("freeze", "unfreeze"):
            items = []
            for pattern, top, _ in stage.patterns(key):
                nodes = matched_nodes(spec, pattern)
                if top is not None and not (len(nodes) == 1 and is_nested_model(spec, nodes[0])):
                    nodes = nodes[-top:]  # the last N matches; of a nested model, its own layers
                items.append({"pattern": pattern, "top": top, "nodes": nodes})
            entry[key] = items
        optimizer = stage.optimizer
        if optimizer is not None:
            entry["optimizer"] = optimizer if isinstance(optimizer, str) else optimizer.model_dump()
        summary.append(entry)
    return summary


def describe_stage(entry: dict[str, Any]) -> str:
    """One line for a stage of `frozen_summary`: `3 epochs; freeze backbone; unfreeze backbone (top 2)`."""

    def items(key: str) -> str:
        return ", ".join(
            item["pattern"]
            + (f" (top {item['top']})" if item["top"] else "")
            + ("" if item["nodes"] == [item["pattern"]] else f" = {', '.join(item['nodes'])}")
            for item in entry[key]
        )

    parts = [f"{entry['epochs']} epoch{'s' if entry['epochs'] != 1 else ''}"]
    parts += [f"{key} {items(key)}" for key in ("freeze", "unfreeze") if entry[key]]
    optimizer = entry.get("optimizer")
    if optimizer is not None:
        if isinstance(optimizer, dict):
            args = ", ".join(f"{k}={v}" for k, v in optimizer.items() if k != "type")
            optimizer = f"{optimizer['type']}({args})"
        parts.append(f"optimizer {optimizer}")
    return "; ".join(parts)


def check_stages(ctx: Context, check_optimizer: Callable[[Any, tuple], None]) -> None:
    """Every pattern of every stage names at least one layer node; `epochs` is not given beside
    stages, nor a BackupAndRestore callback; each stage's optimizer is known
    (`check_optimizer(value, path)`)."""
    spec = ctx.spec
    stages = spec.train.stages
    if not stages:
        return
    if "epochs" in spec.train.model_fields_set:
        total = sum(s.epochs for s in stages)
        ctx.error(
            f"train.epochs is given beside train.stages, whose epochs ({total} in all) are the run's",
            ("train", "epochs"),
            hint="leave train.epochs (and --epochs) out, or change a stage's epochs",
            key=True,
        )
    backups = [c.type for c in spec.train.callbacks if c.type == "BackupAndRestore"]
    if backups:
        ctx.error(
            "train.stages backs up each stage itself, for --resume: a BackupAndRestore callback "
            "would restore one stage's optimizer into another's",
            ("train", "callbacks"),
            key=True,
        )
    parts = [n.split(".") for n in spec.layers if "." in n]
    uses = sorted({".".join(p[:k]) for p in parts for k in range(1, len(p))})
    for i, stage in enumerate(stages):
        path = ("train", "stages", i)
        for key in ("freeze", "unfreeze"):
            for pattern, top, where in stage.patterns(key):
                nodes = matched_nodes(spec, pattern)
                if not nodes:
                    ctx.error(
                        f"stage {i + 1} {key}s '{pattern}', which names no layer of the spec",
                        path + where,
                        hint=did_you_mean(pattern, [*spec.layers, *uses])
                        or "name a layer, a block use (its NAME.* layers) or a glob such as 'conv*'",
                        key=top is not None,
                    )
                elif all(spec.layers[n].node_kind in WEIGHTLESS for n in nodes):
                    ctx.error(
                        f"stage {i + 1} {key}s '{pattern}', which names only ops ("
                        + ", ".join(nodes[:5])
                        + (", ..." if len(nodes) > 5 else "")
                        + "): they have no weights to freeze",
                        path + where,
                        key=top is not None,
                    )
        if stage.optimizer is not None:
            check_optimizer(stage.optimizer, path + ("optimizer",))


def stage_states(spec: Spec) -> dict[str, list[str]]:
    """For each layer node that a stage freezes or unfreezes, what it is in every stage, in
    order: `frozen`, `trainable`, `top N frozen` or `top N trainable` (of a nested model's
    layers; the rest frozen). Nodes no stage names are left out: they train as the spec says."""
    named: dict[str, list[str | None]] = {}
    stages = spec.train.stages or []
    for i, stage in enumerate(stages):
        for key in ("freeze", "unfreeze"):
            state = "frozen" if key == "freeze" else "trainable"
            for pattern, top, _ in stage.patterns(key):
                nodes = matched_nodes(spec, pattern)
                nested = top is not None and len(nodes) == 1 and is_nested_model(spec, nodes[0])
                if top is not None and not nested:
                    nodes = nodes[-top:]
                for node in nodes:
                    states = named.setdefault(node, [None] * len(stages))
                    states[i] = f"top {top} {state}" if nested else state
    return {node: [s or "as built" for s in states] for node, states in named.items()}
