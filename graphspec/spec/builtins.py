"""graphspec's own named objects a spec may use beside Keras's, with their arguments.

Described as data here so validation needs no Keras; implemented in `graphspec/keras/`.
"""

from __future__ import annotations

from typing import Any, NamedTuple

BUILTIN_CALLBACKS: dict[str, dict] = {
    # The book's custom callback: every layer's activations on the first validation sample,
    # saved as .npz at each epoch's end (in `directory`, relative to the run directory).
    "ActivationLogger": {
        "args": ["directory"],
        "required": [],
        "capabilities": {"directory": "write"},
        "resource_defaults": {"directory": "activations"},
    },
}

# Declarative learning-rate schedules for LearningRateScheduler's `schedule`, which in Keras is
# a Python function and so cannot be written in a spec. Argument names are those of Keras's
# ExponentialDecay and CosineDecay, counted in epochs instead of steps; `initial_learning_rate`
# defaults to the optimizer's learning rate.
SCHEDULES: dict[str, dict] = {
    # initial_learning_rate * decay_rate ** floor(epoch / decay_steps)
    "step": {
        "args": ["initial_learning_rate", "decay_rate", "decay_steps"],
        "required": ["decay_rate", "decay_steps"],
    },
    # initial_learning_rate * decay_rate ** (epoch / decay_steps)
    "exponential": {
        "args": ["initial_learning_rate", "decay_rate", "decay_steps"],
        "required": ["decay_rate"],
    },
    # Keras's CosineDecay: from initial_learning_rate down to alpha * it over decay_steps epochs.
    "cosine": {"args": ["initial_learning_rate", "decay_steps", "alpha"], "required": ["decay_steps"]},
}

# Arguments that must be numbers, and the ones of those that must be positive.
_NUMBERS = {"initial_learning_rate", "decay_rate", "decay_steps", "alpha"}
_POSITIVE = {"initial_learning_rate", "decay_rate", "decay_steps"}


def schedule_schema() -> dict:
    """The JSON Schema of a declarative `schedule`, for editors: what `schedule_problems`
    checks (its kinds, each one's arguments and required ones, numbers and positive numbers)."""
    kinds = []
    for kind, entry in SCHEDULES.items():
        properties: dict[str, dict] = {"type": {"const": kind}}
        for arg in entry["args"]:
            properties[arg] = {"type": "number", **({"exclusiveMinimum": 0} if arg in _POSITIVE else {})}
        kinds.append(
            {
                "type": "object",
                "properties": properties,
                "required": ["type", *entry["required"]],
                "additionalProperties": False,
            }
        )
    return {
        "description": "the learning rate by epoch, described: {type: step | exponential | cosine, "
        "...} (Keras's schedule is a Python function, which a spec cannot hold)",
        "anyOf": kinds,
    }


class Problem(NamedTuple):
    """One problem in a callback's arguments: message, path below the callback, hint, at-key."""

    message: str
    path: tuple
    hint: str | None = None
    key: bool = False


def callback_problems(type_name: str, args: dict[str, Any]) -> list[Problem]:
    """Problems in a callback's argument values that names alone do not show.

    Argument names are checked against the catalog elsewhere; here, the values that graphspec
    itself interprets: LearningRateScheduler's declarative `schedule`.

    >>> callback_problems("LearningRateScheduler", {"schedule": {"type": "step", "decay_rate": 0.5}})
    [Problem(message="schedule 'step' needs argument 'decay_steps'", path=('schedule',), hint=None, key=True)]
    """
    if type_name == "LearningRateScheduler" and "schedule" in args:
        return schedule_problems(args["schedule"])
    return []


def schedule_problems(schedule: Any) -> list[Problem]:
    """Problems of a `schedule: {type: step | exponential | cosine, ...}` description."""
    from graphspec.errors import did_you_mean

    where = ("schedule",)
    kinds = ", ".join(SCHEDULES)
    if not isinstance(schedule, dict):
        return [
            Problem(
                "'schedule' is a description, not code: write {type: step, decay_rate: 0.5, decay_steps: 10}",
                where,
                f"schedule types: {kinds}",
            )
        ]
    kind = schedule.get("type")
    if kind not in SCHEDULES:
        if kind is None:
            return [Problem("schedule needs a 'type'", where, f"schedule types: {kinds}", key=True)]
        return [
            Problem(
                f"unknown schedule type '{kind}'",
                where + ("type",),
                did_you_mean(str(kind), SCHEDULES) or f"schedule types: {kinds}",
            )
        ]
    entry = SCHEDULES[kind]
    problems = []
    for arg, value in schedule.items():
        if arg == "type":
            continue
        if arg not in entry["args"]:
            problems.append(
                Problem(
                    f"schedule '{kind}' has no argument '{arg}'",
                    where + (arg,),
                    did_you_mean(arg, entry["args"]) or "its arguments: " + ", ".join(entry["args"]),
                    key=True,
                )
            )
        elif arg in _NUMBERS and (isinstance(value, bool) or not isinstance(value, (int, float))):
            problems.append(
                Problem(f"schedule '{kind}': '{arg}' must be a number, got {value!r}", where + (arg,))
            )
        elif arg in _POSITIVE and value <= 0:
            problems.append(
                Problem(f"schedule '{kind}': '{arg}' must be positive, got {value!r}", where + (arg,))
            )
    for arg in entry["required"]:
        if arg not in schedule:
            problems.append(Problem(f"schedule '{kind}' needs argument '{arg}'", where, key=True))
    return problems
