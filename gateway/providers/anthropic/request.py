"""An OpenAI chat request -> an Anthropic Messages request (pure, table-driven where it can be).

>>> from gateway.config.model import Deployment, Limits
>>> d = Deployment("a", "claude", "claude-haiku-4-5", "chat", Limits(), None, None, 8192, frozenset())
>>> out = to_body({"model": "claude", "messages": [{"role": "user", "content": "Hi"}], "stop": "END"}, d)
>>> out["model"], out["max_tokens"], out["stop_sequences"]
('claude-haiku-4-5', 8192, ['END'])

Every OpenAI parameter is in ``SUPPORTED`` (translated below) or refused with a 400 naming it, unless its
value asks for nothing (``base.asks_nothing``). What is translated, and how:

- ``max_tokens`` / ``max_completion_tokens`` -> ``max_tokens`` (Anthropic requires one: without it, the
  deployment's output limit, from the catalog or ``models.<m>.max_output_tokens``, else 4,096);
- ``stop`` -> ``stop_sequences``; ``user`` / ``safety_identifier`` -> ``metadata.user_id``;
- ``temperature`` / ``top_p``: only where the model takes them (``models``), and ``temperature`` at most 1,
  Anthropic's range (a higher value is refused, never rescaled);
- ``tools`` (functions; ``strict`` kept) and ``tool_choice`` (``auto``, ``none``, ``required`` -> ``any``,
  a named function -> ``tool``); ``parallel_tool_calls: false`` -> ``disable_parallel_tool_use``;
- ``response_format`` ``json_schema`` -> ``output_config.format`` (the schema; its ``name`` and ``strict``
  are labels Anthropic has no place for: its structured output is always strict), where the deployment
  has the ``json_schema`` capability; ``json_object`` has no Anthropic form and is refused;
- ``reasoning_effort`` -> a thinking budget, or adaptive thinking with ``output_config.effort``
  (``models``); ``none`` turns thinking off;
- ``n`` only 1; ``stream`` as is; ``stream_options`` governs what the gateway relays (usage is always
  counted); its other fields are ignored.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gateway.config.model import Deployment
from gateway.errors import InvalidRequest
from gateway.providers.anthropic import messages
from gateway.providers.anthropic.models import ClaudeFacts, facts
from gateway.providers.base import Provider, UnsupportedParameter, UnsupportedValue, asks_nothing
from gateway.types import Endpoint

KIND = "anthropic"
DEFAULT_MAX_TOKENS = 4096  # a model whose output limit neither the catalog nor the config states
SUPPORTED = frozenset(
    {
        "model",
        "messages",
        "max_tokens",
        "max_completion_tokens",
        "stop",
        "stream",
        "stream_options",
        "temperature",
        "top_p",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "response_format",
        "reasoning_effort",
        "user",
        "safety_identifier",
        "n",
    }
)
# reasoning_effort -> thinking budget (tokens; Anthropic's minimum is 1,024 and it must stay under max_tokens)
BUDGETS = {"minimal": 1024, "low": 2048, "medium": 8192, "high": 16384, "xhigh": 32768}
# reasoning_effort -> output_config.effort for adaptive thinking
EFFORTS = {"minimal": "low", "low": "low", "medium": "medium", "high": "high", "xhigh": "xhigh"}
_TOOL_CHOICES: dict[str, dict[str, str]] = {
    "auto": {"type": "auto"},
    "none": {"type": "none"},
    "required": {"type": "any"},
}


def to_request(body: dict[str, Any], deployment: Deployment, provider: Provider, endpoint: Endpoint) -> dict[str, Any]:
    if endpoint != "chat":
        raise UnsupportedValue("model", provider.kind, "the embeddings endpoint (Anthropic has no embeddings API)")
    return to_body(body, deployment, facts(provider.kind, deployment.upstream_model), provider.kind)


def to_body(
    body: dict[str, Any], deployment: Deployment, model: ClaudeFacts | None = None, kind: str = KIND
) -> dict[str, Any]:
    """The Messages request for ``body`` on ``deployment`` (``model``: its facts, from the catalog when None)."""
    model = model or facts(kind, deployment.upstream_model)
    for name, value in body.items():
        if name not in SUPPORTED and not asks_nothing(name, value):
            raise UnsupportedParameter(name, kind)
    raw = body.get("messages")
    system, turns = messages.translate(raw if isinstance(raw, list) else [], model.mid_system, kind)
    limit = body.get("max_completion_tokens", body.get("max_tokens"))
    out: dict[str, Any] = {
        "model": deployment.upstream_model,
        "max_tokens": limit if limit is not None else deployment.max_output_tokens or DEFAULT_MAX_TOKENS,
    }
    if system is not None:
        out["system"] = system
    out["messages"] = turns
    response_format = body.get("response_format")
    if isinstance(response_format, dict) and response_format.get("type") == "json_schema":
        if "json_schema" not in deployment.capabilities:
            raise UnsupportedValue("response_format", kind, "structured output on this deployment (no json_schema)")
    for name, rule in _RULES.items():
        value = body.get(name)
        if value is not None:
            rule(out, value, body, model, kind)
    return out


def _stop(out: dict[str, Any], value: Any, body: dict[str, Any], model: ClaudeFacts, kind: str) -> None:
    stops = [value] if isinstance(value, str) else value
    if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
        raise InvalidRequest("stop must be a string or an array of strings", param="stop")
    if stops:
        out["stop_sequences"] = stops


def _user(out: dict[str, Any], value: Any, body: dict[str, Any], model: ClaudeFacts, kind: str) -> None:
    other = body.get("safety_identifier")
    if other is not None and other != value:
        raise InvalidRequest("user and safety_identifier both name the end user: give one", param="user")
    out["metadata"] = {"user_id": value}


def _safety_identifier(out: dict[str, Any], value: Any, body: dict[str, Any], model: ClaudeFacts, kind: str) -> None:
    out.setdefault("metadata", {"user_id": value})  # a ``user`` too was already checked to be the same one


def _sampling(name: str) -> Callable[[dict[str, Any], Any, dict[str, Any], ClaudeFacts, str], None]:
    def rule(out: dict[str, Any], value: Any, body: dict[str, Any], model: ClaudeFacts, kind: str) -> None:
        if asks_nothing(name, value):
            return
        if not model.sampling:
            raise UnsupportedParameter(name, kind)
        if name == "temperature" and isinstance(value, int | float) and value > 1:
            raise UnsupportedValue(name, kind, f"temperature {value} (Anthropic's range is 0 to 1)")
        out[name] = value

    return rule


def _stream(out: dict[str, Any], value: Any, body: dict[str, Any], model: ClaudeFacts, kind: str) -> None:
    if value is True:
        out["stream"] = True


def _n(out: dict[str, Any], value: Any, body: dict[str, Any], model: ClaudeFacts, kind: str) -> None:
    if value != 1:
        raise UnsupportedValue("n", kind, "more than one choice (n > 1)")


def _tools(out: dict[str, Any], value: Any, body: dict[str, Any], model: ClaudeFacts, kind: str) -> None:
    if not isinstance(value, list):
        raise InvalidRequest("tools must be an array", param="tools")
    tools = []
    for n, tool in enumerate(value):
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(function, dict) or tool.get("type") != "function":
            raise UnsupportedValue(f"tools[{n}]", kind, "a tool that is not a function")
        spec: dict[str, Any] = {"name": function.get("name")}
        if function.get("description"):
            spec["description"] = function["description"]
        spec["input_schema"] = function.get("parameters") or {"type": "object", "properties": {}}
        if function.get("strict") is not None:
            spec["strict"] = function["strict"]
        tools.append(spec)
    if tools:
        out["tools"] = tools
        choice = _choice(body.get("tool_choice"), kind)
        if body.get("parallel_tool_calls") is False and choice.get("type") != "none":
            choice["disable_parallel_tool_use"] = True
        if choice != {"type": "auto"}:  # auto is Anthropic's default with tools
            out["tool_choice"] = choice


def _choice(value: Any, kind: str) -> dict[str, Any]:
    if value is None:
        return {"type": "auto"}
    if isinstance(value, str) and value in _TOOL_CHOICES:
        return dict(_TOOL_CHOICES[value])
    function = value.get("function") if isinstance(value, dict) else None
    if isinstance(function, dict) and value.get("type") == "function" and isinstance(function.get("name"), str):
        return {"type": "tool", "name": function["name"]}
    raise UnsupportedValue("tool_choice", kind, f"tool_choice {value!r}")


def _tool_choice_alone(out: dict[str, Any], value: Any, body: dict[str, Any], model: ClaudeFacts, kind: str) -> None:
    """tool_choice without tools: "none" and "auto" ask nothing; anything else names a tool there is not."""
    if not body.get("tools") and value not in ("none", "auto"):
        raise InvalidRequest("tool_choice needs tools", param="tool_choice")


def _response_format(out: dict[str, Any], value: Any, body: dict[str, Any], model: ClaudeFacts, kind: str) -> None:
    kind_of = value.get("type") if isinstance(value, dict) else None
    if kind_of == "text":
        return
    schema = value.get("json_schema", {}).get("schema") if kind_of == "json_schema" else None
    if not isinstance(schema, dict):
        raise UnsupportedValue("response_format", kind, f"response_format {kind_of!r} (json_schema with a schema is)")
    out.setdefault("output_config", {})["format"] = {"type": "json_schema", "schema": schema}


def _reasoning(out: dict[str, Any], value: Any, body: dict[str, Any], model: ClaudeFacts, kind: str) -> None:
    out.update(thinking(value, out["max_tokens"], model, kind, out.get("output_config")))


def thinking(
    effort: Any, max_tokens: Any, model: ClaudeFacts, kind: str, output_config: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The fields ``reasoning_effort`` becomes for ``model`` (also used for Claude on Bedrock).

    >>> from gateway.providers.anthropic.models import CURRENT
    >>> thinking("high", 32000, CURRENT, "anthropic")
    {'thinking': {'type': 'adaptive'}, 'output_config': {'effort': 'high'}}
    """
    if effort == "none":
        if model.always_thinks:
            raise UnsupportedValue("reasoning_effort", kind, "reasoning_effort 'none' (this model always thinks)")
        return {"thinking": {"type": "disabled"}} if model.thinking is not None else {}
    if model.thinking is None:
        raise UnsupportedParameter("reasoning_effort", kind)
    if model.thinking == "adaptive":
        level = EFFORTS.get(effort) if isinstance(effort, str) else None
        if level is None or (level == "xhigh" and not model.xhigh):
            raise UnsupportedValue("reasoning_effort", kind, f"reasoning_effort {effort!r}")
        return {"thinking": {"type": "adaptive"}, "output_config": {**(output_config or {}), "effort": level}}
    budget = BUDGETS.get(effort) if isinstance(effort, str) else None
    if budget is None:
        raise UnsupportedValue("reasoning_effort", kind, f"reasoning_effort {effort!r}")
    ceiling = max_tokens - 1 if isinstance(max_tokens, int) else budget
    if ceiling < BUDGETS["minimal"]:
        raise InvalidRequest(
            "reasoning_effort needs max_tokens above 1024 (thinking tokens count toward it)", param="max_tokens"
        )
    return {"thinking": {"type": "enabled", "budget_tokens": min(budget, ceiling)}}


_Rule = Callable[[dict[str, Any], Any, dict[str, Any], ClaudeFacts, str], None]
# Applied in this order, for each parameter present and not null (response_format before reasoning_effort:
# both write output_config).
_RULES: dict[str, _Rule] = {
    "stop": _stop,
    "user": _user,
    "safety_identifier": _safety_identifier,
    "temperature": _sampling("temperature"),
    "top_p": _sampling("top_p"),
    "stream": _stream,
    "n": _n,
    "tools": _tools,
    "tool_choice": _tool_choice_alone,
    "response_format": _response_format,
    "reasoning_effort": _reasoning,
}
