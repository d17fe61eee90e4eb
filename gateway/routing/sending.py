"""The walk's send step: the provider's wire format for one deployment, over its account's pool.

``prepare`` is pure and runs for every plan entry before anything is reserved (a parameter the provider
cannot express excludes that entry, not the request). ``send`` adds the per-request headers, signs the
request when the provider signs every one (``Provider.sign``), and hands it to ``upstream``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import orjson

from gateway.config.model import Account, Deployment
from gateway.providers.base import Provider
from gateway.routing.walk import Prepared
from gateway.types import Endpoint
from gateway.upstream import Exchange, Slot, Upstream


@dataclass(frozen=True)
class Target:
    """An account with what sending to it needs, resolved once: its adapter and its fixed headers."""

    account: Account
    provider: Provider
    headers: MappingProxyType[str, str]

    @classmethod
    def of(cls, account: Account, provider: Provider) -> Target:
        headers = {"content-type": "application/json", **provider.auth(account.api_key)}
        return cls(account, provider, MappingProxyType(headers))


class Sender:
    def __init__(self, upstream: Upstream, targets: Mapping[str, Target]) -> None:
        self._upstream = upstream
        self._targets = targets

    def prepare(self, deployment: Deployment, body: dict[str, Any], endpoint: Endpoint) -> Prepared:
        target = self._targets[deployment.account]
        provider = target.provider
        payload = provider.to_request(body, deployment, provider, endpoint)
        return Prepared(provider.url(target.account, deployment, endpoint), orjson.dumps(payload))

    async def slot(self, deployment: Deployment) -> Slot:
        return await self._upstream.slot(self._targets[deployment.account].account)

    async def send(self, deployment: Deployment, prepared: Prepared, slot: Slot, request_id: str) -> Exchange:
        target = self._targets[deployment.account]
        headers = dict(target.headers)
        headers["x-client-request-id"] = request_id
        if target.provider.sign is not None:
            headers.update(target.provider.sign(target.account, prepared.url, headers, prepared.body))
        return await self._upstream.send(slot, target.account, target.provider, prepared.url, headers, prepared.body)
