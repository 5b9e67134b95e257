"""Validate against build on the 1,000 single edits of tests/fixtures/agreement_corpus.jsonl
(issue 22, item 3): the share of build's rejections that validate rejects too (target: at least
99%), and how many edits validate rejects that build accepts (target: none).

Each edit is validated (`graphspec.load`) and built (graphspec's build, compiled, without
validate's checks: Keras's own answer; see tests/fixtures/agreement.py), in this process, with
Keras's session cleared between builds.

Run alone: `python bench/run.py agreement`, or `python bench/bench_agreement.py` to print every
edit build rejects and validate does not, grouped by kind (`--recorded`: build's verdicts read
from the record instead of built, in seconds, for a change to validate). `--write` also records each edit's
build verdict in tests/fixtures/agreement_builds.json, which tests/test_agreement.py compares
validate with on the whole corpus (and re-checks by building a sample).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

from fixtures import agreement  # noqa: E402
from harness import Row  # noqa: E402

COMMAND = "python bench/run.py agreement"
TARGET = 0.99


def measure(edits: list[agreement.Edit], progress: bool = False, recorded: dict | None = None) -> dict:
    """Both verdicts on each edit, the counts of each class, and the time builds took; with
    `recorded` (agreement_builds.json), build's verdicts are read from it instead."""
    results = []
    build_seconds = validate_seconds = 0.0
    for n, edit in enumerate(edits):
        start = time.perf_counter()
        validate = agreement.validate_verdict(edit)
        middle = time.perf_counter()
        if recorded is None:
            build = agreement.build_verdict(edit)
        else:
            build = agreement.Verdict(recorded[str(edit.id)]["error"])
        validate_seconds += middle - start
        build_seconds += time.perf_counter() - middle
        results.append((edit, validate, build, agreement.classify(validate, build)))
        if progress and (n + 1) % 100 == 0:
            print(f"  {n + 1} edits, {build_seconds:.0f} s of builds", file=sys.stderr, flush=True)
    return {
        "results": results,
        "counts": Counter(c for *_, c in results),
        "build_seconds": build_seconds,
        "validate_seconds": validate_seconds,
    }


def run() -> list[Row]:
    edits = agreement.read()
    m = measure(edits)
    counts = m["counts"]
    share = agreement.agreement(counts)
    rejected = counts["both_reject"] + counts["build_only"]
    crashes = sum(1 for _, v, _, _ in m["results"] if v.crashed)
    measured = (
        f"{share:.1%} ({counts['both_reject']} of {rejected} build rejections); "
        f"validate-only rejections: {counts['validate_only']}; validate crashes: {crashes}"
    )
    baseline = (
        f"{len(edits)} edits: {counts['both_accept']} accepted by both, {counts['build_only']} build-only "
        f"rejections; builds {m['build_seconds']:.0f} s, validates {m['validate_seconds']:.1f} s"
    )
    met = share is not None and share >= TARGET and counts["validate_only"] == 0 and crashes == 0
    return [
        Row(
            "validate rejects what build rejects (1,000 single edits)",
            measured,
            baseline,
            share,
            ">= 99%, and 0 validate-only",
            met,
            COMMAND,
        )
    ]


def main(argv: list[str]) -> int:
    edits = agreement.read()
    recorded = json.loads(agreement.BUILDS.read_text()) if "--recorded" in argv else None
    m = measure(edits, progress=True, recorded=recorded)
    counts = m["counts"]
    print(f"{len(edits)} edits: {dict(counts)}")
    share = agreement.agreement(counts)
    if share is not None:
        print(f"validate rejects {share:.1%} of what build rejects")
    print(f"builds {m['build_seconds']:.1f} s, validates {m['validate_seconds']:.1f} s")
    by_kind: dict[str, list] = defaultdict(list)
    for edit, validate, build, verdict in m["results"]:
        if verdict in ("build_only", "validate_only"):
            by_kind[f"{verdict} {edit.kind}"].append((edit, validate, build))
        if validate.crashed:
            by_kind["validate crashed"].append((edit, validate, build))
    for kind, items in sorted(by_kind.items()):
        print(f"\n## {kind}: {len(items)}")
        for edit, validate, build in items:
            print(f"- {edit.description}\n    validate: {validate.error}\n    build: {build.error}")
    if "--write" in argv:
        record = {str(e.id): {"rejected": b.rejected, "error": b.error} for e, _, b, _ in m["results"]}
        agreement.BUILDS.write_text(json.dumps(record, indent=0, sort_keys=True) + "\n")
        print(f"wrote {agreement.BUILDS}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
