"""Provider adapters by kind. The registry is immutable data; adding a kind means adding a module here."""

from collections.abc import Mapping
from types import MappingProxyType

from gateway.providers import anthropic, azure, bedrock, compatible, gemini, groq, litellm, openai
from gateway.providers.base import Provider

REGISTRY: Mapping[str, Provider] = MappingProxyType(
    {
        p.kind: p
        for p in (
            openai.PROVIDER,
            azure.PROVIDER,
            groq.PROVIDER,
            gemini.PROVIDER,
            compatible.PROVIDER,
            anthropic.PROVIDER,
            bedrock.PROVIDER,
            litellm.PROVIDER,
        )
    }
)
