"""Everything that imports Keras lives in this package, so nothing else pays for TensorFlow."""

import os
import sys

# TensorFlow 2.21's oneDNN kernels crash the process (SIGSEGV) in the gradient of a strided 1x1
# Conv2D on inputs of 48x48 and more, the projection shortcut of every ResNet. Without them
# training is as fast on the book's models. Set before TensorFlow loads; an explicit setting wins.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
# TensorFlow's C++ start-up chatter (CPU instruction sets, CUDA factories registered twice) is not
# ours to show, for the CLI or a program calling graphspec: read once, when TensorFlow loads. Its
# real errors reach Python as exceptions; TF_CPP_MIN_LOG_LEVEL=0 brings the chatter back.
QUIET_TENSORFLOW = "3"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", QUIET_TENSORFLOW)


def _warn_if_the_catalog_is_stale() -> None:
    # Validation (no Keras) uses the catalog; building with another Keras would then accept or
    # refuse arguments this Keras does not: say so once, where Keras is first imported.
    import keras

    from graphspec.spec.catalog import stale_warning

    warning = stale_warning(keras.__version__)
    if warning:
        sys.stderr.write(warning + "\n")


_warn_if_the_catalog_is_stale()
