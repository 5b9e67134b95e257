"""The JSON Schema in schemas/ is the one `graphspec schema` prints, and it describes the format."""

from __future__ import annotations

import json
import re
from pathlib import Path

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
