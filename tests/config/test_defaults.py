"""The built-in default configuration: the demo mirrors the shipped example; a provider key replaces it."""

from __future__ import annotations

from pathlib import Path

from harness import EXAMPLE_CONFIG, example_config_env

from gateway.config import load_settings
from gateway.config.model import Settings
from gateway.providers import REGISTRY
from gateway.routing.policy_load import load_policies

ROOT = Path(__file__).resolve().parents[2]


def _shape(settings: Settings) -> dict[str, object]:
    """What makes a deployment route the same way: everything but where its account lives."""
    return {
        d.id: (
            next(a.kind for a in settings.accounts if a.name == d.account),
            next(a.limits for a in settings.accounts if a.name == d.account),
            d.upstream_model,
            d.mode,
            d.limits,
            d.price,
            d.context_window,
            d.capabilities,
        )
        for d in settings.deployments
    }


def test_the_demo_has_the_example_configs_accounts(tmp_path: Path) -> None:
    example = load_settings(str(EXAMPLE_CONFIG), example_config_env(tmp_path), kinds=REGISTRY)
    demo = load_settings(None, {}, kinds=REGISTRY)
    assert demo.demo and _shape(demo) == _shape(example)


def test_the_demo_serves_the_shipped_example_policy() -> None:
    demo = load_settings(None, {}, kinds=REGISTRY)
    assert Path(demo.policy_dir) == ROOT / "policies"
    policy = load_policies(demo.policy_dir, {d.id: d for d in demo.deployments})
    assert "agent-default" in policy.routes and policy.aliases["auto"] == "agent-default"


def test_a_provider_key_serves_that_provider_without_the_example_policy() -> None:
    s = load_settings(None, {"OPENAI_API_KEY": "sk-real", "OPENAI_BASE_URL": "http://127.0.0.1:1/v1"}, kinds=REGISTRY)
    assert not s.demo and s.policy_dir == ""
    assert [a.base_url for a in s.accounts] == ["http://127.0.0.1:1/v1"]
    chosen = load_settings(None, {"OPENAI_API_KEY": "sk-real", "GATEWAY_POLICY_DIR": "/srv/policies"}, kinds=REGISTRY)
    assert chosen.policy_dir == "/srv/policies"


def test_a_bad_port_in_the_environment_is_reported() -> None:
    try:
        load_settings(None, {"GATEWAY_PORT": "eighty"}, kinds=REGISTRY)
    except Exception as e:  # ConfigError lists it with the key path
        assert "server.port: expected a port 0-65535, got 'eighty'" in str(e)
    else:
        raise AssertionError("a non-numeric GATEWAY_PORT was accepted")
