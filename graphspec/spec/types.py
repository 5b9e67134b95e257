"""Argument values checked against the catalog's types, without Keras.

Each catalog entry has `types`: `{argument: JSON Schema fragment}`, with shared fragments in the
catalog's `$defs` (graphspec/keras/catalog_types.py writes them). This module checks a value
against a fragment by hand, for the few keywords those fragments use (`type`, `enum`, `anyOf`,
`not`, `$ref`, `minimum`, `maximum`, `exclusiveMinimum`, `exclusiveMaximum`, `items`,
`prefixItems`, `minItems`, `maxItems`, `minLength`, `maxLength`, `pattern`, `required`,
`properties`): a spec of a thousand layers is checked in milliseconds, with no schema library
to import.

Values are checked as the checks see them: after `${...}` substitution and block expansion, so
an expression's result is checked and reported where the expression is written.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from graphspec.errors import did_you_mean
from graphspec.spec import catalog

_REF = "#/$defs/"


@dataclass(frozen=True)
class Mismatch:
    """A value its argument's type refuses: why, in words that follow "argument 'units' ..."
    ("takes a positive integer, not -3"), where (a path below the argument's value, `()` for
    the value itself), and a did-you-mean hint where one helps."""

    message: str
    path: tuple = ()
    hint: str | None = None


def _defs() -> dict[str, dict]:
    return catalog.catalog().get("$defs", {})


def _resolve(fragment: dict) -> dict:
    while "$ref" in fragment:
        reference = fragment["$ref"]
        if not reference.startswith(_REF):
            return {}
        fragment = _defs().get(reference[len(_REF) :], {})
    return fragment


def _is_type(value: Any, name: str) -> bool:
    if name == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if name == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if name == "string":
        return isinstance(value, str)
    if name == "boolean":
        return isinstance(value, bool)
    if name == "null":
        return value is None
    if name == "array":
        return isinstance(value, list)
    if name == "object":
        return isinstance(value, dict)
    return True


def matches(value: Any, fragment: dict) -> bool:
    """Whether `value` is of type `fragment`."""
    fragment = _resolve(fragment)
    if "anyOf" in fragment and not any(matches(value, f) for f in fragment["anyOf"]):
        return False
    if "enum" in fragment and not any(_same(value, e) for e in fragment["enum"]):
        return False
    if "not" in fragment and matches(value, fragment["not"]):
        return False
    kinds = fragment.get("type")
    if kinds is not None:
        kinds = kinds if isinstance(kinds, list) else [kinds]
        if not any(_is_type(value, k) for k in kinds):
            return False
    if _is_type(value, "number"):
        bounded = any(k in fragment for k in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"))
        if bounded and value != value:  # NaN is within no bounds
            return False
        if "minimum" in fragment and value < fragment["minimum"]:
            return False
        if "maximum" in fragment and value > fragment["maximum"]:
            return False
        if "exclusiveMinimum" in fragment and value <= fragment["exclusiveMinimum"]:
            return False
        if "exclusiveMaximum" in fragment and value >= fragment["exclusiveMaximum"]:
            return False
    if isinstance(value, str) and not fragment.get("minLength", 0) <= len(value) <= fragment.get(
        "maxLength", len(value)
    ):
        return False
    if isinstance(value, str) and "pattern" in fragment and not re.search(fragment["pattern"], value):
        return False
    if isinstance(value, list):
        if len(value) < fragment.get("minItems", 0) or len(value) > fragment.get("maxItems", len(value)):
            return False
        if "items" in fragment and not all(matches(v, fragment["items"]) for v in value):
            return False
        # The first items' own types (an image factor's [low, high]); the catalog's fragments
        # never give both this and `items`, whose JSON Schema meanings differ.
        if not all(matches(v, f) for v, f in zip(value, fragment.get("prefixItems", ()), strict=False)):
            return False
    if isinstance(value, dict):
        if any(k not in value for k in fragment.get("required", ())):
            return False
        for key, inner in fragment.get("properties", {}).items():
            if key in value and not matches(value[key], inner):
                return False
    return True


_CONSTRAINTS = ("type", "enum", "anyOf", "not", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")
_CONSTRAINTS += (
    "items",
    "prefixItems",
    "minItems",
    "maxItems",
    "minLength",
    "maxLength",
    "pattern",
    "required",
    "properties",
)


def unconstrained(fragment: dict) -> bool:
    """Whether `fragment` takes every value: it only describes the argument (the catalog's
    `truth_value`, for an argument Keras reads as true or false, whatever it is)."""
    resolved = _resolve(fragment)
    return not any(k in resolved for k in _CONSTRAINTS)


def _same(value: Any, allowed: Any) -> bool:
    # `True == 1` in Python; an enum of strings or numbers never means a boolean.
    return value == allowed and isinstance(value, bool) == isinstance(allowed, bool)


def describe(fragment: dict) -> str:
    """What a value of type `fragment` is, in words ("a positive integer or null")."""
    resolved = _resolve(fragment)
    if "description" in resolved:
        return resolved["description"]
    if "anyOf" in resolved:
        parts = [describe(f) for f in resolved["anyOf"]]
        if len(parts) == 1:
            return parts[0]
        # "an activation name or a {type: ...} layer, or null": a comma where a part has an "or".
        last = ", or " if any(" or " in p for p in parts) else " or "
        return ", ".join(parts[:-1]) + last + parts[-1]
    if "enum" in resolved:
        shown = [show(e) for e in resolved["enum"]]
        return "one of " + ", ".join(shown) if len(shown) > 1 else shown[0]
    kind = resolved.get("type")
    if kind == "array":
        count = resolved.get("minItems")
        items = _plural(resolved.get("items", {}))
        if count is not None and count == resolved.get("maxItems"):
            return f"a list of {count} {items}"
        return f"a list of {items}"
    if kind == "object":
        return "a {type: ...} mapping" if "type" in resolved.get("required", ()) else "a mapping"
    if kind == "null":
        return "null"
    if kind in ("integer", "number"):
        noun = "an integer" if kind == "integer" else "a number"
        low, high = resolved.get("minimum"), resolved.get("maximum")
        if "exclusiveMaximum" in resolved and low is None:
            return f"{noun} below {show(resolved['exclusiveMaximum'])}"
        if "exclusiveMinimum" in resolved and high is None:
            return f"{noun} above {show(resolved['exclusiveMinimum'])}"
        if kind == "integer" and low == 1 and high is None:
            return "a positive integer"
        if low is not None and high is not None:
            return f"{noun} from {show(low)} to {show(high)}"
        if low is not None:
            return f"{noun} of at least {show(low)}"
        if high is not None:
            return f"{noun} of at most {show(high)}"
        return noun
    return {"string": "a string", "boolean": "true or false"}.get(kind, "a value")


def _plural(fragment: dict) -> str:
    """What the items of a list of `fragment` are ("positive integers")."""
    single = describe(fragment)
    for one, many in (("a positive integer", "positive integers"), ("an integer", "integers")):
        if single == one:
            return many
    return f"values each {single}"


def show(value: Any) -> str:
    """`value` as a spec's reader would write it in a message."""
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return ".nan" if value != value else (".inf" if value > 0 else "-.inf")  # as YAML writes them
    try:
        return json.dumps(value)
    except (TypeError, ValueError):  # a value YAML made that JSON has no form for (a date)
        return repr(value)


def _enums(fragment: dict) -> list[str]:
    """The strings `fragment` (or one of its alternatives) enumerates, for did-you-mean."""
    fragment = _resolve(fragment)
    found = [e for e in fragment.get("enum", ()) if isinstance(e, str)]
    for alternative in fragment.get("anyOf", ()):
        found += _enums(alternative)
    return found


def _object_type_enum(fragment: dict) -> list[str] | None:
    """The names a `{type: ...}` alternative of `fragment` takes, or None if it has none."""
    fragment = _resolve(fragment)
    for alternative in [fragment, *fragment.get("anyOf", ())]:
        alternative = _resolve(alternative)
        if alternative.get("type") == "object":
            inner = _resolve(alternative.get("properties", {}).get("type", {}))
            if "enum" in inner:
                return list(inner["enum"])
        elif "anyOf" in alternative and alternative is not fragment:
            found = _object_type_enum(alternative)
            if found is not None:
                return found
    return None


def mismatch(value: Any, fragment: dict) -> Mismatch | None:
    """Why `value` is not of type `fragment`, or None when it is (or cannot be known: a string
    still holding `${...}`, whose expression failed and was reported where it is written)."""
    if isinstance(value, str) and "${" in value:
        return None
    if matches(value, fragment):
        return None
    if isinstance(value, dict) and isinstance(value.get("type"), str):
        names = _object_type_enum(fragment)
        if names is not None and value["type"] not in names:
            return Mismatch(
                f"has unknown type {show(value['type'])}", ("type",), did_you_mean(value["type"], names)
            )
    hint = did_you_mean(value, _enums(fragment)) if isinstance(value, str) else None
    return Mismatch(f"takes {describe(fragment)}, not {show(value)}", (), hint)


def argument_mismatch(entry: dict, arg: str, value: Any, args: dict | None = None) -> Mismatch | None:
    """Why `value` is not of the type the catalog `entry` records for `arg`; None when it is,
    or when the catalog records no type for `arg`. With the node's or object's `args`, an
    argument Keras reads only when another is true (`types_when`: an application's classes
    with its top, an optimizer's `ema_momentum` with `use_ema`, a dropout's seed with a rate
    above 0) is checked where that one is, and one Keras refuses only where another is one word
    (`types_where`: a preprocessing layer's `sparse` where its `output_mode` is "int") there."""
    fragments = [entry.get("types", {}).get(arg)]
    if args is not None:
        for flag, typed in entry.get("types_when", {}).items():
            if arg in typed and flag_set(entry, args, flag):
                fragments.append(typed[arg])
        for other, words in entry.get("types_where", {}).items():
            word = args.get(other, entry.get("defaults", {}).get(other))
            if isinstance(word, str) and arg in words.get(word, {}):
                fragments.append(words[word][arg])
    # A conditional type narrows the argument's own (ModelCheckpoint's path ends in .weights.h5
    # with save_weights_only): the first it misses is told.
    for fragment in fragments:
        if fragment is not None and (wrong := mismatch(value, fragment)) is not None:
            return wrong
    return None


# What Python reads as false, as a spec writes it.
FALSE_VALUES: list[Any] = [False, 0, None, "", [], {}]


def flag_set(entry: dict, args: dict, flag: str) -> bool:
    """Whether argument `flag` of a node or object with `args` is true as Python reads it (its
    default where not written); not known while it holds a `${...}` whose expression failed."""
    value = args.get(flag, entry.get("defaults", {}).get(flag))
    return not (isinstance(value, str) and "${" in value) and bool(value)
