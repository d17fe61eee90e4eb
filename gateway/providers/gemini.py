"""Google Gemini through its OpenAI-compatible endpoint (``/v1beta/openai``), bearer-authenticated."""

from gateway.providers import openai_compat as oc
from gateway.providers.base import Provider

# Parameters the compatibility layer documents no mapping for.
_UNSUPPORTED = (
    *oc.OPENAI_ONLY,
    "logit_bias",
    "logprobs",
    "top_logprobs",
    "service_tier",
    "parallel_tool_calls",
    "user",
)

PROVIDER = Provider(
    kind="gemini",
    default_base_url="https://generativelanguage.googleapis.com/v1beta/openai",
    auth=oc.bearer,
    url=oc.path_url,
    chat_params=oc.chat_params(exclude=_UNSUPPORTED),
    embedding_params=oc.embedding_params(exclude=("user",)),
    unsupported=frozenset(_UNSUPPORTED),
    from_error=oc.from_error,
    to_request=oc.to_request,
    rate_limits=oc.rate_limits,
    stream_error=oc.stream_error,
)
