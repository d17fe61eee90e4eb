"""What the fake's provider modes check requests against: the providers' own published types.

- Anthropic: the official SDK's ``MessageCreateParams`` (``anthropic.types``), strictly (``shapes``). The SDK
  is a test dependency, not the gateway's: without it (the demo's install) only the required fields are
  checked, and ``SDK_TYPES`` says which is in force. ``temperature`` and ``top_p``, which today's types no
  longer have, are accepted for models the catalog does not mark ``supports_sampling_params: false``, as the
  API still takes them from older models.
- Bedrock: botocore's service model for ``bedrock-runtime`` (the ``Converse`` input shape), through
  botocore's own parameter validator: unknown keys, missing members and wrong types are all reported.
"""

from __future__ import annotations

import functools
import importlib.util
from typing import Any

from gateway import catalog

SDK_TYPES = importlib.util.find_spec("anthropic") is not None
_SAMPLING = ("temperature", "top_p", "top_k")


def anthropic_request_problems(body: dict[str, Any]) -> list[str]:
    model = body.get("model")
    sampling = catalog.entry("anthropic", model) if isinstance(model, str) else None
    takes_sampling = sampling is not None and sampling.get("supports_sampling_params") is not False
    checked = {k: v for k, v in body.items() if not (takes_sampling and k in _SAMPLING)}
    if not SDK_TYPES:
        return [f"{name}: Field required" for name in ("model", "max_tokens", "messages") if name not in body]
    from anthropic.types.message_create_params import (
        MessageCreateParamsNonStreaming,
        MessageCreateParamsStreaming,
    )

    from gateway.fake.shapes import problems

    kind = MessageCreateParamsStreaming if body.get("stream") else MessageCreateParamsNonStreaming
    return [p.lstrip(".") for p in problems(checked, kind)]


@functools.cache
def _input_shape(operation: str) -> Any:
    import botocore.session  # type: ignore[import-untyped]

    model = botocore.session.get_session().get_service_model("bedrock-runtime")
    return model.operation_model(operation).input_shape


def bedrock_request_problems(model_id: str, body: dict[str, Any], stream: bool) -> list[str]:
    """botocore's validation of ``body`` (with the path's ``modelId``) as a ``Converse`` (or ``ConverseStream``)
    input; JSON carries blobs (image bytes) as base64 text, which the validator accepts as it accepts ``str``."""
    from botocore.validate import ParamValidator  # type: ignore[import-untyped]

    shape = _input_shape("ConverseStream" if stream else "Converse")
    report = ParamValidator().validate({**body, "modelId": model_id}, shape)
    text: str = report.generate_report()
    return [line.strip() for line in text.splitlines() if line.strip()] if report.has_errors() else []
