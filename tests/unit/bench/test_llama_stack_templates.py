"""The pure parts of bench/llama_stack_templates.py: which variables a template needs set,
setting aside the APIs this version does not serve, and tallying reasons."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import yaml

_PATH = Path(__file__).resolve().parents[3] / "bench" / "llama_stack_templates.py"
_spec = importlib.util.spec_from_file_location("bench_llama_stack_templates", _PATH)
assert _spec is not None and _spec.loader is not None
templates = importlib.util.module_from_spec(_spec)
sys.modules["bench_llama_stack_templates"] = templates
_spec.loader.exec_module(templates)

TEXT = """
apis: [inference, post_training, eval]
providers:
  inference:
  - provider_id: tgi
    provider_type: remote::tgi
    config: {url: "${env.TGI_URL}"}
  - provider_id: ${env.ENABLE_CHROMADB+chromadb}
    provider_type: remote::chromadb
    config: {url: "${env.CHROMADB_URL:}", key: "${env.OPENAI_API_KEY:}"}
  datasetio:
  - provider_id: localfs
    provider_type: inline::localfs
    config: {dir: "${env.SQLITE_STORE_DIR:~/.llama/x}"}
  post_training:
  - provider_id: torchtune
    provider_type: inline::torchtune
benchmarks: [{benchmark_id: b}]
"""


def test_variables_without_a_default_conditionals_and_empty_defaults_are_set(tmp_path):
    env = templates.environment_for(TEXT, tmp_path)
    assert env == {
        "TGI_URL": "http://localhost:8080",
        "ENABLE_CHROMADB": "1",
        "CHROMADB_URL": "http://localhost:8080",
        "OPENAI_API_KEY": "test-secret",
    }


def test_unserved_apis_are_set_aside_with_what_they_register():
    aside = yaml.safe_load(templates.set_aside_unserved(TEXT))
    # post_training is not served: it goes, with its providers; eval and benchmarks stay.
    assert aside["apis"] == ["inference", "eval"]
    assert set(aside["providers"]) == {"inference", "datasetio"}
    assert aside["benchmarks"] == [{"benchmark_id": "b"}]


def test_reasons_drop_the_file_indexes_and_lists():
    message = (
        "/tmp/x/run.yaml: providers.inference[3]: unknown provider_type 'remote::y' for API "
        "inference (known: a, b)"
    )
    assert templates.reason_of(message, "/tmp/x/run.yaml") == (
        "providers.inference[i]: unknown provider_type 'remote::y' for API inference"
    )
