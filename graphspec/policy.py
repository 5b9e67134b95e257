"""What a spec may make graphspec do: the one capability policy every reader and writer asks.

A spec is data from someone else: a pull request, a model zoo, a colleague. By default it may

- read other specs (`.yaml`/`.yml` files) under the *root*: the top spec's folder, or the folder
  `--root DIR` names on the command line. Symlinks are resolved before the check, so a link
  cannot lead out;
- write inside the run (or tune) directory of the command, by relative paths only;

and nothing else: no other file is read, no connection opened, nothing downloaded, no code run,
unless the person running the command grants it (`Grants`): `--allow-download` lets a spec's
`weights: imagenet` and KerasHub `preset:` names download into Keras's and KerasHub's own
caches, and `--allow-read DIR` lets it name a weights file or a preset folder under DIR. Grants
come from the command line or the calling program (`granted`, `graphspec.load(grants=...)`),
never from a spec, an include or a saved model.
Keras arguments are known by what they can do (`CAPABILITIES`, recorded per argument in the
catalog by `graphspec/keras/catalog_gen.py`), not by their names, so every argument goes through
the same rule. Paths a user passes on the command line (`--data`, `--out`, `--weights`,
`--init-from`, `--storage`) are the user's and are not the spec's to ask for. No TensorFlow here.
"""

from __future__ import annotations

import os
import re
import string
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

SPEC_SUFFIXES = (".yaml", ".yml")

# What an argument of a Keras class can do with its value. Plain data is the default.
DATA = "data"  # a value, nothing more
READ = "read"  # a string is the path of a file that is read (a list is the data itself)
WRITE = "write"  # a path that is written, and may be deleted (BackupAndRestore deletes its folder)
NETWORK = "network"  # an address that is reached, or a name that makes Keras download
CODE = "code"  # Python code, or a file of it, that is run

# Every argument of a Keras class (and of graphspec's own callbacks) that names a file, a folder or
# an address, or holds code, by what it can do; every other argument is plain data. Keys are
# (catalog section, class, argument), with class "*" for every class of the section. Arguments
# whose names look like a path or an address (`RESOURCE_LIKE`) but hold plain data are listed as
# DATA, so that the catalog's test fails on any such argument a new Keras adds until it is
# classified here (`graphspec/keras/catalog_gen.py` records the classification in the catalog).
CAPABILITIES: dict[tuple[str, str, str], str] = {
    ("callbacks", "ActivationLogger", "directory"): WRITE,
    ("callbacks", "BackupAndRestore", "backup_dir"): WRITE,
    ("callbacks", "BackupAndRestore", "delete_checkpoint"): DATA,
    ("callbacks", "BackupAndRestore", "double_checkpoint"): DATA,
    ("callbacks", "BackupAndRestore", "save_freq"): DATA,
    ("callbacks", "CSVLogger", "filename"): WRITE,
    ("callbacks", "EarlyStopping", "restore_best_weights"): DATA,
    ("callbacks", "ModelCheckpoint", "filepath"): WRITE,
    ("callbacks", "ModelCheckpoint", "save_best_only"): DATA,
    ("callbacks", "ModelCheckpoint", "save_freq"): DATA,
    ("callbacks", "ModelCheckpoint", "save_weights_only"): DATA,
    ("callbacks", "OrbaxCheckpoint", "directory"): WRITE,
    ("callbacks", "OrbaxCheckpoint", "save_best_only"): DATA,
    ("callbacks", "OrbaxCheckpoint", "save_freq"): DATA,
    ("callbacks", "OrbaxCheckpoint", "save_on_background"): DATA,
    ("callbacks", "OrbaxCheckpoint", "save_weights_only"): DATA,
    ("callbacks", "RemoteMonitor", "path"): NETWORK,
    ("callbacks", "RemoteMonitor", "root"): NETWORK,
    ("callbacks", "TensorBoard", "embeddings_metadata"): READ,
    ("callbacks", "TensorBoard", "log_dir"): WRITE,
    ("callbacks", "TensorBoard", "profile_batch"): DATA,
    ("layers", "Bidirectional", "weights"): DATA,
    ("layers", "Embedding", "weights"): DATA,
    ("layers", "FlaxLayer", "module"): CODE,
    ("layers", "IntegerLookup", "idf_weights"): DATA,
    ("layers", "IntegerLookup", "vocabulary"): READ,
    ("layers", "IntegerLookup", "vocabulary_dtype"): DATA,
    ("layers", "JaxLayer", "call_fn"): CODE,
    ("layers", "JaxLayer", "init_fn"): CODE,
    ("layers", "Lambda", "function"): CODE,
    ("layers", "ReversibleEmbedding", "tie_weights"): DATA,
    ("layers", "StringLookup", "idf_weights"): DATA,
    ("layers", "StringLookup", "vocabulary"): READ,
    ("layers", "TFSMLayer", "call_endpoint"): DATA,
    ("layers", "TFSMLayer", "call_training_endpoint"): DATA,
    ("layers", "TFSMLayer", "filepath"): CODE,
    ("layers", "TextVectorization", "idf_weights"): DATA,
    ("layers", "TextVectorization", "vocabulary"): READ,
    ("layers", "TorchModuleWrapper", "module"): CODE,
    ("metrics", "AUC", "label_weights"): DATA,
    # keras.ops functions whose argument is a Python callable: `{op: jvp, fun: print}` would
    # hand Keras whatever the name resolves to.
    ("ops", "jvp", "fun"): CODE,
    ("ops", "cond", "true_fn"): CODE,
    ("ops", "cond", "false_fn"): CODE,
    ("ops", "vectorized_map", "function"): CODE,
    ("ops", "average", "weights"): DATA,
    ("ops", "bincount", "weights"): DATA,
    ("ops", "ctc_decode", "top_paths"): DATA,
    ("ops", "geomspace", "endpoint"): DATA,
    ("ops", "linspace", "endpoint"): DATA,
    ("ops", "logspace", "endpoint"): DATA,
    # KerasHub's layers (graphspec/spec/catalog_hub.json, the optional extra graphspec[hub]).
    ("layers", "keras_hub.layers.MaskedLMHead", "vocabulary_size"): DATA,
    ("layers", "keras_hub.layers.MaskedLMMaskGenerator", "vocabulary_size"): DATA,
    ("layers", "keras_hub.layers.RandomDeletion", "skip_fn"): CODE,
    ("layers", "keras_hub.layers.RandomDeletion", "skip_py_fn"): CODE,
    ("layers", "keras_hub.layers.RandomSwap", "skip_fn"): CODE,
    ("layers", "keras_hub.layers.RandomSwap", "skip_py_fn"): CODE,
    ("layers", "keras_hub.layers.ReversibleEmbedding", "tie_weights"): DATA,
    ("layers", "keras_hub.layers.SAM3TextEncoder", "vocabulary_size"): DATA,
    ("layers", "keras_hub.layers.TokenAndPositionEmbedding", "tie_weights"): DATA,
    ("layers", "keras_hub.layers.TokenAndPositionEmbedding", "vocabulary_size"): DATA,
    # 'imagenet' (the default) downloads; a path is read.
    ("applications", "*", "weights"): NETWORK,
    # A KerasHub backbone's preset (graphspec's own argument, `from_preset`): a name or a
    # kaggle:// or hf:// handle downloads; a path names a preset folder, which is read.
    ("layers", "keras_hub.models.*", "preset"): NETWORK,
    # Backbone arguments whose names look like resources but are sizes, rates and switches.
    **{
        ("layers", "keras_hub.models.*", argument): DATA
        for argument in (
            "audio_vocab_offset",
            "audio_vocab_size",
            "drop_path",
            "drop_path_rate",
            "max_drop_path_rate",
            "text_vocab_size",
            "tie_embedding_weights",
            "use_bidirectional_attention",
            "use_vision_bidirectional_attention",
            "vision_vocab_offset",
            "vision_vocab_size",
            "vocab_size",
            "vocab_size_per_layer_input",
            "vocabulary_size",
        )
    },
    # MobileNetV5's rounding function: Python code.
    ("layers", "keras_hub.models.MobileNetV5Backbone", "round_chs_fn"): CODE,
}

# Where Keras's default of a READ, NETWORK or CODE argument would use it, graphspec passes this
# value instead when the spec gives none; a class with such a default and no entry here is refused.
SAFE_DEFAULTS: dict[tuple[str, str, str], Any] = {("applications", "*", "weights"): None}

# Names of arguments that may be paths, addresses or code, whatever class they belong to.
RESOURCE_LIKE = re.compile(
    r"path|dir|file|url|uri|root|host|address|endpoint|vocab|weights|metadata|module|function"
    r"|_fn$|^fn$|^fun$|^func$|callable|load|save|export|checkpoint|backup|cache|storage|asset|download",
    re.IGNORECASE,
)


def looks_like_resource(argument: str, default: Any) -> bool:
    """Whether an argument's name or default suggests a path, an address or code."""
    if RESOURCE_LIKE.search(argument):
        return True
    return isinstance(default, str) and ("/" in default or "://" in default or default.startswith("~"))


def capability(section: str, cls: str, argument: str) -> str | None:
    """What `argument` of `section`'s class `cls` can do, or None when it is not classified."""
    family = cls.rsplit(".", 1)[0] + ".*" if "." in cls else "*"
    return CAPABILITIES.get(
        (section, cls, argument),
        CAPABILITIES.get((section, family, argument), CAPABILITIES.get((section, "*", argument))),
    )


def safe_default(section: str, cls: str, argument: str) -> tuple[bool, Any]:
    """(True, value) when graphspec replaces Keras's default of `argument` with `value`."""
    for key in ((section, cls, argument), (section, "*", argument)):
        if key in SAFE_DEFAULTS:
            return True, SAFE_DEFAULTS[key]
    return False, None


# What each capability means in a message.
_REFUSALS = {
    READ: ("reads a file", "a spec reads no file but other specs"),
    NETWORK: ("reaches the network", "a spec never opens a connection or downloads"),
    CODE: ("runs code", "a spec cannot run code"),
}
# What to write instead of a refused argument, by argument name.
_INSTEAD = {
    "vocabulary": "write the vocabulary inline, as a list",
    "weights": "leave 'weights' out (graphspec passes null), or run with --allow-download "
    "(weights: imagenet) or --allow-read DIR (a weights file under DIR)",
    "embeddings_metadata": "leave it out; TensorBoard's projector works without it",
}


@dataclass(frozen=True)
class Refusal:
    """Why a spec may not do something, and what would allow it."""

    message: str
    hint: str | None = None


def refusal(capability: str, what: str, hint: str | None = None) -> Refusal:
    """The refusal of `what` (`"argument 'vocabulary'"`), which would use `capability`."""
    does, rule = _REFUSALS[capability]
    return Refusal(f"{what} {does}, and {rule}", hint)


def class_refusal(entry: dict) -> Refusal | None:
    """Why a catalog class cannot be used from a spec at all, or None.

    A class is refused when an argument it cannot do without (a required one, or one whose
    Keras default graphspec has no safe replacement for) reads a file, reaches the network or
    runs code.
    """
    refused = entry.get("refused")
    if refused is None:
        return None
    if "message" in refused:  # a class refused for what it is, not for an argument
        return Refusal(refused["message"])
    return refusal(refused["capability"], f"its argument '{refused['argument']}'")


def argument_refusal(
    entry: dict, argument: str, value: Any, grants: Grants | None = None, base: Path | None = None
) -> Refusal | None:
    """Why a spec may not give `value` to `argument` of the catalog class `entry`, or None.

    Null is always allowed. A path to write must stay in the run directory; a READ argument
    takes its data inline (a list), never a path; NETWORK and CODE arguments take nothing else,
    except what `grants` allow: a download name under `--allow-download`, a path (relative to
    `base`, the spec's folder) under an `--allow-read` folder.
    """
    kind = entry.get("capabilities", {}).get(argument)
    if kind is None or value is None:
        return None
    if kind == WRITE:
        refused = written_path_refusal(value)
        return Refusal(f"argument '{argument}': {refused.message}", refused.hint) if refused else None
    if kind == READ and isinstance(value, list):
        return None
    if kind == NETWORK and is_path(value, argument):
        kind = READ  # a name (weights: imagenet) is downloaded; a path is read
        if argument in GRANTABLE:
            return read_refusal(argument, value, grants or Grants(), base or Path.cwd())
    if kind == NETWORK and argument in GRANTABLE:
        return download_refusal(argument, value, grants or Grants())
    return refusal(kind, f"argument '{argument}'", _INSTEAD.get(argument))


# The arguments a grant can allow: what they download or read is weights, never code.
GRANTABLE = ("weights", "preset")
# What `--allow-download` lets each of them name: keras.applications' one download, and
# KerasHub's preset names and handles (kaggle://, hf://, modelscope://). Anything else, a
# file:// or http:// address among them, stays refused: the grant is for Keras's and
# KerasHub's own sources and caches, not for any address a spec writes.
_DOWNLOADS = {
    "weights": re.compile(r"imagenet"),
    "preset": re.compile(
        r"(?:(?:kaggle|hf|modelscope)://)?[A-Za-z0-9][A-Za-z0-9_.\-]*(?:/[A-Za-z0-9_.\-]+)*"
    ),
}


def is_path(value: Any, argument: str = "preset") -> bool:
    """Whether a `weights` or `preset` value names a file or folder rather than something to
    download: a `weights` other than 'imagenet', or a preset with a `/` that is no address."""
    if not isinstance(value, str) or "://" in value:
        return False
    if argument == "weights":
        return value != "imagenet"
    return "/" in value or value.startswith((".", "~"))


def download_refusal(argument: str, value: Any, grants: Grants) -> Refusal | None:
    """Why `argument: value` may not download, under `grants`; None if it may."""
    pattern = _DOWNLOADS[argument]
    if not isinstance(value, str) or not pattern.fullmatch(value) or ".." in value.split("/"):
        allowed = (
            "'imagenet'" if argument == "weights" else "a KerasHub preset name or a kaggle:// or hf:// handle"
        )
        return Refusal(
            f"argument '{argument}': {value!r} is neither a path nor {allowed}, and a spec downloads "
            "nothing else",
            "name a file or folder (with a '/'), under a folder the command grants with --allow-read DIR",
        )
    if grants.download:
        return None
    return refusal(
        NETWORK,
        f"argument '{argument}'",
        f"run again with --allow-download to let Keras fetch {value!r} into its own cache",
    )


def read_refusal(argument: str, value: str, grants: Grants, base: Path) -> Refusal | None:
    """Why the weights file or preset folder `value` (relative to `base`) may not be read under
    `grants`; None if it may. Judged where the path really leads: `..` and every symlink are
    followed first, so neither a link nor `..` can lead out of a granted folder."""
    if value.startswith("~"):
        return Refusal(
            f"argument '{argument}': '{value}' starts with '~'; write the path absolute, or relative "
            "to the spec's folder"
        )
    if "\0" in value:
        return Refusal(f"argument '{argument}': {value!r} holds a NUL character, which no path does")
    real = granted_path(value, base)
    if not grants.read:
        return refusal(
            READ,
            f"argument '{argument}'",
            f"run again with --allow-read DIR to let the spec read files under DIR (this one is {real})",
        )
    if not any(is_within(real, folder) for folder in grants.read):
        link = f", which leads to {real}," if real != Path(os.path.abspath(base / value)) else ""
        return Refusal(
            f"argument '{argument}': '{value}'{link} is outside the folders --allow-read grants "
            f"({', '.join(str(f) for f in grants.read)})",
            f"run again with --allow-read DIR for a folder that holds {real}",
        )
    if not real.exists():
        return Refusal(f"argument '{argument}': '{value}' does not exist (it would be {real})")
    if not (real.is_file() or real.is_dir()):  # a FIFO or a device would block or never end
        return Refusal(f"argument '{argument}': '{value}' ({real}) is neither a file nor a folder")
    if argument == "weights" and not (real.is_file() and real.name.endswith(".h5")):
        # Keras would also unpack a .keras zip here, past the bounded reading every model file
        # graphspec reads goes through (graphspec/keras/model_file.py): HDF5 weights only.
        return Refusal(
            f"argument 'weights': '{value}' ({real}) is not a weights file",
            "name a .weights.h5 file (model.save_weights), or Keras's older .h5",
        )
    if real.is_dir():
        # A preset folder is read whole (config, weights, tokenizer assets): a link inside it
        # must not lead out either.
        for count, inner in enumerate(_walk(real)):
            if count >= _MAX_WALK:  # unchecked entries would be read unchecked: refuse instead
                return Refusal(
                    f"argument '{argument}': '{value}' holds more than {_MAX_WALK:,} files and folders; "
                    "a preset is a handful"
                )
            target = resolved(inner)
            if not any(is_within(target, folder) for folder in grants.read):
                return Refusal(
                    f"argument '{argument}': {inner} in '{value}' is a link to {target}, outside the "
                    f"folders --allow-read grants ({', '.join(str(f) for f in grants.read)})"
                )
            if not (target.is_file() or target.is_dir()):
                return Refusal(f"argument '{argument}': {inner} in '{value}' is neither a file nor a folder")
    return None


# The most entries a preset folder may hold: each is judged, so the check is bounded.
_MAX_WALK = 10_000


def _walk(folder: Path) -> Iterator[Path]:
    """Every entry under `folder`; links are not followed into (each is judged by where it
    leads), and at most one past `_MAX_WALK` is listed."""
    count = 0
    for parent, folders, files in os.walk(folder):
        for name in folders + files:
            yield Path(parent) / name
            count += 1
            if count > _MAX_WALK:
                return


def granted_path(value: str, base: Path) -> Path:
    """The file or folder a spec's `value` names, relative to `base`, with `..` and every link
    followed: what the check judges, and what the build passes to Keras."""
    return resolved(Path(base) / value)


@dataclass(frozen=True)
class Grants:
    """What the person running a command allows a spec beyond the policy: `download` (fetch
    `weights: imagenet` and KerasHub presets into Keras's and KerasHub's caches) and `read`
    (the folders, symlinks resolved, whose weights files and preset folders it may name)."""

    download: bool = False
    read: tuple[Path, ...] = field(default_factory=tuple)

    def __bool__(self) -> bool:
        return self.download or bool(self.read)

    def record(self) -> dict[str, Any]:
        """The grants as JSON-ready data, as the run records them and the training fingerprint
        hashes them."""
        return {"download": self.download, "read": sorted(str(f) for f in self.read)}

    def flags(self) -> list[str]:
        """The command-line options that give these grants."""
        return (["--allow-download"] if self.download else []) + [f"--allow-read={f}" for f in self.read]


def make_grants(download: bool = False, read: list[str | Path] | tuple = ()) -> Grants:
    """Grants from the command line's `--allow-download` and `--allow-read DIR` values. Each
    folder must exist; it is kept with its symlinks resolved, so that what it grants is fixed
    now. Raises ValueError naming a folder that is not one."""
    folders = []
    for given in read:
        real = resolved(Path(given).expanduser())
        if not real.is_dir():
            raise ValueError(f"--allow-read {given}: {real} is not a folder")
        if real not in folders:
            folders.append(real)
    return Grants(bool(download), tuple(folders))


_GRANTS: ContextVar[Grants | None] = ContextVar("graphspec_grants", default=None)


def current_grants() -> Grants:
    """The grants of the command being run (none unless the command line or the calling
    program gave some)."""
    return _GRANTS.get() or Grants()


@contextmanager
def granted(grants: Grants) -> Iterator[Grants]:
    """Run the block with `grants` in effect for every spec it loads and builds."""
    token = _GRANTS.set(grants)
    try:
        yield grants
    finally:
        _GRANTS.reset(token)


def activate_grants(grants: Grants) -> None:
    """Put `grants` in effect for the rest of this command (the CLI's options)."""
    _GRANTS.set(grants)


def resolved(path: Path) -> Path:
    """`path` made absolute with every symlink followed (the file it really is)."""
    return Path(os.path.realpath(path))


def is_within(path: Path, folder: Path) -> bool:
    """Whether `path` lies in `folder` (both already resolved)."""
    return path == folder or folder in path.parents


@dataclass(frozen=True)
class Policy:
    """What the specs of one command may read: other specs under `root`.

    `root=None` means the folder of the top spec, fixed when the top spec is opened
    (`for_spec`); a `--root DIR` on the command line widens it, e.g. to the repository.
    """

    root: Path | None = None
    # What the command line or the calling program grants beyond the policy (never a spec).
    grants: Grants = field(default_factory=lambda: Grants())

    def for_spec(self, spec_path: Path) -> Policy:
        """This policy with its root fixed: the given root, else `spec_path`'s folder."""
        root = self.root if self.root is not None else Path(spec_path).parent
        return Policy(resolved(Path(root)), self.grants)

    def spec_refusal(self, written: str, target: Path) -> Refusal | None:
        """Why a spec may not read the spec it writes as `written`, found at `target`; None if it may.

        Only `.yaml`/`.yml` files under the root are specs, judged after symlinks are followed.
        """
        if PurePosixPath(written).is_absolute() or Path(written).is_absolute() or written.startswith("~"):
            return Refusal("paths in a spec are relative to the spec's folder")
        if not written.endswith(SPEC_SUFFIXES):
            return Refusal("a spec can only read other specs (.yaml or .yml files)")
        return self.file_refusal(target)

    def file_refusal(self, target: Path) -> Refusal | None:
        """Why the spec file at `target` may not be read (outside the root, or not a `.yaml` or
        `.yml` file, once links are followed); None if it may."""
        real = resolved(target)
        root = self.root if self.root is not None else resolved(Path(target).parent)
        shown = os.path.normpath(target)
        if not is_within(real, root):
            link = f" is a link to {real}, which" if real != Path(os.path.abspath(shown)) else ""
            return Refusal(
                f"{shown}{link} is outside the root folder {root}",
                f"a spec reads only specs under its root; run again with --root DIR to allow "
                f"specs under DIR (now: {root})",
            )
        if not real.name.endswith(SPEC_SUFFIXES):
            what = f"{shown} is a link to {real}, which" if real != Path(os.path.abspath(shown)) else shown
            return Refusal(f"{what} is not a spec", "specs are .yaml or .yml files")
        return None


def op_refusal(name: str, entry: dict) -> tuple[str, Refusal] | None:
    """Why the `keras.ops` function `name` (its catalog entry `entry`) cannot be a spec's node,
    with the argument that makes it so, or None. An op is refused whole when any of its
    arguments is classified as reading, reaching or running something (`jvp`'s `fun` is code):
    unlike a layer's, an op's arguments have no safe default to fall back on."""
    kinds = dict(entry.get("capabilities", {}))
    for argument in entry.get("args", ()):
        kinds.setdefault(argument, capability("ops", name, argument))
    for argument, kind in kinds.items():
        if kind in (READ, NETWORK, CODE):
            return argument, refusal(kind, f"its argument '{argument}'")
    return None


def written_path_refusal(value: Any, folder: str = "the run directory") -> Refusal | None:
    """Why a path a spec gives for a file or folder to write is refused; None if it may be written.

    It must be relative and stay in `folder` (the run directory, or the tune folder): no
    absolute path, no `~`, no `..` that leads out. That folder is made new by graphspec, so
    nothing in it was placed by the spec.
    """
    if value is None:
        return None
    example = f"write a path relative to {folder}, such as 'logs' or 'checkpoints/best.keras'"
    if not isinstance(value, str) or not value.strip():
        return Refusal(f"a path to write must be a relative path, got {value!r}")
    if Path(value).is_absolute() or PurePosixPath(value).is_absolute() or value.startswith("~"):
        return Refusal(f"'{value}' is an absolute path; a spec writes only inside {folder}", example)
    normal = os.path.normpath(value)
    if normal == ".." or normal.startswith(".." + os.sep) or normal.startswith("../"):
        return Refusal(f"'{value}' leads out of {folder}; a spec writes only inside it", example)
    if normal == ".":
        return Refusal(f"'{value}' is {folder} itself; name a file or folder inside it", example)
    return format_refusal(value)


# A field in a path Keras formats (ModelCheckpoint's `filepath`): a name, `{epoch}` or a logged
# metric, and at most a zero-padded width and a precision: `{epoch:02d}`, `{val_loss:.4f}`.
_FIELD_NAME = re.compile(r"[A-Za-z_]\w*")
_FIELD_SPEC = re.compile(r"(0?)(\d*)(?:\.(\d+))?([defg%]?)")
_FIELD_EXAMPLE = "write fields as {epoch}, {epoch:02d} or {val_loss:.4f}"


def format_refusal(value: str) -> Refusal | None:
    """Why the format fields of a path to write are refused, or None.

    Keras formats ModelCheckpoint's path with the epoch and the logged metrics, so a field may
    only name one of them with a plain width and precision, each within the command's `width`
    budget: `{epoch.__class__.__mro__}` would name a file after Python objects, and
    `{epoch:>1000000000}` would make a string of a gigabyte. Parsed, never formatted here.
    """
    if "{" not in value and "}" not in value:
        return None
    from graphspec import budget

    try:
        fields = [(name, spec, conversion) for _, name, spec, conversion in string.Formatter().parse(value)]
    except ValueError as exc:
        return Refusal(f"'{value}' is not a valid path format: {exc}", _FIELD_EXAMPLE)
    limit = budget.current().limits["width"]
    for name, spec, conversion in fields:
        if name is None:
            continue
        field = "{" + name + ("!" + conversion if conversion else "") + (":" + spec if spec else "") + "}"
        shape = _FIELD_SPEC.fullmatch(spec or "")
        if not _FIELD_NAME.fullmatch(name) or conversion or shape is None:
            return Refusal(
                f"'{value}': the field {field} is not one a path may hold: a field names the epoch "
                "or a metric, with at most a width and a precision",
                _FIELD_EXAMPLE,
            )
        widest = max(int(shape.group(2) or 0), int(shape.group(3) or 0))
        if widest > limit:
            return Refusal(
                f"'{value}': the field {field} is {widest:,} characters wide, over the limit of "
                f"{limit:,} {budget.LIMITS['width'].counts}",
                budget.option_hint("width"),
            )
    return None


class OutsideRun(Exception):
    """A path to write resolved outside the run directory (a symlink met at run time)."""


def confined(value: str, folder: Path) -> Path:
    """The absolute path a spec's relative `value` names inside `folder`.

    Checked again here, after symlinks are followed, because the check at validation is of the
    text; raises `OutsideRun` when the path would lead out of `folder`.
    """
    refused = written_path_refusal(value)
    if refused is not None:
        raise OutsideRun(refused.message)
    root = resolved(folder)
    target = resolved(root / value)
    if not is_within(target, root) or target == root:
        raise OutsideRun(f"'{value}' resolves to {target}, outside the run directory {root}")
    return target
