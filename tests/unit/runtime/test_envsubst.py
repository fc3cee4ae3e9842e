import pytest

from stackray.api.errors import ConfigError
from stackray.runtime.envsubst import interpolate

ENV = {"SET": "value", "EMPTY": "", "PORT": "9000"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("${env.SET}", "value"),
        ("x-${env.SET}-y", "x-value-y"),
        ("${env.UNSET:default}", "default"),
        ("${env.SET:default}", "value"),
        ("${env.EMPTY:default}", "default"),
        ("${env.UNSET:=fallback}", "fallback"),
        ("${env.SET:=fallback}", "value"),
        ("${env.SET:+on}", "on"),
        ("${env.SET+on}", "on"),
        ("${env.UNSET+on}", None),
        ("${env.EMPTY+on}", None),
        ("${env.SET+chromadb}-${env.UNSET+x}", "chromadb-"),
        ("${env.UNSET:+on}", None),
        ("${env.EMPTY:+on}", None),
        ("${env.UNSET:=}", None),
        ("${env.SET:+${env.PORT}}", "9000"),
        ("http://h:${env.PORT:=1}/v1", "http://h:9000/v1"),
        ("no references", "no references"),
    ],
)
def test_forms(text, expected):
    assert interpolate(text, ENV) == expected


def test_unset_without_default_names_variable_and_field():
    with pytest.raises(
        ConfigError,
        match=r"providers.inference\[0\].config.url: environment variable NOPE is not set",
    ):
        interpolate({"providers": {"inference": [{"config": {"url": "${env.NOPE}"}}]}}, ENV)


def test_nested_structures_and_non_strings_untouched():
    data = {"a": ["${env.SET}", 3, True], "b": {"c": None, "d": "${env.PORT}"}}
    assert interpolate(data, ENV) == {"a": ["value", 3, True], "b": {"c": None, "d": "9000"}}


def test_a_substituted_home_directory_is_expanded(monkeypatch):
    monkeypatch.setenv("HOME", "/home/user")
    assert interpolate("${env.UNSET:~/.llama/d}/kv.db", ENV) == "/home/user/.llama/d/kv.db"
    assert interpolate("${env.DIR}/kv.db", {"DIR": "~/s"}) == "/home/user/s/kv.db"
    assert interpolate("${env.SET+~/on}", ENV) == "/home/user/on"
    # Only substituted values are expanded; a literal stays as written.
    assert interpolate("~/literal", ENV) == "~/literal"
