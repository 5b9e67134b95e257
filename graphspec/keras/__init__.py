"""Everything that imports Keras lives in this package, so nothing else pays for TensorFlow."""

import os

# TensorFlow 2.21's oneDNN kernels crash the process (SIGSEGV) in the gradient of a strided 1x1
# Conv2D on inputs of 48x48 and more, the projection shortcut of every ResNet. Without them
# training is as fast on the book's models. Set before TensorFlow loads; an explicit setting wins.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
