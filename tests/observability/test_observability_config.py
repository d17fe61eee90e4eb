"""The ``observability:`` section as ``gateway check`` and start-up read it: defaults (tracing off), the
metrics token from an environment variable or a file (and redacted like every credential), and every
mistake named by its key path."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import ConfigError, load_settings
from gateway.config.model import Settings
from gateway.providers import REGISTRY

BASE = """
providers:
  openai-main: {kind: openai, api_key_env: OPENAI_KEY, models: {gpt-4o-mini: {}}}
"""
ENV = {"OPENAI_KEY": "sk-test-0123456789"}


def load(tmp_path: Path, observability: str, env: dict[str, str] | None = None) -> Settings:
    path = tmp_path / "gateway.yaml"
    path.write_text(BASE + observability)
    return load_settings(str(path), {**ENV, **(env or {})}, kinds=REGISTRY)


def errors(tmp_path: Path, observability: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, observability, env)
    return [e.split(": ", 1)[1] for e in info.value.errors]  # without the file name


def test_by_default_tracing_is_off_and_metrics_are_open(tmp_path: Path) -> None:
    settings = load(tmp_path, "")
    assert settings.observability.tracing.endpoint == "" and settings.observability.metrics_token is None
    assert settings.observability.tracing.sample_ratio == 0.1
    assert settings.observability.headroom_interval_seconds == 5.0


def test_the_metrics_token_comes_from_the_environment_or_a_file_and_is_redacted(tmp_path: Path) -> None:
    from_env = load(tmp_path, "observability: {metrics: {token_env: SCRAPE}}", {"SCRAPE": "scrape-token-123456"})
    assert from_env.observability.metrics_token is not None
    assert from_env.observability.metrics_token.reveal() == "scrape-token-123456"
    assert "scrape-token-123456" in from_env.secrets()  # redacted by value from logs and answers
    (tmp_path / "token").write_text("file-token-abcdef\n")
    from_file = load(tmp_path, "observability: {metrics: {token_file: token}}")  # relative to the config file
    assert from_file.observability.metrics_token is not None
    assert from_file.observability.metrics_token.reveal() == "file-token-abcdef"
    assert "file-token" not in repr(from_file.observability)


def test_tracing_settings(tmp_path: Path) -> None:
    text = "observability: {tracing: {endpoint: 'http://otel:4318', sample_ratio: 0, service_name: gw-eu}}"
    tracing = load(tmp_path, text).observability.tracing
    assert (tracing.endpoint, tracing.sample_ratio, tracing.service_name) == ("http://otel:4318", 0.0, "gw-eu")


@pytest.mark.parametrize(
    ("text", "env", "expected"),
    [
        (
            "observability: {metrics: {token_env: MISSING}}",
            {},
            "observability.metrics.token_env: environment variable MISSING is not set",
        ),
        (
            "observability: {metrics: {token_env: A, token_file: b}}",
            {"A": "x"},
            "observability.metrics: give token_env or token_file, not both",
        ),
        ("observability: {metrics: {token_file: nowhere}}", {}, "observability.metrics.token_file: cannot read"),
        (
            "observability: {metrics: {headroom_interval_seconds: 0}}",
            {},
            "observability.metrics.headroom_interval_seconds: expected seconds > 0, got 0",
        ),
        (
            "observability: {tracing: {endpoint: 'otel:4317'}}",
            {},
            "observability.tracing.endpoint: expected an http:// or https:// URL (OTLP over HTTP), got 'otel:4317'",
        ),
        (
            "observability: {tracing: {endpoint: 'http://otel:4318', sample_ratio: 1.5}}",
            {},
            "observability.tracing.sample_ratio: expected a number from 0 to 1, got 1.5",
        ),
        ("observability: {traces: {}}", {}, "observability.traces: unknown key (expected one of: metrics, tracing)"),
    ],
)
def test_mistakes_are_named_by_their_key_path(tmp_path: Path, text: str, env: dict[str, str], expected: str) -> None:
    found = errors(tmp_path, text, env)
    assert any(e.startswith(expected) for e in found), found
