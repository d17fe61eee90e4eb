"""Config validation: every error names the file and key path; interpolation; the built-in default."""

from __future__ import annotations

from pathlib import Path

import pytest
from harness import EXAMPLE_CONFIG, example_config_env

from gateway.auth import digest
from gateway.catalog import lookup as catalog_lookup
from gateway.config import ConfigError, load_settings
from gateway.config.model import Price
from gateway.providers import REGISTRY

KEY = digest("k")


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "gateway.yaml"
    path.write_text(text)
    return str(path)


def errors_of(path: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_settings(path, env or {}, kinds=REGISTRY)
    return info.value.errors


VALID = f"""
server:
  port: ${{PORT:-9001}}
  timeouts: {{connect: 2, first_byte: 30}}
state:
  redis_url: ${{REDIS_URL:-}}
providers:
  openai-main:
    kind: openai
    api_key_env: OPENAI_KEY
    limits: {{rpm: 500, tpm: 100000}}
    models:
      gpt-4o-mini: {{}}
      cheap: {{upstream_model: gpt-4o-mini, price: {{input_per_mtok: 0.1, output_per_mtok: 0.2}}}}
  azure-eu:
    kind: azure
    base_url: https://example-eu.openai.azure.com
    api_key_file: azure.key
    models:
      gpt-4o: {{upstream_model: my-gpt4o-deployment, context_window: 64000, capabilities: [tools, streaming]}}
keys:
  - name: team-a
    key_sha256: {KEY}
    tier: premium
    models: [gpt-4o]
admin:
  key_sha256: {KEY}
"""


def test_valid_config_builds_frozen_settings(tmp_path: Path) -> None:
    (tmp_path / "azure.key").write_text("azure-secret\n")
    s = load_settings(write(tmp_path, VALID), {"OPENAI_KEY": "sk-test", "PORT": "7000"}, kinds=REGISTRY)
    assert s.server.port == 7000 and s.server.timeouts.connect == 2.0 and s.server.timeouts.total == 600.0
    assert s.redis_url == ""
    ids = [d.id for d in s.deployments]
    assert ids == ["openai-main/gpt-4o-mini", "openai-main/cheap", "azure-eu/gpt-4o"]
    cheap = s.deployments[1]
    assert cheap.upstream_model == "gpt-4o-mini"
    assert cheap.price is not None and cheap.price.input == pytest.approx(0.1e-6)
    azure = s.deployments[2]
    assert azure.context_window == 64000 and azure.capabilities == frozenset({"tools", "streaming"})
    assert s.accounts[1].api_version  # the adapter's default api-version
    assert s.accounts[1].api_key is not None and s.accounts[1].api_key.reveal() == "azure-secret"
    assert "azure-secret" not in repr(s)  # secrets never print
    assert s.keys[0].tier == "premium" and s.keys[0].allows("gpt-4o") and not s.keys[0].allows("gpt-4o-mini")


def test_catalog_fills_window_price_and_capabilities(tmp_path: Path) -> None:
    (tmp_path / "azure.key").write_text("x")
    s = load_settings(write(tmp_path, VALID), {"OPENAI_KEY": "sk-test"}, kinds=REGISTRY)
    mini = s.deployments[0]
    assert mini.context_window == 128000
    assert mini.price is not None and mini.price.input > 0
    assert {"tools", "vision", "streaming"} <= mini.capabilities


def test_every_error_is_reported_with_file_and_key_path(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f"""
server:
  port: 99999
  workerz: 2
providers:
  a:
    kind: nosuch
    models: {{m: {{}}}}
  b:
    kind: openai
    api_key_env: MISSING_VAR
    limits: {{rpm: -5}}
    models:
      m: {{capabilities: [telepathy]}}
keys:
  - name: x
    key_sha256: not-a-digest
  - key_sha256: {KEY}
""",
    )
    errors = errors_of(path)
    assert all(e.startswith(f"{path}: ") for e in errors)
    text = "\n".join(errors)
    for fragment in (
        "server.port: expected a port 0-65535, got 99999",
        "server.workerz: unknown key",
        "providers.a.kind: unknown provider kind 'nosuch'",
        "providers.b.api_key_env: environment variable MISSING_VAR is not set",
        "providers.b.limits.rpm: expected a positive integer, got -5",
        "providers.b.models.m.capabilities: unknown capabilities ['telepathy']",
        "keys[0].key_sha256: expected 64 hex characters",
        "keys[1].name: required",
    ):
        assert fragment in text, fragment


def test_interpolation_without_default_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, "state: {redis_url: '${NOPE}'}\nproviders: {}\n")
    errors = errors_of(path)
    assert any("state.redis_url: environment variable NOPE is not set" in e for e in errors)


def test_interpolated_values_cannot_inject_structure(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
server: {host: "${HOST}"}
providers:
  local: {kind: openai-compatible, base_url: "http://127.0.0.1:1/v1", models: {m: {}}}
""",
    )
    s = load_settings(path, {"HOST": "{port: 1}"}, kinds=REGISTRY)
    assert s.server.host == "{port: 1}"


def test_broken_yaml_names_line(tmp_path: Path) -> None:
    errors = errors_of(write(tmp_path, "server:\n  port: [1,\n"))
    assert len(errors) == 1 and ":3:" in errors[0] and "invalid YAML" in errors[0]


def test_yaml_tags_that_construct_objects_are_refused(tmp_path: Path) -> None:
    errors = errors_of(write(tmp_path, "server: !!python/object/apply:os.system ['true']\n"))
    assert "invalid YAML" in errors[0]


def test_missing_file(tmp_path: Path) -> None:
    errors = errors_of(str(tmp_path / "nope.yaml"))
    assert "cannot read" in errors[0]


def test_default_without_credentials_is_the_demo() -> None:
    s = load_settings(None, {}, kinds=REGISTRY)
    assert s.demo and s.source == "<built-in default>"
    assert {d.model for d in s.deployments} >= {"gpt-4o-mini", "text-embedding-3-small"}
    assert s.keys[0].key_sha256 == digest("demo-key")


def test_default_with_a_provider_key_routes_to_it() -> None:
    s = load_settings(None, {"OPENAI_API_KEY": "sk-real", "GROQ_API_KEY": "gsk-real"}, kinds=REGISTRY)
    assert not s.demo
    assert {a.kind for a in s.accounts} == {"openai", "groq"}
    assert s.accounts[0].base_url == "https://api.openai.com/v1"


def test_the_shipped_example_config_is_valid(tmp_path: Path) -> None:
    s = load_settings(str(EXAMPLE_CONFIG), example_config_env(tmp_path), kinds=REGISTRY)
    assert {a.kind for a in s.accounts} == {"openai", "azure", "groq", "gemini", "anthropic", "openai-compatible"}
    assert s.server.port == 8080 and s.admin_key_sha256 == digest("c")


def test_protection_bounds_are_read_and_checked(tmp_path: Path) -> None:
    local = "providers:\n  local: {kind: openai-compatible, base_url: 'http://127.0.0.1:1/v1', models: {m: {}}}\n"
    s = load_settings(
        write(
            tmp_path,
            "server: {max_header_bytes: 8192, keepalive_timeout_seconds: 2, max_stream_bytes: 1000,"
            " timeouts: {pool: 0.5}}\n"
            "limits: {max_n: 4, max_output_tokens: 4096, max_retry_after_seconds: 60}\n"
            "policies: {max_bytes: 2048}\n" + local,
        ),
        {},
        kinds=REGISTRY,
    )
    assert (s.server.max_header_bytes, s.server.keepalive_timeout_seconds, s.server.max_stream_bytes) == (8192, 2, 1000)
    assert s.server.timeouts.pool == 0.5 and s.server.timeouts.connect == 5.0
    assert (s.limits.max_n, s.limits.max_output_tokens, s.limits.max_retry_after_seconds) == (4, 4096, 60)
    assert s.policy_max_bytes == 2048
    errors = "\n".join(
        errors_of(write(tmp_path, "server: {max_connections: 0, timeouts: {pool: -1}}\nlimits: {max_n: 1.5}\n" + local))
    )
    assert "server.max_connections: expected a positive integer, got 0" in errors
    assert "server.timeouts.pool: expected seconds > 0, got -1" in errors
    assert "limits.max_n: expected a positive integer, got 1.5" in errors


def test_cache_prices_from_the_catalog_and_the_config(tmp_path: Path) -> None:
    text = (
        "providers:\n  local:\n    kind: openai-compatible\n    base_url: 'http://127.0.0.1:1/v1'\n    models:\n"
        "      m:\n        price: {input_per_mtok: 1, output_per_mtok: 4, cache_read_per_mtok: 0.1,"
        " cache_write_per_mtok: 1.25}\n"
        "      n: {price: {input_per_mtok: 1}}\n"
    )
    s = load_settings(write(tmp_path, text), {}, kinds=REGISTRY)
    m, n = s.deployments
    assert m.price == Price(1 / 1e6, 4 / 1e6, cache_read=0.1 / 1e6, cache_write=1.25 / 1e6)
    assert n.price is not None and n.price.cache_read is None  # cached tokens then cost the input price
    catalog = catalog_lookup("openai", "gpt-4o-mini")
    assert catalog is not None and catalog.price is not None and catalog.price.cache_read is not None
