"""Data parallel training on the local devices, on whichever Keras backend is running.

`graphspec train --devices N|all` replicates the model over N local devices and splits every
batch between them: JAX through `keras.distribution.DataParallel`, TensorFlow through
`tf.distribute.MirroredStrategy` (the model is built and compiled inside its scope). Keras has
no data parallel API for PyTorch, so that backend trains on one device and `--devices` above 1
is refused.

`graphspec train --coordinator HOST:PORT --num-processes N --process-id I` (or `--distributed`
under a cluster manager JAX detects, such as SLURM) trains one model over every device of N
processes, on JAX's distributed runtime: each process feeds its part of every batch, and
process 0 alone writes the run directory.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np

from graphspec import handshake
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


def check_batches(
    count: int, batch_size: int, samples: dict[str, int], processes: Processes | None = None
) -> None:
    """Refuse batches that `count` devices cannot split evenly, as JAX's sharding needs:
    `samples` maps what is batched (training, validation) to its number of samples. The
    devices are `--devices`', or those of every process in `processes`."""
    if count <= 1 or backend() != "jax":
        return
    where = f"--devices {count}"
    if processes is not None and processes.count > 1:
        where = f"{processes.count} processes with {count} devices in all"
    if batch_size % count:
        raise SpecErrors.single(
            f"{where}: a batch of {batch_size} does not split evenly over {count} devices",
            hint=f"use a batch size that is a multiple of {count}",
        )
    for what, number in samples.items():
        last = number % batch_size
        if last % count:
            raise SpecErrors.single(
                f"{where}: the last {what} batch has {last} samples, which does not split "
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


# --- More than one machine: JAX's distributed runtime -------------------------------------------

DEFAULT_JOIN_TIMEOUT = 60
# Options that must travel together, as the CLI names them.
_CLUSTER_OPTIONS = ("--coordinator", "--num-processes", "--process-id")
# Callbacks that run on every process together (a jitted computation over every device, or
# Orbax's collective save): on process 0 alone, as writing callbacks are, they would wait forever.
_COLLECTIVE_CALLBACKS = ("ActivationLogger", "OrbaxCheckpoint")


@dataclass(frozen=True)
class Cluster:
    """A multi-process run this process joins, with JAX's distributed runtime.

    `coordinator` ("HOST:PORT", process 0's address), `num_processes` and `process_id` are
    given together; all three None means `jax.distributed.initialize` finds them in the
    cluster environment (SLURM, Open MPI, a Cloud TPU slice). `timeout` bounds, in seconds, the
    wait for every process to join; `token`, the shared join token that authenticates the
    processes to process 0 (None: greetings are not authenticated).
    """

    coordinator: str | None = None
    num_processes: int | None = None
    process_id: int | None = None
    timeout: int = DEFAULT_JOIN_TIMEOUT
    token: bytes | None = field(default=None, repr=False)

    @property
    def detected(self) -> bool:
        """Whether the cluster environment says who is who, rather than the options."""
        return self.coordinator is None


@dataclass(frozen=True)
class Processes:
    """Where this process stands in the run it trains in: `index` of `count` processes, with
    `devices` devices over all of them. A single-process run is index 0 of 1."""

    index: int = 0
    count: int = 1
    devices: int = 1

    @property
    def writes(self) -> bool:
        """Whether this process writes the run directory: process 0 only."""
        return self.index == 0


def cluster_options(
    coordinator: str | None,
    num_processes: int | None,
    process_id: int | None,
    detect: bool = False,
    timeout: int | None = None,
    token_file: Path | None = None,
) -> Cluster | None:
    """The cluster `train --coordinator/--num-processes/--process-id` (or `--distributed`, to
    detect it) describe, checked without connecting to anything; None for a run on this
    machine alone.

    Raises `SpecErrors` for options given in part, a malformed HOST:PORT, a number of
    processes below 1, a process id outside 0..N-1, a timeout below 1 s, or a join token file
    that cannot be read (or is given without --coordinator). The join token is read from
    `token_file`, else from the GRAPHSPEC_JOIN_TOKEN environment variable.
    """
    values = dict(zip(_CLUSTER_OPTIONS, (coordinator, num_processes, process_id), strict=True))
    given = [name for name, value in values.items() if value is not None]
    if timeout is not None and timeout < 1:
        raise SpecErrors.single(f"--join-timeout takes a number of seconds of at least 1; got {timeout}")
    wait = DEFAULT_JOIN_TIMEOUT if timeout is None else timeout
    if token_file is not None and (detect or not given):
        raise SpecErrors.single(
            "--join-token-file authenticates the processes of a run started with --coordinator, "
            "--num-processes and --process-id",
            hint="give it with those three options (--distributed has no graphspec handshake)",
        )
    if detect:
        if given:
            raise SpecErrors.single(
                f"--distributed finds the coordinator and the processes in the cluster environment; "
                f"{', '.join(given)} would name them again",
                hint="give --distributed alone, or --coordinator, --num-processes and --process-id",
            )
        return Cluster(timeout=wait)
    if not given:
        if timeout is not None:
            raise SpecErrors.single(
                "--join-timeout bounds the wait for the other processes of a multi-process run",
                hint="give it with --coordinator, --num-processes and --process-id, or --distributed",
            )
        return None
    if len(given) < len(values):
        missing = [name for name in values if values[name] is None]
        raise SpecErrors.single(
            f"a multi-process run needs --coordinator, --num-processes and --process-id together; "
            f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} missing",
            hint="give all three on every process, or --distributed under a cluster manager such as SLURM",
        )
    handshake.address(coordinator)
    if num_processes < 1:
        raise SpecErrors.single(f"--num-processes takes a number of at least 1; got {num_processes}")
    if not 0 <= process_id < num_processes:
        raise SpecErrors.single(
            f"--process-id {process_id} is out of range: {num_processes} "
            f"process{'es are' if num_processes != 1 else ' is'} numbered 0 to {num_processes - 1}"
        )
    token = handshake.join_token(token_file)
    return Cluster(coordinator, num_processes, process_id, wait, token)


def check_cluster_run(cluster: Cluster, callbacks: list[str], devices: str | None, resume: bool) -> None:
    """Refuse, before connecting, a multi-process run that cannot be: a backend other than
    JAX, `--devices` (every device of every process is used), `--resume` (process 0 alone has
    the backup), or callbacks that would have process 0 wait for the others (`callbacks`: the
    spec's callback types)."""
    if backend() != "jax":
        raise SpecErrors.single(
            f"a multi-process run uses JAX's distributed runtime; the Keras backend here is {backend()}",
            hint="run every process with KERAS_BACKEND=jax (pip install -e '.[jax]')",
        )
    if devices is not None:
        raise SpecErrors.single(
            "a multi-process run trains on every device of every process; --devices chooses among "
            "one machine's",
            hint="leave --devices out (CUDA_VISIBLE_DEVICES chooses a machine's GPUs)",
        )
    if resume:
        raise SpecErrors.single(
            "--resume continues a run on one machine: a multi-process run's backup is process 0's alone",
            hint="start the run again, or resume it on one machine",
        )
    for name in callbacks:
        if name in _COLLECTIVE_CALLBACKS:
            raise SpecErrors.single(
                f"callback {name} cannot run in a multi-process run: process 0 alone writes the run, "
                "and this callback would need the other processes with it",
                hint="leave it out of train.callbacks for a multi-process run",
            )


def join(cluster: Cluster) -> Processes:
    """Join the multi-process run `cluster` describes: every process waits for all the others
    (at most `cluster.timeout` seconds), then `jax.distributed.initialize` connects them. Must
    be called before any JAX computation in this process.

    With the options given, graphspec's own handshake on the coordinator's port comes first,
    so that a coordinator that cannot be reached, a process missing, or two processes with the
    same id are `SpecErrors` (JAX ends the process on them, without a Python exception).
    """
    import jax

    # Collectives between CPU processes (the tests' virtual devices, a CPU cluster) go through
    # Gloo; accelerators have their own (NCCL on GPUs, ICI on TPUs).
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    if cluster.detected:
        try:
            jax.distributed.initialize(initialization_timeout=cluster.timeout)
        except (ValueError, RuntimeError) as exc:
            raise SpecErrors.single(
                f"--distributed: JAX found no cluster to join: {_one_line(exc)}",
                hint="run under a cluster manager JAX detects (SLURM, Open MPI), or give "
                "--coordinator, --num-processes and --process-id",
            ) from None
    else:
        # Alone, process 0 still finds out whether the port is free. JAX's service then binds
        # the address the handshake listened on, not every interface.
        bound = handshake.meet(
            handshake.Meeting(
                cluster.coordinator, cluster.num_processes, cluster.process_id, cluster.timeout, cluster.token
            )
        )
        jax.distributed.initialize(
            coordinator_address=cluster.coordinator,
            coordinator_bind_address=bound if cluster.process_id == 0 else None,
            num_processes=cluster.num_processes,
            process_id=cluster.process_id,
            initialization_timeout=cluster.timeout,
        )
    return Processes(jax.process_index(), jax.process_count(), jax.device_count())


def _one_line(exc: BaseException, limit: int = 300) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


@contextlib.contextmanager
def across_processes() -> Iterator[Callable[[], contextlib.AbstractContextManager]]:
    """Within this context (after `join`), a model built in it is replicated over every device
    of every process, and `fit` assembles each step's batch from every process's part of it;
    yields the scope to build in, as `replicated` does."""
    previous = keras.distribution.distribution()
    # Each process gives its own part of every batch (`ProcessBatches`, `SyntheticData`'s
    # shard, a folder's `FileBatches`, a table's `StreamBatches`): Keras is not to split the
    # data between processes again.
    everywhere = keras.distribution.DataParallel(
        devices=keras.distribution.list_devices(), auto_shard_dataset=False
    )
    keras.distribution.set_distribution(everywhere)
    try:
        yield contextlib.nullcontext
    finally:
        keras.distribution.set_distribution(previous)


@contextlib.contextmanager
def local() -> Iterator[None]:
    """Within this context, models are built and run on this process's default device alone,
    whatever distribution training uses: the synthetic data's teacher is each process's own,
    run on its part of each batch."""
    if backend() != "jax":
        yield
        return
    previous = keras.distribution.distribution()
    keras.distribution.set_distribution(None)
    try:
        yield
    finally:
        keras.distribution.set_distribution(previous)


def same_seed(seed: int, processes: Processes) -> int:
    """Process 0's `seed`, on every process of a multi-process run (each drew its own when the
    spec gives none; weights, data and the order of batches must agree)."""
    if processes.count <= 1:
        return seed
    from jax.experimental import multihost_utils

    return int(multihost_utils.broadcast_one_to_all(np.int32(seed)))


def part(count: int, processes: Processes) -> slice:
    """The rows of a batch of `count` samples that this process feeds (`count` splits evenly
    over every device, which `check_batches` makes sure of)."""
    size = count // processes.count
    return slice(processes.index * size, (processes.index + 1) * size)


class ProcessBatches(keras.utils.PyDataset):
    """Arrays in batches of `batch_size` samples, of which this process yields its part: each
    process of a multi-process run trains on the same batches, in the same order (the seed is
    the same), each feeding its rows. Keras shuffles whole batches, not samples."""

    def __init__(
        self,
        x: dict[str, np.ndarray],
        y: dict[str, np.ndarray],
        batch_size: int,
        processes: Processes,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.x, self.y, self.batch_size, self.processes = x, y, batch_size, processes
        self.samples = len(next(iter(x.values())))

    def __len__(self) -> int:
        return math.ceil(self.samples / self.batch_size)

    def __getitem__(self, index: int) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        if not 0 <= index < len(self):
            raise IndexError(f"batch {index} of {len(self)}")
        start = index * self.batch_size
        count = min(self.batch_size, self.samples - start)
        rows = part(count, self.processes)
        rows = slice(start + rows.start, start + rows.stop)
        return {k: v[rows] for k, v in self.x.items()}, {k: v[rows] for k, v in self.y.items()}


class ProcessLocal(keras.callbacks.Callback):
    """`callback`, run with no distribution in effect: on process 0 of a multi-process run,
    which alone saves, the objects Keras makes while saving weights (a reference optimizer, for
    one) are made on this process only; under the distribution, making them would wait for
    the other processes, which are not saving. The replicated weights are read from this
    process's copy."""

    def __init__(self, callback: keras.callbacks.Callback):
        super().__init__()
        self.callback = callback

    def set_params(self, params: dict) -> None:
        super().set_params(params)
        self.callback.set_params(params)

    def set_model(self, model: keras.Model) -> None:
        super().set_model(model)
        with local():
            self.callback.set_model(model)


def _run_locally(hook: str) -> Callable[..., None]:
    def run(self: ProcessLocal, *args: Any, **kwargs: Any) -> None:
        with local():
            getattr(self.callback, hook)(*args, **kwargs)

    run.__name__ = hook
    return run


for _hook in (
    "on_train_begin",
    "on_train_end",
    "on_epoch_begin",
    "on_epoch_end",
    "on_train_batch_begin",
    "on_train_batch_end",
    "on_test_begin",
    "on_test_end",
    "on_test_batch_begin",
    "on_test_batch_end",
    "on_predict_begin",
    "on_predict_end",
    "on_predict_batch_begin",
    "on_predict_batch_end",
):
    setattr(ProcessLocal, _hook, _run_locally(_hook))


def saving_alone(callbacks: list[keras.callbacks.Callback]) -> list[keras.callbacks.Callback]:
    """`callbacks` for process 0 of a multi-process run: those that save weights or write logs
    run as `ProcessLocal`; the others (which steer training, in step on every process) as
    they are."""
    writing = (
        keras.callbacks.BackupAndRestore,
        keras.callbacks.ModelCheckpoint,
        keras.callbacks.TensorBoard,
        keras.callbacks.CSVLogger,
        keras.callbacks.RemoteMonitor,
    )
    return [ProcessLocal(c) if isinstance(c, writing) else c for c in callbacks]
