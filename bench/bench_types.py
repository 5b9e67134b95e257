"""How many of the catalog's arguments have a type (issue 22, item 1), per family, read from
graphspec/spec/catalog.json: a typed argument is one `validate` checks without Keras; an argument
of "any value" has a type that takes every value (graphspec/spec/types.py `unconstrained`: Keras
reads it as true or false, checked by tests/test_catalog_types.py with odd values), counted apart
because validate refuses nothing there; an untyped one is taken as any value too, unverified (Keras
refuses only when it trains or computes, or nobody has shown what it refuses).

Not a timing: the row records the counts, which `make catalog` changes. Run alone:
`python bench/run.py types`, or `python bench/bench_types.py` for the table by family.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent))

from harness import Row  # noqa: E402

COMMAND = "python bench/bench_types.py"


def families(c: dict) -> dict[str, dict[str, dict]]:
    """The catalog's classes by family: `{family: {class: entry}}`; an entry has `args` and
    `types` (the objects' entries list their arguments under `defaults`)."""
    found = {
        "layers": c["layers"],
        "application_layers": c["application_layers"],
        "applications": c["applications"],
        # An op's arguments a node writes as values: its operation's constructor's (the call's
        # are its tensors, read with `in`).
        "ops": {name: {**entry, "args": entry["init"]} for name, entry in c["ops"].items()},
        "losses": c["losses"]["classes"],
        "metrics": c["metrics"]["classes"],
        "optimizers": c["optimizers"],
        "callbacks": c["callbacks"],
    }
    for section, objects in sorted(c["objects"].items()):
        found[section] = {
            name: {
                "args": entry.get("args", list(entry.get("defaults", {}))),
                "types": entry.get("types", {}),
                "types_when": entry.get("types_when", {}),
            }
            for name, entry in objects["classes"].items()
        }
    # An argument typed where another is true (`types_when`: an application's classes with its
    # top, an optimizer's ema_momentum with use_ema, a dropout's seed) or is one word
    # (`types_where`: a lookup's sparse with output_mode "int") is counted as typed.
    found = {
        family: {
            name: {
                **entry,
                "types": {
                    **entry.get("types", {}),
                    **{a: f for typed in entry.get("types_when", {}).values() for a, f in typed.items()},
                    **{
                        a: f
                        for words in entry.get("types_where", {}).values()
                        for typed in words.values()
                        for a, f in typed.items()
                    },
                },
            }
            for name, entry in entries.items()
        }
        for family, entries in found.items()
    }
    return found


def coverage(c: dict) -> dict[str, tuple[int, int, int, int]]:
    """`{family: (classes, typed arguments, arguments of any value, arguments)}`: a typed
    argument's type refuses some value, one of any value's takes every value."""
    from graphspec.spec.types import unconstrained

    counts = {}
    for family, entries in families(c).items():
        fragments = [f for e in entries.values() for f in e.get("types", {}).values()]
        anything = sum(unconstrained(f) for f in fragments)
        total = sum(len(e["args"]) for e in entries.values())
        counts[family] = (len(entries), len(fragments) - anything, anything, total)
    return counts


def _catalog() -> dict:
    from graphspec.spec import catalog

    return catalog.catalog()


def run() -> list[Row]:
    counts = coverage(_catalog())
    typed = sum(t for _, t, _, _ in counts.values())
    anything = sum(a for _, _, a, _ in counts.values())
    total = sum(n for *_, n in counts.values())
    by_family = "; ".join(f"{f} {t}+{a}/{n}" for f, (_, t, a, n) in counts.items())
    return [
        Row(
            "catalog arguments with a type (validate checks them without Keras) + of any value, verified",
            f"{typed} + {anything} of {total} ({typed / total:.0%} + {anything / total:.0%}): {by_family}",
            "-",
            None,
            "recorded, no target (an argument Keras checks only when it trains or computes stays untyped)",
            True,
            COMMAND,
        )
    ]


def main() -> int:
    counts = coverage(_catalog())
    print(f"{'family':<20} {'classes':>7} {'typed':>6} {'any':>6} {'args':>6} {'typed':>6} {'known':>6}")
    for family, (classes, typed, anything, total) in counts.items():
        share = f"{typed / total:.0%}" if total else "-"
        known = f"{(typed + anything) / total:.0%}" if total else "-"
        print(f"{family:<20} {classes:>7} {typed:>6} {anything:>6} {total:>6} {share:>6} {known:>6}")
    typed = sum(t for _, t, _, _ in counts.values())
    anything = sum(a for _, _, a, _ in counts.values())
    total = sum(n for *_, n in counts.values())
    print(
        f"{'all':<20} {'':>7} {typed:>6} {anything:>6} {total:>6} {typed / total:>6.0%} "
        f"{(typed + anything) / total:>6.0%}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
