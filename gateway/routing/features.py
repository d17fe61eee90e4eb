"""What routing knows about a request: computed once, then matched against every rule (pure).

Where each feature comes from:

- ``tier`` / ``end_user``: the virtual key's tier and the body's ``user`` (``safety_identifier`` when
  ``user`` is absent). A *trusted* service key acts for many users, so it may assert them with the
  ``x-gateway-tier`` and ``x-gateway-end-user`` headers; other keys' such headers are ignored.
- ``task``: the ``x-gateway-task`` header, else ``metadata.task``.
- ``tags``: the union of the ``x-gateway-tags`` header and ``metadata.tags``, both comma-separated
  strings (OpenAI's ``metadata`` values are strings; a list of strings is accepted too).
- ``capabilities``: what the request needs a deployment to support (``tools``, ``vision``,
  ``json_schema``, ``streaming``, ``logprobs``).
- ``budget_used``: the highest share of its cap spent among the budgets the request touches (its key's,
  its end user's, its tier's), as this replica last saw them (``spend.books``); 0 without budgets. A
  rule can send requests to cheaper candidates as budgets fill (``budget_used: {gte: 0.8}``).

Task and tags are hints any caller may send: policies should grant nothing by them that a tier or
key would not (they pick *which* model, never *whether* one is allowed).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

from gateway import tokens
from gateway.config.model import DEFAULT_OUTPUT_TOKENS, VirtualKey
from gateway.types import Endpoint

TIER_HEADER = "x-gateway-tier"
END_USER_HEADER = "x-gateway-end-user"
TASK_HEADER = "x-gateway-task"
TAGS_HEADER = "x-gateway-tags"

# An estimate this close to a threshold (relative to it) may fall on either side; count exactly.
NEAR = 0.2


@dataclass(init=False, unsafe_hash=True)
class Features:
    model: Final[str]  # as the client sent it (a route, an alias or a plain model name)
    endpoint: Final[Endpoint]
    key_name: Final[str]
    tier: Final[str]
    end_user: Final[str | None]
    task: Final[str | None]
    tags: Final[frozenset[str]]
    prompt_tokens: Final[int]
    prompt_exact: Final[bool]
    max_tokens: Final[int | None]  # the answer's cap the client set (one choice)
    output_tokens: Final[int]  # what the answers may take: n x (max_tokens, else limits.default_output_tokens)
    capabilities: Final[frozenset[str]]
    stream: Final[bool]
    allowed: Final[frozenset[str]]  # the key's allowed models: "*", model names, deployment ids, route names
    budget_used: Final[float]  # the highest share spent of the budgets the request touches
    # For exact counting; not compared or shown. Not Final: a Final field cannot take field()'s options.
    body: Mapping[str, Any] = field(compare=False, repr=False)

    def __init__(
        self,
        model: str,
        endpoint: Endpoint,
        key_name: str,
        tier: str,
        end_user: str | None,
        task: str | None,
        tags: frozenset[str],
        prompt_tokens: int,
        prompt_exact: bool,
        max_tokens: int | None,
        output_tokens: int,
        capabilities: frozenset[str],
        stream: bool,
        allowed: frozenset[str],
        budget_used: float = 0.0,
        body: Mapping[str, Any] = MappingProxyType({}),
    ) -> None:
        self.model = model
        self.endpoint = endpoint
        self.key_name = key_name
        self.tier = tier
        self.end_user = end_user
        self.task = task
        self.tags = tags
        self.prompt_tokens = prompt_tokens
        self.prompt_exact = prompt_exact
        self.max_tokens = max_tokens
        self.output_tokens = output_tokens
        self.capabilities = capabilities
        self.stream = stream
        self.allowed = allowed
        self.budget_used = budget_used
        self.body = body

    @property
    def total_tokens(self) -> int:
        """Prompt plus the answer's cap: what a context window must hold."""
        return self.prompt_tokens + (self.max_tokens or 0)


def _string(value: Any) -> str | None:
    return (value.strip() or None) if isinstance(value, str) else None


def _tag_list(value: Any) -> set[str]:
    if isinstance(value, str):
        return {t.strip() for t in value.split(",") if t.strip()}
    if isinstance(value, list):
        return {t.strip() for t in value if isinstance(t, str) and t.strip()}
    return set()


def _positive(asked: tuple[str, int] | None) -> int | None:
    return asked[1] if asked is not None and asked[1] > 0 else None


def _has_image(messages: Any) -> bool:
    if not isinstance(messages, list):
        return False
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list) and any(
            isinstance(p, dict) and p.get("type") in ("image_url", "input_image") for p in content
        ):
            return True
    return False


def required_capabilities(body: Mapping[str, Any]) -> frozenset[str]:
    """
    >>> sorted(required_capabilities({"stream": True, "tools": [{"type": "function"}]}))
    ['streaming', 'tools']
    """
    caps: set[str] = set()
    if body.get("tools") or body.get("functions"):
        caps.add("tools")
    if _has_image(body.get("messages")):
        caps.add("vision")
    response_format = body.get("response_format")
    if isinstance(response_format, dict) and response_format.get("type") == "json_schema":
        caps.add("json_schema")
    if body.get("stream") is True:
        caps.add("streaming")
    if body.get("logprobs") is True:
        caps.add("logprobs")
    return frozenset(caps)


def identity(
    body: dict[str, Any], key: VirtualKey, headers: Mapping[str, str], trusted: bool
) -> tuple[str, str | None]:
    """The request's tier and end user: a trusted key's headers, else the key's tier and the body's ``user``
    (or ``safety_identifier``)."""
    tier = (_string(headers.get(TIER_HEADER)) if trusted else None) or key.tier
    end_user = (_string(headers.get(END_USER_HEADER)) if trusted else None) or _string(
        body.get("user") or body.get("safety_identifier")
    )
    return tier, end_user


def features_from(
    body: dict[str, Any],
    key: VirtualKey,
    headers: Mapping[str, str],
    endpoint: Endpoint,
    trusted: bool,
    default_output: int = DEFAULT_OUTPUT_TOKENS,
    budget_used: float = 0.0,
    who: tuple[str, str | None] | None = None,
) -> Features:
    """Features of one request. ``headers`` is looked up with lower-case names (Starlette's are case-blind);
    ``default_output`` is ``limits.default_output_tokens``, what an answer without a cap is assumed to take;
    ``budget_used`` comes from the spend books (serving), or from whoever explains a decision; ``who`` is
    ``identity(...)`` when the caller has it already (serving needs it first, to find the budgets)."""
    metadata = body.get("metadata")
    meta: Mapping[str, Any] = metadata if isinstance(metadata, dict) else {}
    chat = endpoint == "chat"
    tier, end_user = identity(body, key, headers, trusted) if who is None else who
    model = body.get("model")
    return Features(
        model=model if isinstance(model, str) else "",
        endpoint=endpoint,
        key_name=key.name,
        tier=tier,
        end_user=end_user,
        task=_string(headers.get(TASK_HEADER)) or _string(meta.get("task")),
        tags=frozenset(_tag_list(headers.get(TAGS_HEADER)) | _tag_list(meta.get("tags"))),
        prompt_tokens=tokens.estimate_prompt(body),
        prompt_exact=False,
        max_tokens=_positive(tokens.requested_output(body)) if chat else None,
        output_tokens=tokens.output_tokens(body, default_output) if chat else 0,
        capabilities=required_capabilities(body) if chat else frozenset(),
        stream=chat and body.get("stream") is True,
        allowed=key.models,
        budget_used=budget_used,
        body=body,
    )


# The cheap estimate leans high (bytes / 3 against about four bytes per token of English), so an
# estimate well above a threshold may still be below it once counted; the band is lopsided to match.
NEAR_ABOVE = 0.7


def near(value: int, threshold: int) -> bool:
    """
    >>> near(165_000, 120_000), near(100_000, 120_000), near(300_000, 120_000)
    (True, True, False)
    """
    return (1 - NEAR) * threshold <= value <= (1 + NEAR_ABOVE) * threshold


# A prompt's tokens are reserved on the provider's TPM buckets for as long as its request runs; the
# cheap estimate over-reserves plain English by ~85 % and code by ~50 % (measured against tiktoken).
# From this size on the prompt is counted: tiktoken takes ~80 ns a token, and the tokens a gateway
# counts are bounded by its providers' TPM (10 M a minute is ~1 % of a core).
COUNTED_FROM = 1_000


def refine(features: Features, thresholds: Sequence[int], wait: bool = True) -> Features:
    """Replace the estimate with tiktoken's exact count when it could fall on either side of a threshold,
    or when the prompt is long enough for its over-reservation to hold back real capacity.

    Thresholds are the token bounds a route's rules test and its deployments' context windows
    (``Policy.thresholds(model)``); both the prompt and prompt + max_tokens are compared, since rules
    and windows test either. Far from every threshold the estimate decides the same way, for free.
    Serving passes ``wait`` false: until tiktoken has loaded (``tokens.loaded``), the estimate stands.
    """
    if features.prompt_exact:
        return features
    total = features.total_tokens
    long = features.prompt_tokens >= COUNTED_FROM
    if not long and not any(near(features.prompt_tokens, t) or near(total, t) for t in thresholds):
        return features
    exact = tokens.count_prompt(features.body, wait)
    if exact is None:
        return features
    return dataclasses.replace(features, prompt_tokens=exact, prompt_exact=True)
