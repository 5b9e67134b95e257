"""graphspec's own Keras losses, for outputs trained without a target array.

- `ValueLoss` (`loss: value` in a spec): the output's own value is the loss, averaged as Keras
  averages any loss (over the batch and the output's axes). A KL term, an auxiliary loss.
- `IndexTargetLoss` (`target: index`): another loss, against each row's index in its batch,
  0..batch-1, made from the batch itself. Contrastive (CLIP) logits of shape (batch, batch).
- `IndexTargetMetric`: a metric on such an output, against the same row indices.

Keras still hands every loss a `y_true`; training feeds these outputs a dummy one (zeros, one per
sample) and the classes here ignore it. Labels are made from the batch a step sees, so they
stay right when batches are shuffled, cut short or split between devices.

Each class is registered serializable (package "graphspec"): a saved model loads in stock Keras
after `import graphspec.keras.losses`.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

PACKAGE = "graphspec"


def _row_indices(y_pred: Any) -> Any:
    """0..batch-1 as int32, the batch being `y_pred`'s first axis as the step sees it."""
    return ops.arange(ops.shape(y_pred)[0], dtype="int32")


@keras.saving.register_keras_serializable(package=PACKAGE)
class ValueLoss(keras.losses.Loss):
    """The prediction is the loss: `y_true` is ignored."""

    def __init__(self, name: str = "value", reduction: str = "sum_over_batch_size", dtype: Any = None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)

    def call(self, y_true: Any, y_pred: Any) -> Any:
        return y_pred


@keras.saving.register_keras_serializable(package=PACKAGE)
class IndexTargetLoss(keras.losses.Loss):
    """`loss` against the row indices 0..batch-1 (`y_true` is ignored); reduced by this
    loss's own `reduction` (the wrapped loss's is not used)."""

    def __init__(
        self,
        loss: Any,
        name: str | None = None,
        reduction: str = "sum_over_batch_size",
        dtype: Any = None,
    ):
        if isinstance(loss, dict):
            loss = keras.losses.deserialize(loss)
        self.inner = keras.losses.get(loss)
        inner_name = getattr(self.inner, "name", None) or getattr(self.inner, "__name__", "loss")
        super().__init__(name=name or f"index_{inner_name}", reduction=reduction, dtype=dtype)

    def call(self, y_true: Any, y_pred: Any) -> Any:
        unreduced = self.inner.call if isinstance(self.inner, keras.losses.Loss) else self.inner
        return unreduced(_row_indices(y_pred), y_pred)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "loss": keras.losses.serialize(self.inner)}


@keras.saving.register_keras_serializable(package=PACKAGE)
class IndexTargetMetric(keras.metrics.Metric):
    """`metric` updated against the row indices 0..batch-1 (`y_true` is ignored).
    'accuracy' (or 'acc') means sparse categorical accuracy, the labels being class ids."""

    def __init__(self, metric: Any, name: str | None = None, dtype: Any = None):
        if metric in ("accuracy", "acc"):
            metric = keras.metrics.SparseCategoricalAccuracy(name=metric)
        elif isinstance(metric, dict):
            metric = keras.metrics.deserialize(metric)
        else:
            metric = keras.metrics.get(metric)
        if not isinstance(metric, keras.metrics.Metric):  # a function: its mean over the samples
            metric = keras.metrics.MeanMetricWrapper(metric, name=metric.__name__)
        super().__init__(name=name or metric.name, dtype=dtype or metric.dtype)
        self.inner = metric

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        self.inner.update_state(_row_indices(y_pred), y_pred, sample_weight=sample_weight)

    def result(self) -> Any:
        return self.inner.result()

    def reset_state(self) -> None:
        self.inner.reset_state()

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype, "metric": keras.metrics.serialize(self.inner)}
