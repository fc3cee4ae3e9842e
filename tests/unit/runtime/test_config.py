from pathlib import Path

import pytest
import yaml

from stackray.api.datatypes import Api
from stackray.api.errors import ConfigError
from stackray.runtime.config import load_config, parse_config, resolve_config_path

MINIMAL = {
    "version": 2,
    "image_name": "t",
    "apis": ["inference"],
    "providers": {
        "inference": [
            {"provider_id": "st", "provider_type": "inline::sentence-transformers", "config": {}}
        ]
    },
}


def write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_local_distribution_loads():
    config = load_config("local", env={})
    assert config.image_name == "local"
    assert config.apis == [
        Api.inference,
        Api.vector_io,
        Api.files,
        Api.safety,
        Api.tool_runtime,
        Api.agents,
        Api.telemetry,
        Api.datasetio,
        Api.scoring,
        Api.eval,
    ]
    assert [p.provider_type for p in config.providers_of(Api.datasetio)] == [
        "inline::localfs",
        "remote::huggingface",
    ]
    assert [p.provider_type for p in config.providers_of(Api.scoring)] == [
        "inline::basic",
        "inline::llm-as-judge",
        "inline::braintrust",
    ]
    # The judge of the llm-as-judge functions is the default model.
    assert config.providers_of(Api.scoring)[1].config == {"judge_model": "SmolLM2-135M-Instruct"}
    # braintrust's too, with the local embedding model for its similarity functions.
    assert config.providers_of(Api.scoring)[2].config == {
        "judge_model": "SmolLM2-135M-Instruct",
        "embedding_model": "all-MiniLM-L6-v2",
    }
    assert [p.provider_type for p in config.providers_of(Api.telemetry)] == [
        "inline::meta-reference"
    ]
    assert {p.provider_type for p in config.providers_of(Api.inference)} == {
        "inline::transformers",
        "inline::sentence-transformers",
    }
    assert [p.provider_type for p in config.providers_of(Api.files)] == ["inline::localfs"]
    assert {p.provider_type for p in config.providers_of(Api.safety)} == {
        "inline::code-scanner",
        "inline::llama-guard",
    }
    assert [(s.shield_id, s.provider_shield_id) for s in config.shields] == [
        ("code-scanner", None),
        ("llama-guard", "SmolLM2-135M-Instruct"),
    ]
    tool_providers = {p.provider_id: p for p in config.providers_of(Api.tool_runtime)}
    assert set(tool_providers) == {
        "rag-runtime",
        "model-context-protocol",
        "tavily-search",
        "brave-search",
    }
    # No search key in the environment: none configured (a request may bring its own).
    assert tool_providers["tavily-search"].config["api_key"] is None
    assert [(g.toolgroup_id, g.provider_id) for g in config.tool_groups] == [
        ("builtin::rag", "rag-runtime"),
        ("builtin::websearch", "tavily-search"),
    ]
    config = load_config("local", env={"WEB_SEARCH_PROVIDER": "brave-search"})
    assert config.tool_groups[1].provider_id == "brave-search"
    assert [p.provider_type for p in config.providers_of(Api.agents)] == ["inline::meta-reference"]
    assert [(p.provider_id, p.provider_type) for p in config.providers_of(Api.vector_io)] == [
        ("faiss", "inline::faiss"),
        ("sqlite-vec", "inline::sqlite-vec"),
        ("chromadb", "inline::chromadb"),
        ("qdrant", "inline::qdrant"),
        ("milvus", "inline::milvus"),
    ]
    assert config.server.port == 8321
    assert [m.model_id for m in config.models] == ["SmolLM2-135M-Instruct", "all-MiniLM-L6-v2"]


def test_gpu_distribution_loads():
    config = load_config("gpu", env={})
    assert config.apis == [Api.inference, Api.safety]
    guard = next(s for s in config.shields if s.shield_id == "llama-guard")
    assert guard.provider_shield_id == "Llama-Guard-3-1B"
    model = next(m for m in config.models if m.model_id == "Llama-Guard-3-1B")
    assert model.provider_model_id == "meta-llama/Llama-Guard-3-1B"
    assert model.provider_id == "guard"
    providers = {p.provider_id: p for p in config.providers_of(Api.inference)}
    assert providers["guard"].config["device"] == "cuda"
    assert providers["vllm"].provider_type == "inline::vllm"


def test_remote_distribution_loads():
    config = load_config("remote", env={})
    assert config.image_name == "remote"
    providers = {p.provider_id: p for p in config.providers_of(Api.inference)}
    assert providers["vllm"].provider_type == "remote::vllm"
    assert providers["vllm"].config["url"] == "http://localhost:8000/v1"
    assert providers["sentence-transformers"].provider_type == "inline::sentence-transformers"
    assert [(m.provider_id, m.model_type) for m in config.models] == [
        ("vllm", "llm"),
        ("sentence-transformers", "embedding"),
    ]
    custom = load_config("remote", env={"VLLM_URL": "http://gpu:9000/v1", "INFERENCE_MODEL": "x/y"})
    assert custom.providers_of(Api.inference)[0].config["url"] == "http://gpu:9000/v1"
    assert custom.models[0].model_id == "x/y"


def test_remote_distribution_checks_the_ca_file():
    with pytest.raises(ConfigError, match=r"providers.inference\[0\].config.tls_verify"):
        load_config("remote", env={"VLLM_TLS_VERIFY": "/no/such/ca.pem"})


def test_env_overrides_port_and_model(tmp_path):
    config = load_config("local", env={"STACKRAY_PORT": "9999", "INFERENCE_MODEL": "m"})
    assert config.server.port == 9999
    assert config.models[0].model_id == "m"


def test_only_some_apis(tmp_path):
    config = load_config(str(write(tmp_path, MINIMAL)), env={})
    assert config.apis == [Api.inference]


def test_unknown_field_names_file_and_path(tmp_path):
    data = dict(MINIMAL, server={"port": 1, "prot": 2})
    path = write(tmp_path, data)
    with pytest.raises(ConfigError) as err:
        load_config(str(path), env={})
    assert str(path) in str(err.value)
    assert "server.prot" in str(err.value)


def test_wrong_type_says_what_was_expected(tmp_path):
    path = write(tmp_path, dict(MINIMAL, server={"port": "many"}))
    with pytest.raises(ConfigError, match=r"server.port: Input should be a valid integer"):
        load_config(str(path), env={})


def test_provider_config_validated_with_path(tmp_path):
    data = dict(MINIMAL)
    data["providers"] = {
        "inference": [
            {
                "provider_id": "st",
                "provider_type": "inline::sentence-transformers",
                "config": {"max_batch_size": 0},
            }
        ]
    }
    with pytest.raises(ConfigError, match=r"providers.inference\[0\].config.max_batch_size"):
        load_config(str(write(tmp_path, data)), env={})


def test_unknown_provider_type(tmp_path):
    data = dict(MINIMAL)
    data["providers"] = {"inference": [{"provider_id": "x", "provider_type": "inline::nope"}]}
    with pytest.raises(
        ConfigError, match=r"providers.inference\[0\]: unknown provider_type 'inline::nope'"
    ):
        load_config(str(write(tmp_path, data)), env={})


def test_duplicate_provider_ids(tmp_path):
    p = {"provider_id": "st", "provider_type": "inline::sentence-transformers"}
    data = dict(MINIMAL, providers={"inference": [p, p]})
    with pytest.raises(ConfigError, match="already used"):
        load_config(str(write(tmp_path, data)), env={})


def test_model_with_unknown_provider(tmp_path):
    data = dict(MINIMAL, models=[{"model_id": "m", "provider_id": "ghost"}])
    with pytest.raises(ConfigError, match=r"models\[0\].provider_id: no provider 'ghost'"):
        load_config(str(write(tmp_path, data)), env={})


def test_unknown_api(tmp_path):
    with pytest.raises(ConfigError, match=r"apis.\[0\]|apis\[0\]"):
        load_config(str(write(tmp_path, dict(MINIMAL, apis=["telepathy"]))), env={})


def test_invalid_yaml(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("apis: [inference\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_config(str(path))


def test_missing_file_lists_distributions():
    with pytest.raises(ConfigError, match="distributions: .*local"):
        resolve_config_path("/no/such/file.yaml")


def test_deployment_options_to_serve():
    data = dict(
        MINIMAL,
        deployments={
            "gateway": {
                "num_replicas": 3,
                "autoscaling_config": {"min_replicas": 1, "max_replicas": 4},
                "ray_actor_options": {"num_cpus": 0.5},
                "max_queued_requests": 100,
            }
        },
    )
    opts = parse_config(data).deployment_options("gateway").to_serve_options()
    assert "num_replicas" not in opts  # autoscaling wins
    assert opts["autoscaling_config"]["max_replicas"] == 4
    assert opts["ray_actor_options"] == {"num_cpus": 0.5}
    assert opts["max_queued_requests"] == 100


def test_data_dir_default(tmp_path):
    config = parse_config(MINIMAL)
    assert config.data_dir == Path("~/.stackray/t").expanduser()
    assert str(config.metadata_store_config().db_path).endswith("registry.db")


def test_provider_ids_are_unique_per_api_and_own_deployments_across_apis(tmp_path):
    # Llama Stack configs name both the agents and the telemetry provider `meta-reference`.
    data = dict(
        MINIMAL,
        apis=["inference", "agents", "telemetry"],
        providers={
            "inference": [
                {"provider_id": "echo", "provider_type": "remote::echo", "module": "stackray_echo"}
            ],
            "agents": [
                {"provider_id": "meta-reference", "provider_type": "inline::meta-reference"}
            ],
            "telemetry": [
                {"provider_id": "meta-reference", "provider_type": "inline::meta-reference"}
            ],
        },
    )
    config = load_config(str(write(tmp_path, data)), env={})
    assert [p.provider_type for p in config.providers_of(Api.telemetry)] == [
        "inline::meta-reference"
    ]
    # A provider in its own deployment takes options by provider_id: unique across APIs.
    clash = dict(
        MINIMAL,
        apis=["inference", "vector_io"],
        providers={
            "inference": [
                {"provider_id": "shared", "provider_type": "inline::sentence-transformers"}
            ],
            "vector_io": [{"provider_id": "shared", "provider_type": "inline::faiss"}],
        },
    )
    with pytest.raises(ConfigError, match="its own deployment"):
        load_config(str(write(tmp_path, clash)), env={})


def test_options_for_an_inference_deployment_are_refused():
    # Inference has no deployment of its own: options for it would be silently ignored.
    with pytest.raises(
        ConfigError, match="deployments: .*inference: the inference API has no deployment"
    ):
        parse_config(dict(MINIMAL, deployments={"inference": {"num_replicas": 2}}))


def test_a_misspelt_deployment_is_refused_naming_the_known_ones():
    with pytest.raises(ConfigError, match=r"deployments\.gatewy: no such deployment.*gateway"):
        parse_config(dict(MINIMAL, deployments={"gatewy": {"num_replicas": 2}}))


@pytest.mark.parametrize(
    ("section", "field"),
    [
        (
            {"server": {"auth": {"provider_type": "github_token", "config": {}}}},
            "server.auth.provider_type",
        ),
        ({"server": {"tls_certfile": "/c.pem", "tls_keyfile": "/k.pem"}}, "server.tls_certfile"),
        ({"server": {"tls_cafile": "/ca.pem"}}, "server.tls_cafile"),
        ({"server": {"host": "::", "disable_ipv6": True}}, "server.disable_ipv6"),
        (
            {
                "datasets": [
                    {
                        "dataset_id": "d",
                        "purpose": "eval/question-answer",
                        "source": {"type": "rows", "rows": []},
                    }
                ]
            },
            "datasets",
        ),
    ],
)
def test_fields_this_version_does_not_act_on_are_refused(section, field):
    # Parsed and ignored, auth would be a security trap: a start-up error names the field.
    with pytest.raises(ConfigError, match=rf"{field}: "):
        parse_config(dict(MINIMAL, **section))


def test_an_api_without_a_router_is_refused():
    with pytest.raises(
        ConfigError, match=r"apis\[1\]: post_training is not served by this version"
    ):
        parse_config(dict(MINIMAL, apis=["inference", "post_training"]))


def test_a_yaml_syntax_error_names_file_line_column_and_what_was_expected(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("version: 2\nimage_name: x\napis: [inference\nproviders: {}\n")
    with pytest.raises(ConfigError) as err:
        load_config(str(path), env={})
    message = str(err.value)
    first, shown, caret = message.splitlines()
    assert first == (
        f"{path}:4:10: invalid YAML: expected ',' or ']', but got ':' "
        "(while parsing a flow sequence that starts at line 3, column 7)"
    )
    assert shown == "    providers: {}" and caret == "    " + " " * 9 + "^"


def test_a_yaml_scanner_error_and_a_top_level_list_are_config_errors(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("version: 2\napis:\n\t- inference\n")
    with pytest.raises(ConfigError, match=rf"^{path}:3:1: invalid YAML: found character '\\t'"):
        load_config(str(path), env={})
    path.write_text("- inference\n")
    with pytest.raises(
        ConfigError, match=rf"^{path}: expected a mapping at the top level, got list"
    ):
        load_config(str(path), env={})


def test_an_unset_variable_names_the_file_and_the_field(tmp_path):
    from stackray.deployments.app import resolved_config

    path = write(tmp_path, dict(MINIMAL, server={"port": "${env.STACKRAY_TEST_UNSET_PORT}"}))
    expected = f"^{path}: server.port: environment variable STACKRAY_TEST_UNSET_PORT is not set"
    with pytest.raises(ConfigError, match=expected):
        load_config(str(path), env={})
    # The path `stackray run` / `check` / `serve run` take.
    with pytest.raises(ConfigError, match=expected):
        resolved_config({"config": str(path)})
