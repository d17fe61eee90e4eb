"""The walk's send step: the provider's wire format for one deployment, over its account's pool.

``prepare`` is pure and runs for a plan entry when the walk reaches its stage, before anything is reserved
on it (a parameter the provider cannot express excludes that entry, not the request). ``send`` adds the
per-request headers (a sampled trace's ``traceparent`` among them), signs the request when the provider
signs every one (``Provider.signer``, built per account at start), and hands it to ``upstream``; a kind
reached through a library (``Provider.sdk``: litellm) is called through ``upstream`` too, under the same
pool, timeouts and bounds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import orjson

from gateway.config.model import Account, Deployment
from gateway.exchange import Exchange, Slot
from gateway.providers.base import Provider, SdkCall, Signer
from gateway.routing.steps import Prepared
from gateway.types import Endpoint
from gateway.upstream import Upstream

if TYPE_CHECKING:  # OpenTelemetry is imported only when tracing is configured
    from gateway.tracing import Tracer


@dataclass(frozen=True)
class Target:
    """An account with what sending to it needs, resolved once: its adapter, its fixed headers, and its
    signer or library call when the kind has one (credentials and libraries are loaded here, at start)."""

    account: Account
    provider: Provider
    headers: MappingProxyType[str, str]
    sign: Signer | None = None
    sdk: SdkCall | None = None

    @classmethod
    def of(cls, account: Account, provider: Provider) -> Target:
        headers = {"content-type": "application/json", **provider.auth(account.api_key)}
        sign = provider.signer(account) if provider.signer is not None else None
        sdk = provider.sdk(account) if provider.sdk is not None else None
        return cls(account, provider, MappingProxyType(headers), sign, sdk)


class Sender:
    def __init__(self, upstream: Upstream, targets: Mapping[str, Target], tracer: Tracer | None = None) -> None:
        self._upstream = upstream
        self._targets = targets
        self._tracer = tracer  # a sampled attempt tells the provider its trace (W3C traceparent)

    def prepare(self, deployment: Deployment, body: dict[str, Any], endpoint: Endpoint) -> Prepared:
        target = self._targets[deployment.account]
        provider = target.provider
        payload = provider.to_request(body, deployment, provider, endpoint)
        if provider.stream_url is not None and body.get("stream") is True:
            return Prepared(provider.stream_url(target.account, deployment), orjson.dumps(payload))
        return Prepared(provider.url(target.account, deployment, endpoint), orjson.dumps(payload))

    async def slot(self, deployment: Deployment) -> Slot:
        return await self._upstream.slot(self._targets[deployment.account].account)

    async def send(self, deployment: Deployment, prepared: Prepared, slot: Slot, request_id: str) -> Exchange:
        target = self._targets[deployment.account]
        if target.sdk is not None:
            return await self._upstream.call(slot, target.sdk, target.provider, prepared.body)
        headers = dict(target.headers)
        headers["x-client-request-id"] = request_id
        if self._tracer is not None:
            self._tracer.inject(headers)
        if target.sign is not None:
            headers.update(target.sign(prepared.url, headers, prepared.body))
        return await self._upstream.send(slot, target.account, target.provider, prepared.url, headers, prepared.body)
