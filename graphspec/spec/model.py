"""The spec format as pydantic models: the shape of a valid document, nothing Keras-specific.

What a layer's arguments must be is checked against the Keras catalog in `check.py`; what the
graph must look like is checked in `graph.py`. Here: which keys exist and what type each holds.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, field_validator, model_validator
from typing_extensions import TypeAliasType

from graphspec.spec.search import SearchSpec

FORMAT_VERSION = 1

# A reference to a tensor: a node name, optionally picking one output of several by index or
# by output name: `lstm`, `lstm[1]`, `encoder[features]`.
REFERENCE = re.compile(r"^(?P<node>[A-Za-z_][\w.\-]*)(?:\[(?P<index>[^\]\[]+)\])?$")
NAME = re.compile(r"^[A-Za-z_][\w.\-]*$")
# A spec's name names its run and tune folders (runs/NAME/...): plain ASCII and short, so that it
# is a file name on every system.
SPEC_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")
MAX_NAME = 100
# Bounds on training's counts: a few zeros too many make a run that never ends, or one that fails
# deep inside Keras without saying where. Seeds are what NumPy and Keras accept.
MAX_EPOCHS, MAX_BATCH_SIZE, MAX_SAMPLES, MAX_SEQ_LEN = 1_000_000, 1_000_000, 1_000_000_000, 1_000_000
MAX_SEED = 2**32 - 1
# An output's loss that is its own value, and the target made of each row's index in its batch.
VALUE_LOSS, INDEX_TARGET = "value", "index"

Reference = str
# A structure of names: a name, a list of structures, or a mapping of keys to structures.
Nested = TypeAliasType("Nested", Union[str, list["Nested"], dict[str, "Nested"]])
Inbound = Union[Reference, list[Reference], dict[str, Union[Reference, list[Reference]]]]


# The default factories are these functions, not `list` and `dict`: pydantic asks each factory's
# signature whether it takes the validated data, and a builtin's signature is parsed from its
# text with tokenize, whose first use compiles a large regex (3 ms of every `validate`, issue 22).
def _empty_list() -> list:
    return []


def _empty_dict() -> dict:
    return {}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class InputSpec(_Strict):
    """A named model input: its shape without the batch dimension, and its dtype."""

    shape: list[int | None] = Field(description="Shape without the batch axis; null for any length.")
    dtype: str = "float32"
    sparse: bool = False
    optional: bool = Field(
        default=False, description="The model may be called with None for this input (Keras's optional)."
    )
    batch_size: int | None = None
    range: tuple[float, float] | None = Field(
        default=None, description="Value range for synthetic data: [low, high)."
    )
    seq_len: int | None = Field(
        default=None, ge=1, le=MAX_SEQ_LEN, description="Length used for null dimensions in synthetic data."
    )
    doc: str | None = None

    @field_validator("shape")
    @classmethod
    def _positive_dimensions(cls, shape: list[int | None]) -> list[int | None]:
        for dim in shape:
            if dim is not None and dim <= 0:
                raise ValueError(f"dimensions must be positive or null, got {dim}")
        return shape


class TypedObject(BaseModel):
    """A Keras object by class name plus its constructor arguments: `{type: Adam, learning_rate: 1e-3}`."""

    model_config = ConfigDict(extra="allow")
    type: str

    @property
    def args(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class AdaptSpec(_Strict):
    """How a preprocessing layer learns its state from the training split before `fit`."""

    samples: int | None = Field(
        default=None,
        ge=1,
        le=MAX_SAMPLES,
        description="Adapt on at most this many training examples, drawn by the run's seed; "
        "default: every one.",
    )


# What a layer node can be: a Keras layer, a shared one, a nested spec, a keras.ops function,
# or one of graphspec's own nodes (graphspec/spec/nodes.py): a weight, positions, random values.
NODE_KINDS = ("type", "share", "spec", "op", "weight", "range", "random")
_OP_RANGE = "\x00range"


class LayerSpec(BaseModel):
    """One node of the graph: a Keras layer, a shared layer, a nested spec, a keras.ops function
    or a block use.

    Keys other than the ones declared here are the layer's constructor arguments (an op's
    arguments), verbatim.
    """

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    type: str | None = Field(default=None, description="A keras.layers class name, or applications.NAME.")
    share: str | None = Field(default=None, description="Reuse another node's layer instance (its weights).")
    spec: str | None = Field(default=None, description="Another spec file, used as a layer.")
    op: str | None = Field(
        default=None, description="A keras.ops function: tensors from 'in', its other arguments as keys."
    )
    weight: list[int] | None = Field(
        default=None,
        description="A learnable tensor of this shape (no batch axis), broadcast over the batch of 'in'.",
    )
    range: int | None = Field(
        default=None, description="Positions 0..n-1, n the length of this axis of 'in' (start, step, dtype)."
    )
    random: str | None = Field(
        default=None, description="Random values shaped like 'in': normal or uniform, sampled in training."
    )
    inbound: Inbound = Field(alias="in", description="What the node reads.")
    call: dict[str, Any] = Field(
        default_factory=_empty_dict, description="Call-time arguments, e.g. training."
    )
    adapt: (
        Annotated[
            Union[Annotated[bool, Tag("flag")], Annotated[AdaptSpec, Tag("settings")]],
            # A mapping is the settings, anything else a flag: one member's errors, not both's.
            Discriminator(lambda v: "settings" if isinstance(v, dict | AdaptSpec) else "flag"),
        ]
        | None
    ) = Field(
        default=None,
        description="Learn the layer's state (mean, vocabulary, bins) from what reaches it on the "
        "training split before fit, as Keras's layer.adapt(): true, or {samples: N} for a sample.",
    )
    params: dict[str, Any] = Field(default_factory=_empty_dict, description="Params of a nested spec.")
    doc: str | None = None
    # A use of a block: `{block: NAME, repeat: N, PARAM: VALUE, in: ...}`. Expansion (blocks.py)
    # replaces every use by the block's layers before validation; these are here for the schema.
    block: str | None = Field(default=None, description="Use a block: its layers replace this node.")
    repeat: int | None = Field(default=None, ge=1, description="Chain this many copies of the block.")
    first: dict[str, Any] | None = Field(default=None, description="Block params for the first copy only.")
    per_copy: dict[str, list[Any] | str] | None = Field(
        default=None,
        description="Block params with one value per copy, or an expression of ${copy} for each.",
    )

    @model_validator(mode="before")
    @classmethod
    def _op_range(cls, data: Any) -> Any:
        # keras.ops.histogram has an argument `range`: on an op node the key is the op's, not
        # a `range:` node's, so it is kept aside from the field and restored among the args.
        if isinstance(data, dict) and "op" in data and "range" in data:
            return {(_OP_RANGE if k == "range" else k): v for k, v in data.items()}
        return data

    @model_validator(mode="after")
    def _one_kind(self) -> LayerSpec:
        if self.model_extra and _OP_RANGE in self.model_extra:
            extra = self.__pydantic_extra__
            self.__pydantic_extra__ = {("range" if k == _OP_RANGE else k): v for k, v in extra.items()}
        kinds = [k for k in NODE_KINDS if getattr(self, k) is not None]
        if len(kinds) != 1:
            found = " and ".join(f"'{k}'" for k in kinds) or "none"
            raise ValueError(
                "a layer needs exactly one of 'type', 'share', 'spec', 'op', 'weight', 'range' or 'random' "
                f"(found {found})"
            )
        if self.params and self.spec is None:
            raise ValueError("'params' is only for a nested spec ('spec: file.yaml')")
        return self

    @property
    def node_kind(self) -> str:
        """Which of `NODE_KINDS` this node is."""
        return next(k for k in NODE_KINDS if getattr(self, k) is not None)

    @property
    def adapted(self) -> AdaptSpec | None:
        """How the node is adapted (`adapt: true` is `{}`), or None when it is not."""
        if self.adapt is None or self.adapt is False:
            return None
        return AdaptSpec() if self.adapt is True else self.adapt

    @property
    def args(self) -> dict[str, Any]:
        """The Keras constructor arguments (an op node's: the function's non-tensor arguments)."""
        return dict(self.model_extra or {})

    def references(self) -> list[tuple[Reference, tuple]]:
        """Every tensor this node reads, with the path (inside the node) where it is written."""
        if isinstance(self.inbound, str):
            return [(self.inbound, ("in",))]
        if isinstance(self.inbound, list):
            return [(r, ("in", i)) for i, r in enumerate(self.inbound)]
        found = []
        for key, value in self.inbound.items():
            if isinstance(value, list):
                found += [(r, ("in", key, i)) for i, r in enumerate(value)]
            else:
                found.append((value, ("in", key)))
        return found


class OutputSpec(_Strict):
    """A named model output with its loss, loss weight and metrics."""

    source: Reference | None = Field(
        default=None,
        alias="from",
        description="The tensor to output when it is not the node of the same name.",
    )
    loss: str | TypedObject | None = Field(
        default=None,
        description="A Keras loss, or 'value': the output's own value (its mean) is its loss, no target.",
    )
    target: str | None = Field(
        default=None,
        description="'index': the target is each row's index in its batch (contrastive labels), not data.",
    )
    weight: float = 1.0
    metrics: list[str | TypedObject] = Field(default_factory=_empty_list)
    doc: str | None = None

    @property
    def takes_data(self) -> bool:
        """Whether training reads (or synthesises) a target array for this output: it has a
        loss, and the loss is neither its own value nor against the row index."""
        return self.loss is not None and self.loss != VALUE_LOSS and self.target != INDEX_TARGET


class CompileSpec(_Strict):
    """Arguments of keras.Model.compile beyond the per-output losses."""

    optimizer: str | TypedObject = "rmsprop"
    jit_compile: bool | Literal["auto"] = "auto"
    steps_per_execution: int = 1
    run_eagerly: bool = False


class TopSpec(_Strict):
    """How much of a matched layer a stage freezes or unfreezes: its last `top` layers."""

    top: int = Field(ge=1, description="The last N layers (of a nested model, else of the matches).")


# What a stage freezes or unfreezes: a layer node's name, a block use's name (its layers
# NAME.*), a glob of layer names, or `{NAME: {top: N}}` for the last N layers of it.
LayerPattern = Union[str, dict[str, TopSpec]]


class StageSpec(_Strict):
    """One stage of fine-tuning: its epochs, what is frozen, and its optimizer. Every stage
    starts from the model as the spec builds it; then `freeze`, then `unfreeze` apply."""

    epochs: int = Field(ge=1, le=MAX_EPOCHS)
    freeze: str | list[LayerPattern] = Field(
        default_factory=_empty_list,
        description="Layers made non-trainable: a node, a block use (its NAME.* layers), a glob, "
        "or {NAME: {top: N}}.",
    )
    unfreeze: str | list[LayerPattern] = Field(
        default_factory=_empty_list, description="Layers made trainable again, after 'freeze' (same forms)."
    )
    optimizer: str | TypedObject | None = Field(
        default=None, description="This stage's optimizer; default: compile.optimizer."
    )
    doc: str | None = None

    def patterns(self, key: str) -> list[tuple[str, int | None, tuple]]:
        """`freeze` or `unfreeze` as (pattern, top or None, path inside the stage) in order."""
        value = getattr(self, key)
        if isinstance(value, str):
            return [(value, None, (key,))]
        found: list[tuple[str, int | None, tuple]] = []
        for i, item in enumerate(value):
            if isinstance(item, str):
                found.append((item, None, (key, i)))
            else:
                found += [(name, top.top, (key, i, name)) for name, top in item.items()]
        return found


class TrainSpec(_Strict):
    """Training settings: every value can be overridden from the command line."""

    epochs: int = Field(default=1, ge=1, le=MAX_EPOCHS)
    batch_size: int = Field(default=32, ge=1, le=MAX_BATCH_SIZE)
    validation_split: float = Field(default=0.0, ge=0.0, lt=1.0)
    shuffle: bool = True
    samples: int = Field(default=256, ge=1, le=MAX_SAMPLES, description="Synthetic samples per epoch.")
    synthetic: Literal["random", "teacher"] = Field(
        default="random",
        description="Synthetic targets: random noise, or a fixed random copy of the network's outputs.",
    )
    seq_len: int | None = Field(
        default=None,
        ge=1,
        le=MAX_SEQ_LEN,
        description="Length of null dimensions in synthetic data, for inputs that set no seq_len.",
    )
    seed: int | None = Field(default=None, ge=0, le=MAX_SEED, description="Seeds weights and synthetic data.")
    callbacks: list[TypedObject] = Field(default_factory=_empty_list)
    stages: list[StageSpec] | None = Field(
        default=None,
        min_length=1,
        description="Fine-tuning stages, run in order, each recompiled: its epochs, what it "
        "freezes and unfreezes, its optimizer. Their epochs replace train.epochs.",
    )

    @property
    def total_epochs(self) -> int:
        """The epochs of the whole run: the stages' together, else `epochs`."""
        return sum(s.epochs for s in self.stages) if self.stages else self.epochs


# What data.outputs' encoding may say: how an output's targets are made from labels or values.
ENCODINGS = ("sparse", "one-hot", "binary", "regression")


class ImageSettings(_Strict):
    """How an image file becomes an input: decoded, cropped, resized, with this many channels."""

    size: tuple[int, int] | None = Field(
        default=None, description="[height, width] images are resized to; default: the input's shape."
    )
    channels: Literal[1, 3, 4] | None = Field(
        default=None, description="1 (grey), 3 (RGB) or 4 (RGBA); default: the input's last dimension."
    )
    crop: Literal["center"] | None = Field(
        default=None, description="'center': crop to the size's aspect ratio before resizing."
    )
    convert: bool = Field(
        default=False, description="Convert images of another channel count instead of refusing them."
    )

    @field_validator("size")
    @classmethod
    def _positive_size(cls, size: tuple[int, int] | None) -> tuple[int, int] | None:
        if size is not None and (min(size) <= 0 or max(size) > 65_535):
            raise ValueError(f"an image size is two lengths from 1 to 65535, got {list(size)}")
        return size


class DataInput(_Strict):
    """Where one input's values come from: a table's column or columns, an image or a text file."""

    column: str | None = Field(default=None, description="A table column: one value per example.")
    columns: list[str] | str | None = Field(
        default=None, description="Table columns, in order, or a glob of column names ('p*'): a vector."
    )
    image: ImageSettings | None = Field(default=None, description="The example's image file.")
    text: bool | None = Field(default=None, description="true: the example's text file, as a string.")

    @model_validator(mode="after")
    def _one_source(self) -> DataInput:
        given = [k for k in ("column", "columns", "image", "text") if getattr(self, k) not in (None, False)]
        if len(given) > 1:
            raise ValueError("a data input reads one of 'column', 'columns', 'image' or 'text'")
        return self


class DataOutput(_Strict):
    """Where one output's targets come from, and how they are encoded."""

    column: str | None = Field(
        default=None, description="A table column; default: the output's name. Folders: the class folder."
    )
    columns: list[str] | str | None = Field(
        default=None, description="Table columns (or a glob of names) of a vector target."
    )
    encoding: Literal["sparse", "one-hot", "binary", "regression"] | None = Field(
        default=None, description="How labels become targets; default: what the output's loss takes."
    )
    classes: list[str] | None = Field(
        default=None, description="The class names in order; default: the labels seen in training, sorted."
    )


class DataSpec(_Strict):
    """How examples on disk meet the model's inputs and outputs (README: Your own data)."""

    inputs: dict[str, DataInput] = Field(default_factory=_empty_dict)
    outputs: dict[str, DataOutput] = Field(default_factory=_empty_dict)


class BlockSpec(_Strict):
    """A reusable sub-graph, used as a node any number of times (docs/blocks.md)."""

    doc: str | None = None
    params: dict[str, Any] | None = Field(
        default=None,
        description="Param names and defaults; a param without a value must be given. Left out: "
        "the names the block's ${...} read, each taken from where a use is written unless given.",
    )
    inbound: str | list[str] = Field(
        default="x", alias="in", description="The names of the block's inputs; left out, one input 'x'."
    )
    layers: dict[str, Any] = Field(min_length=1, description="Layers as in a spec; ${name} is a block param.")
    out: str | list[str] | dict[str, str] = Field(
        description="What a use outputs: a layer, a list of layers, or output names mapped to layers."
    )


class StructureSpec(_Strict):
    """How the Keras model takes its inputs and gives its outputs, when not as a dict by name.

    Each is a nested value of names (of inputs, of outputs): one name for a single tensor, a list
    for a list, a mapping for a dict, nested as deep as the model's own structure. Every input
    (output) appears exactly once.
    """

    inputs: Nested | None = Field(
        default=None, description="The model's inputs: a name, a list or a mapping of names, nested."
    )
    outputs: Nested | None = Field(
        default=None, description="The model's outputs: a name, a list or a mapping of names, nested."
    )


class Spec(_Strict):
    """A whole graphspec document."""

    graphspec: Literal[1] = Field(description="Format version.")
    name: str
    doc: str | None = None
    params: dict[str, Any] = Field(default_factory=_empty_dict)
    include: str | list[str] = Field(
        default_factory=_empty_list, description="Files whose blocks this spec uses, relative to it."
    )
    blocks: dict[str, BlockSpec] = Field(default_factory=_empty_dict)
    inputs: dict[str, InputSpec] = Field(min_length=1)
    layers: dict[str, LayerSpec] = Field(default_factory=_empty_dict)
    outputs: dict[str, OutputSpec] = Field(min_length=1)
    structure: StructureSpec | None = Field(
        default=None,
        description="The structure of the model's inputs and outputs; default: dicts keyed by name.",
    )
    trainable: bool = Field(default=True, description="False freezes the whole model (Keras's trainable).")
    compile: CompileSpec = Field(default_factory=CompileSpec)
    train: TrainSpec = Field(default_factory=TrainSpec)
    data: DataSpec | None = Field(
        default=None, description="How files, folders and tables feed the inputs and targets."
    )
    search: SearchSpec | None = Field(
        default=None, description="A hyperparameter search over this spec's values (graphspec tune)."
    )

    def owner(self, name: str) -> str | None:
        """The layer node whose layer instance node `name` calls: itself, or the node it shares,
        followed through shares of shares. None when the chain leaves the layers or circles."""
        seen = set()
        while name in self.layers and self.layers[name].share is not None:
            if name in seen:
                return None
            seen.add(name)
            name = self.layers[name].share
        return name if name in self.layers else None

    @field_validator("name")
    @classmethod
    def _valid_name(cls, name: str) -> str:
        if len(name) > MAX_NAME:
            raise ValueError(f"a spec name is at most {MAX_NAME} characters; this one has {len(name):,}")
        if not SPEC_NAME.match(name):
            raise ValueError(
                "a spec name is ASCII letters, digits, '_', '.' and '-', starting with a letter or '_'"
            )
        return name
