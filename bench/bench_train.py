"""Training on synthetic data, against plain Keras fitting the same samples from NumPy arrays.

Throughput: one spec's model fitted from graphspec's synthetic batches, generated as Keras asks
for them and handed to fit as `graphspec train` hands them (`fit_arguments`), and, side by side
in the same process, the same architecture fitted from the same samples held in memory as NumPy
arrays (`model.fit(x, y)`). Each fit runs two epochs and the second is timed, after one untimed
fit each for tracing; the two sides alternate fit by fit. The ratio is that of the median
training steps (a step includes waiting for its batch; each side has hundreds), because a burst
of load from outside, which on a shared machine lasts about as long as an epoch, moves a whole
epoch's time but few steps' medians. Whole-epoch rates and the median of the epochs' paired
ratios are reported beside it.

Every backend installed besides TensorFlow (JAX, PyTorch) gets the throughput row as well,
measured in a subprocess with KERAS_BACKEND set, since Keras picks its backend at import.

Memory: `graphspec train --synthetic` run as a process with `--samples N` and `--samples 10N`;
its peak resident memory (ru_maxrss of the child) must stay within 10%, since no sample is kept.

Standalone: `.venv/bin/python bench/bench_train.py` prints the rows.
"""

from __future__ import annotations

import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
# What graphspec.keras sets before TensorFlow loads (TensorFlow 2.21's oneDNN kernels crash on
# strided 1x1 convolutions); this process imports keras first, so it is set here too.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

from harness import ENV, GRAPHSPEC, ROOT, Row, not_measured  # noqa: E402

SPEC = "specs/book_qa.yaml"
SEQ_LEN = 100
BATCH = 128
SAMPLES = 4096  # per epoch, throughput
PAIRS = 12  # timed epochs of each side, alternating
MEMORY_SAMPLES = 8192  # and ten times as many
COMMAND = "python bench/bench_train.py"
OTHER_BACKENDS = ("jax", "torch")


def _timer():
    import keras

    class Timer(keras.callbacks.Callback):
        """The time of every epoch and of every training step, in seconds."""

        def __init__(self) -> None:
            super().__init__()
            self.epochs: list[float] = []
            self.steps: list[list[float]] = []

        def on_epoch_begin(self, epoch, logs=None) -> None:
            self._epoch = time.perf_counter()
            self.steps.append([])

        def on_train_batch_begin(self, batch, logs=None) -> None:
            self._step = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None) -> None:
            self.steps[-1].append(time.perf_counter() - self._step)

        def on_epoch_end(self, epoch, logs=None) -> None:
            self.epochs.append(time.perf_counter() - self._epoch)

    return Timer()


def throughput_row(pairs: int = PAIRS) -> Row:
    import keras

    import graphspec
    from graphspec.keras.data import fit_arguments, synthetic_datasets

    loaded = graphspec.load(ROOT / SPEC, [f"train.seq_len={SEQ_LEN}"])
    keras.utils.set_random_seed(0)
    synthetic_model, numpy_model = loaded.build(), loaded.build()
    data, _ = synthetic_datasets(
        loaded,
        synthetic_model,
        kind="random",
        samples=SAMPLES,
        batch_size=BATCH,
        validation_split=0.0,
        seed=0,
    )
    x, y = data.arrays()  # the baseline fits exactly the samples the synthetic side generates

    def epoch(model: keras.Model, **fit_args) -> tuple[float, list[float]]:
        """A steady epoch's time and its steps' times: the second epoch of a fit, so that neither
        side pays for starting its iterator (filling the prefetch buffer) inside the time."""
        timer = _timer()
        model.fit(epochs=2, callbacks=[timer], verbose=0, **fit_args)
        return timer.epochs[1], timer.steps[1]

    def synthetic() -> tuple[float, list[float]]:  # as `graphspec train` hands the batches to fit
        return epoch(synthetic_model, **fit_arguments(data, None, shuffle=True))

    def from_numpy() -> tuple[float, list[float]]:
        return epoch(numpy_model, x=x, y=y, batch_size=BATCH, shuffle=True)

    synthetic(), from_numpy()  # tracing and first-run costs, on both sides
    # Fits alternate, in pairs whose order alternates too, so that load from other processes,
    # which comes and goes, weighs on both sides alike.
    sides: dict[str, tuple[list[float], list[float]]] = {"synthetic": ([], []), "numpy": ([], [])}
    for pair in range(pairs):
        order = [("synthetic", synthetic), ("numpy", from_numpy)]
        for side, fit in order if pair % 2 == 0 else order[::-1]:
            seconds, steps = fit()
            sides[side][0].append(seconds)
            sides[side][1].extend(steps)
    (synthetic_epochs, synthetic_steps), (numpy_epochs, numpy_steps) = sides["synthetic"], sides["numpy"]
    ratio = statistics.median(numpy_steps) / statistics.median(synthetic_steps)
    paired = [n / s for n, s in zip(numpy_epochs, synthetic_epochs, strict=True)]

    def rates(epochs: list[float], steps: list[float]) -> str:
        return (
            f"{BATCH / statistics.median(steps):.0f} samples/s by median step of {len(steps)}; "
            f"whole epochs {SAMPLES / statistics.median(epochs):.0f} "
            f"({SAMPLES / max(epochs):.0f}-{SAMPLES / min(epochs):.0f}, n={len(epochs)})"
        )

    return Row(
        f"synthetic training throughput, {Path(SPEC).name} (batch {BATCH}, seq {SEQ_LEN}), "
        f"{keras.backend.backend()}",
        rates(synthetic_epochs, synthetic_steps),
        f"plain Keras fit on NumPy arrays: {rates(numpy_epochs, numpy_steps)}",
        ratio,
        ">= 0.95x",
        ratio >= 0.95,
        COMMAND
        if keras.backend.backend() == "tensorflow"
        else f"KERAS_BACKEND={keras.backend.backend()} {COMMAND}",
        note=f"ratio of median steps; whole epochs' paired ratios: median {statistics.median(paired):.2f}, "
        f"{min(paired):.2f}-{max(paired):.2f}",
    )


def _peak_memory(samples: int) -> int:
    """Peak resident memory (bytes) of one `graphspec train --synthetic` process."""
    with tempfile.TemporaryDirectory() as tmp:
        args = GRAPHSPEC + [
            "train",
            SPEC,
            "--synthetic",
            "--samples",
            str(samples),
            "--batch-size",
            str(BATCH),
            "--seq-len",
            str(SEQ_LEN),
            "--epochs",
            "1",
            "--seed",
            "0",
            "--quiet",
            "--out",
            str(Path(tmp) / "run"),
        ]
        process = subprocess.Popen(
            args, cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        _, status, usage = os.wait4(process.pid, 0)
        stderr = process.stderr.read()
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed:\n{stderr[-2000:]}")
    return usage.ru_maxrss * 1024  # kilobytes on Linux


def memory_row() -> Row:
    small, large = _peak_memory(MEMORY_SAMPLES), _peak_memory(MEMORY_SAMPLES * 10)
    ratio = large / small
    mib = 1024 * 1024
    return Row(
        f"peak memory of `graphspec train --synthetic`, {Path(SPEC).name}",
        f"--samples {MEMORY_SAMPLES * 10}: {large / mib:.0f} MiB",
        f"--samples {MEMORY_SAMPLES}: {small / mib:.0f} MiB",
        ratio,
        "<= 1.10x",
        ratio <= 1.10,
        COMMAND,
    )


def backend_row(backend: str) -> Row:
    """The throughput row on `backend`, measured in a process of its own; "not measured" where
    the backend is not installed or the measurement fails."""
    name = f"synthetic training throughput, {Path(SPEC).name}, {backend}"
    command = f"KERAS_BACKEND={backend} {COMMAND}"
    if importlib.util.find_spec(backend) is None:
        return not_measured(
            name,
            ">= 0.95x",
            command,
            f"{backend} is not installed (make test installs jax, make test-torch torch)",
        )
    result = subprocess.run(
        [sys.executable, __file__, "--throughput-json"],
        cwd=ROOT,
        env={**ENV, "KERAS_BACKEND": backend},
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        return not_measured(name, ">= 0.95x", command, f"failed: {result.stderr.strip()[-300:]}")
    return Row(**json.loads(result.stdout.splitlines()[-1]))


def run() -> list[Row]:
    if not (ROOT / SPEC).exists():
        return [not_measured("synthetic training", ">= 0.95x", COMMAND, f"{SPEC} does not exist")]
    return [throughput_row(), *(backend_row(b) for b in OTHER_BACKENDS), memory_row()]


def main() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    print(f"{'measurement':<60} | {'measured':<40} | {'baseline':<70} | ratio | target   | met")
    for row in run():
        ratio = f"{row.ratio:.2f}" if row.ratio is not None else "-"
        print(
            f"{row.name:<60} | {row.measured:<40} | {row.baseline:<70} | {ratio:<5} | "
            f"{row.target:<8} | {row.verdict}" + (f" ({row.note})" if row.note else "")
        )


if __name__ == "__main__":
    if sys.argv[1:] == ["--throughput-json"]:
        # One backend's row for `backend_row`: fewer pairs, as each backend adds its own minutes.
        row = throughput_row(pairs=PAIRS // 2)
        print(json.dumps({k: v for k, v in vars(row).items()}))
    else:
        main()
