"""`graphspec ensemble`: trained models averaged, with weights fitted on validation data.

The validation data (.npz arrays, a folder of class subfolders or a table: what `train --data`
takes) is split (seeded) into a part that fits the weights and a held-out part that scores
them, so the reported scores are not the ones the weights were chosen on. Weights come from one
of two methods, both giving non-negative weights that sum to one:

- `caruana` (default): greedy forward selection with replacement (Caruana, Niculescu-Mizil,
  Crew and Ksikes, "Ensemble selection from libraries of models", ICML 2004). Start empty; add,
  again and again, the member whose addition scores best, a member may be added many times;
  keep the best ensemble met on the way. A member's weight is its share of the additions.
- `nelder-mead`: the weights, through a softmax, optimised directly by Nelder-Mead.

This module is NumPy and SciPy; the models are loaded, scored and saved by
`graphspec.keras.ensemble`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from graphspec import atomic
from graphspec.errors import SpecErrors
from graphspec.spec.load import DEFAULT_MAX_PARAMS

METHODS = ("caruana", "nelder-mead")
ENSEMBLE_MODEL, ENSEMBLE_FILE = "ensemble.keras", "ensemble.json"


@dataclass
class EnsembleOptions:
    """How the weights are fitted and scored."""

    method: str = "caruana"
    holdout: float = 0.5
    seed: int = 0
    metric: str | None = None
    iterations: int = 50
    # Members' model files are untrusted input: each may declare at most this many parameters.
    max_params: int | None = DEFAULT_MAX_PARAMS


@dataclass
class EnsembleResult:
    """Scores on the held-out part of the data, per member and for the ensemble, and the weights."""

    directory: Path
    model_path: Path
    members: list[Path]
    weights: list[float]
    member_scores: list[float]
    score: float
    score_name: str
    goal: str
    samples: dict[str, int] = field(default_factory=dict)


def caruana(score: Callable[[np.ndarray], float], members: int, iterations: int = 50) -> np.ndarray:
    """Weights by greedy forward selection with replacement; `score(weights)` is lower-better.

    Each round adds the member whose addition scores best; the weights returned are those of
    the best-scoring ensemble seen in any round (the first round is the best single member, so
    the result never scores worse than it on the data `score` sees).
    """
    counts = np.zeros(members)
    best, best_weights = np.inf, None
    for _ in range(iterations):
        total = counts.sum() + 1
        candidates = [score((counts + np.eye(members)[i]) / total) for i in range(members)]
        chosen = int(np.argmin(candidates))
        counts[chosen] += 1
        if candidates[chosen] < best:
            best, best_weights = candidates[chosen], counts / counts.sum()
    return best_weights


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - np.max(z))
    return e / e.sum()


def nelder_mead(score: Callable[[np.ndarray], float], members: int) -> np.ndarray:
    """Weights minimising `score` by Nelder-Mead, kept non-negative and summing to one through a
    softmax. Starts from equal weights; if it ends worse than the best single member on the same
    data, that member alone is returned."""
    from scipy.optimize import minimize

    start = np.zeros(members)
    # Unit steps: the default simplex around zero is too small to leave equal weights.
    simplex = np.vstack([start] + [np.eye(members)[i] for i in range(members)])
    found = minimize(
        lambda z: score(softmax(z)),
        start,
        method="Nelder-Mead",
        options={"initial_simplex": simplex, "maxiter": 400 * members, "xatol": 1e-4, "fatol": 1e-8},
    )
    weights = softmax(found.x)
    singles = [score(np.eye(members)[i]) for i in range(members)]
    if min(singles) < score(weights):
        return np.eye(members)[int(np.argmin(singles))]
    return weights


def split(count: int, holdout: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Sample indices for fitting the weights and for the held-out scores: a seeded shuffle."""
    held = int(round(count * holdout))
    if held < 1 or held >= count:
        raise SpecErrors.single(
            f"a holdout of {holdout} of {count} samples leaves one part empty",
            hint="give more validation samples, or another --holdout",
        )
    order = np.random.default_rng(seed).permutation(count)
    return np.sort(order[held:]), np.sort(order[:held])


def build_ensemble(
    runs: list[Path],
    data: Path,
    options: EnsembleOptions,
    *,
    out: Path | None = None,
    runs_root: Path = Path("runs"),
) -> EnsembleResult:
    """Fit the ensemble of the models in `runs` (run directories) on `data` (an .npz, a folder
    or a table) and save it.

        Raises `SpecErrors` (nothing written) for runs that are not run directories, members whose
        inputs or outputs do not match, data that does not fit them, or an unknown metric or method.
    """
    from graphspec import run_dir as rd

    if options.method not in METHODS:
        raise SpecErrors.single(f"unknown method '{options.method}'", hint="use " + " or ".join(METHODS))
    runs = [Path(r) for r in runs]
    if len(runs) < 2:
        raise SpecErrors.single(
            f"an ensemble needs at least two models, got {len(runs)}",
            hint="name run directories, or --study with --top 2 or more",
        )
    if len(set(r.resolve() for r in runs)) != len(runs):
        raise SpecErrors.single("a run directory is named twice")
    from graphspec.keras import ensemble as keras_ensemble

    members = keras_ensemble.load_members(runs, max_params=options.max_params)
    scorer = keras_ensemble.Scorer(members[0].loaded, options.metric)
    predictions, y = keras_ensemble.predicted_on(members, data)
    count = len(next(iter(y.values())))
    fit, held = split(count, options.holdout, options.seed)

    def fit_score(weights: np.ndarray) -> float:
        return scorer.loss(keras_ensemble.average(predictions, weights, fit), y, fit)

    if options.method == "caruana":
        weights = caruana(fit_score, len(members), options.iterations)
    else:
        weights = nelder_mead(fit_score, len(members))
    eye = np.eye(len(members))
    member_scores = [
        scorer.value(keras_ensemble.average(predictions, eye[i], held), y, held) for i in range(len(members))
    ]
    score = scorer.value(keras_ensemble.average(predictions, weights, held), y, held)

    name = members[0].loaded.name
    final = out if out is not None else _default_folder(name, runs_root)
    final = rd.final_path(name, final, runs_root)
    with rd.RunDirectory(final) as folder:
        model = keras_ensemble.averaged_model(members, weights, name)
        keras_ensemble.save(model, folder.path / ENSEMBLE_MODEL)
        record: dict[str, Any] = {
            "members": [str(r.resolve()) for r in runs],
            "weights": [float(w) for w in weights],
            "method": options.method,
            "holdout": options.holdout,
            "seed": options.seed,
            "data": str(Path(data).resolve()),
            "score": scorer.name,
            "goal": scorer.goal,
            "held_out": {"members": member_scores, "ensemble": score, "samples": int(len(held))},
            "fit_samples": int(len(fit)),
        }
        atomic.write_text(folder.path / ENSEMBLE_FILE, json.dumps(record, indent=2) + "\n")
        where = folder.commit()
    return EnsembleResult(
        where,
        where / ENSEMBLE_MODEL,
        runs,
        [float(w) for w in weights],
        member_scores,
        score,
        scorer.name,
        scorer.goal,
        {"fit": int(len(fit)), "held_out": int(len(held))},
    )


def _default_folder(name: str, runs_root: Path) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    from graphspec import run_dir as rd

    base = rd.checked_base(runs_root, name)
    path, count = base / f"ensemble-{stamp}", 1
    while path.exists():
        count += 1
        path = base / f"ensemble-{stamp}-{count}"
    return path


def members_from_study(study: str, study_name: str | None, top: int) -> list[Path]:
    """The run directories of the best `top` complete trials of a study: `study` is a tune folder,
    a database URL or a journal file."""
    import optuna

    from graphspec.tune import TUNE_FILE, open_storage, resume_settings, storage_location

    folder = Path(study)
    if "://" not in study and folder.is_dir():
        if not (folder / TUNE_FILE).is_file():
            raise SpecErrors.single(f"{study} is a folder without {TUNE_FILE}: not a tune folder")
        settings = resume_settings(folder)
        study, study_name = storage_location(settings, folder), study_name or settings["study"]
    elif "://" not in study and not folder.is_file():
        raise SpecErrors.single(
            f"no such study storage: {study}", hint="give a tune folder, a database URL or a journal file"
        )
    storage = open_storage(study)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    names = optuna.get_all_study_names(storage)
    if study_name is None:
        if len(names) != 1:
            raise SpecErrors.single(
                f"storage {study} holds {len(names)} studies: say which with --study-name",
                hint=("its studies: " + ", ".join(names)) if names else None,
            )
        study_name = names[0]
    if study_name not in names:
        raise SpecErrors.single(
            f"storage {study} holds no study '{study_name}'",
            hint=("its studies: " + ", ".join(names)) if names else None,
        )
    loaded = optuna.load_study(study_name=study_name, storage=storage)
    complete = [t for t in loaded.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))]
    if not complete:
        raise SpecErrors.single(f"study '{study_name}' has no complete trial")
    maximize = loaded.direction == optuna.study.StudyDirection.MAXIMIZE
    complete.sort(key=lambda t: -t.value if maximize else t.value)
    runs = []
    for trial in complete[:top]:
        run = trial.user_attrs.get("run_dir")
        if not run or not (Path(run) / "model.keras").is_file():
            raise SpecErrors.single(
                f"trial {trial.number} of study '{study_name}' has no run directory here "
                f"({run or 'none recorded'})",
                hint="a trial's run directory is on the machine that ran it",
            )
        runs.append(Path(run))
    return runs


def render(result: EnsembleResult) -> str:
    """The held-out scores of each member and of the ensemble, and the weights, as a table."""
    better = "lower" if result.goal == "minimize" else "higher"
    width = max(len(str(r)) for r in result.members)
    lines = [
        f"held-out {result.score_name} ({better} is better) on {result.samples['held_out']} samples; "
        f"weights fitted on {result.samples['fit']}:",
        f"  {'member'.ljust(width)}  {'weight':>7}  {'score':>10}",
    ]
    for run, weight, score in zip(result.members, result.weights, result.member_scores, strict=True):
        lines.append(f"  {str(run).ljust(width)}  {weight:7.3f}  {score:10.5g}")
    lines.append(f"  {'ensemble'.ljust(width)}  {sum(result.weights):7.3f}  {result.score:10.5g}")
    lines.append(f"saved {result.model_path}")
    return "\n".join(lines)
