"""Layer names with dots on PyTorch.

graphspec names a block's layers `USE.LAYER` and a chain's `CHAIN.TYPE` (`stage2.0.conv`), and
Keras takes such names on every backend. On PyTorch, though, Keras 3.15 keeps each layer's
variables in a `torch.nn.ParameterDict` keyed by the variable's path (`stage2.0.conv/kernel`),
and torch refuses a key with a dot: training ends in `parameter name can't contain "."`. The
keys are only torch's own names for the parameters (`named_parameters`, a torch `state_dict`);
Keras saves, loads and matches weights by its own paths, which stay as they are. So the dots are
replaced in those keys alone.
"""

from __future__ import annotations

DOT = "\u00b7"  # a middle dot: no layer name graphspec accepts holds one, so keys stay distinct


def key(path: str) -> str:
    """The ParameterDict key of a variable at Keras path `path`."""
    return path.replace(".", DOT)


def allow_dotted_names() -> None:
    """Make Keras's torch layers key their parameters with `key`; call once, on PyTorch only."""
    import torch
    from keras.src.backend.torch.layer import TorchLayer

    def _track_variables(self) -> None:
        self._torch_params = torch.nn.ParameterDict({key(v.path): v.value for v in self.variables})

    def _post_track_variable(self, variable) -> None:
        if hasattr(self, "_torch_params") and key(variable.path) not in self.torch_params:
            self.torch_params[key(variable.path)] = variable.value

    def _post_untrack_variable(self, variable) -> None:
        if hasattr(self, "_torch_params") and key(variable.path) in self.torch_params:
            self.torch_params.pop(key(variable.path))

    TorchLayer._track_variables = _track_variables
    TorchLayer._post_track_variable = _post_track_variable
    TorchLayer._post_untrack_variable = _post_untrack_variable
