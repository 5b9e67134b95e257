"""Expressions inside `${...}`: `${width * 4}`, `${width // heads}`, `${ceil(3 * depth)}`.

An expression is Python's expression syntax, read with `ast` and evaluated by a walk of our own
over a short whitelist: numbers, booleans, strings and None; names (params); `+ - * / // % **`;
unary `- + not`; comparisons; `and`/`or`; `a if c else b`; and calls of the functions in
`FUNCTIONS`. Nothing else (attributes, subscripts, lambdas, comprehensions) is accepted, so an
expression cannot reach any Python object: it computes a value and nothing more.

Every result is bounded: an integer past 2**63 in magnitude, or a float that is not finite, is an
error, and `**` is refused before it is computed when its result would be past that bound, so
`10 ** 10 ** 10` is an error, not a hang. The text of one expression is at most
`MAX_EXPRESSION` characters. Arithmetic takes numbers only: a string or a list times a number
would be a way to build a huge value.

Errors are `ExprError`, with the offset and length of the offending sub-expression inside the
expression's text, so that the caller can point at its column in the spec.
"""

from __future__ import annotations

import ast
import functools
import math
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from graphspec.errors import did_you_mean

MAX_EXPRESSION = 500  # characters between `${` and `}`: a real one is a few dozen
MAX_INT = 2**63  # integers past this in magnitude are refused: no layer takes one
MAX_ROUND_DIGITS = 20  # round(x, n): Python computes 10**-n for a negative n
MAX_NESTING = 100  # levels of the syntax tree: `${-(-(-(...)))}`


class ExprError(Exception):
    """An expression that is not valid or cannot be evaluated.

    `offset` and `length` locate the offending sub-expression in the expression's text
    (0-based, in characters); `hint` is a suggestion or None.
    """

    def __init__(self, message: str, offset: int = 0, length: int = 1, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.offset = offset
        self.length = max(1, length)
        self.hint = hint


def make_divisible(v: float, divisor: int = 8, min_value: int | None = None) -> int:
    """`v` rounded to the nearest multiple of `divisor`, at least `min_value` (default: the
    divisor) and never below 90% of `v`: the channel rounding of MobileNet and EfficientNet.

    >>> make_divisible(32 * 1.4), make_divisible(17), make_divisible(3, 8, 16)
    (48, 16, 16)
    """
    new_v = max(min_value or divisor, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


def make_divisible_up(v: float, divisor: int = 8, min_value: int | None = None) -> int:
    """`v` rounded up to a multiple of `divisor`, at least `min_value` (default: the divisor):
    the channel rounding of YOLO (Ultralytics' `make_divisible`, `ceil(v / divisor) * divisor`).

    >>> make_divisible_up(512 * 0.3), make_divisible(512 * 0.3), make_divisible_up(3, 8, 16)
    (160, 152, 16)
    """
    if divisor <= 0:
        raise ValueError("divisor must be positive")
    return max(min_value or divisor, math.ceil(v / divisor) * divisor)


def _round(x: float, ndigits: int | None = None) -> float:
    if ndigits is not None and (not _is_int(ndigits) or abs(ndigits) > MAX_ROUND_DIGITS):
        raise ValueError(f"round's digits must be an integer from -{MAX_ROUND_DIGITS} to {MAX_ROUND_DIGITS}")
    return round(x) if ndigits is None else round(x, ndigits)


def _extreme(pick: Callable) -> Callable:
    def call(*values: Any) -> Any:
        # min(list) as in Python, when a param holds a list of numbers.
        items = values[0] if len(values) == 1 and isinstance(values[0], list) else values
        if not items:
            raise ValueError(f"{pick.__name__}() needs at least one value")
        for item in items:
            _need_number(item, f"{pick.__name__}()")
        return pick(items)

    return call


# name -> (function, the keyword arguments it accepts)
FUNCTIONS: dict[str, tuple[Callable, tuple[str, ...]]] = {
    "min": (_extreme(min), ()),
    "max": (_extreme(max), ()),
    "round": (_round, ("ndigits",)),
    "floor": (math.floor, ()),
    "ceil": (math.ceil, ()),
    "int": (int, ()),
    "make_divisible": (make_divisible, ("divisor", "min_value")),
    "make_divisible_up": (make_divisible_up, ("divisor", "min_value")),
}

_BINARY = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_COMPARE = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
}
_SYMBOLS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//", ast.Mod: "%"}
_SYMBOLS[ast.Pow] = "**"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float))  # booleans count, as in Python: True + 1 == 2


def _need_number(value: Any, where: str) -> None:
    if not _is_number(value):
        raise TypeError(f"{where} takes numbers, got {_describe(value)}")


def _describe(value: Any) -> str:
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, (list, dict)):
        return "a list" if isinstance(value, list) else "a mapping"
    return repr(value)


@dataclass(frozen=True)
class Expression:
    """A parsed expression: its text (as written between `${` and `}`) and its syntax tree."""

    text: str
    tree: ast.expr
    lead: int  # characters of leading space, which `ast` does not see

    @functools.cached_property
    def _names(self) -> list[tuple[str, int, int]]:
        found = [
            (node.id, *self.span(node))
            for node in ast.walk(self.tree)
            if isinstance(node, ast.Name) and node.id not in FUNCTIONS
        ]
        return sorted(found, key=lambda item: item[1])

    def names(self) -> list[tuple[str, int, int]]:
        """Each param the expression names: (name, offset, length), in the order written."""
        return self._names

    def span(self, node: ast.AST) -> tuple[int, int]:
        """Where `node` is written in `text`: (offset, length) in characters."""
        raw = self.text[self.lead :].encode("utf-8")
        start = len(raw[: node.col_offset].decode("utf-8", "replace"))
        if getattr(node, "end_lineno", None) == node.lineno and node.end_col_offset is not None:
            end = len(raw[: node.end_col_offset].decode("utf-8", "replace"))
        else:
            end = start + 1
        return self.lead + start, end - start


@functools.lru_cache(maxsize=4096)
def parse(text: str) -> Expression:
    """The expression `text` parsed and checked against the whitelist; raises `ExprError`.

    Parses are cached: a block's expressions are evaluated once per copy of every use.
    """
    if len(text) > MAX_EXPRESSION:
        raise ExprError(
            f"an expression is at most {MAX_EXPRESSION} characters; this one has {len(text):,}", 0, len(text)
        )
    lead = len(text) - len(text.lstrip())
    body = text.strip()
    if not body:
        raise ExprError("'${}' holds no expression", 0, len(text))
    if "\n" in body or "\r" in body:
        raise ExprError(
            "an expression is written on one line", body.index("\n" if "\n" in body else "\r") + lead
        )
    try:
        tree = ast.parse(body, mode="eval").body
    except SyntaxError as exc:
        if not exc.offset:  # Python reports an expression that stops short at offset 0
            raise ExprError("invalid expression: it ends too early", lead + len(body)) from None
        return _raise_syntax(exc, min(lead + exc.offset - 1, lead + len(body) - 1))
    except (RecursionError, MemoryError, ValueError):
        raise ExprError("expression is too complex", lead, len(body)) from None
    expression = Expression(text, tree, lead)
    # The checks and the evaluation recurse once per level: deeper than this is refused first.
    stack = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_NESTING:
            raise ExprError(f"an expression nests at most {MAX_NESTING} deep", *expression.span(node))
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))
    _check(expression, tree)
    return expression


def _raise_syntax(exc: SyntaxError, offset: int) -> Any:
    message = (exc.msg or "invalid syntax").replace("invalid syntax. ", "")
    raise ExprError(f"invalid expression: {message}", offset) from None


def _check(expression: Expression, node: ast.AST) -> None:
    """Refuse any syntax outside the whitelist, at the node that uses it."""
    allowed = (
        ast.Constant,
        ast.Name,
        ast.BinOp,
        ast.UnaryOp,
        ast.Compare,
        ast.BoolOp,
        ast.IfExp,
        ast.Call,
    )
    if not isinstance(node, allowed):
        what = _WHAT.get(type(node), type(node).__name__)
        raise ExprError(f"{what} cannot be used in an expression", *expression.span(node), hint=_ALLOWED)
    if isinstance(node, ast.Constant) and not isinstance(node.value, (int, float, str, type(None))):
        raise ExprError(f"{node.value!r} cannot be used in an expression", *expression.span(node))
    if isinstance(node, ast.BinOp) and type(node.op) not in _BINARY:
        raise ExprError(
            "this operator cannot be used in an expression", *expression.span(node), hint=_ALLOWED
        )
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Invert):
        raise ExprError("'~' cannot be used in an expression", *expression.span(node), hint=_ALLOWED)
    if isinstance(node, ast.Compare) and any(type(op) not in _COMPARE for op in node.ops):
        raise ExprError(
            "only == != < <= > >= compare in an expression", *expression.span(node), hint=_ALLOWED
        )
    if isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name):
            _check(expression, node.func)  # says what it is: a lambda, an attribute, ...
        name = node.func.id if isinstance(node.func, ast.Name) else None
        if name not in FUNCTIONS:
            hint = did_you_mean(name, FUNCTIONS) if name else None
            raise ExprError(
                f"'{name}' is not a function an expression can call"
                if name
                else "only named functions can be called",
                *expression.span(node.func),
                hint=hint or "functions: " + ", ".join(FUNCTIONS),
            )
        keywords = FUNCTIONS[name][1]
        for keyword in node.keywords:
            if keyword.arg not in keywords:
                raise ExprError(
                    f"{name}() takes no argument '{keyword.arg}'"
                    if keyword.arg
                    else f"{name}() cannot take '**' arguments",
                    *expression.span(keyword.value),
                    hint="its named arguments: " + ", ".join(keywords) if keywords else None,
                )
        for argument in node.args:
            if isinstance(argument, ast.Starred):
                raise ExprError("'*' arguments cannot be used in an expression", *expression.span(argument))
        children = list(node.args) + [k.value for k in node.keywords]
    else:
        children = list(ast.iter_child_nodes(node))
    for child in children:
        if isinstance(child, (ast.operator, ast.unaryop, ast.cmpop, ast.boolop, ast.expr_context)):
            continue
        _check(expression, child)


_ALLOWED = (
    "an expression has numbers, params, + - * / // % **, comparisons, and/or/not, "
    "'a if c else b' and calls of min, max, round, floor, ceil, int, make_divisible, make_divisible_up"
)
_WHAT = {
    ast.Attribute: "an attribute ('.')",
    ast.Subscript: "a subscript ('[...]')",
    ast.Lambda: "a lambda",
    ast.ListComp: "a comprehension",
    ast.SetComp: "a comprehension",
    ast.DictComp: "a comprehension",
    ast.GeneratorExp: "a comprehension",
    ast.List: "a list",
    ast.Tuple: "a tuple",
    ast.Dict: "a mapping",
    ast.Set: "a set",
    ast.JoinedStr: "an f-string",
    ast.NamedExpr: "':='",
    ast.Await: "'await'",
    ast.Yield: "'yield'",
    ast.Starred: "'*'",
}


def evaluate(expression: Expression, names: Mapping[str, Any]) -> Any:
    """The value of `expression` with each name taken from `names`; raises `ExprError`."""
    return _Evaluator(expression, names).value(expression.tree)


class _Evaluator:
    def __init__(self, expression: Expression, names: Mapping[str, Any]):
        self.expression = expression
        self.names = names

    def fail(self, message: str, node: ast.AST, hint: str | None = None) -> ExprError:
        return ExprError(message, *self.expression.span(node), hint=hint)

    def value(self, node: ast.AST) -> Any:
        result = self._value(node)
        if _is_int(result) and abs(result) > MAX_INT:
            raise self.fail(f"the result is past 2**63 in magnitude: {_short(result)}", node)
        if isinstance(result, complex):  # (-8) ** 0.5
            raise self.fail("the result is not a real number", node)
        if isinstance(result, float) and not math.isfinite(result):
            raise self.fail(f"the result is not a finite number ({result})", node)
        return result

    def _value(self, node: ast.AST) -> Any:
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name):
            if node.id not in self.names:
                raise self.fail(
                    f"'{node.id}' names no param",
                    node,
                    hint=did_you_mean(node.id, self.names) or _declared(self.names),
                )
            return self.names[node.id]
        if isinstance(node, ast.BinOp):
            return self._binary(node)
        if isinstance(node, ast.UnaryOp):
            operand = self.value(node.operand)
            if isinstance(node.op, ast.Not):
                return not operand
            self._number(operand, node.operand, "'-'" if isinstance(node.op, ast.USub) else "'+'")
            return -operand if isinstance(node.op, ast.USub) else +operand
        if isinstance(node, ast.Compare):
            left = self.value(node.left)
            for op, right_node in zip(node.ops, node.comparators, strict=True):
                right = self.value(right_node)
                try:
                    if not _COMPARE[type(op)](left, right):
                        return False
                except TypeError:
                    raise self.fail(
                        f"cannot compare {_describe(left)} with {_describe(right)}", node
                    ) from None
                left = right
            return True
        if isinstance(node, ast.BoolOp):
            result = None
            for operand in node.values:
                result = self.value(operand)
                if isinstance(node.op, ast.And) and not result or isinstance(node.op, ast.Or) and result:
                    return result
            return result
        if isinstance(node, ast.IfExp):
            return self.value(node.body) if self.value(node.test) else self.value(node.orelse)
        return self._call(node)

    def _number(self, value: Any, node: ast.AST, what: str) -> None:
        if not _is_number(value):
            raise self.fail(f"{what} takes numbers, got {_describe(value)}", node)

    def _binary(self, node: ast.BinOp) -> Any:
        symbol = f"'{_SYMBOLS[type(node.op)]}'"
        left = self.value(node.left)
        self._number(left, node.left, symbol)
        right = self.value(node.right)
        self._number(right, node.right, symbol)
        if isinstance(node.op, ast.Pow) and _too_large_power(left, right):
            raise self.fail(f"the result is past 2**63 in magnitude: {left} ** {right}", node)
        try:
            return _BINARY[type(node.op)](left, right)
        except ZeroDivisionError:
            raise self.fail("division by zero", node) from None
        except (OverflowError, ValueError) as exc:
            raise self.fail(f"cannot compute this: {exc}", node) from None

    def _call(self, node: ast.Call) -> Any:
        name = node.func.id
        function = FUNCTIONS[name][0]
        args = [self.value(a) for a in node.args]
        kwargs = {k.arg: self.value(k.value) for k in node.keywords}
        if name not in ("min", "max"):
            for value, argument in zip(
                args + list(kwargs.values()), list(node.args) + [k.value for k in node.keywords], strict=True
            ):
                if value is not None or not name.startswith("make_divisible"):
                    self._number(value, argument, f"{name}()")
        try:
            return function(*args, **kwargs)
        except ZeroDivisionError:
            raise self.fail("division by zero", node) from None
        except (TypeError, ValueError, OverflowError) as exc:
            raise self.fail(f"{name}(): {exc}", node) from None


def _too_large_power(base: Any, exponent: Any) -> bool:
    """Whether `base ** exponent` would be past MAX_INT (or overflow a float): decided from the
    operands' sizes, before the power is computed."""
    if exponent <= 0 or abs(base) <= 1:
        return False
    if isinstance(base, float) or isinstance(exponent, float):
        return exponent * math.log2(abs(base)) > 1024  # a float's range
    return exponent * (abs(base).bit_length() - 1) > 63


def _short(value: int) -> str:
    digits = str(value) if value.bit_length() < 200 else f"about 2**{value.bit_length()}"
    return digits if len(digits) <= 40 else f"{digits[:20]}...({len(digits)} digits)"


def _declared(names: Mapping[str, Any]) -> str:
    shown = [n for n in names if n not in FUNCTIONS]
    return "declared params: " + ", ".join(shown) if shown else "there are no params here"
