"""Data parallel training on the local devices, on whichever Keras backend is running.

`graphspec train --devices N|all` replicates the model over N local devices and splits every
batch between them: JAX through `keras.distribution.DataParallel`, TensorFlow through
`tf.distribute.MirroredStrategy` (the model is built and compiled inside its scope). Keras has
no data parallel API for PyTorch, so that backend trains on one device and `--devices` above 1
is refused.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import keras

from graphspec.errors import SpecErrors

ALL = "all"


def backend() -> str:
    """The running Keras backend's name: jax, tensorflow, torch or numpy."""
    return keras.backend.backend()


def local_devices() -> list[str]:
    """The devices a run could use here, accelerators first: GPUs (or TPUs) where there are any,
    else the CPUs (with virtual ones counted, as XLA_FLAGS or TensorFlow's logical devices
    set them)."""
    name = backend()
    if name == "jax":
        import jax

        return [f"{d.platform}:{d.id}" for d in jax.local_devices()]
    if name == "tensorflow":
        import tensorflow as tf

        for kind in ("GPU", "TPU", "CPU"):
            found = tf.config.list_logical_devices(kind)
            if found:
                # "/job:localhost/replica:0/task:0/device:CPU:0" as "cpu:0", as JAX names it.
                return [d.name.rsplit("device:", 1)[-1].lower() for d in found]
    return ["cpu:0"]


def device_count(requested: str | None) -> int:
    """How many devices `--devices requested` asks for (None: one), checked against those here.

    Raises `SpecErrors` (exit status 2, nothing written) for a count that is not a positive
    number or `all`, one above the devices there are, or above 1 on a backend without data
    parallel training.
    """
    if requested is None:
        return 1
    here = local_devices()
    if requested == ALL:
        count = len(here)
    else:
        try:
            count = int(requested)
        except ValueError:
            count = 0
        if count < 1:
            raise SpecErrors.single(f"--devices takes a positive number or 'all'; got '{requested}'")
    if count > 1 and backend() not in ("jax", "tensorflow"):
        raise SpecErrors.single(
            f"--devices {requested}: Keras has no data parallel training on the {backend()} backend",
            hint="train with KERAS_BACKEND=jax or KERAS_BACKEND=tensorflow, or on one device",
        )
    if count > len(here):
        raise SpecErrors.single(
            f"--devices {requested}: there {'is' if len(here) == 1 else 'are'} {len(here)} "
            f"device{'s' if len(here) != 1 else ''} here ({', '.join(here)})",
            hint="give --devices all, or fewer",
        )
    return count


def check_batches(count: int, batch_size: int, samples: dict[str, int]) -> None:
    """Refuse batches that `count` devices cannot split evenly, as JAX's sharding needs:
    `samples` maps what is batched (training, validation) to its number of samples."""
    if count <= 1 or backend() != "jax":
        return
    if batch_size % count:
        raise SpecErrors.single(
            f"--devices {count}: a batch of {batch_size} does not split evenly over {count} devices",
            hint=f"use a batch size that is a multiple of {count}",
        )
    for what, number in samples.items():
        last = number % batch_size
        if last % count:
            raise SpecErrors.single(
                f"--devices {count}: the last {what} batch has {last} samples, which does not split "
                f"evenly over {count} devices",
                hint=f"use a number of {what} samples that is a multiple of {count}",
            )


@contextlib.contextmanager
def replicated(count: int) -> Iterator[Callable[[], contextlib.AbstractContextManager]]:
    """Within this context, a model built and compiled inside the scope it yields is replicated
    over the first `count` local devices, and `fit` splits each step's batch between them; with
    `count` 1, nothing changes.

    Only the student goes in that scope: on TensorFlow, a model inside a MirroredStrategy that
    predicts from within a tf.data generator (the synthetic data's teacher) deadlocks.
    """
    if count <= 1:
        yield contextlib.nullcontext
        return
    if backend() == "jax":
        devices = keras.distribution.list_devices()[:count]
        previous = keras.distribution.distribution()
        keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
        try:
            yield contextlib.nullcontext
        finally:
            keras.distribution.set_distribution(previous)
        return
    import tensorflow as tf

    yield tf.distribute.MirroredStrategy([f"/{name}" for name in local_devices()[:count]]).scope
