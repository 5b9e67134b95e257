"""Pretrained weights and KerasHub presets a spec names, as the command's grants allow.

A spec's `weights:` (keras.applications) and `preset:` (KerasHub backbones) were checked when it
was loaded (`graphspec.policy.argument_refusal`, under `LoadedSpec.grants`). Here they become
what Keras is given: a path is checked again, at build time, where it then leads (a link
changed since validation cannot lead out), and Keras gets the resolved path, not the spec's
text. A download name goes to Keras's or KerasHub's own download function unchanged.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from graphspec import policy
from graphspec.errors import SpecErrors
from graphspec.spec import catalog

if TYPE_CHECKING:
    from graphspec.spec.load import LoadedSpec


def uses_pretrained(loaded: LoadedSpec) -> bool:
    """Whether a node of the spec (or of a nested spec) names weights or a preset to load."""
    for node in loaded.spec.layers.values():
        capabilities = (catalog.layer(node.type) or {}).get("capabilities", {}) if node.type else {}
        if any(node.args.get(a) is not None and a in capabilities for a in policy.GRANTABLE):
            return True
    return any(uses_pretrained(nested) for nested in loaded.nested.values())


def pretrained_args(loaded: LoadedSpec, name: str, args: dict[str, Any], load: bool) -> dict[str, Any]:
    """Node `name`'s arguments as Keras takes them: a granted path resolved (and checked again),
    and, when `load` is false (the first, weightless build that checks the parameter budget),
    applications' `weights` left out."""
    entry = catalog.layer(loaded.spec.layers[name].type) or {}
    args = dict(args)
    for argument in policy.GRANTABLE:
        value = args.get(argument)
        if value is None or argument not in entry.get("capabilities", {}):
            continue
        if policy.is_path(value, argument):
            refused = policy.read_refusal(argument, value, loaded.grants, loaded.base)
            if refused is not None:
                raise SpecErrors.single(
                    f"layer '{name}': {refused.message}",
                    loaded.location("layers", name, argument),
                    hint=refused.hint,
                    sources=loaded.diagnostics.sources,
                )
            args[argument] = str(policy.granted_path(value, loaded.base))
        elif policy.download_refusal(argument, value, loaded.grants) is not None:  # checked at load
            raise SpecErrors.single(
                f"layer '{name}': argument '{argument}' downloads, and this command does not allow it",
                loaded.location("layers", name, argument),
                hint="run again with --allow-download",
                sources=loaded.diagnostics.sources,
            )
        if argument == "weights" and not load:
            args[argument] = None
    return args


def make_backbone(entry: dict, kwargs: dict[str, Any], load: bool) -> Any:
    """A KerasHub backbone: `from_preset` when a preset is named (its weights loaded only when
    `load`), else made from its configuration arguments."""
    import importlib

    cls = getattr(importlib.import_module(entry["module"]), entry["class"])
    preset = kwargs.pop("preset", None)
    if preset is None:
        return cls(**kwargs)
    return cls.from_preset(preset, load_weights=load, **kwargs)
