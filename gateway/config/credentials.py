"""Where a config's secrets come from: an environment variable or a file (``<name>_env`` / ``<name>_file``, e.g. a
mounted Kubernetes Secret) for provider keys and tokens, and the AWS credentials of a Bedrock account. Each
error names the key path, as the rest of the config reader does."""

from __future__ import annotations

import os
from typing import Any

from gateway.config.model import AwsCredentials, Secret
from gateway.config.reader import _Reader, _str


def credential(r: _Reader, m: dict[str, Any], path: str, required: bool) -> Secret | None:
    secret = secret_from(r, m, path, "api_key")
    if secret is None and required and not (m.get("api_key_env") or m.get("api_key_file")):
        r.error(path, "a credential is required: set api_key_env or api_key_file")
    return secret


# Accounts of an AWS service (kind: bedrock): the region, and credentials other than the standard chain's.
AWS_KEYS = frozenset(
    {"region", "aws_profile", "aws_access_key_id_env", "aws_secret_access_key_env", "aws_session_token_env"}
)


def aws_credentials(r: _Reader, m: dict[str, Any], path: str) -> AwsCredentials:
    """Explicit keys (both, from the environment), a profile, or neither: the standard chain at start."""
    found: dict[str, Secret | None] = {}
    for name in ("aws_access_key_id_env", "aws_secret_access_key_env", "aws_session_token_env"):
        variable = r.get(m, path, name, _str, "an environment variable name", "")
        found[name] = Secret(r.env[variable]) if variable and r.env.get(variable) else None
        if variable and found[name] is None:
            r.error(f"{path}.{name}", f"environment variable {variable} is not set")
    key_id, secret = found["aws_access_key_id_env"], found["aws_secret_access_key_env"]
    if (m.get("aws_access_key_id_env") is None) != (m.get("aws_secret_access_key_env") is None):
        r.error(path, "give aws_access_key_id_env and aws_secret_access_key_env together")
    profile = r.get(m, path, "aws_profile", _str, "a profile name", "") or None
    if profile and m.get("aws_access_key_id_env") is not None:
        r.error(path, "give AWS keys or aws_profile, not both")
    return AwsCredentials(key_id, secret, found["aws_session_token_env"], profile)


def secret_from(r: _Reader, m: dict[str, Any], path: str, name: str) -> Secret | None:
    """A secret named by ``<name>_env`` (an environment variable) or ``<name>_file`` (a file, e.g. a mounted
    Kubernetes Secret); None, with an error where one was named but cannot be read, or when neither is given."""
    env_key, file_key = f"{name}_env", f"{name}_file"
    env_name = r.get(m, path, env_key, _str, "an environment variable name", "")
    file_name = r.get(m, path, file_key, _str, "a file path", "")
    if env_name and file_name:
        r.error(path, f"give {env_key} or {file_key}, not both")
        return None
    if env_name:
        value = r.env.get(env_name, "")
        if not value:
            r.error(f"{path}.{env_key}", f"environment variable {env_name} is not set")
        return Secret(value) if value else None
    if not file_name:
        return None
    full = os.path.join(r.base_dir, file_name)
    try:
        with open(full, encoding="utf-8") as f:
            value = f.read().strip()
    except OSError as e:
        r.error(f"{path}.{file_key}", f"cannot read {full}: {e.strerror}")
        return None
    if not value:
        r.error(f"{path}.{file_key}", f"{full} is empty")
    return Secret(value) if value else None
