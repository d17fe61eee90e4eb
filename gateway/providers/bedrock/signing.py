"""AWS Signature Version 4 for Bedrock requests, with botocore's signer, built once per account at start.

botocore is imported here, inside ``signer``, so only a configuration with a Bedrock account loads it; the
other providers never pay for signing. Credentials, in order: the account's explicit keys
(``aws_access_key_id_env`` / ``aws_secret_access_key_env`` / ``aws_session_token_env``), else botocore's
standard chain for the account's ``aws_profile`` or the default one (environment, shared credentials and
config files, web identity / IRSA, container and instance roles), resolved when the gateway starts: a
configuration whose chain finds nothing does not start. Temporary credentials from the chain are refreshed
by botocore before they expire. A Bedrock API key (``api_key_env``) replaces signing with a bearer header.

Each request signs ``content-type``, ``host`` and ``x-amz-date`` (and ``x-amz-security-token`` with a session
token) over the exact URL and body sent, for the service ``bedrock`` in the account's region.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from gateway.config.model import Account, AwsCredentials
from gateway.config.source import ConfigError
from gateway.providers.base import Signer

SERVICE = "bedrock"  # bedrock-runtime's signing name (botocore's service model)


def credentials(account: Account) -> Any:
    """botocore credentials for ``account`` (a ``Credentials`` or refreshable ones); ConfigError if none."""
    import botocore.credentials  # type: ignore[import-untyped]
    import botocore.session  # type: ignore[import-untyped]

    aws = account.aws or AwsCredentials()
    if aws.access_key_id is not None and aws.secret_access_key is not None:
        token = aws.session_token.reveal() if aws.session_token is not None else None
        return botocore.credentials.Credentials(aws.access_key_id.reveal(), aws.secret_access_key.reveal(), token)
    found = botocore.session.Session(profile=aws.profile).get_credentials()
    if found is None:
        raise ConfigError(
            [
                f"providers.{account.name}: no AWS credentials found (environment, shared files, web identity, "
                "container or instance role); set them, or aws_access_key_id_env and aws_secret_access_key_env"
            ]
        )
    return found


def signer(account: Account) -> Signer | None:
    if account.api_key is not None:
        return None  # a Bedrock API key: the bearer header is the whole credential
    from botocore.auth import SigV4Auth  # type: ignore[import-untyped]
    from botocore.awsrequest import AWSRequest  # type: ignore[import-untyped]

    source = credentials(account)
    region = account.region
    # Every URL of the account has its base URL's host: given once, botocore need not parse it from each URL
    # (two URL parses per signature). Default ports are left out, as the HTTP client leaves them out of Host.
    parts = urlsplit(account.base_url)
    default_port = parts.port is None or parts.port == (443 if parts.scheme == "https" else 80)
    host = parts.hostname if default_port else f"{parts.hostname}:{parts.port}"

    def sign(url: str, headers: Mapping[str, str], body: bytes) -> dict[str, str]:
        fields = {"content-type": headers["content-type"], "host": host}
        request = AWSRequest(method="POST", url=url, data=body, headers=fields)
        SigV4Auth(source.get_frozen_credentials(), SERVICE, region).add_auth(request)
        return {k.lower(): str(v) for k, v in request.headers.items() if k.lower() not in ("content-type", "host")}

    return sign
