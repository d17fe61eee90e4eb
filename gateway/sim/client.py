"""The simulated agent platform: workflows drawn from the workload, each call sent through the gateway's code.

A call goes the way ``api.proxy`` takes a request once it is read and checked: routing features, the
routing decision (``routing.decision.decide``, serving's own), the demand on the limiter (``api.proxy.demand``)
and the walk over the plan (``routing.walk.walk`` with the admission and record steps the gateway builds);
a stream's remaining events follow its first, and the reservation is settled with the answer's usage
when it ends. The prompt's size is the workload's number, taken as counted (the gateway counts long
prompts exactly; a short one's estimate leans higher by design, which the simulation does not model).
Task and tags go in the ``x-gateway-task`` and ``x-gateway-tags`` headers, as a trusted platform's client
would send them (``metadata`` would do too: kinds that cannot store it leave it out); with end users, the
body names one in ``user``, which some adapters refuse too, so their deployments drop out of plans as they
would in serving.
"""

from __future__ import annotations

import bisect
import dataclasses
import math
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from itertools import accumulate
from typing import Any, Final

from gateway.api.proxy import demand
from gateway.config.model import Deployment, Settings, VirtualKey
from gateway.errors import GatewayError
from gateway.exchange import Exchange
from gateway.limits.base import Immediate
from gateway.record import RequestRecord
from gateway.routing.decision import decide
from gateway.routing.features import TAGS_HEADER, TASK_HEADER, TIER_HEADER, Features, features_from
from gateway.routing.health import Health
from gateway.routing.policy import Policy
from gateway.routing.resolve import ModelIndex, empty_plan_error
from gateway.routing.steps import Steps
from gateway.routing.walk import walk
from gateway.sim.providers import ModelledExchange
from gateway.sim.tally import Tally, cost_usd
from gateway.sim.trace import CURRENT, Call, Trace
from gateway.sim.workload import RequestClass, Workload

PATH: Final = "/v1/chat/completions"
Template = tuple[VirtualKey, list[Any], dict[str, Any]]  # a request's key, feature values and body
Templates = tuple[Template, Template]  # as JSON, as a stream: indexed by ``stream``
_FEATURES = tuple(f.name for f in dataclasses.fields(Features))  # in the constructor's order
_PROMPT: Final = _FEATURES.index("prompt_tokens")
_PROMPT_EXACT: Final = _FEATURES.index("prompt_exact")
_END_USER: Final = _FEATURES.index("end_user")


@dataclass(init=False, unsafe_hash=True)
class Workflow:
    cls: Final[RequestClass]
    tier: Final[str]
    user: Final[str | None]
    calls: Final[tuple[Call, ...]]

    def __init__(self, cls: RequestClass, tier: str, user: str | None, calls: tuple[Call, ...]) -> None:
        self.cls = cls
        self.tier = tier
        self.user = user
        self.calls = calls


class Draw:
    """Workflows from the workload's own random stream, drawn in arrival order: whatever the policy does
    with them, the same seed gives every policy the same workflows."""

    def __init__(self, workload: Workload, default_output: int, rng: random.Random) -> None:
        self._workload, self._rng, self._default_output = workload, rng, default_output
        # The last edge is infinite: the last class (tier) takes whatever the shares' rounding leaves.
        self._classes = workload.classes
        self._class_edges = [*accumulate(c.share for c in workload.classes)][:-1] + [math.inf]
        self._tiers = [t for t, _ in workload.tiers]
        self._tier_edges = [*accumulate(s for _, s in workload.tiers)][:-1] + [math.inf]

    def __call__(self) -> Workflow:
        rng = self._rng
        cls = self._classes[bisect.bisect(self._class_edges, rng.random())]
        tier = self._tiers[bisect.bisect(self._tier_edges, rng.random())]
        users = self._workload.end_users
        user = f"user-{rng.randrange(users)}" if users else None
        cap = cls.max_tokens or self._default_output
        calls = []
        for i in range(cls.calls):
            # Compared, not max()/min() (3.11 parses their keywords on every call): at least one token, at most cap.
            prompt = round(cls.prompt_tokens.sample(rng))
            prompt = prompt if prompt > 1 else 1
            output = round(cls.output_tokens.sample(rng))
            output = 1 if output < 1 else output if output < cap else cap
            stream = cls.stream > 0 and rng.random() < cls.stream
            think = cls.think.sample(rng) if i else 0.0
            calls.append(Call(prompt, output, cap, stream, think))
        return Workflow(cls, tier, user, tuple(calls))


async def _first_event(exchange: Exchange, deployment: Deployment) -> ModelledExchange:
    """The walk's ``finish``: a modelled answer's first event (or whole JSON body) came with its headers."""
    assert isinstance(exchange, ModelledExchange)
    return exchange


class Client:
    def __init__(
        self,
        settings: Settings,
        policy: Policy,
        workload: Workload,
        steps: Steps,
        limiter: Immediate,  # in-process (the watched LocalLimiter): settled as a plain call
        health: Health,
        tally: Tally,
        rng: random.Random,
        clock: Callable[[], float],
        sleep: Callable[[float], Awaitable[None]],
    ) -> None:
        self._settings, self._policy, self._steps = settings, policy, steps
        self._limiter, self._health, self._tally = limiter, health, tally
        self._rng, self._clock, self._sleep = rng, clock, sleep
        self._deployments: Mapping[str, Deployment] = {d.id: d for d in settings.deployments}
        self._index = ModelIndex.build(settings)
        named = next((k for k in settings.keys if k.name == workload.key), None) if workload.key else None
        self._named = named
        self._users = workload.end_users > 0
        self._made: dict[tuple[str, str], Templates] = {}  # by class and tier
        self.sent = 0

    def _templates(self, cls: RequestClass, tier: str) -> Templates:
        """The requests a class sends, as the gateway reads them, as JSON and as a stream (built once): the
        key, the features as their field values, the prompt counted exactly (each call sets its prompt and
        user, ``_FEATURES``: ``dataclasses.replace`` at half the cost), and the body."""
        found = self._made.get((cls.name, tier))
        if found is None:
            found = self._made[(cls.name, tier)] = (self._template(cls, tier, False), self._template(cls, tier, True))
        return found

    def _template(self, cls: RequestClass, tier: str, stream: bool) -> Template:
        key = self._named or VirtualKey(f"simulated-{tier}", "0" * 64, tier, frozenset({"*"}))
        body: dict[str, Any] = {"model": cls.model, "messages": [{"role": "user", "content": "simulated"}]}
        if cls.max_tokens is not None:
            body["max_tokens"] = cls.max_tokens
        if stream:
            body["stream"] = True
        if self._users:  # the same shape whichever user: an adapter that refuses `user` refuses them all
            body["user"] = "simulated"
        # Task and tags travel as headers (the gateway reads them; no provider sees them).
        headers = {TIER_HEADER: tier} if key.trusted else {}
        if cls.task:
            headers[TASK_HEADER] = cls.task
        if cls.tags:
            headers[TAGS_HEADER] = ",".join(cls.tags)
        default_output = self._settings.limits.default_output_tokens
        features = features_from(body, key, headers, "chat", key.trusted, default_output)
        values = [getattr(features, name) for name in _FEATURES]
        values[_PROMPT_EXACT] = True
        return key, values, body

    async def workflow(self, workflow: Workflow) -> None:
        """The workflow's calls, one after another until one fails. Each goes through the gateway's routing
        and request path; it is written out here rather than as a method of its own, which would be one more
        coroutine to resume each time a simulated request wakes up."""
        clock, tally = self._clock, self._tally
        arrived, cost = clock(), 0.0
        counted = tally.counts(arrived)
        name, user = workflow.cls.name, workflow.user
        templates = self._templates(workflow.cls, workflow.tier)
        for call in workflow.calls:
            if call.think > 0:
                await self._sleep(call.think)
            now = clock()
            trace = Trace(call, name, now, counted)
            CURRENT.set(trace)
            key, values, body = templates[call.stream]
            values = values.copy()
            values[_PROMPT], values[_END_USER] = call.prompt, user
            features = Features(*values)
            self.sent += 1
            record = RequestRecord(f"sim-{self.sent}", PATH, now, key_name=key.name, stream=call.stream)
            try:
                plan = decide(
                    self._policy, features, self._health.snapshot(), self._rng, self._deployments, self._index, key
                )
                if not plan.entries:
                    raise empty_plan_error(plan)
                if plan.excluded:
                    trace.circuit_open = sum(
                        1 for x in plan.excluded if x.kind == "circuit_open" and x.stage == "candidate"
                    )
                wants = demand(key, features)
                answer = await walk(self._steps, record, plan, self._deployments, body, "chat", wants, _first_event)
            except GatewayError as error:
                tally.refused(trace, error, clock())
                tally.workflow(name, counted, False, cost)
                return
            exchange = answer.result
            ttft = None
            if call.stream:
                ttft = clock() - now
                if exchange.rest > 0:
                    await self._sleep(exchange.rest)  # the rest of the stream
            exchange.slot.release()
            usage = exchange.usage
            spent = cost_usd(answer.deployment, usage)
            if answer.reservation is not None:
                self._limiter.settle_now(answer.reservation, usage.total, spent)
            tally.answered(trace, answer.deployment, usage, spent, clock(), ttft)
            cost += spent
        tally.workflow(name, counted, True, cost)
