"""Everything that imports Keras lives in this package, so nothing else pays for TensorFlow."""

import os
import sys

from graphspec.errors import SpecErrors

# TensorFlow 2.21's oneDNN kernels crash the process (SIGSEGV) in the gradient of a strided 1x1
# Conv2D on inputs of 48x48 and more, the projection shortcut of every ResNet. Without them
# training is as fast on the book's models. Set before TensorFlow loads; an explicit setting wins.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
# TensorFlow's C++ start-up chatter (CPU instruction sets, CUDA factories registered twice) is not
# ours to show, for the CLI or a program calling graphspec: read once, when TensorFlow loads. Its
# real errors reach Python as exceptions; TF_CPP_MIN_LOG_LEVEL=0 brings the chatter back.
QUIET_TENSORFLOW = "3"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", QUIET_TENSORFLOW)


INSTALL = "pip install -e '.[jax]' (or '.[tensorflow]', '.[torch]')"
_BACKENDS = {"tensorflow": "tensorflow", "jax": "jax", "jaxlib": "jax", "torch": "torch"}


def keras_missing(exc: ImportError) -> SpecErrors:
    """The error (exit status 2) for Keras, or the backend it was told to use, failing to
    import: it names what is missing and the command that installs it."""
    missing = (exc.name or "keras").split(".")[0]
    backend = os.environ.get("KERAS_BACKEND") or "the one in ~/.keras/keras.json, else tensorflow"
    if missing in _BACKENDS:
        return SpecErrors.single(
            f"Keras cannot load its backend: {missing} is not installed (KERAS_BACKEND: {backend})",
            hint=f"set KERAS_BACKEND to an installed backend (jax, tensorflow, torch), or install "
            f"it: pip install -e '.[{_BACKENDS[missing]}]'",
        )
    return SpecErrors.single(
        f"Keras is not installed (importing it failed: {' '.join(str(exc).split())[:200]}); "
        "graphspec builds and trains models with Keras 3",
        hint=f"install it with a backend: {INSTALL}",
    )


def _warn_if_the_catalog_is_stale() -> None:
    # Validation (no Keras) uses the catalog; building with another Keras would then accept or
    # refuse arguments this Keras does not: say so once, where Keras is first imported.
    try:
        import keras
    except ImportError as exc:
        # Every command that builds or trains comes through here first: a clean exit 2.
        raise keras_missing(exc) from None

    from graphspec.spec.catalog import stale_warning

    warning = stale_warning(keras.__version__)
    if warning:
        sys.stderr.write(warning + "\n")
    if keras.backend.backend() == "torch":
        from graphspec.keras.torch_names import allow_dotted_names

        allow_dotted_names()


_warn_if_the_catalog_is_stale()
