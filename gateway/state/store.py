"""The Redis store: the client built from a URL, the key layout and the versioned Lua scripts."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError, RedisError

from gateway.state.pipe import Pipe, bulk

RedisClient = Redis | RedisCluster
T = TypeVar("T")

# What counts as "Redis is unavailable": its own errors, socket errors and our deadline.
REDIS_FAILURES: tuple[type[BaseException], ...] = (RedisError, OSError, TimeoutError)

SCRIPTS = (
    "admit_v7",
    "settle_v3",
    "cooldown_v2",
    "cooldowns_v1",
    "correct_v2",
    "levels_v2",
    "heartbeat_v2",
    "ledger_v1",
)


def build_client(url: str, *, socket_timeout: float = 1.0) -> RedisClient:
    """``redis://`` or ``rediss://`` (TLS); ``?cluster=true`` selects Redis Cluster.

    The socket timeout is only a backstop: callers bound every call with their own deadline.
    """
    plain, cluster = split_cluster_flag(url)
    options: dict[str, Any] = {"socket_timeout": socket_timeout, "socket_connect_timeout": socket_timeout}
    if cluster:
        return RedisCluster.from_url(plain, **options)
    # No client-side retries with backoff: a failed call must fail fast so the caller can degrade.
    # A bounded pool: a burst waits briefly for one of a few warm connections (a script call takes
    # ~0.1 ms) instead of opening one connection per request, which could miss the deadline.
    pool = BlockingConnectionPool.from_url(
        plain, max_connections=POOL_SIZE, timeout=socket_timeout, retry=Retry(NoBackoff(), 0), **options
    )
    return Redis(connection_pool=pool)


POOL_SIZE = 16
MAX_MEMO = 50_000  # names a memo keeps (end users' buckets and budgets among them)
_EVALSHA = bulk(b"EVALSHA")


async def warm(client: RedisClient, connections: int = POOL_SIZE) -> None:
    """Open connections before traffic arrives (concurrent PINGs each need their own)."""
    await asyncio.gather(*(client.ping() for _ in range(connections)))


def split_cluster_flag(url: str) -> tuple[str, bool]:
    """Remove our own ``cluster`` query parameter, which redis-py would pass on to connections.

    >>> split_cluster_flag("rediss://h:6380/0?cluster=true&ssl_cert_reqs=none")
    ('rediss://h:6380/0?ssl_cert_reqs=none', True)
    """
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    cluster = any(k == "cluster" and v.lower() in ("true", "1", "yes") for k, v in query)
    rest = urlencode([(k, v) for k, v in query if k != "cluster"])
    return urlunsplit(parts._replace(query=rest)), cluster


class Memo(dict[str, T]):
    """Name -> what ``make`` makes of it, made on first use and kept: a request names the same buckets,
    cooldowns and budgets as the ones before it, and a lookup is then the whole cost. Cleared at ``MAX_MEMO``
    names, since end users' come and go.

    >>> keys = Memo(str.upper)
    >>> keys["a"], keys
    ('A', {'a': 'A'})
    """

    def __init__(self, make: Callable[[str], T]) -> None:
        super().__init__()
        self.make = make

    def __missing__(self, name: str) -> T:
        if len(self) >= MAX_MEMO:
            self.clear()
        made = self[name] = self.make(name)
        return made


@dataclass(frozen=True)
class KeyLayout:
    """Every key carries the hash tag ``{prefix}``, so one script call stays in one Cluster slot.

    ``b2``/``cd2``: the second storage format (plain strings, see ``admit_v7.lua``); the first kept
    hashes under ``b``/``cd``, and the new names keep a replica of each version off the other's keys.
    ``bud``: budget spend counters (``admit_v7.lua``); ``sp``: the spend ledger (``ledger_v1.lua``).

    >>> KeyLayout("llmgw").bucket("acct:openai-main:tpm")
    '{llmgw}:b2:acct:openai-main:tpm'
    >>> KeyLayout("llmgw").budget("key:team-a:day:2026-12-01"), KeyLayout("llmgw").spend("2026-12", "key:usd")
    ('{llmgw}:bud:key:team-a:day:2026-12-01', '{llmgw}:sp:2026-12:key:usd')
    """

    prefix: str = "llmgw"
    tag: str = field(init=False, repr=False, compare=False)  # "{prefix}": in every key of every request
    # The keys an admission names, by bucket name, deployment id and account, kept once made (``Memo``).
    buckets: Memo[str] = field(init=False, repr=False, compare=False)
    deployment_cooldowns: Memo[str] = field(init=False, repr=False, compare=False)
    account_cooldowns: Memo[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.prefix or "{" in self.prefix or "}" in self.prefix:
            raise ValueError(f"invalid key prefix {self.prefix!r}")
        object.__setattr__(self, "tag", "{" + self.prefix + "}")
        object.__setattr__(self, "buckets", Memo(self.bucket))
        object.__setattr__(self, "deployment_cooldowns", Memo(self.deployment_cooldown))
        object.__setattr__(self, "account_cooldowns", Memo(self.account_cooldown))

    def bucket(self, name: str) -> str:
        return f"{self.tag}:b2:{name}"

    def deployment_cooldown(self, deployment_id: str) -> str:
        return f"{self.tag}:cd2:dep:{deployment_id}"

    def account_cooldown(self, account: str) -> str:
        return f"{self.tag}:cd2:acct:{account}"

    def budget(self, counter: str) -> str:
        return f"{self.tag}:bud:{counter}"

    def spend(self, window: str, table: str) -> str:
        return f"{self.tag}:sp:{window}:{table}"

    @property
    def applied(self) -> str:
        """Replica id -> the last batch of settlements applied (``settle_v3.lua``)."""
        return f"{self.tag}:applied"

    @property
    def replicas(self) -> str:
        return f"{self.tag}:replicas"


def script_text(name: str) -> str:
    return resources.files("gateway.state").joinpath(f"{name}.lua").read_text(encoding="utf-8")


def _bulk_key(key: str) -> bytes:
    return bulk(key.encode())


class Scripts:
    """The Lua scripts registered on one client; each call is one EVALSHA."""

    def __init__(self, client: RedisClient) -> None:
        self._client = client
        self._scripts = {name: client.register_script(script_text(name)) for name in SCRIPTS}
        self._bulk = Memo(_bulk_key)  # key -> its RESP bulk string, for the pipe (the same keys recur)
        self._sha = {name: bulk(s.sha.encode()) for name, s in self._scripts.items()}

    def __getitem__(self, name: str) -> AsyncScript:
        return self._scripts[name]

    async def run_on(self, pipe: Pipe, name: str, keys: list[str], packed: bytes) -> Any:
        """EVALSHA of one script on the lean pipelined connection with one packed argument; a script the
        server lost (Redis restarted and emptied its cache) is loaded again and the call repeated.

        Each key's RESP form is kept (bounded): a request names the same buckets, cooldowns and budgets as
        the ones before it, and encoding them again cost more than the rest of the command."""
        script = self._scripts[name]
        parts = [b"*%d\r\n" % (len(keys) + 4), _EVALSHA, self._sha[name], bulk(b"%d" % len(keys))]
        parts += map(self._bulk.__getitem__, keys)
        parts += (b"$%d\r\n" % len(packed), packed, b"\r\n")  # bulk(packed), without copying it twice
        command = b"".join(parts)
        try:
            return await pipe.send(command)
        except NoScriptError:
            async with asyncio.timeout(pipe.timeout):
                await self._client.script_load(script.script)
            return await pipe.send(command)

    async def load(self) -> None:
        """SCRIPT LOAD every script (on every primary of a cluster), so the first EVALSHA does not miss.

        A later miss (Redis restarted and lost its script cache) is still handled: redis-py's script
        object loads the script again on NOSCRIPT and retries.
        """
        for script in self._scripts.values():
            await self._client.script_load(script.script)
