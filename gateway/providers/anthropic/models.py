"""What one Claude model takes on the wire, decided from the catalog's flags (read, never guessed).

Today's Messages API (the ``anthropic`` SDK 2.x types) has no ``temperature`` or ``top_p``, and current
Claude models refuse them; older ones still take them. So, per model:

- **sampling** (``temperature``, ``top_p``): forwarded only to a model the catalog knows and does not mark
  ``supports_sampling_params: false``. Any other model, unknown ones included (they are newer than the
  catalog, so they follow today's types), gets a 400 ``unsupported_parameter`` naming the parameter, and a
  plan moves on to a deployment that can take it. A value that asks for nothing (1) is left out.
- **thinking** (what ``reasoning_effort`` becomes): ``adaptive`` for a model that thinks adaptively
  (``thinking: {type: adaptive}`` with ``output_config.effort``; the SDK deprecates budgets on those),
  ``budget`` for one that only takes a thinking budget (``thinking: {type: enabled, budget_tokens}``), None
  when the catalog says it does not reason. ``thinking_always_on`` models cannot be asked not to think.
- **mid_system**: whether a system message after the conversation has started may stay where it is
  (``{"role": "system"}`` in ``messages``); otherwise it joins the top-level ``system`` prompt.

>>> facts("anthropic", "claude-sonnet-4-5").sampling, facts("anthropic", "claude-opus-4-7").sampling
(True, False)
>>> facts("anthropic", "claude-opus-4-7").thinking, facts("anthropic", "claude-haiku-4-5").thinking
('adaptive', 'budget')
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from gateway import catalog

Thinking = Literal["budget", "adaptive"]


@dataclass(frozen=True)
class ClaudeFacts:
    sampling: bool
    thinking: Thinking | None
    always_thinks: bool
    xhigh: bool  # output_config.effort "xhigh" exists for this model
    mid_system: bool


# A model the catalog does not know is newer than it: it follows today's API types.
CURRENT = ClaudeFacts(sampling=False, thinking="adaptive", always_thinks=False, xhigh=False, mid_system=True)


def from_entry(entry: Mapping[str, Any] | None) -> ClaudeFacts:
    """Pure: a catalog entry's flags -> the model's facts."""
    if entry is None:
        return CURRENT
    thinking: Thinking | None = None
    if entry.get("supports_reasoning"):  # adaptive where the model has it: the SDK warns against budgets there
        thinking = "adaptive" if entry.get("supports_adaptive_thinking") else "budget"
    return ClaudeFacts(
        sampling=entry.get("supports_sampling_params") is not False,
        thinking=thinking,
        always_thinks=bool(entry.get("thinking_always_on")),
        xhigh=bool(entry.get("supports_xhigh_reasoning_effort")),
        mid_system=bool(entry.get("supports_mid_conversation_system")),
    )


@functools.lru_cache(maxsize=1024)
def facts(kind: str, model: str) -> ClaudeFacts:
    """The facts of ``model`` as served by ``kind`` (anthropic, or bedrock for Claude on Bedrock); cached, as
    the catalog is read once per process."""
    return from_entry(catalog.entry(kind, model))
