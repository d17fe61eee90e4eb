"""What the new kinds take in a config file, and what is refused with the key path: a Bedrock account's region
and credentials, an Anthropic account that cannot serve embeddings, a litellm account without a base URL;
and the built-in default's Anthropic and AWS detection."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import ConfigError, load_settings
from gateway.config.defaults import default_document
from gateway.providers import REGISTRY

CLAUDE = "us.anthropic.claude-haiku-4-5-20251001-v1:0"


def load(tmp_path: Path, providers: str, env: dict[str, str] | None = None) -> object:
    config = tmp_path / "gateway.yaml"
    config.write_text(f"providers:\n{providers}\npolicies: {{dir: ''}}\n")
    return load_settings(str(config), env or {}, kinds=REGISTRY)


def errors(tmp_path: Path, providers: str, env: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, providers, env)
    return str(info.value)


def test_a_bedrock_account_with_keys_and_its_region(tmp_path: Path) -> None:
    settings = load(
        tmp_path,
        "  br: {kind: bedrock, region: eu-west-3, aws_access_key_id_env: K, aws_secret_access_key_env: S,\n"
        "       aws_session_token_env: T, models: {claude: {upstream_model: " + CLAUDE + "}}}",
        {"K": "AKIAEXAMPLE", "S": "secret-access-key-1", "T": "session-token-1"},
    )
    account = settings.accounts[0]  # type: ignore[attr-defined]
    assert account.region == "eu-west-3" and account.base_url == "https://bedrock-runtime.eu-west-3.amazonaws.com"
    assert (
        account.aws.access_key_id.reveal() == "AKIAEXAMPLE" and account.aws.session_token.reveal() == "session-token-1"
    )
    secrets = settings.secrets()  # type: ignore[attr-defined]
    assert "secret-access-key-1" in secrets and "session-token-1" in secrets  # redacted by value everywhere
    deployment = account.deployments[0]
    assert deployment.price is not None and deployment.context_window == 200_000  # from the catalog


def test_bedrock_takes_the_region_from_the_environment_and_needs_one(tmp_path: Path) -> None:
    chain = "  br: {kind: bedrock, models: {m: {upstream_model: meta.llama3-3-70b-instruct-v1:0}}}"
    settings = load(tmp_path, chain, {"AWS_REGION": "us-west-2"})
    assert settings.accounts[0].region == "us-west-2" and settings.accounts[0].aws.profile is None  # type: ignore[attr-defined]
    assert "providers.br.region: required for kind bedrock (or set AWS_REGION)" in errors(tmp_path, chain)


def test_bedrock_credentials_come_whole(tmp_path: Path) -> None:
    half = "  br: {kind: bedrock, region: us-east-1, aws_access_key_id_env: K, models: {m: {}}}"
    assert "give aws_access_key_id_env and aws_secret_access_key_env together" in errors(tmp_path, half, {"K": "x"})
    both = (
        "  br: {kind: bedrock, region: us-east-1, aws_profile: p, aws_access_key_id_env: K,"
        " aws_secret_access_key_env: S, models: {m: {}}}"
    )
    assert "give AWS keys or aws_profile, not both" in errors(tmp_path, both, {"K": "x", "S": "y"})
    unset = (
        "  br: {kind: bedrock, region: us-east-1, aws_access_key_id_env: K, aws_secret_access_key_env: S,"
        " models: {m: {}}}"
    )
    assert "providers.br.aws_secret_access_key_env: environment variable S is not set" in errors(
        tmp_path, unset, {"K": "x"}
    )


def test_aws_keys_belong_to_aws_accounts_only(tmp_path: Path) -> None:
    wrong = "  oa: {kind: openai, api_key_env: K, region: us-east-1, models: {gpt-4o-mini: {}}}"
    assert "providers.oa.region: only accounts of an AWS service" in errors(tmp_path, wrong, {"K": "sk-x"})


def test_anthropic_has_no_embeddings(tmp_path: Path) -> None:
    text = "  claude: {kind: anthropic, api_key_env: K, models: {embed: {upstream_model: x, mode: embedding}}}"
    assert "providers.claude.models.embed.mode: kind anthropic has no embeddings API" in errors(
        tmp_path, text, {"K": "k"}
    )


def test_litellm_needs_no_base_url_and_reads_litellms_model_names(tmp_path: Path) -> None:
    settings = load(
        tmp_path,
        "  tail: {kind: litellm, api_key_env: K, models: {mistral: {upstream_model: mistral/mistral-large-latest}}}",
        {"K": "k"},
    )
    account = settings.accounts[0]  # type: ignore[attr-defined]
    assert account.base_url == "" and account.deployments[0].price is not None
    assert "providers.x.base_url: required for kind openai-compatible" in errors(
        tmp_path, "  x: {kind: openai-compatible, models: {m: {}}}"
    )


def test_the_default_picks_up_anthropic_and_a_visible_aws_chain() -> None:
    kinds = frozenset(REGISTRY)
    assert (
        default_document({"ANTHROPIC_API_KEY": "k"}, kinds)["providers"]["anthropic"]["api_key_env"]
        == "ANTHROPIC_API_KEY"
    )
    for chain in (
        "AWS_ACCESS_KEY_ID",
        "AWS_PROFILE",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    ):
        bedrock = default_document({chain: "x", "AWS_REGION": "eu-west-1"}, kinds)["providers"]["bedrock"]
        assert bedrock["region"] == "eu-west-1" and "api_key_env" not in bedrock
    assert default_document({"AWS_ACCESS_KEY_ID": "x"}, kinds)["demo"]  # no region: no Bedrock, the demo
    with_key = default_document({"AWS_BEARER_TOKEN_BEDROCK": "t", "AWS_DEFAULT_REGION": "us-east-1"}, kinds)
    assert with_key["providers"]["bedrock"]["api_key_env"] == "AWS_BEARER_TOKEN_BEDROCK"
