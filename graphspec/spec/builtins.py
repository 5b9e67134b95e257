"""graphspec's own named objects a spec may use beside Keras's, with their arguments.

Described as data here so validation needs no Keras; implemented in `graphspec/keras/`.
"""

from __future__ import annotations

BUILTIN_CALLBACKS: dict[str, dict] = {
    # The book's custom callback: every layer's activations on the first validation sample,
    # saved as .npz at each epoch's end.
    "ActivationLogger": {"args": ["directory"], "required": []},
}
