"""``mlprod interface`` and ``mlprod init``: the contract on day one, before data or model."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from fastapi.openapi.models import OpenAPI

from support import Project, write_project
from support import run_cli as cli

SPEC_ONLY = """\
name: churn
description: Who is about to leave.
data: {source: not-written-yet.csv, target: churned, entity: customer_id}
interface:
  extra: reject
  request:
    tenure_months: {type: integer, minimum: 0, nullable: false, description: Whole months.}
    plan: {type: string, values: [basic, pro]}
    region: {type: string, max_length: 40, required: false}
    signup_date: datetime
  response:
    label: {values: ["no", "yes"]}
"""


def test_interface_prints_openapi_from_the_spec_alone(tmp_path: Path) -> None:
    (tmp_path / "mlprod.yaml").write_text(SPEC_ONLY, encoding="utf-8")
    project = Project(tmp_path, store=str(tmp_path / ".mlprod"))
    document = json.loads(cli(project, "interface", "--json").stdout)
    OpenAPI.model_validate(document)  # a document client generators accept
    assert document["info"]["description"] == "Who is about to leave."
    record = document["components"]["schemas"]["ChurnRecord"]
    assert record["properties"] == {
        "tenure_months": {"type": "integer", "minimum": 0, "description": "Whole months."},
        "plan": {"type": ["string", "null"], "enum": ["basic", "pro", None]},
        "region": {"type": ["string", "null"], "maxLength": 40},
        "signup_date": {"type": ["string", "null"], "format": "date-time"},
        "customer_id": {"description": "The entity column: kept in the log, not scored."},
    }
    assert record["required"] == ["plan", "signup_date", "tenure_months"]
    assert record["additionalProperties"] is False
    label = document["components"]["schemas"]["ChurnPrediction"]["properties"]["label"]
    assert label["enum"] == ["no", "yes", None]
    body = document["paths"]["/v1/models/churn/predict"]["post"]["requestBody"]
    items = body["content"]["application/json"]["schema"]["properties"]["records"]["items"]
    assert items == {"$ref": "#/components/schemas/ChurnRecord"}
    assert yaml.safe_load(cli(project, "interface").stdout) == document  # YAML by default
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mlprod.yaml"]  # no data, no store


def test_interface_without_the_section_says_how_to_add_it(tmp_path: Path) -> None:
    spec = "name: churn\ndata: {source: x.csv, target: churned}\n"
    (tmp_path / "mlprod.yaml").write_text(spec, encoding="utf-8")
    done = cli(Project(tmp_path), "interface", check=False)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "no `interface:` section" in done.stderr and "mlprod init" in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mlprod.yaml"]


def test_init_drafts_the_interface_from_the_data_and_the_model_trained_from_it_agrees(
    tmp_path: Path,
) -> None:
    from mlprod.pipelines import train

    project = write_project(tmp_path, rows=800)
    (project.root / "mlprod.yaml").unlink()
    cli(project, "init", "--data", "customers.csv", "--target", "churned")
    text = (project.root / "mlprod.yaml").read_text()
    section = yaml.safe_load(text)["interface"]
    assert section["extra"] == "ignore"
    assert section["request"]["tenure_months"] == {"type": "integer", "minimum": 0}
    assert section["request"]["monthly_charges"] == {
        "type": "number", "nullable": False, "minimum": 0,
    }  # fmt: skip
    assert section["request"]["plan"]["values"] == ["basic", "family", "premium", "standard"]
    assert section["request"]["has_partner"] == {"type": "boolean", "nullable": False}
    assert section["response"] == {"label": {"values": [False, True]}}
    assert "customer_id" not in section["request"] and "churned" not in section["request"]
    document = json.loads(cli(project, "interface", "--json").stdout)
    assert set(document["components"]["schemas"]["CustomersRecord"]["properties"]) == set(
        section["request"]
    )
    run = train(project.spec, store=project.store)  # the check passes: the draft agrees
    assert run.version == 1
