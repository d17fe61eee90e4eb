"""From configuration to buckets (pure): which buckets a request touches and what it costs in each.

Bucket names are stable across replicas and restarts: ``acct:<account>:rpm``,
``dep:<account>/<model>:tpm``, ``key:<key name>:rpm``, ``user:<key name>:<end user digest>:tpm``.
Everything in a name comes from the configuration except the end user, which a client chooses: it is
hashed to a fixed length, so a 200 KB ``user`` costs Redis what a short one does.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from gateway.config.model import Account, Deployment, Limits, VirtualKey
from gateway.limits.model import BucketSpec, BucketState, Candidate


def _per_minute(name: str, limits: Limits, tokens: int) -> tuple[BucketSpec, ...]:
    buckets = []
    if limits.rpm:
        buckets.append(BucketSpec(f"{name}:rpm", limits.rpm, limits.rpm / 60, 1, "requests"))
    if limits.tpm:
        buckets.append(BucketSpec(f"{name}:tpm", limits.tpm, limits.tpm / 60, tokens, "tokens"))
    return tuple(buckets)


def candidate(account: Account, deployment: Deployment, tokens: int, usd: float = 0.0) -> Candidate:
    """Provider protection: the account's limits and the deployment's own, for ``tokens`` estimated; ``usd``:
    the most the request can cost there (what it reserves on budgets)."""
    buckets = _per_minute(f"acct:{account.name}", account.limits, tokens)
    buckets += _per_minute(f"dep:{deployment.id}", deployment.limits, tokens)
    return Candidate(deployment.id, account.name, buckets, usd)


@dataclass(frozen=True, slots=True)
class Shape:
    """A deployment's buckets, made once (the admission step keeps one per deployment): a request's
    candidate differs from it only in the token buckets' cost.

    >>> acct = Account("a", "openai", "", None, None, Limits(rpm=60, tpm=1000), ())
    >>> dep = Deployment("a", "m", "m", "chat", Limits(), None, None, None, frozenset())
    >>> shape(acct, dep).candidate(40, 0.5) == candidate(acct, dep, 40, 0.5)
    True
    """

    id: str
    account: str
    buckets: tuple[BucketSpec, ...]  # as ``candidate`` makes them, with no tokens
    tokens_at: tuple[int, ...]  # where the token buckets are
    reported: tuple[BucketSpec, ...]  # ``deployment_buckets``

    def candidate(self, tokens: int, usd: float = 0.0) -> Candidate:
        """``candidate(account, deployment, tokens, usd)``."""
        if not tokens or not self.tokens_at:
            return Candidate(self.id, self.account, self.buckets, usd)
        buckets = list(self.buckets)
        for i in self.tokens_at:
            b = buckets[i]
            buckets[i] = BucketSpec(b.name, b.capacity, b.refill_per_sec, tokens, "tokens")
        return Candidate(self.id, self.account, tuple(buckets), usd)


def shape(account: Account, deployment: Deployment) -> Shape:
    made = candidate(account, deployment, 0)
    at = tuple(i for i, b in enumerate(made.buckets) if b.kind == "tokens")
    return Shape(made.id, made.account, made.buckets, at, deployment_buckets(account, deployment))


def deployment_buckets(account: Account, deployment: Deployment) -> tuple[BucketSpec, ...]:
    """The buckets an upstream 429 or x-ratelimit-remaining header speaks about: the deployment's own
    limits when it has them, else its account's."""
    own = _per_minute(f"dep:{deployment.id}", deployment.limits, 0)
    return own or _per_minute(f"acct:{account.name}", account.limits, 0)


def quotas(key: VirtualKey, end_user: str | None, tokens: int) -> tuple[BucketSpec, ...]:
    """The caller's own quotas: the key's, and the end user's when the key sets per-user limits."""
    buckets: tuple[BucketSpec, ...] = ()
    if key.limits.rpm or key.limits.tpm:  # most keys have none: no name made for nothing
        buckets = _per_minute(f"key:{key.name}", key.limits, tokens)
    if end_user and (key.user_limits.rpm or key.user_limits.tpm):
        buckets += _per_minute(f"user:{key.name}:{end_user_digest(end_user)}", key.user_limits, tokens)
    return buckets


def end_user_digest(end_user: str) -> str:
    """16 hex digits of the id's SHA-256: fixed length, and distinct ids collide with odds of 2^-64.

    >>> end_user_digest("alice")
    '2bd806c97f0e00af'
    """
    return hashlib.sha256(end_user.encode()).hexdigest()[:16]


def ratelimit_headers(states: tuple[BucketState, ...]) -> dict[str, str]:
    """OpenAI's ``x-ratelimit-*`` headers for the tightest request and token quota of the caller.

    >>> ratelimit_headers((BucketState("key:a:rpm", "requests", 60, 59.5, 0.5),))
    {'x-ratelimit-limit-requests': '60', 'x-ratelimit-remaining-requests': '59', 'x-ratelimit-reset-requests': '500ms'}
    """
    tightest: dict[str, BucketState] = {}  # by kind, the first with the least left (this runs per request)
    for s in states:
        t = tightest.get(s.kind)
        if t is None or s.remaining * t.limit < t.remaining * s.limit:  # the smaller share left; limits > 0
            tightest[s.kind] = s
    headers: dict[str, str] = {}
    for kind, tight in tightest.items():
        limit, remaining, reset = _HEADERS[kind]
        headers[limit] = str(int(tight.limit))
        headers[remaining] = str(int(tight.remaining))  # never negative (``decide.state``): int is floor
        headers[reset] = duration(tight.reset_seconds)
    return headers


_HEADERS = {
    k: (f"x-ratelimit-limit-{k}", f"x-ratelimit-remaining-{k}", f"x-ratelimit-reset-{k}")
    for k in ("requests", "tokens")
}


def duration(seconds: float) -> str:
    """OpenAI's duration format: ``120ms``, ``1.5s``, ``6m0s``."""
    if seconds < 1:
        return f"{max(0, round(seconds * 1000))}ms"
    if seconds < 60:
        return f"{seconds:.3g}s"
    minutes, rest = divmod(int(round(seconds)), 60)
    return f"{minutes}m{rest}s"
