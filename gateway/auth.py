"""Virtual keys -> principals. Keys are held only as sha256 digests."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

from gateway.config.model import VirtualKey
from gateway.errors import AuthenticationFailed, PermissionDenied


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def bearer_token(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


class KeyRing:
    """Looks a presented key up by its digest.

    The dict lookup's timing depends on the digest of what the caller sent, which the caller cannot
    steer towards a stored digest, so it reveals nothing; the final equality is still checked with
    ``hmac.compare_digest`` so no byte-by-byte comparison of secrets happens anywhere.
    """

    def __init__(self, keys: Iterable[VirtualKey], admin_sha256: str | None) -> None:
        self._by_digest = {k.key_sha256: k for k in keys}
        self._admin = admin_sha256

    def authenticate(self, authorization: str | None) -> VirtualKey:
        token = bearer_token(authorization)
        if token is None:
            raise AuthenticationFailed(
                "missing API key: send it as 'Authorization: Bearer <key>'", code="missing_api_key"
            )
        presented = digest(token)
        found = self._by_digest.get(presented)
        if found is None or not hmac.compare_digest(found.key_sha256, presented):
            raise AuthenticationFailed("invalid API key")
        return found

    def require_admin(self, authorization: str | None) -> None:
        token = bearer_token(authorization)
        if token is None:
            raise AuthenticationFailed("missing admin key", code="missing_api_key")
        if self._admin is None or not hmac.compare_digest(self._admin, digest(token)):
            raise PermissionDenied("this route needs the admin key", code="admin_required")
