"""The JSON Schema in schemas/ is the one `graphspec schema` prints, and it describes the format."""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path

import jsonschema
import pytest
from typer.testing import CliRunner

from graphspec.cli import app
from graphspec.spec.schema import render

SCHEMA = Path("schemas/graphspec.schema.json")


def test_committed_schema_equals_graphspec_schema_output():
    result = CliRunner().invoke(app, ["schema"])
    assert result.exit_code == 0
    assert result.stdout == SCHEMA.read_text(), "schemas/ is stale: run `make schema`"
    assert render() == result.stdout


def test_schema_offers_each_layer_types_arguments():
    schema = json.loads(SCHEMA.read_text())
    layer = schema["$defs"]["LayerSpec"]
    assert "Dense" in layer["properties"]["type"]["anyOf"][0]["enum"]
    dense = next(rule for rule in layer["allOf"] if rule["if"]["properties"]["type"]["const"] == "Dense")
    assert "units" in dense["then"]["properties"]
    assert dense["then"]["required"] == ["units"]


def test_schema_requires_the_top_level_keys():
    schema = json.loads(SCHEMA.read_text())
    assert set(schema["required"]) >= {"graphspec", "name", "inputs", "outputs"}
    assert schema["additionalProperties"] is False


def test_schema_and_docs_list_the_op_names_of_the_catalog():
    from graphspec.spec.schema import op_names

    schema = json.loads(SCHEMA.read_text())
    op = schema["$defs"]["LayerSpec"]["properties"]["op"]
    assert op["anyOf"][0]["enum"] == op_names() and "einsum" in op_names()
    docs = Path("docs/format.md").read_text()
    listed = docs.split("<!-- op names: generated from graphspec/spec/catalog.json -->")[1]
    listed = listed.split("<!-- end of op names -->")[0]
    assert re.findall(r"`([a-z_0-9]+)`", listed) == op_names(), "docs/format.md's op names are stale"


@functools.cache
def _validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(json.loads(SCHEMA.read_text()))


def _errors(**layers) -> list[str]:
    """The schema's complaints about a spec with these layers, each as 'PATH: MESSAGE'."""
    document = {"graphspec": 1, "name": "s", "inputs": {"x": {"shape": [8]}}, "layers": layers}
    document["outputs"] = {name: {} for name in layers}
    found = []
    for error in _validator().iter_errors(document):
        for leaf in _leaves(error):
            found.append(f"{'.'.join(map(str, leaf.absolute_path))}: {leaf.message}")
    return found


def _leaves(error: jsonschema.ValidationError) -> list[jsonschema.ValidationError]:
    return [leaf for child in error.context for leaf in _leaves(child)] if error.context else [error]


def test_a_layer_type_closes_its_arguments_and_names_the_unknown_one():
    assert _errors(h={"type": "Dense", "units": 4, "activation": "relu", "in": "x", "doc": "d"}) == []
    found = _errors(h={"type": "Dense", "units": 4, "activaton": "relu"})
    assert "layers.h: Additional properties are not allowed ('activaton' was unexpected)" in found
    # Another class's argument is as unknown as a typo.
    assert any(
        "'filters' was unexpected" in e for e in _errors(h={"type": "Dense", "units": 4, "filters": 3})
    )
    assert any("'units' is a required property" in e for e in _errors(h={"type": "Dense"}))


def test_typed_arguments_refuse_wrong_types_ranges_and_enums_and_take_expressions():
    def refused(**args) -> bool:
        return _errors(h={"type": "Conv2D", "filters": 8, "kernel_size": 3, **args}) != []

    assert not refused(padding="same", activation="relu", strides=[2, 2], kernel_initializer="he_normal")
    assert refused(filters="abc") and refused(filters=0) and refused(filters=2.5)
    assert refused(padding="middle") and refused(activation="softmaxx") and refused(activation=3)
    assert refused(kernel_size=[3, 3, 3]) and refused(kernel_initializer="he_normall")
    # Wherever a typed value goes, so does a ${...} (checked after substitution by validate).
    assert not refused(filters="${width}", padding="${pad}", activation="${act}", strides=["${s}", 1])
    assert refused(filters="width")


def test_an_activation_may_be_a_nested_layer_and_a_wrapper_takes_a_layer():
    assert _errors(h={"type": "Dense", "units": 4, "activation": {"type": "ReLU", "max_value": 6.0}}) == []
    wrapped = {"type": "Bidirectional", "layer": {"type": "LSTM", "units": 8, "return_sequences": True}}
    assert _errors(h=wrapped) == []
    wrapped["layer"]["unitz"] = 8
    assert any("'unitz' was unexpected" in e for e in _errors(h=wrapped))


def test_op_nodes_and_graphspecs_own_nodes_are_closed_too():
    assert _errors(h={"op": "sum", "axis": -1, "in": "x"}, k={"op": "histogram", "range": [0, 1]}) == []
    assert any("'axiss' was unexpected" in e for e in _errors(h={"op": "sum", "axiss": -1}))
    assert any("'call' was unexpected" in e for e in _errors(h={"op": "sum", "call": {"training": True}}))
    assert _errors(w={"weight": [1, 8], "initializer": "zeros"}, p={"range": 1, "start": 1}) == []
    assert any(
        "'initialiser' was unexpected" in e for e in _errors(w={"weight": [1, 8], "initialiser": "zeros"})
    )
    assert _errors(r={"random": "normal", "stddev": 0.5, "call": {"training": True}}) == []
    assert _errors(r={"random": "gaussian"}) != []
    assert any("'units' was unexpected" in e for e in _errors(s={"share": "h", "units": 3}))
    assert _errors(m={"math": "x * 2"}) == [] and _errors(m={"math": "x * 2", "axis": 1}) != []
    # A block use's other keys are the block's params: open.
    assert _errors(b={"block": "enc", "repeat": 2, "width": 64, "heads": "${h}"}) == []


def test_catalog_types_and_defs_become_the_schemas_with_expressions_allowed():
    from graphspec.spec.schema import json_schema

    source = {
        "$defs": {"act": {"enum": ["relu", "tanh"]}},
        "layers": {
            "Thing": {
                "args": ["act", "n", "free", "layer"],
                "required": ["n"],
                "types": {"act": {"$ref": "#/$defs/act"}, "n": {"type": "integer", "minimum": 1}},
            }
        },
        "applications": {},
        "ops": {},
    }
    schema = json_schema(source)
    assert schema["$defs"]["arg.act"] == {
        "anyOf": [{"enum": ["relu", "tanh"]}, {"$ref": "#/$defs/Expression"}]
    }
    rule = next(r for r in schema["$defs"]["LayerSpec"]["allOf"] if r["if"].get("properties", {}).get("type"))
    properties = rule["then"]["properties"]
    assert properties["act"] == {"$ref": "#/$defs/arg.act"}
    assert properties["n"] == {"anyOf": [{"type": "integer", "minimum": 1}, {"$ref": "#/$defs/Expression"}]}
    assert properties["free"] == {}  # no type recorded: any value
    assert properties["layer"] == {"$ref": "#/$defs/LayerSpec"}  # the format's own definition
    assert rule["then"]["additionalProperties"] is False and rule["then"]["required"] == ["n"]


def test_a_blocks_layers_are_checked_as_a_specs_are():
    document = {
        "graphspec": 1,
        "name": "s",
        "inputs": {"x": {"shape": [8]}},
        "blocks": {"mlp": {"layers": {"up": {"type": "Dense", "units": "${width}"}}, "out": "up"}},
        "layers": {"h": {"block": "mlp", "width": 16}},
        "outputs": {"h": {}},
    }
    assert list(_validator().iter_errors(document)) == []
    document["blocks"]["mlp"]["layers"]["up"]["unitz"] = 3
    assert any(
        "'unitz' was unexpected" in leaf.message
        for e in _validator().iter_errors(document)
        for leaf in _leaves(e)
    )


def test_each_layer_type_and_op_name_carries_its_keras_summary():
    layer = json.loads(SCHEMA.read_text())["$defs"]["LayerSpec"]["properties"]
    for key, name, summary in (
        ("type", "Dense", "Just your regular"),
        ("op", "einsum", "Evaluates the Einstein"),
    ):
        enum = layer[key]["anyOf"][0]
        assert len(enum["enumDescriptions"]) == len(enum["enum"])
        assert enum["enumDescriptions"][enum["enum"].index(name)].startswith(summary)


def test_call_and_in_mapping_keys_are_the_layers_call_arguments_and_refused_classes_are_no_type():
    attention = {"type": "MultiHeadAttention", "num_heads": 2, "key_dim": 8}
    assert (
        _errors(a={**attention, "in": {"query": "x", "value": "x"}, "call": {"use_causal_mask": True}}) == []
    )
    assert any(
        "'valeu' was unexpected" in e for e in _errors(a={**attention, "in": {"query": "x", "valeu": "x"}})
    )
    assert any("'trainin' was unexpected" in e for e in _errors(a={**attention, "call": {"trainin": True}}))
    assert _errors(d={"type": "Dropout", "rate": 0.5, "in": ["x"], "call": {"training": True}}) == []
    enum = json.loads(SCHEMA.read_text())["$defs"]["LayerSpec"]["properties"]["type"]["anyOf"][0]["enum"]
    assert "Lambda" not in enum and "TFSMLayer" not in enum and "Dense" in enum
    assert _errors(f={"type": "Lambda", "function": "x"}) != []


# The fixtures whose one mistake sits inside a node or an object, where the schema can see it.
_LOCAL_MISTAKES = (
    "alias_type",
    "bad_call_argument",
    "lambda",
    "missing_required_arg",
    "misspelt_activation",
    "misspelt_padding",
    "out_of_range_argument",
    "unknown_argument",
    "unknown_loss",
    "unknown_type",
    "wrong_type_argument",
    "wrong_type_expression",  # its initializer class, not its expression
    "wrong_types",
)


def test_the_schema_never_refuses_what_validate_accepts_and_refuses_what_lies_inside_a_node_or_object():
    import yaml

    from graphspec import SpecErrors
    from graphspec.spec.load import load

    accepted = []
    for path in sorted(Path("tests/fixtures").rglob("*.yaml")) + sorted(Path("specs").glob("*.yaml")):
        try:
            load(path)
        except SpecErrors:
            continue
        accepted.append(path)
        assert list(_validator().iter_errors(yaml.safe_load(path.read_text()))) == [], path
    assert len(accepted) >= 25  # specs/ and the fixtures validate accepts
    for name in _LOCAL_MISTAKES:
        path = Path("tests/fixtures/invalid") / f"{name}.yaml"
        with pytest.raises(SpecErrors):
            load(path)
        assert list(_validator().iter_errors(yaml.safe_load(path.read_text()))) != [], path


def test_losses_metrics_optimizers_and_callbacks_take_their_classes_arguments():
    def errors(output: dict | None = None, compile: dict | None = None, train: dict | None = None) -> list:
        document = {
            "graphspec": 1,
            "name": "s",
            "inputs": {"x": {"shape": [8]}},
            "outputs": {"x": output or {}},
        }
        document.update({k: v for k, v in (("compile", compile), ("train", train)) if v is not None})
        return list(_validator().iter_errors(document))

    assert errors({"loss": "mse", "metrics": ["mae", {"type": "AUC", "num_thresholds": 50}]}) == []
    assert errors({"loss": {"type": "Huber", "delta": 2.0}}) == [] and errors({"loss": "value"}) == []
    assert errors({"loss": "msee"}) != [] and errors({"loss": {"type": "Huber", "delt": 2.0}}) != []
    assert errors(compile={"optimizer": {"type": "Adam", "learning_rate": 1.0e-3}}) == []
    assert errors(compile={"optimizer": "adam"}) == []
    assert errors(compile={"optimizer": {"type": "Adam", "learning_rat": 1.0e-3}}) != []
    assert errors(compile={"optimizer": {"type": "Adamm"}}) != []
    assert errors(train={"callbacks": [{"type": "EarlyStopping", "patience": 2}]}) == []
    assert errors(train={"callbacks": [{"type": "EarlyStopping", "patienc": 2}]}) != []
    assert errors(train={"callbacks": [{"type": "ActivationLogger", "directory": "acts"}]}) == []


@pytest.mark.parametrize(
    "schedule",
    [
        {"type": "step", "decay_rate": 0.5, "decay_steps": 10},
        {"type": "step", "decay_rate": 0.5},
        {"type": "exponential", "decay_rate": "${rate}"},
        {"type": "exponential", "decay_rate": 0},
        {"type": "exponential", "decay_rate": True},
        {"type": "cosine", "decay_steps": 5, "alpha": -0.5},
        {"type": "cosine", "decay_steps": 5, "decay_rate": 0.5},
        {"type": "linear", "decay_steps": 5},
        {"decay_steps": 5},
        "lambda epoch, rate: rate",
    ],
)
def test_a_learning_rate_schedule_is_refused_by_the_schema_where_validate_refuses_it(schedule):
    """LearningRateScheduler's `schedule` is graphspec's description, not Keras's function: the
    schema checks it as validate does (graphspec.spec.builtins.schedule_problems)."""
    from graphspec.spec.builtins import schedule_problems

    document = {
        "graphspec": 1,
        "name": "s",
        "inputs": {"x": {"shape": [8]}},
        "outputs": {"x": {}},
        "train": {"callbacks": [{"type": "LearningRateScheduler", "schedule": schedule}]},
    }
    refused_by_schema = any(True for _ in _validator().iter_errors(document))
    # An expression is checked by validate once substituted (here it is taken as it stands).
    refused_by_validate = schedule_problems(schedule) != [] and "${rate}" not in str(schedule)
    assert refused_by_schema == refused_by_validate


def test_every_reference_in_the_schema_names_one_of_its_definitions():
    schema = json.loads(Path("schemas/graphspec.schema.json").read_text())
    refs = set(re.findall(r'"\$ref": "#/\$defs/([^"]+)"', json.dumps(schema)))
    assert refs and refs <= set(schema["$defs"]), sorted(refs - set(schema["$defs"]))
