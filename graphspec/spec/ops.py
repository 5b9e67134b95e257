"""Op nodes: `keras.ops` functions in the graph, `{op: add, in: [a, b]}`. No TensorFlow here.

An op node names a `keras.ops` function listed in the catalog's `ops` section. Its tensor
operands come from `in` and every other key is one of the function's arguments, by Keras's
name, as for a layer. `in` fills the function's parameters the way a call does:

- `in: x` or `in: [a, b]`: the tensors fill the parameters in the function's order, skipping
  those given as arguments; a variadic parameter (`einsum`'s `*operands`) takes the rest.
  `{op: einsum, subscripts: "ij,jk->ik", in: [a, b]}` is `keras.ops.einsum("ij,jk->ik", a, b)`.
- `in: {xs: [a, b]}`: operands by parameter name, for a parameter that takes a list of tensors
  (`concatenate`, `stack`) or one that does not come first.

The catalog records which parameters the operation's constructor takes (`init`) and which its
call does: the builder makes the same operation Keras saves, and `export` reads it back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from graphspec.errors import did_you_mean
from graphspec.spec import catalog


@dataclass(frozen=True)
class OperandProblem:
    """Why an op node's operands or arguments do not fit its function; `path` is inside the node."""

    message: str
    path: tuple
    hint: str | None = None
    key: bool = False


def op(name: str) -> dict | None:
    """The catalog entry of the `keras.ops` function `name`, or None when a spec cannot use it."""
    return catalog.catalog().get("ops", {}).get(name)


def op_names() -> list[str]:
    return list(catalog.catalog().get("ops", {}))


def operands(entry: dict, args: dict[str, Any], inbound: Any) -> tuple[dict[str, Any], list[OperandProblem]]:
    """Which parameter of the op each reference of `inbound` (an `in:` value) fills, and the
    problems found: unknown arguments, a parameter given twice, too many operands, a required
    parameter given by neither `in` nor an argument."""
    params, variadic = entry["args"], entry.get("variadic")
    problems: list[OperandProblem] = []
    for arg in args:
        if arg not in params:
            problems.append(
                OperandProblem(f"has no argument '{arg}'", (arg,), did_you_mean(arg, params), key=True)
            )
        elif arg == variadic:
            problems.append(
                OperandProblem(
                    f"takes '{arg}' from 'in', as tensors", (arg,), f"write in: [...] for '{arg}'", key=True
                )
            )
    filled: dict[str, Any] = {}
    if isinstance(inbound, dict):
        for param, reference in inbound.items():
            if param not in params:
                hint = did_you_mean(param, params) or "it takes: " + ", ".join(params)
                problems.append(OperandProblem(f"has no parameter '{param}'", ("in", param), hint, key=True))
            elif param in args:
                problems.append(
                    OperandProblem(
                        f"is given '{param}' twice, in 'in' and as an argument", ("in", param), key=True
                    )
                )
            else:
                filled[param] = reference
    else:
        references = [inbound] if isinstance(inbound, str) else list(inbound)
        free = [p for p in params if p not in args]
        for param in free:
            if not references:
                break
            if param == variadic:
                filled[param], references = references, []
            else:
                filled[param] = references.pop(0)
        if references:
            taken = ", ".join(p for p in free if p != variadic) or "none"
            problems.append(
                OperandProblem(
                    f"takes {len(free)} tensor operand{'s' if len(free) != 1 else ''} here ({taken}); "
                    f"'in' gives {len(filled) + len(references)}",
                    ("in",),
                )
            )
    for param in entry["required"]:
        if param not in args and param not in filled:
            problems.append(OperandProblem(f"needs '{param}'", (), key=True))
    return filled, problems
