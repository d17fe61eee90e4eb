"""Self-hosted and hosted OpenAI-compatible servers (vLLM, Ollama, Together, LM Studio...).

Their extensions (``top_k``, ``repetition_penalty``, guided decoding) are forwarded as given, and a
credential is optional because local servers often have none.
"""

from gateway.providers import openai_compat as oc
from gateway.providers.base import Provider

PROVIDER = Provider(
    kind="openai-compatible",
    default_base_url=None,
    auth=oc.bearer,
    url=oc.path_url,
    chat_params=oc.chat_params(),
    embedding_params=oc.embedding_params(),
    unsupported=frozenset(),
    from_error=oc.from_error,
    to_request=oc.to_request,
    rate_limits=oc.rate_limits,
    stream_error=oc.stream_error,
    passthrough_unknown=True,
    needs_credential=False,
)
