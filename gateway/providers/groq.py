"""Groq's OpenAI-compatible API. Groq answers 400 to the fields below, so they are refused here first."""

from gateway.providers import openai_compat as oc
from gateway.providers.base import Param, Provider

# https://console.groq.com/docs/openai: logprobs, logit_bias, top_logprobs unsupported; n must be 1.
_UNSUPPORTED = (*oc.OPENAI_ONLY, "logprobs", "logit_bias", "top_logprobs")

PROVIDER = Provider(
    kind="groq",
    default_base_url="https://api.groq.com/openai/v1",
    auth=oc.bearer,
    url=oc.path_url,
    chat_params=oc.chat_params(exclude=_UNSUPPORTED, restrict={"n": Param(allowed=lambda v: v == 1)}),
    embedding_params=oc.embedding_params(exclude=("dimensions",)),
    unsupported=frozenset(_UNSUPPORTED) | {"dimensions"},
    from_error=oc.from_error,
    to_request=oc.to_request,
    rate_limits=oc.rate_limits,
    stream_error=oc.stream_error,
)
