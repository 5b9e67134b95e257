"""`math:` nodes: a tensor expression, desugared into ordinary `op:` nodes at expansion time.

    z:  {math: "z_mean + exp(0.5 * z_log_var) * eps"}
    kl: {math: "-0.5 * sum(1 + lv - m ** 2 - exp(lv), axis=-1)", in: {m: z_mean, lv: z_log_var}}

The expression is Python's syntax read with `ast` over a short whitelist, as `${...}` expressions
are (expr.py): names, numbers, `+ - * / ** @`, unary `-` and `+`, and calls of the `keras.ops`
functions in the catalog's `ops` section with constant keyword (or positional) arguments. No
attributes, subscripts, lambdas or anything else; at most `expr.MAX_EXPRESSION` characters.

A name is a node or input, or a key of the node's `in:` mapping (an alias, the way to read a
node whose name has dots or an index: `in: {h: "lstm[1]"}`). Each operation becomes an op node
(`add`, `subtract`, `multiply`, `divide`, `power`, `matmul`, `negative`, or the function called);
a number is the op's argument (ops take Python scalars), a tensor its operand. The last node has
the math node's name, the others `NODE.1`, `NODE.2`, ... in the order they are computed.

Two steps: `with_references` (before blocks are expanded) writes every name the expression reads
into the node's `in:` mapping, so that blocks resolve them as they resolve any reference; then
`desugar` (after expansion) makes the op nodes, reporting problems at their column in the string.
"""

from __future__ import annotations

import ast
import functools
import math as pymath
import operator
from dataclasses import dataclass
from typing import Any

from graphspec import budget
from graphspec.errors import Diagnostics, Location, did_you_mean
from graphspec.spec import expr, ops
from graphspec.spec.params import PLACEHOLDER
from graphspec.spec.source import Path, Positions

MATH_KEYS = ("math", "in", "doc")
_OPERATORS = {
    ast.Add: "add",
    ast.Sub: "subtract",
    ast.Mult: "multiply",
    ast.Div: "divide",
    ast.Pow: "power",
    ast.MatMult: "matmul",
}
_FOLD = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Pow: operator.pow,
}
_ALLOWED = "names, numbers, + - * / ** @, unary -, and keras.ops functions with keyword arguments"


def parse(text: Any) -> expr.Expression:
    """The expression `text` parsed and checked against the whitelist; raises `expr.ExprError`,
    also when `text` is not a string (a list or a mapping written under `math:`)."""
    if not isinstance(text, str):
        raise expr.ExprError("'math' is an expression in a string", 0, 1)
    return _parse(text)


@functools.lru_cache(maxsize=4096)
def _parse(text: str) -> expr.Expression:
    # Cached: a block's expression is read once per copy of every use.
    if len(text) > expr.MAX_EXPRESSION:
        raise expr.ExprError(
            f"an expression is at most {expr.MAX_EXPRESSION} characters; this one has {len(text):,}",
            0,
            len(text),
        )
    lead = len(text) - len(text.lstrip())
    body = text.strip()
    if not body:
        raise expr.ExprError("'math' holds no expression", 0, max(1, len(text)))
    if "\n" in body or "\r" in body:
        raise expr.ExprError(
            "an expression is written on one line", body.index("\n" if "\n" in body else "\r")
        )
    try:
        tree = ast.parse(body, mode="eval").body
    except SyntaxError as exc:
        if not exc.offset:
            raise expr.ExprError("invalid expression: it ends too early", lead + len(body)) from None
        message = (exc.msg or "invalid syntax").replace("invalid syntax. ", "")
        raise expr.ExprError(
            f"invalid expression: {message}", min(lead + exc.offset - 1, lead + len(body) - 1)
        ) from None
    except (RecursionError, MemoryError, ValueError):
        raise expr.ExprError("expression is too complex", lead, len(body)) from None
    expression = expr.Expression(text, tree, lead)
    stack = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > expr.MAX_NESTING:
            where = expression.span(node) if hasattr(node, "col_offset") else (lead, len(body))
            raise expr.ExprError(f"an expression nests at most {expr.MAX_NESTING} deep", *where)
        if _flag(node):
            continue  # `is_causal=True`: a boolean only as a keyword argument, never an operand
        _check(expression, node)
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))
    return expression


def _flag(node: ast.AST) -> bool:
    return isinstance(node, ast.keyword) and isinstance(getattr(node.value, "value", None), bool)


def _check(expression: expr.Expression, node: ast.AST) -> None:
    if isinstance(node, (ast.operator, ast.unaryop, ast.expr_context, ast.keyword)):
        return  # checked with the node that holds them
    allowed = (ast.Constant, ast.Name, ast.BinOp, ast.UnaryOp, ast.Call, ast.Tuple, ast.List)
    if not isinstance(node, allowed):
        what = expr._WHAT.get(type(node), type(node).__name__)
        raise expr.ExprError(
            f"{what} cannot be used in a math expression", *expression.span(node), hint=_ALLOWED
        )
    if isinstance(node, ast.BinOp) and type(node.op) not in _OPERATORS:
        raise expr.ExprError(
            "this operator cannot be used in a math expression", *expression.span(node), hint=_ALLOWED
        )
    if isinstance(node, ast.UnaryOp) and not isinstance(node.op, (ast.USub, ast.UAdd)):
        raise expr.ExprError(
            "this operator cannot be used in a math expression", *expression.span(node), hint=_ALLOWED
        )
    if isinstance(node, ast.Constant) and (
        isinstance(node.value, bool) or not isinstance(node.value, (int, float, str, type(None)))
    ):
        raise expr.ExprError(f"{node.value!r} cannot be used in a math expression", *expression.span(node))
    if isinstance(node, ast.Constant) and (
        (isinstance(node.value, float) and not pymath.isfinite(node.value))
        or (isinstance(node.value, int) and abs(node.value) > expr.MAX_INT)
    ):
        raise expr.ExprError("this number is too large", *expression.span(node))
    if isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name):
            raise expr.ExprError(
                "only keras.ops functions can be called, by name", *expression.span(node.func), hint=_ALLOWED
            )
        if ops.op(node.func.id) is None:
            raise expr.ExprError(
                f"'{node.func.id}' is not a keras.ops function a spec can use",
                *expression.span(node.func),
                hint=did_you_mean(node.func.id, ops.op_names()),
            )
        for keyword in node.keywords:
            if keyword.arg is None:
                raise expr.ExprError("'**' arguments cannot be used", *expression.span(keyword.value))


def names(text: str) -> list[tuple[str, int, int]]:
    """The names an expression reads (not the functions it calls): (name, offset, length) in
    the order written; [] when it does not parse (`desugar` reports that). A `${...}` in the
    text reads as a number, so a block's expression can be read before its params are known."""
    if not isinstance(text, str):
        return []  # not an expression at all: `desugar` reports that at its line
    blanked = PLACEHOLDER.sub(lambda m: "0".ljust(len(m.group(0))), text)
    try:
        expression = parse(blanked)
    except expr.ExprError:
        return []
    called = {id(n.func) for n in ast.walk(expression.tree) if isinstance(n, ast.Call)}
    found = [
        (n.id, *expression.span(n))
        for n in ast.walk(expression.tree)
        if isinstance(n, ast.Name) and id(n) not in called
    ]
    return sorted(found, key=lambda item: item[1])


def with_references(node: dict, path: Path, positions: Positions, diagnostics: Diagnostics) -> dict:
    """The math node `node` (written at `path`) with every name its expression reads in its
    `in:` mapping (`{name: name}` beside the aliases written there)."""
    inbound = node.get("in", {})
    if not isinstance(inbound, dict):
        diagnostics.error(
            "a math node's 'in' is a mapping of the names its expression uses to references",
            positions.of(path + ("in",)),
            hint="write in: {x: node} and use x in the expression; or name nodes in it directly",
        )
        return node
    added = dict(inbound)
    for name, offset, length in names(node.get("math")):
        if name not in added:
            added[name] = name
            where = _column(positions.of(path + ("math",)), node["math"], offset, length)
            if where is not None:
                positions.values[path + ("in", name)] = where
    return {**node, "in": added}


def _column(loc: Location | None, text: str, offset: int, length: int) -> Location | None:
    """Where characters `offset`..`offset + length` of the string `text`, written at `loc`, are."""
    if loc is None:
        return None
    # Made field by field: `dataclasses.replace` costs several times more, once per operand.
    if loc.length == len(text) + 2:  # quoted: the text starts after the quote
        return Location(loc.file, loc.line, loc.col + 1 + offset, length, loc.expansion)
    if loc.length == len(text):
        return Location(loc.file, loc.line, loc.col + offset, length, loc.expansion)
    return loc  # the written text was changed (a `${...}` computed): point at all of it


@dataclass
class _Op:
    name: str
    node: dict
    at: Location | None
    operands: dict[str, Location | None]


class _Desugarer:
    def __init__(self, name: str, node: dict, loc: Location | None):
        self.name = name
        self.text = node["math"]
        self.aliases = node.get("in", {}) if isinstance(node.get("in"), dict) else {}
        self.loc = loc
        self.made: list[_Op] = []

    def at(self, expression: expr.Expression, node: ast.AST) -> Location | None:
        return _column(self.loc, self.text, *expression.span(node))

    def run(self) -> list[_Op]:
        expression = parse(self.text)
        value = self.value(expression, expression.tree)
        if not isinstance(value, _Tensor):
            raise expr.ExprError("a math expression computes a tensor: it reads no node", 0, len(self.text))
        if value.op is None:
            raise expr.ExprError(
                "a math expression computes something: this one only names a node",
                *expression.span(expression.tree),
                hint="read the node itself where this one is used",
            )
        self.made[-1].name = self.name  # the last operation is the node itself
        return self.made

    def value(self, expression: expr.Expression, node: ast.AST) -> Any:
        """A `_Tensor` (a reference) or a constant, for `node`; op nodes are added to `made`."""
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, (ast.Tuple, ast.List)):
            items = [self.value(expression, item) for item in node.elts]
            if any(isinstance(item, _Tensor) for item in items):
                raise expr.ExprError("a list of tensors cannot be an operand here", *expression.span(node))
            return items
        if isinstance(node, ast.Name):
            reference = self.aliases.get(node.id, node.id)
            return _Tensor(
                reference if isinstance(reference, str) else node.id, self.at(expression, node), None
            )
        if isinstance(node, ast.UnaryOp):
            operand = self.value(expression, node.operand)
            if isinstance(node.op, ast.UAdd):
                return operand
            if not isinstance(operand, _Tensor):
                return _fold(expression, node, operator.neg, operand)
            return self.make(expression, node, "negative", [("x", operand)])
        if isinstance(node, ast.BinOp):
            left, right = self.value(expression, node.left), self.value(expression, node.right)
            if not isinstance(left, _Tensor) and not isinstance(right, _Tensor):
                if type(node.op) not in _FOLD:
                    raise expr.ExprError("'@' takes tensors", *expression.span(node))
                return _fold(expression, node, _FOLD[type(node.op)], left, right)
            return self.make(expression, node, _OPERATORS[type(node.op)], [("x1", left), ("x2", right)])
        assert isinstance(node, ast.Call)
        function = node.func.id
        entry = ops.op(function)
        params = entry["args"]
        given: list[tuple[str, Any]] = []
        for i, argument in enumerate(node.args):
            if i >= len(params) or params[i] == entry.get("variadic"):
                raise expr.ExprError(
                    f"{function}() takes at most {len(params)} arguments here", *expression.span(argument)
                )
            given.append((params[i], self.value(expression, argument)))
        keywords = {}
        for keyword in node.keywords:
            if keyword.arg not in params:
                raise expr.ExprError(
                    f"{function}() has no argument '{keyword.arg}'",
                    *expression.span(keyword),
                    hint=did_you_mean(keyword.arg, params) or "it takes: " + ", ".join(params),
                )
            if keyword.arg in keywords or keyword.arg in dict(given):
                raise expr.ExprError(
                    f"{function}() is given '{keyword.arg}' twice", *expression.span(keyword.value)
                )
            keywords[keyword.arg] = self.value(expression, keyword.value)
        return self.make(expression, node, function, given + list(keywords.items()))

    def make(self, expression: expr.Expression, node: ast.AST, function: str, values: list) -> _Tensor:
        """An op node for `function` over `values` ((parameter, tensor or constant) pairs)."""
        entry = ops.op(function)
        tensors = [(p, v) for p, v in values if isinstance(v, _Tensor)]
        args = {p: v for p, v in values if not isinstance(v, _Tensor)}
        free = [p for p in entry["args"] if p not in args]
        if [p for p, _ in tensors] == free[: len(tensors)]:
            refs = [t.reference for _, t in tensors]
            inbound: Any = refs[0] if len(refs) == 1 else refs
            operand_paths = [("in",)] if len(refs) == 1 else [("in", i) for i in range(len(refs))]
        else:
            inbound = {p: t.reference for p, t in tensors}
            operand_paths = [("in", p) for p, _ in tensors]
        for param in entry["required"]:
            if param not in args and param not in dict(tensors):
                raise expr.ExprError(f"{function}() needs '{param}'", *expression.span(node))
        name = f"{self.name}.{len(self.made) + 1}"
        self.made.append(
            _Op(
                name,
                {"op": function, **args, "in": inbound},
                self.at(expression, node),
                {path: t.at for path, (_, t) in zip(operand_paths, tensors, strict=True)},
            )
        )
        return _Tensor(name, self.at(expression, node), function)


@dataclass
class _Tensor:
    reference: str
    at: Location | None
    op: str | None  # the op that makes it; None for a node or input read by name


def _fold(expression: expr.Expression, node: ast.AST, function: Any, *values: Any) -> Any:
    """Arithmetic on constants, bounded as `${...}` arithmetic is."""
    for value in values:
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise expr.ExprError(f"{value!r} is not a number", *expression.span(node))
    if function is operator.pow and abs(values[1]) > 64:
        raise expr.ExprError("an exponent of a constant is at most 64", *expression.span(node))
    try:
        result = function(*values)
    except (ZeroDivisionError, OverflowError, ValueError) as exc:
        raise expr.ExprError(f"cannot compute this: {exc}", *expression.span(node)) from None
    if isinstance(result, complex) or (isinstance(result, float) and not pymath.isfinite(result)):
        raise expr.ExprError("cannot compute this: the result is not a finite number", *expression.span(node))
    if isinstance(result, int) and abs(result) > expr.MAX_INT:
        raise expr.ExprError("cannot compute this: the result is too large", *expression.span(node))
    return result


def _operations(text: Any) -> int:
    """At most how many op nodes the expression `text` makes (0 when it does not parse)."""
    try:
        tree = parse(text).tree  # parses are cached
    except expr.ExprError:
        return 0
    return sum(isinstance(n, (ast.BinOp, ast.UnaryOp, ast.Call)) for n in ast.walk(tree))


def desugar(
    layers: dict, positions: Positions, diagnostics: Diagnostics, origins: dict | None = None
) -> dict:
    """`layers` (the expanded spec's) with each math node replaced by its op nodes, in place of
    it; their positions are the columns inside the expression. Problems go to `diagnostics`."""
    if not any(isinstance(node, dict) and "math" in node for node in layers.values()):
        return layers
    # Refused from an estimate before any is made: a block's expression times its copies.
    written = [(n, node) for n, node in layers.items() if isinstance(node, dict) and "math" in node]
    estimate = len(layers) + sum(_operations(node["math"]) for _, node in written)
    limit = budget.current().limits["nodes"]
    if estimate > limit:
        diagnostics.error(
            f"math nodes expand to about {estimate:,} nodes; a spec may have at most {limit:,}",
            positions.key_of(("layers", written[0][0])),
            hint="check the repeat counts of the blocks that hold them; " + budget.option_hint("nodes"),
        )
        return layers
    result: dict[str, Any] = {}
    for name, node in layers.items():
        if not (isinstance(node, dict) and "math" in node):
            result[name] = node
            continue
        path = ("layers", name)
        extra = [key for key in node if key not in MATH_KEYS]
        if extra:
            diagnostics.error(
                f"a math node has only {', '.join(MATH_KEYS)}; '{extra[0]}' is not one of them",
                positions.key_of(path + (extra[0],)),
            )
            continue
        loc = positions.of(path + ("math",))
        try:
            made = _Desugarer(name, node, loc).run()
        except expr.ExprError as exc:
            text = node["math"] if isinstance(node["math"], str) else ""
            diagnostics.error(exc.message, _column(loc, text, exc.offset, exc.length), exc.hint)
            continue
        taken = next((op.name for op in made[:-1] if op.name in layers or op.name in result), None)
        if taken is not None:
            diagnostics.error(
                f"math node '{name}' names a step '{taken}', which is also the name of another layer",
                positions.key_of(path),
                hint="rename that layer, or this node",
            )
            continue
        for op in made:
            target = ("layers", op.name)
            if op.name != name:
                positions.keys[target] = op.at
                if origins is not None and name in origins:
                    origins[op.name] = origins[name]
            for operand, at in op.operands.items():
                alias = _alias_position(positions, path, node, op, operand)
                positions.values[target + operand] = alias or at
            result[op.name] = op.node
    return result


def _alias_position(positions: Positions, path: Path, node: dict, op: _Op, operand: tuple) -> Location | None:
    """Where the reference an operand reads is written, when through an `in:` alias."""
    inbound = op.node["in"]
    reference = inbound
    for step in operand[1:]:
        reference = reference[step]
    for alias, value in (node.get("in") or {}).items():
        if value == reference and alias != value:
            return positions.of(path + ("in", alias))
    return None
