"""How many of the catalog's arguments have a type (issue 22, item 1), per family, read from
graphspec/spec/catalog.json: a typed argument is one `validate` checks without Keras, an untyped
one is taken as any value (Keras itself takes anything there, or nobody has shown what it refuses).

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
            }
            for name, entry in objects["classes"].items()
        }
    return found


def coverage(c: dict) -> dict[str, tuple[int, int, int]]:
    """`{family: (classes, typed arguments, arguments)}`."""
    counts = {}
    for family, entries in families(c).items():
        typed = sum(len(e.get("types", {})) for e in entries.values())
        total = sum(len(e["args"]) for e in entries.values())
        counts[family] = (len(entries), typed, total)
    return counts


def _catalog() -> dict:
    from graphspec.spec import catalog

    return catalog.catalog()


def run() -> list[Row]:
    counts = coverage(_catalog())
    typed = sum(t for _, t, _ in counts.values())
    total = sum(n for _, _, n in counts.values())
    by_family = "; ".join(f"{f} {t}/{n}" for f, (_, t, n) in counts.items())
    return [
        Row(
            "catalog arguments with a type (validate checks them without Keras)",
            f"{typed} of {total} ({typed / total:.0%}): {by_family}",
            "-",
            None,
            "recorded, no target (an argument Keras takes any value for stays untyped)",
            True,
            COMMAND,
        )
    ]


def main() -> int:
    counts = coverage(_catalog())
    print(f"{'family':<20} {'classes':>7} {'typed':>6} {'args':>6} {'share':>6}")
    for family, (classes, typed, total) in counts.items():
        share = f"{typed / total:.0%}" if total else "-"
        print(f"{family:<20} {classes:>7} {typed:>6} {total:>6} {share:>6}")
    typed = sum(t for _, t, _ in counts.values())
    total = sum(n for _, _, n in counts.values())
    print(f"{'all':<20} {'':>7} {typed:>6} {total:>6} {typed / total:>6.0%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
