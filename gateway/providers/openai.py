"""OpenAI itself: the reference wire format, passed through."""

from gateway.providers import openai_compat as oc
from gateway.providers.base import Provider

PROVIDER = Provider(
    kind="openai",
    default_base_url="https://api.openai.com/v1",
    auth=oc.bearer,
    url=oc.path_url,
    chat_params=oc.chat_params(),
    embedding_params=oc.embedding_params(),
    unsupported=frozenset(),
    from_error=oc.from_error,
    to_request=oc.to_request,
    rate_limits=oc.rate_limits,
    stream_error=oc.stream_error,
)
