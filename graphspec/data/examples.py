"""A data path bound to a spec's inputs and outputs: examples that give NumPy batches.

`bind` finds what the path is (`graphspec.data.source`), decides which column, image or text
feeds each input and which column or class folder is each output's target (the spec's `data:`
section, else the defaults: a table's column named like the input or output; an image or text
folder's one input and one output with a loss), checks all of it against the data's header or
files, and returns `Examples`. Tables and .npz are read into arrays of the columns the spec
reads; images and texts stay files, read when their batch is asked for. `bind(..., stream=True)`
returns a table as a `TableStream` instead (`graphspec.data.stream`): checked by one pass,
then read window by window as batches are asked for. No TensorFlow here.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

import numpy as np

from graphspec.arrays import read_headers
from graphspec.data import images, npz, source, tables, text
from graphspec.data.section import encoding_for
from graphspec.data.skips import Skips
from graphspec.data.stream import TableStream
from graphspec.errors import SpecErrors

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor

    from graphspec.spec.load import LoadedSpec
    from graphspec.spec.model import DataInput, DataOutput


# Threads that decode a batch's files: one per core, at most 8.
DECODE_THREADS = min(8, os.cpu_count() or 1)


@functools.cache
def _decoders() -> ThreadPoolExecutor:
    """The `DECODE_THREADS` threads, made when first needed and kept for the process."""
    from concurrent.futures import ThreadPoolExecutor

    return ThreadPoolExecutor(DECODE_THREADS, thread_name_prefix="graphspec-decode")


def _read_all(read: Callable[[Any], Any], paths: list[Any]) -> list[Any]:
    """`read` of each of `paths`, in order, decoded in parallel: a run of consecutive files per
    thread (Pillow lets go of the GIL while it decodes; a task per file cost more than a small
    JPEG's decoding). The first failure in `paths`' order is raised, as reading one by one would."""
    count = min(len(paths), DECODE_THREADS)
    if count < 2:
        return [read(path) for path in paths]
    bounds = np.linspace(0, len(paths), count + 1).astype(int)
    parts = _decoders().map(
        lambda low, high: [read(path) for path in paths[low:high]], bounds[:-1], bounds[1:]
    )
    return [item for part in parts for item in part]


@dataclass
class Examples:
    """Examples of one data path: `ids` (a file, or `file:line` of a table row), inputs by name
    as arrays or as files with their reader, targets by name, and the class names of each
    output whose targets are classes."""

    path: str
    ids: Sequence[str]
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    files: dict[str, tuple[list[Path], Callable[[Path], Any]]] = field(default_factory=dict)
    targets: dict[str, np.ndarray] = field(default_factory=dict)
    classes: dict[str, list[str]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.ids)

    def batch(self, rows: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Inputs and targets of the examples at `rows`; files are read now."""
        x = {name: values[rows] for name, values in self.arrays.items()}
        for name, (paths, read) in self.files.items():
            items = _read_all(read, [paths[i] for i in rows])
            x[name] = np.stack(items) if not isinstance(items[0], str) else np.asarray(items, dtype=object)
        return x, {name: values[rows] for name, values in self.targets.items()}

    def split(self, fraction: float) -> tuple[Examples, Examples | None]:
        """The first examples for training and the last `fraction` for validation (as Keras's
        `validation_split` cuts arrays). Class names are the whole set's."""
        if not fraction:
            return self, None
        cut = int(len(self) * (1 - fraction))
        if cut <= 0 or cut >= len(self):
            raise SpecErrors.single(
                f"a validation split of {fraction} leaves no examples on one side of {len(self)}"
            )
        return self._rows(slice(0, cut)), self._rows(slice(cut, None))

    def _rows(self, rows: slice) -> Examples:
        return Examples(
            self.path,
            self.ids[rows],
            {n: a[rows] for n, a in self.arrays.items()},
            {n: (paths[rows], read) for n, (paths, read) in self.files.items()},
            {n: a[rows] for n, a in self.targets.items()},
            self.classes,
        )

    def shuffled(self, seed: int) -> Examples:
        """The same examples in an order drawn from `seed` (a class folder lists its files
        together: a validation split of them must not be one class)."""
        order = np.random.default_rng(seed).permutation(len(self))
        return Examples(
            self.path,
            [self.ids[i] for i in order],
            {n: a[order] for n, a in self.arrays.items()},
            {n: ([paths[i] for i in order], read) for n, (paths, read) in self.files.items()},
            {n: a[order] for n, a in self.targets.items()},
            self.classes,
        )


def is_npz(path: str | Path) -> bool:
    """Whether `path` names an .npz file (read by the array path of training)."""
    return str(path).lower().endswith(".npz") and Path(path).is_file()


def bind(
    loaded: LoadedSpec,
    path: str | Path,
    *,
    classes: dict[str, list[str]] | None = None,
    labelled: bool = True,
    stream: bool = False,
    skips: Skips | None = None,
) -> Examples | TableStream:
    """The examples at `path` for the model `loaded` describes. `classes`: the class names each
    output was trained with (a label outside them is refused); None: taken from the data.
    `labelled=False` (predict) reads no targets, but checks any labels the data has.
    `stream=True`: a table is a `TableStream`, every cell checked but none kept. With `skips`
    that allow it, the rows of a streamed table found bad are given to them (which raise past
    their limit) and left out, and so are those found bad as the stream reads them."""
    found = source.identify(path)
    section = loaded.spec.data
    wanted_inputs = {n: (section.inputs.get(n) if section else None) for n in loaded.spec.inputs}
    outputs = {n: o for n, o in loaded.spec.outputs.items() if o.takes_data}
    wanted_outputs = {n: (section.outputs.get(n) if section else None) for n in outputs}
    if found.kind == source.NPZ:
        return _npz(loaded, found, labelled, stream)
    if found.kind in (source.IMAGES, source.TEXT):
        return _folder(loaded, found, wanted_inputs, wanted_outputs, classes, labelled)
    if stream:
        return _table_stream(loaded, found, wanted_inputs, wanted_outputs, classes, labelled, skips)
    return _table(loaded, found, wanted_inputs, wanted_outputs, classes, labelled)


def check_header(loaded: LoadedSpec, path: str | Path) -> str:
    """Check the data at `path` against `loaded` from what can be told without reading its
    examples: its kind and files (folders listed, links followed), a table's header against the
    columns the spec reads (a Parquet schema's column types too, and its row groups' null counts
    from their statistics). Returns the kind; raises `SpecErrors` (`graphspec validate --data`)."""
    found = source.identify(path)
    if found.kind == source.TABLE:
        section = loaded.spec.data
        wanted_inputs = {n: (section.inputs.get(n) if section else None) for n in loaded.spec.inputs}
        outputs = [n for n, o in loaded.spec.outputs.items() if o.takes_data]
        wanted_outputs = {n: (section.outputs.get(n) if section else None) for n in outputs}
        table = tables.open_table(found.path, found.files)
        _, _, numeric, text_columns = _plan(loaded, found, table, wanted_inputs, wanted_outputs, True)
        if table.kind == tables.PARQUET:
            tables.scan(table, list(dict.fromkeys(numeric)), list(dict.fromkeys(text_columns)), [])
    elif found.kind == source.NPZ:
        read_headers(found.files[0])
    return found.kind


class ArrayIds(Sequence[str]):
    """The ids of an .npz's rows `start` to `stop`, `FILE[i]`, each made when asked: a list of
    them would take more memory than a streamed file's batch."""

    def __init__(self, path: str, start: int, stop: int):
        self.path, self.start, self.stop = path, start, stop

    def __len__(self) -> int:
        return self.stop - self.start

    @overload
    def __getitem__(self, index: int) -> str: ...
    @overload
    def __getitem__(self, index: slice) -> ArrayIds: ...
    def __getitem__(self, index: int | slice) -> str | ArrayIds:
        if isinstance(index, slice):
            low, high, step = index.indices(len(self))
            if step != 1:
                raise ValueError("the ids of an .npz's rows are sliced in order")
            return ArrayIds(self.path, self.start + low, self.start + max(low, high))
        if not -len(self) <= index < len(self):
            raise IndexError(f"row {index} of {len(self)}")
        return f"{self.path}[{self.start + index % len(self)}]"


def _npz(loaded: LoadedSpec, found: source.Source, labelled: bool, stream: bool = False) -> Examples:
    """The examples of an .npz: its arrays held whole, or with `stream` and past
    `npz.WHOLE_BYTES` (or what is left of `data-bytes`), read a batch at a time."""
    arrays = npz.load(found.files[0], loaded if labelled else None, stream=stream)
    missing = [n for n in loaded.spec.inputs if n not in arrays]
    if missing:
        raise SpecErrors.single(
            f"data file {found.path} has no array '{missing[0]}' for input '{missing[0]}'"
        )
    count = len(arrays[next(iter(loaded.spec.inputs))])
    targets = {
        n: arrays[n] for n, o in loaded.spec.outputs.items() if o.takes_data and n in arrays and labelled
    }
    return Examples(
        found.path,
        ArrayIds(str(found.path), 0, count),
        {n: arrays[n] for n in loaded.spec.inputs},
        targets=targets,
    )


def _where(loaded: LoadedSpec, kind: str, name: str, entry: Any, key: str) -> Any:
    """Where to point at for an input's or output's data: its data: entry's key, else the input
    or output itself."""
    if entry is not None and getattr(entry, key, None) is not None:
        return loaded.location("data", kind, name, key)
    return loaded.location(kind, name, key=True)


def _fail(loaded: LoadedSpec, message: str, location: Any = None, hint: str | None = None) -> SpecErrors:
    return SpecErrors.single(message, location, hint=hint, sources=loaded.diagnostics.sources)


def _folder(
    loaded: LoadedSpec,
    found: source.Source,
    wanted_inputs: dict[str, DataInput | None],
    wanted_outputs: dict[str, DataOutput | None],
    classes: dict[str, list[str]] | None,
    labelled: bool,
) -> Examples:
    is_image = found.kind == source.IMAGES
    what = "image" if is_image else "text"
    chosen = [n for n, e in wanted_inputs.items() if e is not None and (e.image if is_image else e.text)]
    if not chosen:
        chosen = list(wanted_inputs) if len(wanted_inputs) == 1 else []
    if len(chosen) != 1:
        raise _fail(
            loaded,
            f"data {found.path} is a folder of {what} files, and the spec has {len(wanted_inputs)} "
            f"inputs: which one reads them?",
            loaded.location("inputs", key=True),
            hint=f"say it in the spec: data: {{inputs: {{NAME: {{{what}: "
            + ("{}" if is_image else "true")
            + "}}}}",
        )
    name = chosen[0]
    spec_input = loaded.spec.inputs[name]
    if is_image:
        shape = _image_shape(loaded, name, wanted_inputs[name])
        alike = True
        for file in found.files:  # headers only: every file is an image of the right channels
            alike = images.probe(file, shape, name) and alike
        read: Callable[[Path], Any] = images.ImageReader(shape, name, alike)
    else:
        if spec_input.dtype != "string":
            raise _fail(
                loaded,
                f"data {found.path} is a folder of text files, and input '{name}' is {spec_input.dtype}",
                loaded.location("inputs", name, "dtype"),
                hint="a text input has dtype: string",
            )
        read = text.read
    examples = Examples(found.path, [str(f) for f in found.files], files={name: (list(found.files), read)})
    if found.labels is None:
        if labelled and wanted_outputs:
            raise _fail(
                loaded,
                f"data {found.path} is a folder of {what} files with no class subfolders: it has no targets",
                hint="put each class's files in a subfolder named after the class",
            )
        return examples
    if len(wanted_outputs) > 1 and labelled:
        raise _fail(
            loaded,
            f"data {found.path} gives one label per file (its class folder), and the spec has "
            f"{len(wanted_outputs)} outputs that take targets",
            loaded.location("outputs", key=True),
        )
    for output, entry in list(wanted_outputs.items())[:1]:
        known = _classes(loaded, output, entry, classes)
        labels = found.labels
        ids, names = _encode_ids(loaded, output, labels, known, found.files)
        examples.classes[output] = names
        if labelled:
            examples.targets[output] = _encoded(loaded, output, entry, ids, len(names))
    return examples


def _image_shape(loaded: LoadedSpec, name: str, entry: DataInput | None) -> images.ImageShape:
    shape = list(loaded.spec.inputs[name].shape)
    settings = entry.image if entry is not None and entry.image is not None else None
    if len(shape) != 3:
        raise _fail(
            loaded,
            f"input '{name}' reads images, and has shape {shape}",
            loaded.location("inputs", name, "shape"),
            hint="an image input has shape [height, width, channels]",
        )
    height, width, channels = shape
    if settings is not None and settings.size is not None:
        height, width = settings.size
    if settings is not None and settings.channels is not None:
        channels = settings.channels
    if height is None or width is None or channels not in (1, 3, 4):
        raise _fail(
            loaded,
            f"input '{name}' has shape {shape}: images need a height, a width and 1, 3 or 4 channels",
            loaded.location("inputs", name, "shape"),
            hint="give the shape, or data: inputs: NAME: image: {size: [h, w], channels: c}",
        )
    crop = settings.crop if settings is not None else None
    convert = settings.convert if settings is not None else False
    return images.ImageShape(height, width, channels, crop, convert)


def _classes(
    loaded: LoadedSpec, output: str, entry: DataOutput | None, trained: dict[str, list[str]] | None
) -> list[str] | None:
    if trained is not None and output in trained:
        return trained[output]
    if entry is not None and entry.classes is not None:
        return list(entry.classes)
    return None


def _sorted_labels(labels: set[str]) -> list[str]:
    """Labels sorted as numbers when all are integers (2 before 10), else as text."""
    try:
        return sorted(labels, key=lambda s: (int(s), s))
    except ValueError:
        return sorted(labels)


def _encode_ids(
    loaded: LoadedSpec, output: str, labels: list[str], known: list[str] | None, where: list[Any]
) -> tuple[np.ndarray, list[str]]:
    names = known if known is not None else _sorted_labels(set(labels))
    index = {label: i for i, label in enumerate(names)}
    ids = np.empty(len(labels), dtype=np.int32)
    for i, label in enumerate(labels):
        if label not in index:
            raise _fail(
                loaded,
                f"{where[i]}: label '{label}' of output '{output}' is not one of its classes",
                hint="the model knows: " + ", ".join(names[:20]) + (", ..." if len(names) > 20 else ""),
            )
        ids[i] = index[label]
    return ids, names


def _encoded(
    loaded: LoadedSpec, output: str, entry: DataOutput | None, ids: np.ndarray, count: int
) -> np.ndarray:
    encoding = (entry.encoding if entry is not None else None) or encoding_for(
        loaded.spec.outputs[output].loss
    )
    if encoding == "one-hot":
        hot = np.zeros((len(ids), count), dtype=np.float32)
        hot[np.arange(len(ids)), ids] = 1.0
        return hot
    if encoding == "binary":
        if count > 2:
            raise _fail(
                loaded,
                f"output '{output}' is binary, and its labels name {count} classes",
                loaded.location("outputs", output, "loss"),
                hint="use a softmax output with sparse_categorical_crossentropy for more classes",
            )
        return ids.astype(np.float32)[:, None]
    if encoding == "regression":
        raise _fail(
            loaded,
            f"output '{output}' takes numbers (regression), and its data gives class labels",
            loaded.location("outputs", output, "loss"),
        )
    return ids


def _plan(
    loaded: LoadedSpec,
    found: source.Source,
    table: tables.Table,
    wanted_inputs: dict[str, DataInput | None],
    wanted_outputs: dict[str, DataOutput | None],
    labelled: bool,
) -> tuple[dict[str, list[str]], dict[str, tuple[list[str], str]], list[str], list[str]]:
    """Which columns feed each input and each output's targets (with its encoding), checked
    against the table's header: every problem at once, each at the spec's place. Also the
    columns read as numbers and those read as text."""
    feeds: dict[str, list[str]] = {}
    numeric: list[str] = []
    text_columns: list[str] = []
    problems = []
    for name, entry in wanted_inputs.items():
        if entry is not None and (entry.image is not None or entry.text):
            problems.append((f"input '{name}' reads files, and data {found.path} is a table", None))
            continue
        columns = _columns(table, name, entry)
        where = _where(loaded, "inputs", name, entry, "columns" if entry and entry.columns else "column")
        for column in columns:
            hint = table.missing(column)
            if hint is not None:
                problems.append(
                    (f"table {found.path} has no column '{column}' for input '{name}'", where, hint)
                )
        if not columns:
            problems.append((f"no column of table {found.path} matches '{entry.columns}'", where))
        shape = list(loaded.spec.inputs[name].shape)
        if columns and None not in shape and math.prod(shape) != len(columns):
            problems.append(
                (
                    f"input '{name}' has shape {shape} ({math.prod(shape)} values), and reads "
                    f"{len(columns)} column{'s' * (len(columns) != 1)} of table {found.path}",
                    where,
                    "name as many columns as the input has values: data: inputs: NAME: columns",
                )
            )
        feeds[name] = columns
        reads_text = loaded.spec.inputs[name].dtype == "string"
        problems += _typed(table, found, columns, f"input '{name}'", where, needs_numbers=not reads_text)
        (text_columns if reads_text else numeric).extend(columns)
    targets: dict[str, tuple[list[str], str]] = {}
    for name, entry in wanted_outputs.items():
        columns = _columns(table, name, entry)
        where = _where(loaded, "outputs", name, entry, "columns" if entry and entry.columns else "column")
        absent = [c for c in columns if table.missing(c) is not None]
        if absent and not labelled:
            continue  # predict: a table may leave the targets out
        for column in absent:
            problems.append(
                (
                    f"table {found.path} has no column '{column}' for output '{name}'",
                    where,
                    table.missing(column),
                )
            )
        encoding = (entry.encoding if entry else None) or encoding_for(loaded.spec.outputs[name].loss)
        targets[name] = (columns, encoding or "regression")
        present = [c for c in columns if c not in absent]
        needs_numbers = encoding in (None, "regression")
        problems += _typed(table, found, present, f"output '{name}'", where, needs_numbers=needs_numbers)
        (numeric if encoding in (None, "regression") else text_columns).extend(columns)
    if problems:
        from graphspec.errors import Diagnostics

        diagnostics = Diagnostics(sources=dict(loaded.diagnostics.sources))
        for problem in problems:
            diagnostics.error(problem[0], problem[1], problem[2] if len(problem) > 2 else None)
        diagnostics.raise_if_errors()
    return feeds, targets, numeric, text_columns


def _typed(
    table: tables.Table, found: source.Source, columns: list[str], user: str, where: Any, needs_numbers: bool
) -> list[tuple]:
    """Problems with the types a Parquet schema gives `columns`, read by `user` (numbers where
    `needs_numbers`, else numbers or text); none for a text table, whose cells are checked as read."""
    problems = []
    for column in columns:
        kind = table.types.get(column)
        if kind is None or kind == tables.NUMBER or (kind == tables.TEXT and not needs_numbers):
            continue
        problems.append(
            (
                f"column '{column}' of table {found.path} holds {tables.type_name(table, column)} "
                f"values, and {user} needs {'numbers' if needs_numbers else 'numbers or strings'}",
                where,
                "convert the column to numbers where the table is written, or read another column",
            )
        )
    return problems


def _table(
    loaded: LoadedSpec,
    found: source.Source,
    wanted_inputs: dict[str, DataInput | None],
    wanted_outputs: dict[str, DataOutput | None],
    classes: dict[str, list[str]] | None,
    labelled: bool,
) -> Examples:
    table = tables.open_table(found.path, found.files)
    feeds, targets, numeric, text_columns = _plan(
        loaded, found, table, wanted_inputs, wanted_outputs, labelled
    )
    values, ids = tables.read_columns(table, list(dict.fromkeys(numeric)), list(dict.fromkeys(text_columns)))
    names = {}
    for name, (columns, encoding) in targets.items():
        if encoding != "regression":
            known = _classes(loaded, name, wanted_outputs[name], classes)
            found_labels = {tables.label_of(v) for v in values[columns[0]]} if known is None else set()
            names[name] = known if known is not None else _sorted_labels(found_labels)
    assemble = _assembler(loaded, feeds, targets, wanted_outputs, names, labelled)
    x, y = assemble(values, ids)
    return Examples(found.path, ids, x, targets=y, classes=names)


def _table_stream(
    loaded: LoadedSpec,
    found: source.Source,
    wanted_inputs: dict[str, DataInput | None],
    wanted_outputs: dict[str, DataOutput | None],
    classes: dict[str, list[str]] | None,
    labelled: bool,
    skips: Skips | None = None,
) -> TableStream:
    table = tables.open_table(found.path, found.files)
    feeds, targets, numeric, text_columns = _plan(
        loaded, found, table, wanted_inputs, wanted_outputs, labelled
    )
    numeric, text_columns = list(dict.fromkeys(numeric)), list(dict.fromkeys(text_columns))
    label_columns = {
        name: columns[0]
        for name, (columns, encoding) in targets.items()
        if encoding != "regression" and _classes(loaded, name, wanted_outputs[name], classes) is None
    }
    skipping = skips is not None and skips.limit > 0
    excluded: list[int] = []

    def bad(shard: int, number: int, index: int, error: SpecErrors) -> None:
        file = str(table.shards[shard])
        if skips.found_while_training(file, number):
            return  # a resumed run keeps it in its order, as the run did: it is left out as read
        skips.skip(file, error, None, row=number)
        excluded.append(index)

    label_names = list(dict.fromkeys(label_columns.values()))
    scanned = tables.scan(table, numeric, text_columns, label_names, bad if skipping else None)
    if len(excluded) == scanned.rows:
        raise SpecErrors.single(
            f"every row of table {found.path} is bad", hint="fix the rows, then train again"
        )
    names = {}
    for name, (_, encoding) in targets.items():
        if encoding != "regression":
            known = _classes(loaded, name, wanted_outputs[name], classes)
            names[name] = known if known is not None else _sorted_labels(scanned.labels[label_columns[name]])
    assemble = _assembler(loaded, feeds, targets, wanted_outputs, names, labelled)
    return TableStream(
        found.path,
        table,
        scanned.chunks,
        numeric,
        text_columns,
        assemble,
        names,
        excluded=np.asarray(sorted(excluded), dtype=np.int64),
        skips=skips if skipping else None,
    )


def _assembler(
    loaded: LoadedSpec,
    feeds: dict[str, list[str]],
    targets: dict[str, tuple[list[str], str]],
    wanted_outputs: dict[str, DataOutput | None],
    names: dict[str, list[str]],
    labelled: bool,
) -> Callable[[dict[str, np.ndarray], Any], tuple[dict[str, np.ndarray], dict[str, np.ndarray]]]:
    """What makes inputs and targets of rows from their columns' values (and their ids, named
    by a label outside `names`, the class names of each output)."""

    def assemble(values: dict[str, np.ndarray], ids: Any) -> tuple[dict, dict]:
        count = len(next(iter(values.values()))) if values else 0
        x = {}
        for name, columns in feeds.items():
            spec_input = loaded.spec.inputs[name]
            # Filled column by column in the input's dtype: no float64 copy of all of them.
            stacked = np.empty(
                (count, len(columns)), dtype=object if spec_input.dtype == "string" else spec_input.dtype
            )
            for i, column in enumerate(columns):
                stacked[:, i] = values[column]
            shape = list(spec_input.shape)
            if None not in shape and math.prod(shape) == len(columns):
                stacked = stacked.reshape((count, *shape))
            elif shape == []:
                stacked = stacked[:, 0]
            x[name] = stacked
        y = {}
        for name, (columns, encoding) in targets.items():
            if encoding == "regression":
                y[name] = np.stack([values[c] for c in columns], axis=1).astype(np.float32)
                continue
            labels = [tables.label_of(v) for v in values[columns[0]]]
            label_ids, known = _encode_ids(loaded, name, labels, names[name], ids)
            if labelled:
                y[name] = _encoded(loaded, name, wanted_outputs[name], label_ids, len(known))
        return x, y

    return assemble


def _columns(table: tables.Table, name: str, entry: Any) -> list[str]:
    if entry is not None and entry.columns is not None:
        return table.resolve(entry.columns)
    if entry is not None and entry.column is not None:
        return [entry.column]
    return [name]
