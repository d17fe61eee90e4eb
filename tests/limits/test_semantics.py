"""One table of admission cases, run against the Redis and the in-process limiter alike."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from gateway.limits.decide import reserved
from gateway.limits.local import LocalLimiter
from gateway.limits.model import BucketSpec, Budget, Candidate, Reservation, Strategy
from gateway.limits.redis_limiter import RedisLimiter

Impl = RedisLimiter | LocalLimiter


def rpm(name: str, capacity: float = 10, cost: float = 1, refill: float = 1.0) -> BucketSpec:
    return BucketSpec(name, capacity, refill, cost, "requests")


def tpm(name: str, capacity: float = 100, cost: float = 10, refill: float = 1.0) -> BucketSpec:
    return BucketSpec(name, capacity, refill, cost, "tokens")


A, B, Q = rpm("dep:a/m:rpm"), rpm("dep:b/m:rpm"), rpm("key:k:rpm")
AA = tpm("acct:a:tpm")


def cand(deployment: str, *buckets: BucketSpec) -> Candidate:
    return Candidate(deployment, deployment.partition("/")[0], buckets)


@dataclass(frozen=True)
class Case:
    id: str
    candidates: list[Candidate]
    chosen: int | None
    quotas: list[BucketSpec] = field(default_factory=list)
    strategy: Strategy = "first"
    levels: dict[BucketSpec, float] = field(default_factory=dict)  # set up with correct()
    cooling: list[tuple[str, str | None, float]] = field(default_factory=list)
    skipped: tuple[tuple[str, str], ...] = ()
    retry_after: float = 0.0
    blocked: bool = False
    after: dict[BucketSpec, float] = field(default_factory=dict)


CASES = [
    Case("first-fit", [cand("a/m", A), cand("b/m", B)], 0, after={A: 9, B: 10}),
    Case(
        "first-skips-full",
        [cand("a/m", A), cand("b/m", B)],
        1,
        levels={A: 0.5},
        skipped=(("a/m", "full: dep:a/m:rpm"),),
        after={A: 0.5, B: 9},
    ),
    Case(
        "first-skips-cooldown",
        [cand("a/m", A), cand("b/m", B)],
        1,
        cooling=[("a/m", None, 5)],
        skipped=(("a/m", "cooldown"),),
        after={A: 10, B: 9},
    ),
    Case(
        "account-cooldown-skips-its-deployments",
        [cand("a/m"), cand("a/n"), cand("b/m")],
        2,
        cooling=[("a/m", "a", 5)],
        skipped=(("a/m", "cooldown"), ("a/n", "cooldown")),
    ),
    Case(
        "most-headroom",
        [cand("a/m", A), cand("b/m", B)],
        1,
        strategy="most_headroom",
        levels={A: 5, B: 8},
        after={A: 5, B: 7},
    ),
    Case(
        "most-headroom-is-relative-to-capacity",
        [cand("a/m", tpm("dep:a/m:tpm", 100, 10)), cand("b/m", rpm("dep:b/m:rpm", 10, 1))],
        1,
        strategy="most_headroom",
        levels={tpm("dep:a/m:tpm", 100, 10): 50, rpm("dep:b/m:rpm", 10, 1): 6},
    ),
    Case(
        "most-headroom-uses-the-tightest-bucket",
        [cand("a/m", A, AA), cand("b/m", B)],
        1,
        strategy="most_headroom",
        levels={AA: 20, B: 5},
        after={A: 10, AA: 20, B: 4},
    ),
    Case(
        "most-headroom-skips-full",
        [cand("a/m", A), cand("b/m", B)],
        1,
        strategy="most_headroom",
        levels={A: 0, B: 2},
        skipped=(("a/m", "full: dep:a/m:rpm"),),
    ),
    Case(
        "shared-account-bucket-full",
        [cand("a/m", A, AA), cand("a/n", rpm("dep:a/n:rpm"), AA)],
        None,
        levels={AA: 5},
        skipped=(("a/m", "full: acct:a:tpm"), ("a/n", "full: acct:a:tpm")),
        retry_after=5.0,
        after={A: 10, AA: 5},
    ),
    Case(
        "shared-account-bucket-charged-once",
        [cand("a/m", A, AA), cand("a/n", rpm("dep:a/n:rpm"), AA)],
        1,
        quotas=[tpm("key:k:tpm")],
        levels={A: 0},
        skipped=(("a/m", "full: dep:a/m:rpm"),),
        after={A: 0, AA: 90, rpm("dep:a/n:rpm"): 9, tpm("key:k:tpm"): 90},
    ),
    # Not a configuration the gateway makes (quota and provider buckets have their own names), but both
    # implementations must agree that one name is one bucket, however often a request names it.
    Case("bucket-named-twice-is-one-bucket", [cand("a/m", A, AA)], 0, quotas=[AA], after={A: 9, AA: 80}),
    Case(
        "quota-blocks-all-or-nothing",
        [cand("a/m", A)],
        None,
        quotas=[rpm("key:k:rpm", refill=2)],
        levels={rpm("key:k:rpm", refill=2): 0.5},
        retry_after=0.25,
        blocked=True,
        after={A: 10, rpm("key:k:rpm", refill=2): 0.5},
    ),
    Case("quota-charged-with-candidate", [cand("a/m", A)], 0, quotas=[Q], after={A: 9, Q: 9}),
    Case(
        "retry-after-from-refill",
        [cand("a/m", rpm("dep:a/m:rpm", 10, 10, refill=2))],
        None,
        levels={rpm("dep:a/m:rpm", 10, 10, refill=2): 4},
        skipped=(("a/m", "full: dep:a/m:rpm"),),
        retry_after=3.0,
    ),
    Case(
        "retry-after-is-the-smallest-candidate-wait",
        [cand("a/m", rpm("dep:a/m:rpm", 10, 10, refill=2)), cand("b/m", B)],
        None,
        levels={rpm("dep:a/m:rpm", 10, 10, refill=2): 4, B: 0},
        skipped=(("a/m", "full: dep:a/m:rpm"), ("b/m", "full: dep:b/m:rpm")),
        retry_after=1.0,
    ),
    Case(
        "retry-after-counts-cooldowns",
        [cand("a/m"), cand("b/m", rpm("dep:b/m:rpm", refill=0.2))],
        None,
        levels={rpm("dep:b/m:rpm", refill=0.2): 0},
        cooling=[("a/m", None, 2)],
        skipped=(("a/m", "cooldown"), ("b/m", "full: dep:b/m:rpm")),
        retry_after=2.0,
    ),
    Case(
        "retry-after-is-the-later-of-quota-and-candidates",
        [cand("a/m", rpm("dep:a/m:rpm", 10, 10, refill=2))],
        None,
        quotas=[rpm("key:k:rpm", refill=2)],
        levels={rpm("dep:a/m:rpm", 10, 10, refill=2): 4, rpm("key:k:rpm", refill=2): 0},
        skipped=(("a/m", "full: dep:a/m:rpm"),),
        retry_after=3.0,
        blocked=True,
    ),
    # A cost above the capacity is admitted into a full bucket and takes what it holds: the bucket is
    # drained, never left in debt (a client-chosen debt locked every other tenant out, issue 8).
    Case("over-capacity-drains-a-full-bucket", [cand("a/m", rpm("dep:a/m:rpm", 10, 25))], 0, after={A: 0}),
    Case(
        "over-capacity-quota-drains-too",
        [cand("a/m", A)],
        0,
        quotas=[rpm("key:k:rpm", 10, 10**18)],
        after={A: 9, Q: 0},
    ),
    Case(
        "over-capacity-never-goes-below-empty",
        [cand("a/m", rpm("dep:a/m:rpm", 10, 9.5e300))],
        0,
        after={A: 0},
    ),
    Case(
        "debt-waits-until-full",
        [cand("a/m", rpm("dep:a/m:rpm", 10, 25))],
        None,
        levels={A: 9},
        skipped=(("a/m", "full: dep:a/m:rpm"),),
        retry_after=1.0,
    ),
    Case("no-buckets-is-unlimited", [cand("a/m")], 0),
    Case("no-candidates", [], None),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
async def test_admission_table(limiter: Impl, case: Case) -> None:
    for bucket, level in case.levels.items():
        await limiter.correct(bucket, level)
    for deployment, account, seconds in case.cooling:
        await limiter.cooldown(deployment, account, seconds)

    admission = await limiter.admit(case.candidates, case.quotas, case.strategy)

    assert admission.chosen == case.chosen
    assert admission.skipped == case.skipped
    assert admission.blocked_by_quota == case.blocked
    assert admission.retry_after == pytest.approx(case.retry_after, abs=0.05)
    assert [q.name for q in admission.quota] == [q.name for q in case.quotas]
    if case.chosen is None:
        assert admission.reservation is None
    else:
        assert admission.reservation is not None
        charged = (*case.candidates[case.chosen].buckets, *case.quotas)
        assert admission.reservation.buckets == reserved(charged)  # each cost as taken: at most the capacity
    if case.after:
        levels = await limiter.levels(list(case.after))
        assert levels == pytest.approx(list(case.after.values()), abs=0.05)


async def test_quota_states_for_headers(limiter: Impl) -> None:
    quota = BucketSpec("key:k:tpm", capacity=100, refill_per_sec=10, cost=30, kind="tokens")
    admission = await limiter.admit([cand("a/m", A)], [quota])
    (state,) = admission.quota
    assert (state.name, state.kind, state.limit) == ("key:k:tpm", "tokens", 100)
    assert state.remaining == pytest.approx(70, abs=0.5)
    assert state.reset_seconds == pytest.approx(3.0, abs=0.05)  # 30 tokens at 10/s until full


# Budgets: one table, run against admit_v7.lua and decide.py alike. A budget has room while its spend is
# under its cap; an admitted request takes its maximum cost, or what is left; nothing is charged when one
# budget has no room; the alert level newly reached (of 0.5, 0.8, 1.0) is reported once.
DAY = Budget("key:k:day", "2026-12-01", 10.0, 4_102_444_800.0)  # ends in 2100: never expires in a test
MONTH = Budget("tier:t:month", "2026-12", 100.0, 4_102_444_800.0)


def priced(deployment: str, usd: float, *buckets: BucketSpec) -> Candidate:
    return Candidate(deployment, deployment.partition("/")[0], buckets, usd)


@dataclass(frozen=True)
class BudgetCase:
    id: str
    candidates: list[Candidate]
    budgets: list[Budget]
    chosen: int | None
    over: int | None = None
    spent: dict[Budget, float] = field(default_factory=dict)  # set up with settle()
    levels: dict[BucketSpec, float] = field(default_factory=dict)
    quotas: list[BucketSpec] = field(default_factory=list)
    took: tuple[float, ...] = ()
    after: tuple[float, ...] = ()  # each budget's spend after the decision
    alerts: tuple[tuple[int, int, int], ...] = ()
    untouched: dict[BucketSpec, float] = field(default_factory=dict)  # levels a refusal must leave as they were


BUDGET_CASES = [
    BudgetCase("charged-with-the-candidate", [priced("a/m", 1.0, A)], [DAY], 0, took=(1.0,), after=(1.0,)),
    BudgetCase(
        "every-budget-charged",
        [priced("a/m", 2.0)],
        [DAY, MONTH],
        0,
        spent={MONTH: 30.0},
        took=(2.0, 2.0),
        after=(2.0, 32.0),
    ),
    BudgetCase(
        "takes-what-is-left",
        [priced("a/m", 1.0)],
        [DAY],
        0,
        spent={DAY: 9.5},
        took=(0.5,),
        after=(10.0,),
        alerts=((0, 0, 3),),  # 50, 80 and 100 % at once
    ),
    BudgetCase(
        "spent-budget-refuses-all-or-nothing",
        [priced("a/m", 1.0, A)],
        [MONTH, DAY],
        None,
        over=1,
        spent={DAY: 10.0, MONTH: 50.0},
        quotas=[Q],
        after=(50.0, 10.0),
        alerts=((0, 0, 1), (1, 0, 3)),  # spend set up by settling is reported at the next admission
        untouched={A: 10, Q: 10},
    ),
    BudgetCase(
        "over-the-cap-refuses",
        [priced("a/m", 0.1)],
        [DAY],
        None,
        over=0,
        spent={DAY: 12.5},
        after=(12.5,),
        alerts=((0, 0, 3),),
    ),
    BudgetCase(
        "free-request-passes-a-spent-budget",
        [priced("a/m", 0.0)],
        [DAY],
        0,
        spent={DAY: 10.0},
        took=(0.0,),
        after=(10.0,),
        alerts=((0, 0, 3),),
    ),
    BudgetCase(
        "checked-on-the-chosen-candidate",
        [priced("a/m", 0.0, A), priced("b/m", 3.0, B)],
        [DAY],
        1,
        levels={A: 0.5},
        spent={DAY: 8.0},
        took=(2.0,),
        after=(10.0,),
        alerts=((0, 0, 3),),
    ),
    BudgetCase(
        "refuses-rather-than-wait-for-capacity",
        [priced("a/m", 1.0, A)],
        [DAY],
        None,
        over=0,
        levels={A: 0.5},
        spent={DAY: 10.0},
        after=(10.0,),
        alerts=((0, 0, 3),),
    ),
    BudgetCase(
        "waits-for-capacity-while-the-cheapest-fits",
        [priced("a/m", 5.0, A), priced("b/m", 0.0, B)],
        [DAY],
        None,
        levels={A: 0.5, B: 0.5},
        spent={DAY: 10.0},
        after=(10.0,),
        alerts=((0, 0, 3),),
    ),
    BudgetCase(
        "before-the-quota",
        [priced("a/m", 1.0)],
        [DAY],
        None,
        over=0,
        quotas=[Q],
        levels={Q: 0.5},
        spent={DAY: 10.0},
        after=(10.0,),
        alerts=((0, 0, 3),),
    ),
    BudgetCase("no-candidates-no-check", [], [DAY], None, spent={DAY: 10.0}, after=(10.0,), alerts=((0, 0, 3),)),
    BudgetCase(
        "half-reached", [priced("a/m", 1.0)], [DAY], 0, spent={DAY: 4.0}, took=(1.0,), after=(5.0,), alerts=((0, 0, 1),)
    ),
]


async def spend(limiter: Impl, budget: Budget, usd: float) -> None:
    """Add ``usd`` to a budget's spend, as a request that took nothing and cost that much would."""
    await limiter.settle(Reservation((), ((budget, 0.0),)), 0, usd)


@pytest.mark.parametrize("case", BUDGET_CASES, ids=[c.id for c in BUDGET_CASES])
async def test_budget_table(limiter: Impl, case: BudgetCase) -> None:
    for bucket, level in case.levels.items():
        await limiter.correct(bucket, level)
    for budget, usd in case.spent.items():
        await spend(limiter, budget, usd)

    admission = await limiter.admit(case.candidates, case.quotas, "first", case.budgets)

    assert (admission.chosen, admission.over_budget) == (case.chosen, case.over)
    assert admission.spent == pytest.approx(case.after)
    assert admission.alerts == case.alerts
    if case.chosen is None:
        assert admission.reservation is None
    else:
        assert admission.reservation is not None
        assert [b for b, _ in admission.reservation.budgets] == case.budgets
        assert [took for _, took in admission.reservation.budgets] == pytest.approx(case.took)
    assert await limiter.budget_spend(case.budgets) == pytest.approx(case.after)
    if case.untouched:
        assert await limiter.levels(list(case.untouched)) == pytest.approx(list(case.untouched.values()), abs=0.05)


async def test_alert_levels_are_reported_once_per_window(limiter: Impl) -> None:
    only = [priced("a/m", 1.0)]
    reported = [(await limiter.admit(only, [], "first", [DAY])).alerts for _ in range(10)]
    assert reported == [(), (), (), (), ((0, 0, 1),), (), (), ((0, 1, 2),), (), ((0, 2, 3),)]
    assert (await limiter.admit(only, [], "first", [DAY])).over_budget == 0
    assert (await limiter.admit(only, [], "first", [DAY])).alerts == ()
    next_day = Budget(DAY.name, "2026-12-02", DAY.cap, DAY.ends + 86_400)
    alerts = [(await limiter.admit(only, [], "first", [next_day])).alerts for _ in range(5)]
    assert alerts == [(), (), (), (), ((0, 0, 1),)]  # a new window starts over


@pytest.mark.parametrize(
    ("tokens", "cost", "after"),
    [
        (120, 0.3, 0.3),  # the actual cost replaces what was taken
        (120, 2.5, 2.5),  # a cost above the reservation is charged in full: it is owed
        (0, 0.0, 0.0),  # a failed attempt costs nothing
        (None, None, 0.0),  # never reached the provider: everything back
        (120, None, 1.0),  # a cost nobody knows (a stream cut without usage) keeps its maximum
    ],
)
async def test_settling_a_budget(limiter: Impl, tokens: int | None, cost: float | None, after: float) -> None:
    admission = await limiter.admit([priced("a/m", 1.0)], [], "first", [DAY])
    assert admission.reservation is not None
    await limiter.settle(admission.reservation, tokens, cost)
    assert await limiter.budget_spend([DAY]) == pytest.approx([after])


async def test_a_window_that_ended_is_a_new_budget(limiter: Impl) -> None:
    await spend(limiter, DAY, 10.0)
    assert (await limiter.admit([priced("a/m", 1.0)], [], "first", [DAY])).over_budget == 0
    tomorrow = Budget(DAY.name, "2026-12-02", DAY.cap, DAY.ends + 86_400)
    admitted = await limiter.admit([priced("a/m", 1.0)], [], "first", [tomorrow])
    assert admitted.chosen == 0
    assert await limiter.budget_spend([DAY, tomorrow]) == pytest.approx([10.0, 1.0])
