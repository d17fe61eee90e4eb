"""What one request may ask of one deployment (pure), checked for each plan entry before its admission.

A request reserves ``prompt + n x max_tokens`` on its buckets, so every number in that product must be
one the deployment could really consume: ``n`` is capped for every request at intake (``limits.max_n``),
the answer's cap here, per deployment::

    bound = deployment.max_output_tokens or deployment.context_window or limits.max_output_tokens

``max_tokens`` / ``max_completion_tokens`` over the bound, or prompt + that cap over the context window,
excludes the deployment with a 400 naming the parameter; when every deployment of the plan is excluded
the client gets that 400 (``execute.final_error``), before anything was reserved or sent. The caps are
the ones the provider itself enforces, so a request refused here would have been refused upstream, only
after reserving (and, on the way, locking other tenants out of the account).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from gateway import tokens
from gateway.config.model import Deployment
from gateway.errors import InvalidRequest


@dataclass(init=False, unsafe_hash=True)
class Asked:
    """What a request asks of any deployment, read once per request."""

    output: Final[tuple[str, int] | None]  # (parameter name, value) of the answer's cap, when the client set one
    prompt: Final[int]  # prompt tokens as routing counted them (exact for long prompts)

    def __init__(self, output: tuple[str, int] | None, prompt: int) -> None:
        self.output = output
        self.prompt = prompt


def asked(body: Mapping[str, Any], prompt: int) -> Asked:
    return Asked(tokens.requested_output(body), prompt)


def output_bound(deployment: Deployment, default_output: int) -> int:
    """The most output tokens one choice of this deployment can produce (see the module docstring)."""
    return deployment.max_output_tokens or deployment.context_window or default_output


def check(deployment: Deployment, ask: Asked, default_output: int) -> InvalidRequest | None:
    """Why ``deployment`` cannot take this request, as the 400 to answer; None when it can."""
    output = ask.output
    if output is not None:
        param, value = output
        bound = output_bound(deployment, default_output)
        if value > bound:
            return InvalidRequest(
                f"{param} is too large: {value}. {deployment.id} supports at most {bound} completion tokens",
                param=param,
                code="invalid_value",
            )
    window = deployment.context_window
    if window is not None and ask.prompt + (output[1] if output else 0) > window:
        cap = f" and {output[1]} in {output[0]}" if output else ""
        return InvalidRequest(
            f"{deployment.id}'s context window is {window} tokens; this request needs {ask.prompt} in its "
            f"messages{cap}",
            param="messages",
            code="context_length_exceeded",
        )
    return None
