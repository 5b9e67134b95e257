"""The language server's answers without a client (graphspec.lsp_analysis): rename through
indexes, chains, `math:` names (not their aliases), outputs' `from:`, blocks' own scopes;
definitions and hover on references to chains and block uses."""

from __future__ import annotations

from pathlib import Path

from graphspec.lsp_analysis import Document, Span, problems
from graphspec.spec.load import load_text

SPEC = """\
graphspec: 1
name: r
blocks:
  res:
    in: [x]
    layers:
      h: {type: Dense, units: 4, in: x}
      o: {type: Add, in: [x, h]}
inputs:
  x: {shape: [4]}
  t: {shape: [4]}
layers:
  h: {type: LSTM, units: 4, return_state: true, in: x}
  c: [{type: Dense, units: 4, in: "h[1]"}, {type: ReLU}]
  k: {math: "h2 * 2 + h", in: {h2: "h[0]"}}
  b: {block: res, in: k}
  z: {type: Add, in: [c, b.o, t]}
outputs:
  z: {loss: mse}
  extra: {from: "h[0]"}
"""


def apply(text: str, edits: list[tuple[Span, str]]) -> str:
    lines = text.split("\n")
    for span, new in sorted(edits, key=lambda e: (e[0].line, e[0].start), reverse=True):
        lines[span.line] = lines[span.line][: span.start] + new + lines[span.line][span.end :]
    return "\n".join(lines)


def document() -> Document:
    return Document(SPEC, Path("/nonexistent/r.yaml"))


def test_renaming_a_node_renames_every_reading_of_it_and_the_model_stays_the_same():
    found, loaded = problems(document())
    assert found == [] and loaded is not None
    renamed = apply(SPEC, document().rename(12, 2, "lstm"))
    # The alias h2 of the math node is not the node h, and keeps its name.
    assert '"h[1]"' not in renamed and '"lstm[1]"' in renamed
    assert '{math: "h2 * 2 + lstm", in: {h2: "lstm[0]"}}' in renamed
    assert '{from: "lstm[0]"}' in renamed
    assert "      h: {type: Dense" in renamed  # the block's own h is another node
    before, after = load_text(SPEC, "before.yaml"), load_text(renamed, "after.yaml")
    assert list(after.spec.layers) == [
        n.replace("h", "lstm", 1) if n == "h" else n for n in before.spec.layers
    ]
    assert after.spec.layers["z"].inbound == before.spec.layers["z"].inbound


def test_a_block_use_renamed_from_a_member_reference_keeps_the_member():
    renamed = apply(SPEC, document().rename(16, 26, "blk"))
    assert "  blk: {block: res, in: k}" in renamed and "in: [c, blk.o, t]" in renamed
    assert problems(Document(renamed, None))[0] == []


def test_a_rename_inside_a_block_stays_inside_it():
    edits = document().rename(6, 6, "hidden")
    assert [span.line for span, _ in edits] == [6, 7]


def test_a_rename_to_a_taken_or_invalid_name_is_refused_with_a_reason():
    assert document().rename(12, 2, "t") == "'t' is already a node or an input"
    assert "is not a node name" in document().rename(12, 2, "9lives")
    assert document().rename(0, 0, "x").startswith("not a node")


def test_definition_and_hover_on_references_to_a_chain_and_a_block_member():
    doc, (_, loaded) = document(), problems(document())
    assert doc.definition(16, 22).span == Span(13, 2, 3)  # c -> the chain
    assert doc.definition(16, 26).span == Span(15, 2, 3)  # b.o -> the block use b
    assert doc.definition(16, 30).span == Span(10, 2, 3)  # t -> the input
    assert doc.hover(16, 22, loaded).startswith("**c**: chain of 2 nodes\n- `c.dense`: type `Dense`")
    assert "- `b.o`: type `Add`" in doc.hover(16, 26, loaded)


def test_problems_sit_on_what_they_are_about():
    text = SPEC.replace("in: [c, b.o, t]", "in: [c, b.q, t]")
    (problem,) = problems(Document(text, None))[0]
    assert problem.severity == "error" and "'b.q'" in problem.message
    line = text.split("\n")[problem.span.line]
    assert line[problem.span.start : problem.span.end] == "b.q"


def test_definitions_follow_only_files_validate_may_read(tmp_path):
    # An include or a nested spec outside the spec's folder, or not a spec, or a FIFO that would
    # block a read: go to definition does not open them (validate refuses them too).
    import os

    (tmp_path / "outside.yaml").write_text(
        "graphspec: 1\nblocks:\n  mlp:\n    layers: {d: {type: Dense, units: 1}}\n"
    )
    folder = tmp_path / "specs"
    folder.mkdir()
    os.mkfifo(folder / "fifo.yaml")
    text = (
        "graphspec: 1\nname: s\ninclude: [../outside.yaml, fifo.yaml]\ninputs: {x: {shape: [2]}}\n"
        "layers:\n  b: {block: mlp, in: x}\n  e: {spec: /etc/hostname, in: b}\n"
        "  f: {spec: ../outside.yaml, in: e}\n"
        "outputs:\n  f: {}\n"
    )
    doc = Document(text, folder / "s.yaml")
    assert doc.definition(5, 14) is None  # block: mlp, defined only outside the root
    assert doc.definition(6, 13) is None and doc.definition(7, 13) is None
    wider = Document(text, folder / "s.yaml", root=tmp_path)
    assert wider.definition(5, 14).path == folder / "../outside.yaml"


def test_a_capability_refusal_and_a_disconnected_input_sit_on_their_names():
    text = (Path(__file__).parent / "fixtures/invalid/lambda.yaml").read_text()
    (problem,) = problems(Document(text, None))[0]
    assert "which graphspec refuses" in problem.message
    assert text.split("\n")[problem.span.line][problem.span.start : problem.span.end] == "Lambda"
    text = (Path(__file__).parent / "fixtures/invalid/disconnected_input.yaml").read_text()
    (problem,) = problems(Document(text, None))[0]
    assert problem.message == "input 'unrelated' reaches no output (graph disconnected)"
    assert text.split("\n")[problem.span.line][problem.span.start : problem.span.end] == "unrelated"


def test_each_analysis_spends_a_budget_of_its_own_with_the_commands_limits():
    from graphspec import budget

    text = (Path(__file__).parent.parent / "specs/book_mlp.yaml").read_text()
    values = len(Document(text, None).positions.values)
    # `graphspec --limit values=N lsp`: a limit that one analysis fits in, met edit after edit.
    budget.activate(budget.Budget(budget.parse_limits([f"values={values * 2}"])))
    try:
        for _ in range(5):
            assert problems(Document(text, None))[0] == []
        budget.activate(budget.Budget(budget.parse_limits([f"values={values // 2}"])))
        (problem,) = problems(Document(text, None))[0]
        assert "would go over the limit" in problem.message
    finally:
        budget.activate(None)


def test_hover_says_when_its_arguments_come_from_an_earlier_valid_text():
    _, loaded = problems(document())
    broken = Document(SPEC.replace("in: [c, b.o, t]", "in: [c, b.q, t]"), None)
    assert problems(broken)[1] is None
    text = broken.hover(12, 2, loaded, stale=True)
    assert text.startswith("**h**: `LSTM`") and "(as of the last valid version)" in text
    assert "(as of" not in document().hover(12, 2, loaded)


def test_hover_shows_each_chain_members_shape_and_a_load_wide_status_once():
    from graphspec.lsp_shapes import COMPUTING, Shapes, hover_lines

    doc = document()
    _, loaded = problems(doc)
    # What the worker answers for this spec (tests/test_lsp_shapes.py asks a real one).
    known = Shapes({"c.dense": [("", (None, 4), "float32")], "c.re_lu": [("", (None, 4), "float32")]})
    text = doc.hover(13, 2, loaded, shapes=lambda node: hover_lines(known, node))
    assert text.split("\n")[1:3] == [
        "- `c.dense`: type `Dense`, shape: `(None, 4)` float32",
        "- `c.re_lu`: type `ReLU`, shape: `(None, 4)` float32",
    ]
    text = doc.hover(13, 2, loaded, shapes=lambda node: hover_lines(COMPUTING, node))
    assert text.count("computing") == 1 and text.endswith("\n- shape: computing…")
