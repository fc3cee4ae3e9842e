"""Every file under cluster/ loads and validates against the schema of the tool that reads it."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import ray
import yaml
from ray.serve.schema import ServeDeploySchema

from stackray.cli import main
from stackray.runtime.config import load_config

CLUSTER = Path(__file__).resolve().parents[2] / "cluster"
LAUNCHER_SCHEMA = json.loads(
    (Path(ray.__file__).parent / "autoscaler" / "ray-schema.json").read_text()
)


def check_serve_config(doc: dict) -> None:
    schema = ServeDeploySchema.model_validate(doc)
    for app in schema.applications:
        assert app.import_path == "stackray.deployments.app:build_app"
        config = app.args.get("config")
        if config and not str(config).startswith("/etc/"):
            load_config(str(config), env={})


@pytest.mark.parametrize("name", ["local.yaml", "aws.yaml", "gcp.yaml"])
def test_cluster_launcher_yaml(name):
    doc = yaml.safe_load((CLUSTER / name).read_text())
    jsonschema.validate(doc, LAUNCHER_SCHEMA)


def test_serve_config():
    check_serve_config(yaml.safe_load((CLUSTER / "serve-local.yaml").read_text()))


def test_kuberay_rayservice():
    doc = yaml.safe_load((CLUSTER / "kuberay-rayservice.yaml").read_text())
    assert doc["kind"] == "RayService" and doc["apiVersion"] == "ray.io/v1"
    check_serve_config(yaml.safe_load(doc["spec"]["serveConfigV2"]))
    assert doc["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["spec"]["containers"]


def test_serve_config_command_output_is_valid(capsys):
    assert main(["serve-config", "local"]) == 0
    check_serve_config(yaml.safe_load(capsys.readouterr().out))
