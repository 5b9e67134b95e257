"""Limits checked before the work they bound: a "billion laughs" refused from its text, a spec
with 2,000 dangling references (each with a "did you mean" to work out), and a plot of 10,000
nodes made by block repeats (grouped into clusters), each against a run of the same size that
has no such work to do."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

from bench_validate import generated_spec
from harness import ENV, GRAPHSPEC, ROOT, Row, Timing, time_call, time_process

SMALL = "specs/book_mlp.yaml"


def laughs(levels: int = 9, width: int = 9) -> str:
    """The classic bomb: `width ** levels` strings (387 million) in under 400 bytes."""
    names = [f"l{i}" for i in range(levels)]
    lines = ["graphspec: 1", "name: laughs", f"{names[0]}: &{names[0]} [" + ",".join(['"lol"'] * width) + "]"]
    for previous, name in zip(names, names[1:], strict=False):
        lines.append(f"{name}: &{name} [" + ",".join([f"*{previous}"] * width) + "]")
    return "\n".join(lines) + "\n"


def dangling_spec(nodes: int) -> str:
    """`nodes` Dense layers, each reading a name that is one letter off a layer's and undefined."""
    lines = ["graphspec: 1", "name: dangling", "inputs:", "  x: {shape: [8]}", "layers:"]
    lines += [f"  layer_{i:04d}: {{type: Dense, units: 8, in: lauer_{i:04d}x}}" for i in range(nodes)]
    lines += ["outputs:", "  layer_0000: {loss: mse}"]
    return "\n".join(lines) + "\n"


def repeated_spec(nodes: int) -> str:
    """`nodes` Dense layers made by repeating a block of two: `r.0.a`, `r.0.b`, `r.1.a`, ..."""
    return (
        "graphspec: 1\nname: repeated\ninputs: {x: {shape: [8]}}\nblocks:\n  b:\n    in: x\n"
        "    layers: {a: {type: Dense, units: 8, in: x}, b: {type: Dense, units: 8, in: a}}\n"
        f"    out: b\nlayers:\n  r: {{block: b, repeat: {nodes // 2}, in: x}}\noutputs:\n  r: {{loss: mse}}\n"
    )


def _refused(args: list[str]) -> Timing:
    """Times of a whole process that must fail with exit status 2 (`time_process` wants 0)."""

    def run() -> None:
        result = subprocess.run(args, cwd=ROOT, env=ENV, capture_output=True, text=True)
        if result.returncode != 2:
            raise RuntimeError(f"{' '.join(args)} exited {result.returncode}:\n{result.stderr[-2000:]}")

    return time_call(run, repeats=5)


def _ms(timing: Timing) -> str:
    """A timing of milliseconds, which `Timing`'s seconds to 3 places would show as 0.000 s."""
    low, high = min(timing.samples), max(timing.samples)
    return f"{timing.median * 1e3:.2f} ms ({low * 1e3:.2f}-{high * 1e3:.2f}, n={len(timing.samples)})"


def run() -> list[Row]:
    from graphspec.errors import SpecErrors
    from graphspec.plot import spec_to_dot
    from graphspec.spec.load import load
    from graphspec.spec.source import parse

    rows = []
    small = time_process(GRAPHSPEC + ["validate", SMALL], repeats=5)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        bomb = folder / "laughs.yaml"
        bomb.write_text(laughs())
        refused = _refused(GRAPHSPEC + ["validate", str(bomb)])
        rows.append(
            Row(
                "validate a billion laughs (9^9 strings): refused",
                str(refused),
                f"validate {Path(SMALL).name}: {small}",
                refused.median / small.median,
                "<= 1.2x validating a small spec",
                refused.median <= 1.2 * small.median,
                "python bench/run.py limits",
            )
        )

        def refuse_in_process() -> None:
            try:
                parse(bomb.read_text(), str(bomb))
            except SpecErrors:
                return
            raise RuntimeError("the alias bomb was not refused")

        text = (ROOT / SMALL).read_text()
        in_process = time_call(refuse_in_process, repeats=20)
        parse_small = time_call(lambda: parse(text, SMALL), repeats=20)
        rows.append(
            Row(
                "parse: a billion laughs refused (in process)",
                _ms(in_process),
                f"parse {Path(SMALL).name}: {_ms(parse_small)}",
                in_process.median / parse_small.median,
                "< 10 ms",
                in_process.median < 0.010,
                "python bench/run.py limits",
            )
        )

        dangling = folder / "dangling.yaml"
        dangling.write_text(dangling_spec(2_000))
        valid = folder / "valid.yaml"
        valid.write_text(generated_spec(2_000))
        with_hints = _refused(GRAPHSPEC + ["validate", str(dangling)])
        clean = time_process(GRAPHSPEC + ["validate", str(valid)], repeats=5)
        rows.append(
            Row(
                "validate 2,000 dangling references (2,000 hints asked)",
                str(with_hints),
                f"a valid 2,000-node spec: {clean}",
                with_hints.median / clean.median,
                "< 1 s and <= 1.5x the valid spec",
                with_hints.median < 1.0 and with_hints.median <= 1.5 * clean.median,
                "python bench/run.py limits",
            )
        )

        timings, drawings = {}, {}
        for nodes in (1_000, 10_000):
            spec = folder / f"repeated_{nodes}.yaml"
            spec.write_text(repeated_spec(nodes))
            plotted = time_process(GRAPHSPEC + ["plot", str(spec), "-o", str(folder / "r.dot")], repeats=3)
            validated = time_process(GRAPHSPEC + ["validate", str(spec)], repeats=3)
            timings[nodes] = (plotted, validated)
            loaded = load(spec)
            drawings[nodes] = time_call(lambda loaded=loaded: spec_to_dot(loaded).to_string(), repeats=3)
        plotted, validated = timings[10_000]
        growth = plotted.median / timings[1_000][0].median
        rows.append(
            Row(
                "plot .dot of 10,000 nodes from block repeats (whole process)",
                str(plotted),
                f"validate the same: {validated}; 1,000 nodes: {timings[1_000][0].median:.3f} s",
                plotted.median / validated.median,
                "< 2 s, <= 12x 1,000 nodes",
                plotted.median < 2.0 and growth <= 12,
                "python bench/run.py limits",
                note=f"10,000 / 1,000 nodes: {growth:.1f}x",
            )
        )
        drawn, small_drawing = drawings[10_000], drawings[1_000]
        rows.append(
            Row(
                "spec_to_dot + to_string, 10,000 nodes in 5,001 clusters (in process)",
                str(drawn),
                f"1,000 nodes: {small_drawing}",
                drawn.median / small_drawing.median,
                "< 1 s",
                drawn.median < 1.0,
                "python bench/run.py limits",
            )
        )
        rows += budget_rows(folder, small)
    return rows


def doubling_spec(levels: int) -> str:
    """Params whose strings double at each level: 1.6 KB that would make 2^(levels+1) characters."""
    params = "".join(f'  s{i}: "${{s{i + 1}}}${{s{i + 1}}}"\n' for i in range(levels))
    return (
        f"graphspec: 1\nname: doubling\nparams:\n{params}  s{levels}: ab\ninputs: {{x: {{shape: [4]}}}}\n"
        'layers: {y: {type: Dense, units: 2, in: x, dtype: "${s0}"}}\noutputs: {y: {loss: mse}}\n'
    )


def placeholders_spec(count: int) -> str:
    """`count` unquoted `${w}` in flow mappings: what `graphspec fmt` quotes."""
    lines = ["graphspec: 1", "name: f", "params: {w: 2}", "inputs: {x: {shape: [4]}}", "layers:"]
    lines += [f"  l{i}: {{type: Dense, units: ${{w}}, in: x}}" for i in range(count)]
    return "\n".join(lines) + "\n"


def budget_rows(folder: Path, small: Timing) -> list[Row]:
    """The command budget (graphspec/budget.py): refusals cost about a small validate, and fmt
    is linear in its placeholders."""
    rows = []
    doubling = folder / "doubling.yaml"
    doubling.write_text(doubling_spec(40))
    refused = _refused(GRAPHSPEC + ["validate", str(doubling)])
    rows.append(
        Row(
            "validate params doubling 40 levels (2^41 characters): refused by the text budget",
            str(refused),
            f"validate {Path(SMALL).name}: {small}",
            refused.median / small.median,
            "<= 1.5x validating a small spec",
            refused.median <= 1.5 * small.median,
            "python bench/run.py limits",
        )
    )
    line = "# " + "x" * 98 + "\n"
    names = []
    for i in range(12):
        (folder / f"lib{i}.yaml").write_text(
            line * 49_000 + f"blocks:\n  b{i}: {{in: x, out: y, layers: {{y: {{type: ReLU, in: x}}}}}}\n"
        )
        names.append(f"lib{i}.yaml")
    top = folder / "includes.yaml"
    top.write_text(
        f"graphspec: 1\nname: inc\ninclude: [{', '.join(names)}]\ninputs: {{x: {{shape: [4]}}}}\n"
        "layers: {y: {type: Dense, units: 2, in: x}}\noutputs: {y: {loss: mse}}\n"
    )
    refused = _refused(GRAPHSPEC + ["validate", str(top)])
    rows.append(
        Row(
            "validate 12 includes of 4.9 MB each: refused by the bytes budget (20 MB)",
            str(refused),
            f"validate {Path(SMALL).name}: {small}",
            refused.median / small.median,
            "<= 3x validating a small spec",
            refused.median <= 3 * small.median,
            "python bench/run.py limits",
        )
    )
    timings = {}
    for count in (11_000, 110_000):
        source = placeholders_spec(count)
        target = folder / f"fmt_{count}.yaml"

        def quote(target: Path = target, source: str = source) -> None:
            target.write_text(source)
            subprocess.run(
                GRAPHSPEC + ["fmt", str(target)], cwd=ROOT, env=ENV, check=True, capture_output=True
            )

        timings[count] = time_call(quote, repeats=3)
    growth = timings[110_000].median / timings[11_000].median
    rows.append(
        Row(
            "fmt 110,000 unquoted placeholders (whole process)",
            str(timings[110_000]),
            f"11,000: {timings[11_000]}",
            growth,
            "<= 12x 11,000 (linear; was n^1.7, 73 s)",
            growth <= 12,
            "python bench/run.py limits",
            note=f"110,000 / 11,000 placeholders: {growth:.1f}x",
        )
    )
    return rows
