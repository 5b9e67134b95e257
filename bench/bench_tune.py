"""Per-trial overhead of `graphspec tune`: everything a trial costs besides fitting its model.

A search over the book's MLP at the chapter's own size (specs/mlp_search.yaml: 1,000 samples,
10 epochs, 80% for training) runs in this process on synthetic teacher data, with pruning off so
every trial fits all its epochs. Each trial's wall time is Optuna's (from the trial's start to
its result stored: sampling, loading the spec with the trial's values, building, writing the run
directory, saving the model, the storage's writes); its fit time is measured by the callback
that reports to Optuna, from the first batch's start to the last epoch's end, less the
callback's own time (its writes to the storage count as overhead). The row is the median over
trials of (wall - fit) / wall; the target is under 10%.

Standalone: `.venv/bin/python bench/bench_tune.py` prints the rows.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

from harness import ROOT, Row, Timing, not_measured  # noqa: E402

SPEC = "specs/mlp_search.yaml"
TRIALS = 8
TARGET = 0.10
COMMAND = "python bench/run.py tune"


def run() -> list[Row]:
    name = "tune: per-trial overhead, mlp_search.yaml (book size)"
    target = f"< {TARGET:.0%} of trial time"
    if not (ROOT / SPEC).exists():
        return [not_measured(name, target, COMMAND, f"{SPEC} does not exist")]
    try:
        import optuna  # noqa: F401
    except ImportError:
        return [not_measured(name, target, COMMAND, "optuna is not installed")]
    from graphspec.keras.train import DataSource
    from graphspec.tune import open_storage
    from graphspec.tune import tune as run_tune

    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "tune"
        run_tune(
            ROOT / SPEC,
            DataSource(synthetic=True),
            overrides=["search.pruner=none", "search.seed=0"],
            trials=TRIALS,
            out=out,
            progress=False,
        )
        import optuna

        study = optuna.load_study(study_name="mlp_search", storage=open_storage(str(out / "study.log")))
        trials = [t for t in study.get_trials() if t.state == optuna.trial.TrialState.COMPLETE]
    walls = [(t.datetime_complete - t.datetime_start).total_seconds() for t in trials]
    fits = [float(t.user_attrs["fit_s"]) for t in trials]
    shares = [(wall - fit) / wall for wall, fit in zip(walls, fits, strict=True)]
    share = statistics.median(shares)
    overheads = Timing([wall - fit for wall, fit in zip(walls, fits, strict=True)])
    return [
        Row(
            name,
            f"{share:.1%} overhead: trial {Timing(walls)}, of which not fitting {overheads}",
            f"fitting alone: {Timing(fits)}",
            statistics.median(walls) / statistics.median(fits),
            target,
            share < TARGET,
            COMMAND,
            note=f"median of {len(trials)} trials; overhead share {min(shares):.1%}-{max(shares):.1%}",
        )
    ]


if __name__ == "__main__":
    for row in run():
        print(
            f"{row.name}: {row.measured} | baseline {row.baseline} | target {row.target} -> {row.verdict}"
            + (f" ({row.note})" if row.note else "")
        )
