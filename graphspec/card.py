"""A model card for a finished run: `graphspec card RUN` writes `MODEL_CARD.md`.

The card follows Hugging Face's model-card sections where they fit (metadata in YAML front
matter, Model Details, Uses, Training Details, Evaluation, Technical Specifications, How to Get
Started), so it can be pushed with the model as it is. It is made from what the run recorded
(`spec.yaml`, `overrides.json`, `fingerprint.json`, `history.json`) and the spec itself: the
inputs' and outputs' shapes and dtypes and the parameter counts come from the model built with
its weights declared but never allocated (no pretrained weights are read or downloaded), the
picture from `graphspec plot` (`architecture.svg` beside the card, when Graphviz is installed;
else the card says so). Text from the spec (its name, docs) is escaped: a card is Markdown that
a hub renders as HTML. Both files are written atomically (`graphspec.atomic`).
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from graphspec import run_dir as rd
from graphspec.errors import SpecErrors

if TYPE_CHECKING:
    from graphspec.spec.load import LoadedSpec

CARD_FILE = "MODEL_CARD.md"
PICTURE_FILE = "architecture.svg"


def _text(value: Any) -> str:
    """`value` as Markdown text that shows as written: HTML escaped, table bars and line breaks
    made harmless."""
    return html.escape(" ".join(str(value).split()), quote=False).replace("|", "\\|").replace("`", "\\`")


def _code(value: Any) -> str:
    """`value` as inline code (HTML still escaped: inline code in a table cell is rendered)."""
    return "<code>" + html.escape(" ".join(str(value).split())).replace("|", "&#124;") + "</code>"


def _shape(tensor: Any) -> str:
    return "(" + ", ".join("batch" if d is None else str(d) for d in tensor.shape) + ")"


def _record(run: Path, name: str) -> Any:
    path = run / name
    return rd.read_json(path) if path.is_file() else None


def load_run(run: Path) -> LoadedSpec:
    """The spec of the finished run at `run`. Raises `SpecErrors` when it is no run, or its spec
    does not load (a spec that names pretrained weights needs the command's grants again)."""
    import graphspec

    spec_path = run / rd.SPEC_FILE
    if not spec_path.is_file() or not (run / rd.MODEL_FILE).is_file():
        raise SpecErrors.single(
            f"{run} is not a finished run: it has no {rd.SPEC_FILE} or {rd.MODEL_FILE}",
            hint="name the folder `graphspec train` saved (it prints 'run saved in DIR')",
        )
    return graphspec.load(spec_path, root=run)


def card_text(run: Path, loaded: LoadedSpec, picture: str) -> str:
    """The card of the finished run at `run` (its spec `loaded`), as Markdown; `picture` is the
    Markdown that shows the architecture."""
    from graphspec.keras.build import declared_model

    spec = loaded.spec
    started = _record(run, rd.OVERRIDES_FILE) or {}
    prints = _record(run, "fingerprint.json") or {}
    history = _record(run, rd.HISTORY_JSON) or {}
    model, inputs, outputs = declared_model(loaded)

    trainable = sum(int(_size(w.shape)) for w in model.trainable_weights)
    total = int(model.count_params())
    lines = [
        "---",
        "library_name: keras",
        "tags:",
        "- graphspec",
        "- keras",
        "---",
        "",
        f"# Model Card for {_text(spec.name)}",
        "",
        _text(spec.doc) if spec.doc else "_The spec gives no `doc`._",
        "",
        "## Model Details",
        "",
        "### Model Description",
        "",
        f"- **Model type:** Keras 3 functional model, built by graphspec from `{rd.SPEC_FILE}`",
        f"- **Parameters:** {total:,} ({trainable:,} trainable, {total - trainable:,} non-trainable)",
        f"- **Architecture fingerprint:** {_code(prints.get('architecture', 'not recorded'))}",
        f"- **Training fingerprint:** {_code(prints.get('training', 'not recorded'))}",
        f"- **Spec revision:** {_revision(started.get('revision'))}",
        f"- **Grants used:** {_grants(started.get('grants'))}",
        "",
        "## Uses",
        "",
        "The model's inputs and outputs, by name (shapes include the batch):",
        "",
        "| input | shape | dtype | description |",
        "| --- | --- | --- | --- |",
    ]
    for name, tensor in inputs.items():
        given = spec.inputs[name]
        lines.append(
            f"| {_code(name)} | {_code(_shape(tensor))} | {_code(tensor.dtype)} | {_text(given.doc or '')} |"
        )
    lines += ["", "| output | shape | dtype | loss |", "| --- | --- | --- | --- |"]
    for name, output in spec.outputs.items():
        tensor = outputs.get(name)
        shape = _code(_shape(tensor)) if tensor is not None and hasattr(tensor, "shape") else ""
        dtype = _code(tensor.dtype) if tensor is not None and hasattr(tensor, "dtype") else ""
        loss = output.loss if isinstance(output.loss, str) or output.loss is None else output.loss.type
        lines.append(f"| {_code(name)} | {shape} | {dtype} | {_text(loss or '')} |")
    lines += [
        "",
        "## Training Details",
        "",
        "### Training Data",
        "",
        _data(started, spec),
        "",
        "### Training Procedure",
        "",
        f"- **Optimizer:** {_code(_name(spec.compile.optimizer))}",
        f"- **Epochs run:** {len(history.get('epoch', []))}",
        *_stages(spec),
        f"- **Settings:** {_code(json.dumps(spec.train.model_dump(mode='json', exclude_none=True)))}",
        f"- **Overrides:** {', '.join(_code(o) for o in started.get('overrides', [])) or 'none'}",
        "",
        "## Evaluation",
        "",
        "### Results",
        "",
        *_metrics(history),
        "",
        "## Technical Specifications",
        "",
        "### Model Architecture and Objective",
        "",
        picture,
        "",
        "## How to Get Started with the Model",
        "",
        "```python",
        "import keras",
        "import graphspec.keras.layers  # graphspec's own layers, where the spec uses them",
        "",
        f'model = keras.saving.load_model("{rd.MODEL_FILE}")',
        "```",
        "",
        f"The spec it was built from is `{rd.SPEC_FILE}` in the run; `graphspec train {rd.SPEC_FILE}` "
        "trains it again.",
        "",
        "For a server without Keras, `graphspec export-model RUN --format FORMAT -o OUT` writes it as "
        "a SavedModel (`saved_model`), ONNX (`onnx`), LiteRT (`litert`) or OpenVINO (`openvino`) "
        "model, its inputs and outputs named as above.",
        "",
    ]
    return "\n".join(lines)


def _size(shape: Any) -> int:
    count = 1
    for d in shape:
        count *= int(d)
    return count


def _name(value: Any) -> str:
    return value if isinstance(value, str) else getattr(value, "type", str(value))


def _revision(revision: Any) -> str:
    if not isinstance(revision, dict) or not isinstance(revision.get("commit"), str):
        return "unknown (the spec was not in a git repository when the run started)"
    modified = ", with uncommitted changes" if revision.get("modified") else ""
    return f"{_code(revision.get('path', ''))} at commit {_code(revision['commit'])}{modified}"


def _grants(grants: Any) -> str:
    if not isinstance(grants, dict):
        return "none"
    parts = ["`--allow-download`"] if grants.get("download") else []
    parts += [
        f"`--allow-read` {_code(folder)}" for folder in grants.get("read", []) if isinstance(folder, str)
    ]
    return ", ".join(parts) or "none"


def _data(started: dict, spec: Any) -> str:
    if started.get("synthetic"):
        kind = _text(started.get("kind", "random"))
        text = f"Synthetic data ({kind}), made by graphspec from the inputs' shapes"
        ranges = [f"{_code(n)} in {_code(i.range)}" for n, i in spec.inputs.items() if i.range is not None]
        return text + (": " + ", ".join(ranges) if ranges else "") + "."
    parts = [f"Training data: {_code(started['data'])}"] if started.get("data") else []
    if started.get("val_data"):
        parts.append(f"validation data: {_code(started['val_data'])}")
    return "; ".join(parts) + "." if parts else "Not recorded."


def _stages(spec: Any) -> list[str]:
    """The fine-tuning stages (`train.stages`), a line each: what each froze, and how long."""
    from graphspec.spec.stages import describe_stage, frozen_summary

    summary = frozen_summary(spec)
    if not summary:
        return []
    return [
        "- **Fine-tuning stages:**",
        *(f"  {i}. {_text(describe_stage(s)).replace('*', chr(92) + '*')}" for i, s in enumerate(summary, 1)),
    ]


def _metrics(history: dict) -> list[str]:
    """The last epoch's value of each metric, by split: training, and validation (`val_`)."""
    last = {k: v[-1] for k, v in history.items() if k not in ("epoch", "stage") and isinstance(v, list) and v}
    if not last:
        return ["No metrics were recorded."]
    rows = ["| split | metric | value |", "| --- | --- | --- |"]
    for split, keys in (
        ("training", [k for k in last if not k.startswith("val_")]),
        ("validation", [k for k in last if k.startswith("val_")]),
    ):
        for key in sorted(keys):
            value = last[key]
            shown = f"{value:.6g}" if isinstance(value, (int, float)) else _text(value)
            rows.append(f"| {split} | {_code(key.removeprefix('val_'))} | {shown} |")
    return [*rows, "", "Values are those of the last epoch run."]


def write_card(run: Path, output: Path | None = None) -> Path:
    """Write the card of the finished run at `run` to `output` (default `RUN/MODEL_CARD.md`),
    with the architecture's drawing beside it (`architecture.svg`); returns the card's path.
    Nothing is written when the run's spec does not load or the card cannot be made."""
    from graphspec import atomic
    from graphspec.plot import PlotError, PlotOptions, spec_to_dot, write_plot

    run = Path(run)
    output = Path(output) if output is not None else run / CARD_FILE
    atomic.check_target(output)
    loaded = load_run(run)
    marker = "\0picture\0"
    text = card_text(run, loaded, marker)  # made whole before anything is written
    try:
        write_plot(spec_to_dot(loaded, PlotOptions()), output.with_name(PICTURE_FILE))
        picture = f"![The architecture, drawn by graphspec plot]({PICTURE_FILE})"
    except PlotError as exc:  # no Graphviz: the card says so, and is written all the same
        picture = f"_No picture: {_text(exc)}_"
    atomic.write_text(output, text.replace(marker, picture))
    return output
