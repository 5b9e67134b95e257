"""Generate `graphspec/spec/catalog_docs.json`: Keras's own words for each layer, application
and op a spec may name, and for each of their arguments, read from their docstrings.

The JSON Schema (graphspec/spec/schema.py) gives them as descriptions, so an editor's hover on
`units:` shows what Keras says of `units`. Regenerated with the catalog (`make catalog`):

    python -m graphspec.keras.catalog_docs_gen
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import re
import sys
from pathlib import Path
from typing import Any

from graphspec.keras import catalog_gen

DOCS_PATH = Path(__file__).resolve().parent.parent / "spec" / "catalog_docs.json"

# A hover is a reminder, not the manual: an argument's text is cut at a sentence end near this
# many characters, which keeps the schema file (every argument of every class) a few hundred KB.
MAX_CHARS = 200
# The headings Keras's docstrings put their arguments under (Google style).
_ARGS_HEADINGS = ("Args:", "Arguments:")
# Arguments every layer takes through keras.layers.Layer's **kwargs that no Keras docstring
# describes: graphspec's words, from what Layer.__init__ does with them.
_BASE_LAYER_DOCS = {
    "activity_regularizer": "Optional regularizer function for the output of the layer.",
    "autocast": "Boolean, whether floating-point inputs are cast to the layer's compute dtype "
    "before its call (default true).",
}
_ENTRY = re.compile(r"^(?P<name>\*{0,2}[A-Za-z_]\w*)(?:\s*\([^)]*\))?\s*:(?P<text>.*)$")


def arguments(doc: str | None) -> dict[str, str]:
    """Each argument documented under the `Args:` heading of the docstring `doc`, with its text
    on one line (whitespace collapsed), in the docstring's order."""
    if not doc:
        return {}
    lines = inspect.cleandoc(doc).splitlines()
    found: dict[str, list[str]] = {}
    inside, entry_indent, current = False, None, None
    for line in lines:
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        if not inside:
            if stripped in _ARGS_HEADINGS:
                inside, heading_indent, entry_indent, current = True, indent, None, None
            continue
        if not stripped:
            continue
        if indent <= heading_indent:
            inside = False  # the next heading (Input shape:, Returns:, ...)
            if stripped in _ARGS_HEADINGS:
                inside, heading_indent, entry_indent, current = True, indent, None, None
            continue
        if entry_indent is None:
            entry_indent = indent
        match = _ENTRY.match(stripped) if indent == entry_indent else None
        if match:
            current = match["name"].lstrip("*")
            found.setdefault(current, []).append(match["text"].strip())
        elif current is not None:
            found[current].append(stripped)
    return {name: shorten(" ".join(p for p in parts if p)) for name, parts in found.items()}


def summary(doc: str | None) -> str:
    """The first paragraph of `doc`, on one line and shortened like an argument's text."""
    if not doc:
        return ""
    first = inspect.cleandoc(doc).split("\n\n")[0]
    return shorten(" ".join(first.split()))


def shorten(text: str) -> str:
    """`text` with its whitespace collapsed, cut after the last sentence that ends within
    `MAX_CHARS` (or at a word, with an ellipsis, when the first sentence is longer)."""
    text = " ".join(text.split())
    if len(text) <= MAX_CHARS:
        return text
    ends = [m.end() for m in re.finditer(r"[.:;](?=\s)", text[: MAX_CHARS + 1])]
    if ends and ends[-1] >= MAX_CHARS // 3:
        return text[: ends[-1]]
    return text[:MAX_CHARS].rsplit(" ", 1)[0] + " ..."


def _class_docs(obj: Any, args: list[str]) -> dict:
    """The summary of class (or function) `obj` and the text of each of `args`, looked up in
    its own docstring first and then its base classes' (`trainable` and `dtype` are documented
    on keras.layers.Layer)."""
    texts: dict[str, str] = {}
    sources = inspect.getmro(obj) if inspect.isclass(obj) else (obj,)
    for source in sources:
        for name, text in arguments(source.__doc__).items():
            if name in args and name not in texts and text:
                texts[name] = text
    if inspect.isclass(obj):
        texts.update({n: t for n, t in _BASE_LAYER_DOCS.items() if n in args and n not in texts})
    entry: dict[str, Any] = {"doc": summary(obj.__doc__)}
    if texts:
        entry["args"] = {name: texts[name] for name in args if name in texts}
    return entry


def generate() -> dict:
    """The docs of every layer, application, op, optimizer, loss, metric and callback in the
    committed catalogs, as JSON-ready data (KerasHub's layers only where keras_hub is installed)."""
    from graphspec.spec import catalog

    entries = catalog.catalog()
    layers: dict[str, dict] = {}
    objects: dict[str, dict] = {"optimizers": {}, "losses": {}, "metrics": {}, "callbacks": {}}
    for section, name, obj in catalog_gen._catalogued():
        if section in objects:
            classes = entries[section].get("classes", entries[section])
            if name in classes:
                objects[section][name] = _class_docs(obj, classes[name]["args"])
        elif section == "layers" and name in entries["layers"]:
            layers[name] = _class_docs(obj, entries["layers"][name]["args"])
        elif section == "applications" and name in entries["applications"]:
            spec_name = catalog.APPLICATION_PREFIX + name
            layers[spec_name] = _class_docs(obj, entries["applications"][name]["args"])
    for name, cls in catalog_gen.application_layers().items():
        if name in entries.get("application_layers", {}):
            layers[name] = _class_docs(cls, entries["application_layers"][name]["args"])
    # KerasHub's layers, where keras_hub is installed (`make catalog` runs where it is).
    if importlib.util.find_spec("keras_hub") is not None:
        from graphspec.keras import hub_catalog_gen

        hub = catalog.hub_catalog()["layers"]
        for name, cls in hub_catalog_gen.hub_layers():
            if name in hub:
                layers[name] = _class_docs(cls, hub[name]["args"])
    ops = {
        name: _class_docs(function, entries["ops"][name]["args"])
        for name, function, _ in catalog_gen._ops()
        if name in entries["ops"]
    }
    return {"keras_version": entries["keras_version"], "layers": layers, "ops": ops, **objects}


def render(docs: dict) -> str:
    return json.dumps(docs, indent=0, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    DOCS_PATH.write_text(render(generate()), encoding="utf-8")
    print(f"wrote {DOCS_PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
