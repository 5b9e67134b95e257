"""Building a model from its spec, against Keras's own `model_from_json` of the same
architecture, in one process. Both sides create and wire the same layers; the ratio is what the
spec format (parse, check, graph) costs on top."""

from __future__ import annotations

from harness import ROOT, Row, not_measured, time_call

SPECS = ["specs/resnet50.yaml", "specs/book_twin_camera.yaml", "specs/book_social_media.yaml"]


def run() -> list[Row]:
    import keras

    import graphspec

    rows = []
    for relative in SPECS:
        path = ROOT / relative
        command = "python bench/run.py build"
        if not path.exists():
            rows.append(
                not_measured(
                    f"build {path.name}",
                    "<= 1.10x model_from_json",
                    command,
                    f"{relative} does not exist yet",
                )
            )
            continue
        config = graphspec.load(path).build(compile=False).to_json()

        def from_spec(path=path) -> None:
            keras.backend.clear_session()
            graphspec.load(path).build(compile=False)

        def from_json(config=config) -> None:
            keras.backend.clear_session()
            keras.models.model_from_json(config)

        # Interleave the two so that a busy machine slows both alike.
        spec_samples, json_samples = [], []
        for _ in range(5):
            spec_samples += time_call(from_spec, repeats=1, warmup=0).samples
            json_samples += time_call(from_json, repeats=1, warmup=0).samples
        from harness import Timing

        spec_timing, json_timing = Timing(spec_samples), Timing(json_samples)
        ratio = spec_timing.median / json_timing.median
        rows.append(
            Row(
                f"build {path.name}",
                str(spec_timing),
                f"model_from_json: {json_timing}",
                ratio,
                "<= 1.10x",
                ratio <= 1.10,
                command,
            )
        )
    return rows
